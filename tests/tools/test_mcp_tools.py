"""MCP tools from real MCP servers (groundgate.testing.mcp_server), started once for the
module: over stdio (the registry spawns it) and streamable HTTP (a subprocess on 127.0.0.1).
Listing, per-app filtering, calls, tool errors, timeouts, a server that cannot start, and
servers that die after start-up (reconnected by the next call)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import groundgate
from groundgate.config import Settings
from groundgate.config_tools import McpServerConfig
from groundgate.container import Container
from groundgate.tools.base import Tool, ToolContext
from groundgate.tools.mcp import McpServer
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


# -- servers that die after start-up ---------------------------------------------------------


def spawn_http_server(port: int = 0) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "groundgate.testing.mcp_server", "--http", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("listening on "), line
    return process, line.split()[-1]


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=10)


async def test_a_killed_stdio_server_is_started_again_by_the_next_calls(
    registry: ToolRegistry,
) -> None:
    tools = by_name(registry.for_app("all", None))
    old_pid = int((await tools["local__pid"].call({}, CTX)).content)
    before = registry.status()["mcp_servers"]["local"].get("reconnects", 0)
    os.kill(old_pid, signal.SIGKILL)
    # Concurrent calls that all find the session broken share one reconnect, then retry.
    added = await asyncio.gather(*(tools["local__add"].call({"a": 2, "b": 3}, CTX) for _ in "abcd"))
    assert [(r.content, r.is_error) for r in added] == [("5", False)] * 4
    status = registry.status()["mcp_servers"]["local"]
    assert (status["state"], status["reconnects"]) == ("connected", before + 1)
    assert int((await tools["local__pid"].call({}, CTX)).content) != old_pid


async def test_an_irreversible_call_that_finds_the_server_gone_is_not_retried(
    registry: ToolRegistry,
) -> None:
    tools = by_name(registry.for_app("all", None))
    os.kill(int((await tools["local__pid"].call({}, CTX)).content), signal.SIGKILL)
    deleted = await tools["local__delete_item"].call({"item_id": "x"}, CTX)
    assert deleted.is_error
    assert "not retried" in deleted.content and "connected again" in deleted.content
    # The new process never ran it.
    served = await tools["local__calls"].call({}, CTX)
    assert not served.is_error and "delete_item" not in served.content.split(",")


async def test_an_http_server_that_went_away_and_came_back_is_reconnected() -> None:
    process, url = spawn_http_server()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    server = McpServer("back", McpServerConfig(transport="http", url=url), {})
    await server.start()
    try:
        (add,) = [tool for tool in server.tools() if tool.spec.name == "back__add"]
        assert (await add.call({"a": 1, "b": 1}, CTX)).content == "2"
        stop(process)
        down = await add.call({"a": 1, "b": 1}, CTX)
        assert down.is_error and "The MCP server 'back' is unavailable" in down.content
        status = server.status()
        assert status["state"] == "failed" and status["detail"] and not status["ready"]
        assert status["tools"] == len(server.tools()) > 0  # still offered: a call reconnects

        process, _ = spawn_http_server(port)
        back = await add.call({"a": 1, "b": 1}, CTX)
        assert (back.content, back.is_error) == ("2", False)
        status = server.status()
        assert (status["state"], status["reconnects"], status["detail"]) == ("connected", 1, "")
    finally:
        await server.close()
        stop(process)
