"""The one interface every tool kind meets (built-in, HTTP, MCP), and what a call returns.

The agent loop (``agents/``) sees only :class:`Tool` and :class:`ToolResult`: it validates
arguments against ``spec.parameters`` before a call, enforces ``timeout_s`` and ``max_calls``,
and asks for approval before any call of an ``irreversible`` tool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ToolKind = Literal["builtin", "http", "mcp", "client"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str  # as the model sees it (OpenAI function name rules: [A-Za-z0-9_-]{1,64})
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments object
    kind: ToolKind
    irreversible: bool = False  # a call pauses the run for human approval
    timeout_s: float = 10.0
    max_calls: int | None = None  # per run; None: only the run's own limits

    def openai_tool(self) -> dict[str, Any]:
        """The tool as the OpenAI ``tools`` array carries it."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who a call is made for: tools that read tenant data (``search_kb``) scope by it."""

    tenant: str
    app: str
    key_id: str | None
    trace_id: str
    run_id: str | None = None


@dataclass(slots=True)
class ToolResult:
    content: str  # what the model is shown (a tool message's content)
    is_error: bool = False  # the tool failed; the content says how, and the model may retry
    data: Any = None  # structured result, kept in the run's record (not sent to the model)
    cost_usd: float = 0.0  # what the call cost, if the tool knows (e.g. an embedding)
    metadata: dict[str, Any] = field(default_factory=dict)


class Tool(Protocol):
    @property
    def spec(self) -> ToolSpec: ...

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        """Run once with arguments already validated against ``spec.parameters``. May raise;
        the loop turns an exception or a timeout into an error result for the model."""
        ...


class ToolSet(Protocol):
    """The tools configured for the gateway (``tools/registry.py`` builds it)."""

    def for_app(self, app: str, allowed: frozenset[str] | None) -> list[Tool]:
        """The tools ``app`` may use (its ``tools`` list, MCP servers' tools filtered per
        app), cut down to ``allowed`` (the calling key's tool permissions within its tenant's;
        None: all)."""
        ...

    async def start(self) -> None:
        """Connect MCP servers and list their tools (at gateway start)."""
        ...

    async def close(self) -> None: ...
