"""The ``[tools.NAME]`` and ``[mcp_servers.NAME]`` sections: the tools agents may call, and
which of them each app offers (``AppConfig.tools``). Kept beside ``config.py``, which imports it.

Names as the model sees them follow OpenAI's function-name rule, ``^[A-Za-z0-9_-]{1,64}$``.
An MCP server's tool ``TOOL`` is offered as ``SERVER__TOOL`` (two underscores), so ``__`` is
reserved: neither a ``[tools]`` name nor a server name may contain it.

An app's ``tools`` list holds ``[tools]`` names, ``SERVER__TOOL`` for one MCP tool, or
``mcp:SERVER`` for every tool the server exposes (after its ``include``). Key and tenant
permissions (``Principal.tools``, ``Principal.tenant_tools``) use the same three forms.

Secrets never live in the file: a header (or an MCP server's environment variable) whose
value is ``env:VAR`` is read from the environment at start-up, and is never logged or traced.
"""

from __future__ import annotations

import importlib.util
import re
import string
from collections.abc import Collection, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MCP_SEPARATOR = "__"  # SERVER__TOOL
MCP_ALL_PREFIX = "mcp:"  # mcp:SERVER, every tool of a server
ENV_PREFIX = "env:"
# Headers whose value is a credential: only ``env:VAR`` is accepted for them.
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"}
_PLACEHOLDER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ToolBase(_Strict):
    description: str = ""
    # JSON Schema of the arguments object. Built-ins bring their own; an HTTP tool's default
    # has one required string per URL placeholder.
    parameters: dict[str, Any] | None = None
    irreversible: bool = False  # a call pauses the agent run for human approval
    timeout_s: float = Field(10.0, gt=0, le=600)
    max_calls: int | None = Field(None, ge=1)  # per run

    @field_validator("parameters")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type", "object") != "object":
            raise ValueError("must be a JSON Schema of type 'object' (the arguments object)")
        return value


class BuiltinToolConfig(_ToolBase):
    kind: Literal["builtin"]
    which: Literal["search_kb", "calculator", "fetch_document"]
    # search_kb, fetch_document: the knowledge base (None: the calling app's own).
    knowledge_base: str | None = None
    top_k: int = Field(5, ge=1, le=50)  # search_kb: passages returned
    max_chars: int = Field(20_000, ge=100, le=1_000_000)  # fetch_document: text returned


class HttpToolConfig(_ToolBase):
    kind: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    # ``https://api.example.com/v1/items/{id}?q={query}``: placeholders only in the path and
    # query, filled from the arguments, percent-encoded. Scheme, host and port never change.
    url: str
    headers: dict[str, str] = Field(default_factory=dict)  # values may be "env:VAR"
    # Let the host resolve to loopback/private/link-local addresses (off: SSRF defence).
    allow_private: bool = False
    max_response_bytes: int = Field(1_000_000, ge=1, le=100_000_000)

    @field_validator("url")
    @classmethod
    def _template(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an absolute http:// or https:// URL (got {value!r})")
        if "{" in parts.netloc or "}" in parts.netloc or "@" in parts.netloc:
            raise ValueError("the host part must be fixed: no placeholders or user info")
        if parts.fragment:
            raise ValueError("must not have a #fragment")
        for name in url_placeholders(value):
            if not _PLACEHOLDER_NAME.match(name):
                raise ValueError(f"placeholder {{{name}}} must be a plain name")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, raw in value.items():
            if name.lower() in _SECRET_HEADERS and not raw.startswith(ENV_PREFIX):
                raise ValueError(
                    f"header {name!r} holds a credential: give it as 'env:VAR' (the name of "
                    "the environment variable that holds it), never in the file"
                )
            if raw.startswith(ENV_PREFIX) and not raw[len(ENV_PREFIX) :]:
                raise ValueError(f"header {name!r}: 'env:' needs a variable name")
        return value

    def placeholders(self) -> list[str]:
        return url_placeholders(self.url)


ToolConfig = Annotated[BuiltinToolConfig | HttpToolConfig, Field(discriminator="kind")]


class McpServerConfig(_Strict):
    transport: Literal["stdio", "http"]
    # stdio: the command that starts the server, its arguments, extra environment variables
    # (values may be "env:VAR") and working directory.
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    # http: the streamable HTTP endpoint and its headers (values may be "env:VAR").
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # The server's tools to expose (their names on the server); None: all.
    include: list[str] | None = None
    # The server's tools whose calls pause the run for approval.
    irreversible: list[str] = Field(default_factory=list)
    timeout_s: float = Field(30.0, gt=0, le=600)  # per call
    connect_timeout_s: float = Field(20.0, gt=0, le=600)  # start + initialize + list tools

    @model_validator(mode="after")
    def _transport(self) -> McpServerConfig:
        if self.transport == "stdio":
            if not self.command:
                raise ValueError("transport 'stdio' needs command")
            if self.url or self.headers:
                raise ValueError("url and headers are for transport 'http'")
        else:
            if not self.url or not self.url.startswith(("http://", "https://")):
                raise ValueError("transport 'http' needs url (http:// or https://)")
            if self.command or self.args or self.env or self.cwd:
                raise ValueError("command, args, env and cwd are for transport 'stdio'")
        for name, raw in self.headers.items():
            if name.lower() in _SECRET_HEADERS and not raw.startswith(ENV_PREFIX):
                raise ValueError(f"header {name!r} holds a credential: give it as 'env:VAR'")
        return self


def url_placeholders(template: str) -> list[str]:
    """The ``{name}`` placeholders of a URL template, in order."""
    return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]


