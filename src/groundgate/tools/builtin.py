"""The built-in tools: ``search_kb`` (the app's retriever), ``calculator`` (tools/calculator.py)
and ``fetch_document`` (a document's text from the knowledge store). Both knowledge tools scope
every read by the calling tenant (``ToolContext.tenant``): a run never sees another tenant's
documents, whatever the arguments say."""

from __future__ import annotations

from typing import Any

from groundgate.config import KnowledgeBaseConfig
from groundgate.config_tools import BuiltinToolConfig
from groundgate.retrieval.search import Retriever
from groundgate.store.knowledge import KnowledgeStore
from groundgate.tools.base import ToolContext, ToolResult, ToolSpec
from groundgate.tools.calculator import CalculatorError, evaluate, format_number

SEARCH_KB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1, "description": "What to search for."},
        "top_k": {"type": "integer", "minimum": 1, "maximum": 50},
    },
    "required": ["query"],
    "additionalProperties": False,
}
CALCULATOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "expression": {
            "type": "string",
            "description": "Arithmetic: numbers, + - * / // % **, parentheses, sqrt, log, "
            "exp, sin, cos, tan, abs, round, floor, ceil, min, max, pi, e.",
        }
    },
    "required": ["expression"],
    "additionalProperties": False,
}
FETCH_DOCUMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "doc_id": {"type": "string", "minLength": 1, "description": "The document's id."}
    },
    "required": ["doc_id"],
    "additionalProperties": False,
}
_DESCRIPTIONS = {
    "search_kb": "Search the knowledge base; returns numbered passages with their document ids.",
    "calculator": "Evaluate an arithmetic expression exactly.",
    "fetch_document": "Read a whole document of the knowledge base by its id.",
}
_SCHEMAS = {
    "search_kb": SEARCH_KB_SCHEMA,
    "calculator": CALCULATOR_SCHEMA,
    "fetch_document": FETCH_DOCUMENT_SCHEMA,
}


def builtin_spec(name: str, config: BuiltinToolConfig) -> ToolSpec:
    return ToolSpec(
        name=name,
        description=config.description or _DESCRIPTIONS[config.which],
        parameters=config.parameters or _SCHEMAS[config.which],
        kind="builtin",
        irreversible=config.irreversible,
        timeout_s=config.timeout_s,
        max_calls=config.max_calls,
    )


class SearchKb:
    def __init__(
        self,
        spec: ToolSpec,
        retriever: Retriever,
        kb: str,
        kb_config: KnowledgeBaseConfig,
        top_k: int,
    ) -> None:
        self.spec = spec
        self._retriever = retriever
        self._kb = kb
        self._kb_config = kb_config
        self._top_k = top_k

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        query = str(arguments.get("query", "")).strip()
        if not query:
            return ToolResult("The query is empty.", is_error=True)
        top_k = min(int(arguments.get("top_k") or self._top_k), 50)
        result = await self._retriever.search(
            ctx.tenant, self._kb, query, config=self._kb_config, top_k=top_k
        )
        if not result.passages:
            return ToolResult("No passages found.", data=[])
        lines = []
        for passage in result.passages:
            chunk = passage.chunk
            title = f" {chunk.title}" if chunk.title else ""
            lines.append(f"[{passage.rank}] (doc_id: {chunk.doc_id}){title}\n{chunk.text}")
        data = [
            {"rank": p.rank, "doc_id": p.chunk.doc_id, "chunk_id": p.chunk.id, "score": p.score}
            for p in result.passages
        ]
        return ToolResult("\n\n".join(lines), data=data, metadata={"kb": self._kb})


class Calculator:
    def __init__(self, spec: ToolSpec) -> None:
        self.spec = spec

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        expression = arguments.get("expression")
        if not isinstance(expression, str):
            return ToolResult("'expression' must be a string.", is_error=True)
        try:
            value = evaluate(expression)
        except CalculatorError as exc:
            return ToolResult(f"Cannot evaluate: {exc}.", is_error=True)
        return ToolResult(format_number(value), data=value)


class FetchDocument:
    def __init__(self, spec: ToolSpec, knowledge: KnowledgeStore, kb: str, max_chars: int) -> None:
        self.spec = spec
        self._knowledge = knowledge
        self._kb = kb
        self._max_chars = max_chars

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        doc_id = str(arguments.get("doc_id", "")).strip()
        document = (
            await self._knowledge.get_document(ctx.tenant, self._kb, doc_id) if doc_id else None
        )
        if document is None:
            return ToolResult(f"No document with id {doc_id!r}.", is_error=True)
        ids = [f"{document.id}#{position}" for position in range(document.chunk_count)]
        chunks = await self._knowledge.get_chunks(ctx.tenant, self._kb, ids)
        text = "\n\n".join(chunk.text for chunk in chunks)
        truncated = len(text) > self._max_chars
        if truncated:
            text = text[: self._max_chars] + f"\n[truncated at {self._max_chars} characters]"
        header = f"(doc_id: {document.id})" + (f" {document.title}" if document.title else "")
        return ToolResult(
            f"{header}\n{text}",
            data={"doc_id": document.id, "chunks": len(chunks), "truncated": truncated},
            metadata={"kb": self._kb},
        )
