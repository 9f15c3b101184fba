"""MCP servers as tools, through the official SDK (the ``mcp`` extra): stdio and streamable
HTTP. Each server's session lives inside one long-running asyncio task, which enters and leaves
the SDK's context managers (anyio task groups and cancel scopes must be left by the task that
entered them); calls are made from request tasks over the session's streams.

A server's tool ``TOOL`` is offered as ``SERVER__TOOL`` (``^[A-Za-z0-9_-]{1,64}$``); a tool
whose name would break that rule is skipped with a warning. ``include`` filters the listed
tools; ``irreversible`` marks tools whose calls need approval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import mcp.types as mcp_types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from groundgate.config_tools import TOOL_NAME, McpServerConfig, mcp_tool_name
from groundgate.tools.base import ToolContext, ToolResult, ToolSpec
from groundgate.tools.env import resolve_env_values

log = logging.getLogger("groundgate.tools")
_CLOSE_TIMEOUT_S = 5.0
_MAX_LIST_PAGES = 20


class McpServer:
    def __init__(self, name: str, config: McpServerConfig, environ: Mapping[str, str]) -> None:
        self.name = name
        self.config = config
        where = f"mcp_servers.{name}"
        self._env = resolve_env_values(config.env, f"{where}.env", environ)
        self._headers = resolve_env_values(config.headers, f"{where}.headers", environ)
        self._session: ClientSession | None = None
        self._tools: list[McpTool] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self.state = "not started"  # starting | connected | failed | closed
        self.detail = ""

    def tools(self) -> list[McpTool]:
        return self._tools if self.state == "connected" else []

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.state == "connected",
            "state": self.state,
            "transport": self.config.transport,
            "tools": len(self.tools()),
            "detail": self.detail,
        }

    async def start(self) -> None:
        """Connect, initialise and list the tools, within ``connect_timeout_s``. Never raises:
        a failure leaves the server without tools and says why in :meth:`status`."""
        self.state = "starting"
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"mcp:{self.name}")
        waiter = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait(
            {self._task, waiter},
            timeout=self.config.connect_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        waiter.cancel()
        if not self._ready.is_set():
            if self._task not in done:
                self._fail(f"no answer within {self.config.connect_timeout_s:g} s")
                await self._end_task()
            # else: _run already recorded why it ended
            return
        log.info(
            "mcp server connected",
            extra={"mcp_server": self.name, "tools": [t.spec.name for t in self._tools]},
        )

    async def close(self) -> None:
        self._stop.set()
        await self._end_task()
        self.state = "closed"

    async def _end_task(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), _CLOSE_TIMEOUT_S)
        except (TimeoutError, Exception):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _run(self) -> None:
        try:
            async with (
                self._transport() as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                self._tools = await self._list(session)
                self._session = session
                self.state, self.detail = "connected", ""
                self._ready.set()
                await self._stop.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # anyio raises groups; report the first real cause
            self._fail(_describe(exc))
        finally:
            self._session = None
            if self.state == "connected":
                self.state = "closed" if self._stop.is_set() else "failed"
                if self.state == "failed":
                    self.detail = "the session ended"
                    log.warning("mcp server disconnected", extra={"mcp_server": self.name})

    def _fail(self, reason: str) -> None:
        self.state, self.detail = "failed", reason
        log.warning(
            "mcp server unavailable; its tools are absent",
            extra={"mcp_server": self.name, "reason": reason},
        )

    def _transport(self) -> AbstractAsyncContextManager[Any]:
        if self.config.transport == "stdio":
            params = StdioServerParameters(
                command=self.config.command or "",
                args=self.config.args,
                env=self._env or None,
                cwd=self.config.cwd,
            )
            return stdio_client(params, errlog=sys.stderr)
        return _http_transport(self.config.url or "", self._headers)

    async def _list(self, session: ClientSession) -> list[McpTool]:
        listed: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(_MAX_LIST_PAGES):
            params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            listed += page.tools
            cursor = page.next_cursor
            if not cursor:
                break
        include = self.config.include
        tools = []
        for tool in listed:
            if include is not None and tool.name not in include:
                continue
            name = mcp_tool_name(self.name, tool.name)
            if not TOOL_NAME.match(name):
                log.warning(
                    "mcp tool skipped: its name is not a valid function name",
                    extra={"mcp_server": self.name, "tool": tool.name[:100]},
                )
                continue
            spec = ToolSpec(
                name=name,
                description=tool.description or tool.title or tool.name,
                parameters=dict(tool.input_schema) or {"type": "object"},
                kind="mcp",
                irreversible=tool.name in self.config.irreversible,
                timeout_s=self.config.timeout_s,
            )
            tools.append(McpTool(spec, self, tool.name))
        return tools

    async def call(self, tool: str, arguments: dict[str, Any], timeout_s: float) -> ToolResult:
        session = self._session
        if session is None:
            return ToolResult(f"The MCP server '{self.name}' is not connected.", is_error=True)
        try:
            # The SDK's own timeout first; ours a little later in case its never fires.
            async with asyncio.timeout(timeout_s + 1.0):
                result = await session.call_tool(tool, arguments, read_timeout_seconds=timeout_s)
        except TimeoutError:
            return _timed_out(self.name, tool, timeout_s)
        except MCPError as exc:
            if exc.code == mcp_types.REQUEST_TIMEOUT:
                return _timed_out(self.name, tool, timeout_s)
            return ToolResult(
                f"The MCP server '{self.name}' refused the call: {exc.error.message}",
                is_error=True,
            )
        texts = [block.text for block in result.content if isinstance(block, mcp_types.TextContent)]
        others = len(result.content) - len(texts)
        content = "\n".join(texts)
        if others:
            content += f"\n[{others} non-text content block(s) omitted]"
        return ToolResult(
            content,
            is_error=result.is_error,
            data=result.structured_content,
            metadata={"mcp_server": self.name},
        )


class McpTool:
    def __init__(self, spec: ToolSpec, server: McpServer, remote_name: str) -> None:
        self.spec = spec
        self._server = server
        self.remote_name = remote_name  # the tool's name on its server

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        return await self._server.call(self.remote_name, arguments, self.spec.timeout_s)


@contextlib.asynccontextmanager
async def _http_transport(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    async with (
        create_mcp_http_client(headers=headers) as client,
        streamable_http_client(url, http_client=client) as streams,
    ):
        yield streams


def _timed_out(server: str, tool: str, timeout_s: float) -> ToolResult:
    return ToolResult(
        f"The MCP tool '{tool}' on '{server}' timed out after {timeout_s:g} s.", is_error=True
    )


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
