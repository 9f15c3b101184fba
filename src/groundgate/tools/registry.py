"""The gateway's tools, built from ``[tools]`` and ``[mcp_servers]`` (config_tools.py): the
:class:`~groundgate.tools.base.ToolSet` the agent loop asks for an app's tools.

``for_app(app, allowed)`` returns the tools the app lists (``AppConfig.tools``), in that order,
cut down to ``allowed`` (``Principal.allowed_tools``: the key's permissions within its tenant's;
None: all). Both lists use the same names: a ``[tools]`` name, ``SERVER__TOOL``, or
``mcp:SERVER`` for all of a server's tools.

MCP servers connect in :meth:`ToolRegistry.start`. One that fails to start does
not stop the gateway: its tools are absent from ``for_app``, the failure is logged at warning
level, and ``/readyz`` shows it under ``tools.mcp_servers`` (without making the gateway unready).
One that dies later keeps its tools: the next call reconnects it (``tools/mcp.py``), and
``/readyz`` shows it connected, reconnecting or failed, with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from groundgate.config import AppConfig, Settings
from groundgate.config_tools import (
    MCP_ALL_PREFIX,
    MCP_SEPARATOR,
    BuiltinToolConfig,
    HttpToolConfig,
    tool_permitted,
)
from groundgate.retrieval.search import Retriever
from groundgate.store.knowledge import KnowledgeStore
from groundgate.tools.base import Tool
from groundgate.tools.builtin import Calculator, FetchDocument, SearchKb, builtin_spec
from groundgate.tools.env import resolve_env_values
from groundgate.tools.http import HttpTool, http_spec

if TYPE_CHECKING:
    from groundgate.tools.mcp import McpServer

log = logging.getLogger("groundgate.tools")


class ToolRegistry:
    """Implements :class:`groundgate.tools.base.ToolSet`."""

    def __init__(
        self,
        settings: Settings,
        retriever: Retriever,
        knowledge: KnowledgeStore,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self._settings = settings
        self._retriever = retriever
        self._knowledge = knowledge
        # Tools that do not depend on the app: built once (HTTP headers read from env now).
        self._shared: dict[str, Tool] = {}
        self._http: list[HttpTool] = []
        for name, config in settings.tools.items():
            if isinstance(config, HttpToolConfig):
                headers = resolve_env_values(config.headers, f"tools.{name}.headers", env)
                tool = HttpTool(http_spec(name, config), config, headers)
                self._http.append(tool)
                self._shared[name] = tool
            elif config.which == "calculator" or config.knowledge_base is not None:
                self._shared[name] = self._builtin(name, config, config.knowledge_base or "")
        self._servers: dict[str, McpServer] = {}
        if settings.mcp_servers:
            from groundgate.tools.mcp import McpServer  # the optional ``mcp`` extra

            self._servers = {
                name: McpServer(name, config, env) for name, config in settings.mcp_servers.items()
            }
        self._per_app: dict[str, list[Tool]] = {}

    def _builtin(self, name: str, config: BuiltinToolConfig, kb: str) -> Tool:
        spec = builtin_spec(name, config)
        if config.which == "calculator":
            return Calculator(spec)
        if config.which == "search_kb":
            return SearchKb(spec, self._retriever, kb, self._settings.kb_config(kb), config.top_k)
        return FetchDocument(spec, self._knowledge, kb, config.max_chars)

    # -- ToolSet -----------------------------------------------------------------------

    def for_app(self, app: str, allowed: frozenset[str] | None) -> list[Tool]:
        tools = self._per_app.get(app)
        if tools is None:
            config = self._settings.apps.get(app)
            tools = self._build_for(config) if config is not None else []
            self._per_app[app] = tools
        if allowed is None:
            return list(tools)
        return [tool for tool in tools if tool_permitted(tool.spec.name, allowed)]

    async def start(self) -> None:
        if self._servers:
            await asyncio.gather(*(server.start() for server in self._servers.values()))
        self._per_app.clear()  # MCP tools are known now

    async def close(self) -> None:
        await asyncio.gather(
            *(server.close() for server in self._servers.values()),
            *(tool.close() for tool in self._http),
            return_exceptions=True,
        )
        self._per_app.clear()

    # -- the rest ----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """For /readyz: each MCP server's state and tool count (never its headers or env)."""
        return {"mcp_servers": {name: s.status() for name, s in self._servers.items()}}

    def names(self) -> list[str]:
        """Every tool name a key could be granted (MCP tools as listed at start)."""
        names = list(self._settings.tools)
        for server in self._servers.values():
            names += [tool.spec.name for tool in server.tools()]
        return names

    def _build_for(self, app: AppConfig) -> list[Tool]:
        tools: list[Tool] = []
        seen: set[str] = set()
        for entry in app.tools:
            for tool in self._resolve(entry, app):
                if tool.spec.name not in seen:
                    seen.add(tool.spec.name)
                    tools.append(tool)
        return tools

    def _resolve(self, entry: str, app: AppConfig) -> list[Tool]:
        if entry.startswith(MCP_ALL_PREFIX):
            server = self._servers.get(entry[len(MCP_ALL_PREFIX) :])
            return list(server.tools()) if server is not None else []
        if MCP_SEPARATOR in entry:
            server = self._servers.get(entry.partition(MCP_SEPARATOR)[0])
            if server is None:
                return []
            return [tool for tool in server.tools() if tool.spec.name == entry]
        shared = self._shared.get(entry)
        if shared is not None:
            return [shared]
        config = self._settings.tools.get(entry)
        if isinstance(config, BuiltinToolConfig):  # a knowledge tool on the app's own KB
            # An app without a knowledge base (an agent app) may list only the calculator
            # here (config.py refuses the others).
            return [self._builtin(entry, config, app.knowledge_base or "")]
        return []
