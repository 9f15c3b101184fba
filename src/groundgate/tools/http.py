"""HTTP tools: a configured method and URL template on a fixed host, called with the model's
arguments. The arguments fill ``{placeholders}`` in the path and query, percent-encoded with
nothing left safe, so no value can change the scheme, host or port (``@evil.com``, ``//evil``,
``%2F%2F``, ``\\``, an absolute URL all end up inside one path segment or query value). The
remaining arguments go as query parameters (GET, DELETE) or a JSON body (POST, PUT, PATCH).

Unless ``allow_private``, the host must resolve only to public addresses (tools/ssrf.py), and
the connection is made to the address that was checked. Redirects are never followed; the
response's size and time are capped. Header values from ``env:VAR`` are secrets: they go on the
request and nowhere else (not in results, errors, logs or traces).
"""

from __future__ import annotations

import asyncio
import string
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import orjson
from yarl import URL

from groundgate.config_tools import HttpToolConfig
from groundgate.tools.base import ToolContext, ToolResult, ToolSpec
from groundgate.tools.ssrf import CheckedResolver, SsrfRefused, is_ip_literal, refusal

_BODY_METHODS = {"POST", "PUT", "PATCH"}
_ERROR_SNIPPET_CHARS = 500


def http_spec(name: str, config: HttpToolConfig) -> ToolSpec:
    parameters = config.parameters
    if parameters is None:
        names = config.placeholders()
        parameters = {
            "type": "object",
            "properties": {p: {"type": "string"} for p in names},
            "required": names,
            "additionalProperties": False,
        }
    return ToolSpec(
        name=name,
        description=config.description or f"{config.method} {_public_url(config.url)}",
        parameters=parameters,
        kind="http",
        irreversible=config.irreversible,
        timeout_s=config.timeout_s,
        max_calls=config.max_calls,
    )


def build_url(template: str, arguments: dict[str, Any]) -> str:
    """The template with each placeholder replaced by its argument, percent-encoded so that
    it stays one path segment or one query value."""
    out: list[str] = []
    for literal, field, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if field is not None:
            out.append(_encode(_text(arguments.get(field, ""))))
    return "".join(out)


def _encode(value: str) -> str:
    if value in (".", ".."):  # would walk up the path once a server normalises it
        return value.replace(".", "%2E")
    return quote(value, safe="")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else str(value)


def _public_url(template: str) -> str:
    parts = urlsplit(template)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class HttpTool:
    def __init__(self, spec: ToolSpec, config: HttpToolConfig, headers: dict[str, str]) -> None:
        self.spec = spec
        self._config = config
        self._headers = headers  # resolved env values: secrets, never shown
        self._placeholders = set(config.placeholders())
        base = urlsplit(config.url)
        self._host = base.hostname or ""
        self._origin = URL(config.url.split("{", 1)[0]).origin()
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                # Every new connection resolves and checks again (a cached answer would also
                # be a checked one; this keeps the rule simple).
                resolver=None if self._config.allow_private else CheckedResolver(),
                use_dns_cache=False,
                limit=32,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=True
            )
        return self._session

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        name = self.spec.name
        if not self._config.allow_private and is_ip_literal(self._host):
            reason = refusal(self._host.strip("[]"))
            if reason:
                return _refused(name, reason)
        url = URL(build_url(self._config.url, arguments), encoded=True)
        if url.origin() != self._origin:  # cannot happen with encoding; kept as a backstop
            return _refused(name, "the arguments would change the host")
        extra = {k: v for k, v in arguments.items() if k not in self._placeholders}
        body: bytes | None = None
        headers = dict(self._headers)
        if self._config.method in _BODY_METHODS:
            body = orjson.dumps(extra)
            headers.setdefault("Content-Type", "application/json")
        elif extra:
            url = url.extend_query({k: _text(v) for k, v in extra.items()})
        try:
            async with asyncio.timeout(self._config.timeout_s):
                return await self._send(url, headers, body)
        except TimeoutError:
            return ToolResult(
                f"The tool '{name}' timed out after {self._config.timeout_s:g} s.", is_error=True
            )
        except aiohttp.ClientError as exc:
            cause = _ssrf_cause(exc)
            if cause is not None:
                return _refused(name, str(cause))
            return ToolResult(
                f"The tool '{name}' could not reach its host: {type(exc).__name__}.",
                is_error=True,
            )

    async def _send(self, url: URL, headers: dict[str, str], body: bytes | None) -> ToolResult:
        name = self.spec.name
        limit = self._config.max_response_bytes
        async with self._client().request(
            self._config.method, url, headers=headers, data=body, allow_redirects=False
        ) as response:
            if 300 <= response.status < 400:
                return ToolResult(
                    f"The tool '{name}' got a redirect ({response.status}), which is not followed.",
                    is_error=True,
                    metadata={"status": response.status},
                )
            raw = await response.content.read(limit + 1)
            if len(raw) > limit:
                return ToolResult(
                    f"The tool '{name}' got a response larger than {limit} bytes.",
                    is_error=True,
                    metadata={"status": response.status},
                )
            text = raw.decode(response.charset or "utf-8", errors="replace")
            if response.status >= 400:
                return ToolResult(
                    f"The tool '{name}' failed with HTTP {response.status}: "
                    f"{text[:_ERROR_SNIPPET_CHARS]}",
                    is_error=True,
                    metadata={"status": response.status},
                )
            data: Any = None
            if response.content_type == "application/json":
                try:
                    data = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    data = None
            return ToolResult(text, data=data, metadata={"status": response.status})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _refused(name: str, reason: str) -> ToolResult:
    return ToolResult(
        f"The tool '{name}' refused the request: {reason} (only public addresses may be "
        "reached unless the tool sets allow_private).",
        is_error=True,
        metadata={"refused": "ssrf"},
    )


def _ssrf_cause(exc: BaseException) -> SsrfRefused | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SsrfRefused):
            return seen
        os_error = getattr(seen, "os_error", None)
        if isinstance(os_error, SsrfRefused):
            return os_error
        seen = seen.__cause__
    return None
