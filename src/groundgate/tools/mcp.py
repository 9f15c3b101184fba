"""MCP servers as tools, through the official SDK (the ``mcp`` extra): stdio and streamable
HTTP. Each server's session lives inside one long-running asyncio task, which enters and leaves
the SDK's context managers (anyio task groups and cancel scopes must be left by the task that
entered them); calls are made from request tasks over the session's streams.

A server's tool ``TOOL`` is offered as ``SERVER__TOOL`` (``^[A-Za-z0-9_-]{1,64}$``); a tool
whose name would break that rule is skipped with a warning. ``include`` filters the listed
tools; ``irreversible`` marks tools whose calls need approval.

A server that dies after start-up (a stdio process that exits, an HTTP server that goes away and
comes back) is reconnected by the next call that finds its session broken: one reconnect in
flight per server (concurrent calls join it), after a short backoff that grows with each failed
attempt (capped), within ``connect_timeout_s``. The call is then made again unless its tool is
irreversible (a call that was sent may have run: it gets an error result instead); a server
still down gives an error result. ``status()`` (in /readyz) says connected, reconnecting or
failed, with the reason. The tools offered stay those listed at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import httpx
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
_BACKOFF_FIRST_S = 0.2  # before a reconnect; doubled after each failed one
_BACKOFF_MAX_S = 2.0


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
        self._stop = asyncio.Event()  # the running session's: set, it closes
        self._reconnecting: asyncio.Task[bool] | None = None  # at most one at a time
        self._failed_reconnects = 0  # in a row; lengthens the backoff
        self.reconnects = 0  # successful ones since start
        self.state = "not started"  # starting | connected | reconnecting | failed | closed
        self.detail = ""

    def tools(self) -> list[McpTool]:
        """The tools as listed at start-up. They stay offered while the server is down: a call
        reconnects (or says the server is unavailable)."""
        return [] if self.state == "closed" else self._tools

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.state == "connected",
            "state": self.state,
            "transport": self.config.transport,
            "tools": len(self.tools()),
            "detail": self.detail,
            "reconnects": self.reconnects,
        }

    async def start(self) -> None:
        """Connect, initialise and list the tools, within ``connect_timeout_s``. Never raises:
        a failure leaves the server without tools and says why in :meth:`status`."""
        self.state = "starting"
        if await self._connect(list_tools=True):
            log.info(
                "mcp server connected",
                extra={"mcp_server": self.name, "tools": [t.spec.name for t in self._tools]},
            )

    async def close(self) -> None:
        reconnecting, self._reconnecting = self._reconnecting, None
        if reconnecting is not None:
            reconnecting.cancel()
            with contextlib.suppress(BaseException):
                await reconnecting
        await self._end_task()
        self.state = "closed"

    async def _connect(self, list_tools: bool) -> bool:
        """Start a session task and wait until it is ready (True) or has failed (False, the
        reason in ``detail``), within ``connect_timeout_s``."""
        ready, self._stop = asyncio.Event(), asyncio.Event()
        self._task = asyncio.create_task(
            self._run(ready, self._stop, list_tools), name=f"mcp:{self.name}"
        )
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait(
            {self._task, waiter},
            timeout=self.config.connect_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        waiter.cancel()
        if ready.is_set():
            return True
        if self._task not in done:
            self._fail(f"no answer within {self.config.connect_timeout_s:g} s")
            await self._end_task()
        # else: _run already recorded why it ended
        return False

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

    async def _run(self, ready: asyncio.Event, stop: asyncio.Event, list_tools: bool) -> None:
        mine: ClientSession | None = None
        try:
            async with (
                self._transport() as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                if list_tools:
                    self._tools = await self._list(session)
                self._session = mine = session
                self.state, self.detail = "connected", ""
                ready.set()
                await stop.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # anyio raises groups; report the first real cause
            if not stop.is_set():  # an error while closing on purpose is no news
                self._fail(_describe(exc))
        finally:
            if mine is not None and self._session is mine:
                self._session = None
                if not stop.is_set() and self.state == "connected":
                    self._fail("the session ended")

    def _fail(self, reason: str) -> None:
        self.state, self.detail = "failed", reason
        log.warning(
            "mcp server unavailable",
            extra={"mcp_server": self.name, "reason": reason},
        )

    # -- reconnecting ------------------------------------------------------------------------

    async def _reconnected(self, broken: ClientSession | None, reason: str) -> ClientSession | None:
        """A working session in place of ``broken`` (None: there was none): the one another
        call has made meanwhile, or a new one from the single reconnect in flight (joined, not
        repeated, by concurrent callers); None when the server is still unavailable."""
        current = self._session
        if current is not None and current is not broken:
            return current
        if self._reconnecting is None:
            self._reconnecting = asyncio.create_task(
                self._reconnect(reason), name=f"mcp-reconnect:{self.name}"
            )
        # Shielded: a caller that gives up (its tool timeout) does not abort the reconnect.
        ok = await asyncio.shield(self._reconnecting)
        return self._session if ok else None

    async def _reconnect(self, reason: str) -> bool:
        try:
            self._session = None
            self.state, self.detail = "reconnecting", reason
            log.warning(
                "mcp server connection lost; reconnecting",
                extra={"mcp_server": self.name, "reason": reason},
            )
            await self._end_task()  # leave the old session (a stdio child is ended with it)
            # A short pause lets a restarting server come up; longer after each failure, capped.
            backoff = _BACKOFF_FIRST_S * 2**self._failed_reconnects
            await asyncio.sleep(min(backoff, _BACKOFF_MAX_S))
            # The tools stay those listed at start-up (the apps' tool lists are built on them).
            if not await self._connect(list_tools=False):
                self._failed_reconnects += 1
                return False
            self._failed_reconnects = 0
            self.reconnects += 1
            log.info("mcp server reconnected", extra={"mcp_server": self.name})
            return True
        finally:
            if self._reconnecting is asyncio.current_task():
                self._reconnecting = None

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

    async def call(
        self, tool: str, arguments: dict[str, Any], timeout_s: float, *, repeatable: bool = True
    ) -> ToolResult:
        """Call ``tool``. A session found broken is reconnected once; the call is then made
        again only if it is ``repeatable`` (not irreversible: a call that was sent may have
        run). A server that stays down gives an error result, never an exception."""
        if self.state == "closed":
            return ToolResult(f"The MCP server '{self.name}' is not connected.", is_error=True)
        session = self._session
        if session is None:
            # Known to be down before anything was sent: reconnecting first is safe for any tool.
            session = await self._reconnected(None, self.detail or "not connected")
            if session is None:
                return self._unavailable(tool)
        try:
            return await self._call_on(session, tool, arguments, timeout_s)
        except _ConnectionLost as lost:
            reason = lost.reason
        healed = await self._reconnected(session, reason)
        if not repeatable:
            now = "It is connected again" if healed is not None else "It is still unavailable"
            return ToolResult(
                f"The MCP server '{self.name}' became unavailable during the call of '{tool}' "
                f"({reason}). The call was not retried: the tool is irreversible and the call "
                f"may have run. {now}.",
                is_error=True,
            )
        if healed is None:
            return self._unavailable(tool)
        try:
            return await self._call_on(healed, tool, arguments, timeout_s)
        except _ConnectionLost as again:  # no second reconnect in this call; the next one may
            if self._session is healed:
                self._session = None
                self._fail(again.reason)
            return self._unavailable(tool)

    async def _call_on(
        self, session: ClientSession, tool: str, arguments: dict[str, Any], timeout_s: float
    ) -> ToolResult:
        """One call over ``session``; raises :class:`_ConnectionLost` if its connection is gone."""
        try:
            # The SDK's own timeout first; ours a little later in case its never fires.
            async with asyncio.timeout(timeout_s + 1.0):
                result = await session.call_tool(tool, arguments, read_timeout_seconds=timeout_s)
        except TimeoutError:
            return _timed_out(self.name, tool, timeout_s)
        except MCPError as exc:
            if exc.code == mcp_types.REQUEST_TIMEOUT:
                return _timed_out(self.name, tool, timeout_s)
            if _connection_lost(exc):
                raise _ConnectionLost(exc.error.message) from exc
            return ToolResult(
                f"The MCP server '{self.name}' refused the call: {exc.error.message}",
                is_error=True,
            )
        except _TRANSPORT_ERRORS as exc:
            raise _ConnectionLost(_describe(exc)) from exc
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

    def _unavailable(self, tool: str) -> ToolResult:
        return ToolResult(
            f"The MCP server '{self.name}' is unavailable ({self.detail or self.state}); "
            f"'{tool}' was not called.",
            is_error=True,
        )


class McpTool:
    def __init__(self, spec: ToolSpec, server: McpServer, remote_name: str) -> None:
        self.spec = spec
        self._server = server
        self.remote_name = remote_name  # the tool's name on its server

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        return await self._server.call(
            self.remote_name,
            arguments,
            self.spec.timeout_s,
            repeatable=not self.spec.irreversible,
        )


@contextlib.asynccontextmanager
async def _http_transport(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    async with (
        create_mcp_http_client(headers=headers) as client,
        streamable_http_client(url, http_client=client) as streams,
    ):
        yield streams


class _ConnectionLost(Exception):
    """A call found its session's connection gone (the server exited or went away)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Errors that mean the connection is gone, not that the server refused the call.
_TRANSPORT_ERRORS = (
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    httpx.TransportError,
    OSError,
)


def _connection_lost(exc: MCPError) -> bool:
    if exc.code == mcp_types.CONNECTION_CLOSED:
        return True
    # An HTTP server that restarted no longer knows the session.
    return exc.code == mcp_types.INVALID_REQUEST and exc.error.message == "Session terminated"


def _timed_out(server: str, tool: str, timeout_s: float) -> ToolResult:
    return ToolResult(
        f"The MCP tool '{tool}' on '{server}' timed out after {timeout_s:g} s.", is_error=True
    )


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
