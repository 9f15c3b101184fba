"""Built-in tools over a real SQLite store: search_kb and fetch_document see only the calling
tenant's documents; the calculator evaluates arithmetic safely and refuses the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from groundgate.config import Settings
from groundgate.container import Container
from groundgate.retrieval.documents import SourceDocument
from groundgate.tools.base import Tool, ToolContext
from groundgate.tools.calculator import CalculatorError, evaluate


def ctx(tenant: str) -> ToolContext:
    return ToolContext(tenant=tenant, app="helper", key_id=None, trace_id="t1")


@pytest.fixture(scope="module")
async def container(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Container]:
    tmp: Path = tmp_path_factory.mktemp("builtin")
    settings = Settings(
        store={"path": str(tmp / "g.db")},
        retrieval={"embedder": None, "mode": "keyword"},
        cache={"enabled": False},
        providers={"local": {"type": "local"}},
        models={"local": {"deployments": ["local:extractive"]}},
        tools={
            "calc": {"kind": "builtin", "which": "calculator"},
            "search": {"kind": "builtin", "which": "search_kb", "top_k": 2},
            "read": {"kind": "builtin", "which": "fetch_document", "max_chars": 120},
        },
        apps={"helper": {"knowledge_base": "handbook", "tools": ["search", "read", "calc"]}},
    )
    container = Container(settings)
    await container.start()
    ingestor = container.ingestor("handbook")
    await ingestor.ingest(
        "acme",
        "handbook",
        [
            SourceDocument(
                id="refunds.md",
                title="Refunds",
                text="Refunds are paid within 14 days of the return. " * 8,
            )
        ],
    )
    await ingestor.ingest(
        "globex",
        "handbook",
        [SourceDocument(id="secret.md", title="Globex", text="Globex refunds take 90 days.")],
    )
    yield container
    await container.stop()


def tools(container: Container) -> dict[str, Tool]:
    return {tool.spec.name: tool for tool in container.tools.for_app("helper", None)}


async def test_search_kb_returns_numbered_passages_of_the_tenant(container: Container) -> None:
    search = tools(container)["search"]
    result = await search.call({"query": "refunds days"}, ctx("acme"))
    assert not result.is_error
    assert result.content.startswith("[1] (doc_id: refunds.md) Refunds")
    assert "Globex" not in result.content and "90 days" not in result.content
    other = await search.call({"query": "refunds days"}, ctx("globex"))
    assert "(doc_id: secret.md)" in other.content and "refunds.md" not in other.content


async def test_fetch_document_is_tenant_scoped_and_capped(container: Container) -> None:
    read = tools(container)["read"]
    result = await read.call({"doc_id": "refunds.md"}, ctx("acme"))
    assert not result.is_error and "Refunds are paid" in result.content
    assert "[truncated at 120 characters]" in result.content and result.data["truncated"]
    elsewhere = await read.call({"doc_id": "refunds.md"}, ctx("globex"))
    assert elsewhere.is_error and "No document" in elsewhere.content


async def test_calculator_tool(container: Container) -> None:
    calc = tools(container)["calc"]
    assert (await calc.call({"expression": "(2 + 3) * 4 / 8"}, ctx("acme"))).content == "2.5"
    refused = await calc.call({"expression": "9**9**9"}, ctx("acme"))
    assert refused.is_error and "exponents are limited" in refused.content


@pytest.mark.parametrize(
    ("expression", "value"),
    [("1 + 2 * 3", 7), ("-4 // 3", -2), ("7 % 3", 1), ("2 ** 10", 1024), ("sqrt(16) + abs(-1)", 5)],
)
def test_calculator_evaluates(expression: str, value: float) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    "expression",
    [
        "9**9**9",
        "2**5000",
        "10.0**400",
        "1/0",
        "__import__('os').system('true')",
        "().__class__",
        "x + 1",
        "'a' * 3",
        "True + 1",
        "[1, 2]",
        "(lambda: 1)()",
        "1" * 600,
    ],
)
def test_calculator_refuses(expression: str) -> None:
    with pytest.raises(CalculatorError):
        evaluate(expression)
