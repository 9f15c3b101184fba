"""MCP tools from real MCP servers (groundgate.testing.mcp_server), started once for the
module: over stdio (the registry spawns it) and streamable HTTP (a subprocess on 127.0.0.1).
Listing, per-app filtering, calls, tool errors, timeouts, and a server that cannot start."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import groundgate
from groundgate.config import Settings
from groundgate.container import Container
from groundgate.tools.base import Tool, ToolContext
from groundgate.tools.registry import ToolRegistry

SRC = str(Path(groundgate.__file__).parents[1])
CTX = ToolContext(tenant="default", app="agent", key_id=None, trace_id="t1")


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "groundgate.testing.mcp_server", "--http", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("listening on "), line
    yield line.split()[-1]
    process.terminate()
    process.wait(timeout=10)


def settings_for(http_url: str, tmp: Path) -> Settings:
    stdio = {
        "transport": "stdio",
        "command": sys.executable,
        "args": ["-m", "groundgate.testing.mcp_server", "--stdio"],
        # A stdio server gets only a minimal environment plus this table.
        "env": {"PYTHONPATH": SRC},
        "irreversible": ["delete_item"],
        "timeout_s": 0.5,
    }
    return Settings(
        store={"path": str(tmp / "g.db")},
        retrieval={"embedder": None, "mode": "keyword"},
        cache={"enabled": False},
        providers={"local": {"type": "local"}},
        models={"local": {"deployments": ["local:extractive"]}},
        mcp_servers={
            "local": stdio,
            "remote": {"transport": "http", "url": http_url, "include": ["add", "fail"]},
            "broken": {"transport": "stdio", "command": "/nonexistent/mcp-server"},
        },
        apps={
            "all": {"knowledge_base": "kb", "tools": ["mcp:local", "mcp:remote", "mcp:broken"]},
            "one": {"knowledge_base": "kb", "tools": ["remote__add"]},
        },
    )


@pytest.fixture(scope="module")
async def registry(
    http_server: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ToolRegistry]:
    tmp = tmp_path_factory.mktemp("mcp")
    container = Container(settings_for(http_server, tmp))
    await container.start()  # a broken server does not stop the gateway
    yield container.tools
    await container.stop()


def by_name(tools: list[Tool]) -> dict[str, Tool]:
    return {tool.spec.name: tool for tool in tools}


async def test_tools_are_listed_and_filtered(registry: ToolRegistry) -> None:
    names = set(by_name(registry.for_app("all", None)))
    local = {"local__add", "local__echo", "local__slow", "local__fail", "local__delete_item"}
    assert local <= names
    assert {n for n in names if n.startswith("remote__")} == {"remote__add", "remote__fail"}
    assert not any(n.startswith("broken__") for n in names)
    assert set(by_name(registry.for_app("one", None))) == {"remote__add"}


async def test_specs_carry_schema_and_irreversible(registry: ToolRegistry) -> None:
    tools = by_name(registry.for_app("all", None))
    delete = tools["local__delete_item"].spec
    assert delete.kind == "mcp" and delete.irreversible
    assert delete.parameters["required"] == ["item_id"]
    assert not tools["local__add"].spec.irreversible
    assert tools["local__add"].spec.openai_tool()["function"]["name"] == "local__add"


@pytest.mark.parametrize("server", ["local", "remote"])
async def test_calls_and_errors(registry: ToolRegistry, server: str) -> None:
    tools = by_name(registry.for_app("all", None))
    added = await tools[f"{server}__add"].call({"a": 2, "b": 3}, CTX)
    assert (added.content, added.is_error) == ("5", False)
    failed = await tools[f"{server}__fail"].call({"message": "disk full"}, CTX)
    assert failed.is_error and "disk full" in failed.content


async def test_a_slow_tool_times_out(registry: ToolRegistry) -> None:
    slow = by_name(registry.for_app("all", None))["local__slow"]
    result = await slow.call({"seconds": 5}, CTX)
    assert result.is_error and "timed out after 0.5 s" in result.content
    # The session survives a timed-out call.
    echo = await by_name(registry.for_app("all", None))["local__echo"].call({"text": "hi"}, CTX)
    assert echo.content == "hi"


async def test_a_server_that_fails_to_start_says_why(registry: ToolRegistry) -> None:
    status = registry.status()["mcp_servers"]
    assert status["local"]["ready"] and status["remote"]["ready"]
    assert status["broken"]["state"] == "failed" and status["broken"]["detail"]
    assert status["broken"]["tools"] == 0


async def test_key_permissions_cut_the_list(registry: ToolRegistry) -> None:
    allowed = frozenset({"mcp:remote", "local__echo"})
    assert set(by_name(registry.for_app("all", allowed))) == {
        "remote__add",
        "remote__fail",
        "local__echo",
    }
    assert registry.for_app("all", frozenset()) == []