def mcp_tool_name(server: str, tool: str) -> str:
    return f"{server}{MCP_SEPARATOR}{tool}"


def mcp_installed() -> bool:
    try:
        return importlib.util.find_spec("mcp") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["mcp"] is None (blocked)
        return False


def tool_problems(
    tools: Mapping[str, BuiltinToolConfig | HttpToolConfig],
    mcp_servers: Mapping[str, McpServerConfig],
    app_tools: Mapping[str, list[str]],
    knowledge_bases: set[str],
    apps_without_kb: Collection[str] = (),
) -> list[str]:
    """What is wrong across sections: bad names, unknown tools, servers and knowledge bases
    (``knowledge_bases``: those declared or used by an app), and knowledge tools with no
    knowledge base of their own in an app that has none (``apps_without_kb``)."""
    problems: list[str] = []
    for name, tool in tools.items():
        if not TOOL_NAME.match(name) or MCP_SEPARATOR in name:
            problems.append(
                f"tools.{name}: a tool name must match [A-Za-z0-9_-]{{1,64}} without '__'"
            )
        kb = getattr(tool, "knowledge_base", None)
        if kb is not None and kb not in knowledge_bases:
            problems.append(f"tools.{name}.knowledge_base: unknown knowledge base {kb!r}")
        if isinstance(tool, HttpToolConfig) and tool.parameters is not None:
            declared = set(tool.parameters.get("properties", {}))
            missing = [p for p in tool.placeholders() if p not in declared]
            if missing:
                problems.append(
                    f"tools.{name}.parameters: the URL placeholders {missing} are not properties"
                )
    for name, server in mcp_servers.items():
        if not TOOL_NAME.match(name) or MCP_SEPARATOR in name or len(name) > 40:
            problems.append(
                f"mcp_servers.{name}: a server name must match [A-Za-z0-9_-]{{1,40}} without '__'"
            )
        if server.include is not None:
            for tool_name in server.irreversible:
                if tool_name not in server.include:
                    problems.append(
                        f"mcp_servers.{name}.irreversible: {tool_name!r} is not in include"
                    )
    if mcp_servers and not mcp_installed():
        problems.append(
            "mcp_servers: MCP servers need the MCP SDK, which is not installed: "
            "pip install 'groundgate[mcp]'"
        )
    for app, names in app_tools.items():
        for i, entry in enumerate(names):
            problem = _reference_problem(entry, tools, mcp_servers)
            if problem:
                problems.append(f"apps.{app}.tools: {problem}")
            listed = tools.get(entry)
            reads_apps_kb = (
                isinstance(listed, BuiltinToolConfig)
                and listed.which != "calculator"
                and listed.knowledge_base is None
            )
            if reads_apps_kb and app in apps_without_kb:
                problems.append(
                    f"apps.{app}.tools[{i}]: {entry!r} searches the app's own knowledge base "
                    "and the app has none (give the tool a knowledge_base)"
                )
    return problems


def _reference_problem(
    entry: str,
    tools: Mapping[str, Any],
    mcp_servers: Mapping[str, McpServerConfig],
) -> str | None:
    if entry.startswith(MCP_ALL_PREFIX):
        server = entry[len(MCP_ALL_PREFIX) :]
        return None if server in mcp_servers else f"unknown MCP server {server!r} in {entry!r}"
    if MCP_SEPARATOR in entry:
        server, _, tool = entry.partition(MCP_SEPARATOR)
        if server not in mcp_servers:
            return f"unknown MCP server {server!r} in {entry!r}"
        include = mcp_servers[server].include
        if include is not None and tool not in include:
            return f"{entry!r}: {tool!r} is not in mcp_servers.{server}.include"
        return None if TOOL_NAME.match(entry) else f"{entry!r} is not a valid tool name"
    if entry not in tools:
        known = ", ".join(sorted(tools)) or "none"
        return f"unknown tool {entry!r} (declared: {known}; 'mcp:SERVER' for an MCP server)"
    return None


def tool_permitted(name: str, allowed: frozenset[str]) -> bool:
    """Whether permissions ``allowed`` cover ``name`` (a tool name, or ``mcp:SERVER``)."""
    if name in allowed:
        return True
    server, sep, _ = name.partition(MCP_SEPARATOR)
    return bool(sep) and f"{MCP_ALL_PREFIX}{server}" in allowed


def permissions_within(
    first: frozenset[str] | None, second: frozenset[str] | None
) -> frozenset[str] | None:
    """The permissions that both ``first`` and ``second`` grant (None: all): a tool is covered
    by the result exactly when both cover it. Each side keeps the entries the other covers, so
    ``mcp:files`` and ``files__read`` give ``files__read``."""
    if first is None:
        return second
    if second is None:
        return first
    kept = {entry for entry in first if tool_permitted(entry, second)}
    kept |= {entry for entry in second if tool_permitted(entry, first)}
    return frozenset(kept)


def permission_problem(entry: str) -> str | None:
    """Whether ``entry`` is a well-formed tool permission (a key's ``tools``)."""
    if entry.startswith(MCP_ALL_PREFIX):
        server = entry[len(MCP_ALL_PREFIX) :]
        return None if TOOL_NAME.match(server) else f"{entry!r}: bad server name"
    return None if TOOL_NAME.match(entry) else f"{entry!r} is not a valid tool name"
