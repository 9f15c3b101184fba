"""What a web page may not do: one pure ASGI middleware in front of every route.

A gateway on 127.0.0.1 is still reachable from every page its user's browser opens. Three
checks close that before any route or credential is looked at:

- ``Host`` must name ``localhost``, an IP address, or a configured name
  (``server.allowed_hosts``). DNS rebinding points a name the attacker owns at 127.0.0.1, so
  the browser takes the gateway for the attacker's own origin and lets the page read what it
  answers; but the page's requests still name the attacker's host. An IP address cannot be
  rebound, and a page on another origin that calls one is caught by the next check.
- A browser's ``Origin`` must be the gateway's own (the one ``Host`` names) or one of
  ``server.cors_origins``, which Starlette's CORSMiddleware then serves. Browsers send
  ``Origin`` with every cross-origin request and with every POST, including the forms and
  ``no-cors`` fetches that need no preflight.
- A body must be ``application/json`` (``multipart/form-data`` for uploads), never one of the
  content types a page may send cross-site without a preflight (``text/plain``, forms), so a
  client that sends no ``Origin`` cannot be used for that either. A request without a body
  has nothing to mistake and goes on (to its 400 or 405).

The checks apply with keys too: they cost a header scan, and a key never needs them relaxed.
"""

from __future__ import annotations

import ipaddress
import re

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from groundgate.api.errors import error_body, json_error
from groundgate.config import ServerConfig

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# The routes that take file uploads (``multipart/form-data``) besides JSON.
_UPLOADS = re.compile(r"/v1/knowledge-bases/[^/]+/documents")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SEEN_MAX = 256
_SHOWN_MAX = 100
# Response headers a page on an allowed origin may read.
_EXPOSED = [
    "x-groundgate-trace-id",
    "x-groundgate-source",
    "x-groundgate-model",
    "x-groundgate-cost-usd",
    "x-groundgate-cache",
    "x-groundgate-cache-similarity",
    "retry-after",
    *(
        f"x-ratelimit-{what}-{kind}"
        for what in ("limit", "remaining", "reset")
        for kind in ("requests", "tokens")
    ),
]


class WebGuard:
    def __init__(self, app: ASGIApp, server: ServerConfig) -> None:
        self.app = app
        self._names = frozenset(server.allowed_hosts)
        self._origins = frozenset(server.cors_origins)
        # Host header values already found acceptable: the same few arrive on every request.
        self._seen: set[bytes] = set()
        self._cors: ASGIApp | None = None
        if self._origins:
            self._cors = CORSMiddleware(
                self._typed,
                allow_origins=sorted(self._origins),
                allow_methods=["GET", "POST", "DELETE"],
                # Mirrors what the preflight asks for (Authorization included).
                allow_headers=["*"],
                expose_headers=_EXPOSED,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = origin = content_type = None
        has_body = False
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"origin":
                origin = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                has_body = value.strip() != b"0"
            elif name == b"transfer-encoding":
                has_body = True
        if host is None or host not in self._seen:
            problem = self._host_problem(host)
            if problem is not None:
                body = error_body(problem, "invalid_request_error", code="host_not_allowed")
                await json_error(400, body)(scope, receive, send)
                return
            assert host is not None
            if len(self._seen) >= _SEEN_MAX:
                self._seen.clear()
            self._seen.add(host)
        if origin is not None and not _same_origin(origin, host):
            shown = origin.decode("latin-1")[:_SHOWN_MAX]
            if self._cors is None or not self._cors_allowed(shown):
                message = (
                    f"Cross-origin requests from '{shown}' are refused: add the origin to "
                    "server.cors_origins to let its pages call the gateway."
                )
                body = error_body(message, "permission_error", code="origin_not_allowed")
                await json_error(403, body)(scope, receive, send)
                return
            await self._cors(scope, receive, send)
            return
        refusal = _type_refusal(scope, content_type) if has_body else None
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _typed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The content-type check for requests that went through CORSMiddleware."""
        headers = dict(scope["headers"])
        has_body = headers.get(b"content-length", b"0").strip() != b"0"
        has_body = has_body or b"transfer-encoding" in headers
        refusal = _type_refusal(scope, headers.get(b"content-type")) if has_body else None
        await (refusal or self.app)(scope, receive, send)

    def _cors_allowed(self, origin: str) -> bool:
        return "*" in self._origins or origin in self._origins

    def _host_problem(self, raw: bytes | None) -> str | None:
        if raw is None:
            return "The request has no Host header."
        name = _host_and_port(raw.decode("latin-1"))[0]
        if name is None:
            return "The Host header is malformed."
        if name == "localhost" or _is_ip(name) or name in self._names or "*" in self._names:
            return None
        return (
            f"The host '{name[:_SHOWN_MAX]}' is not served here: add it to "
            "server.allowed_hosts to call the gateway by that name."
        )


def _type_refusal(scope: Scope, content_type: bytes | None) -> ASGIApp | None:
    if scope["method"] not in _BODY_METHODS:
        return None
    media = (content_type or b"").partition(b";")[0].strip().lower()
    if media == b"application/json":
        return None
    upload = _UPLOADS.fullmatch(scope["path"]) is not None
    if upload and media == b"multipart/form-data":
        return None
    wanted = "'application/json' or 'multipart/form-data'" if upload else "'application/json'"
    sent = f"'{media.decode('latin-1')[:_SHOWN_MAX]}'" if media else "none"
    message = f"The request body must be sent as {wanted} (Content-Type was {sent})."
    body = error_body(message, "invalid_request_error", code="unsupported_media_type")
    return json_error(415, body)


def _host_and_port(value: str) -> tuple[str | None, int | None]:
    """``host[:port]`` (IPv6 in brackets) as a lower-case name without brackets or a final
    dot, and the port if one is given; (None, None) if malformed."""
    value = value.strip().lower()
    port = None
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None, None
        digits = rest[1:]
    else:
        name, colon, digits = value.partition(":")
        if colon and not digits:
            return None, None
    if digits:
        if not digits.isdigit() or len(digits) > 5:
            return None, None
        port = int(digits)
    name = name.rstrip(".")
    if not name or any(c in name for c in "/@ \\"):
        return None, None
    return name, port


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _same_origin(origin: bytes, host: bytes | None) -> bool:
    """Whether ``Origin`` names the origin ``Host`` does (the scheme may differ from what this
    process sees behind a TLS proxy, so it only settles the default port)."""
    scheme, sep, rest = origin.decode("latin-1").partition("://")
    if not sep or host is None or scheme.lower() not in _DEFAULT_PORTS:
        return False  # "null" (sandboxed frames, file:), or not a web origin
    origin_name, origin_port = _host_and_port(rest)
    host_name, host_port = _host_and_port(host.decode("latin-1"))
    if origin_name is None or origin_name != host_name:
        return False
    default = _DEFAULT_PORTS[scheme.lower()]
    return (origin_port or default) == (host_port or default)
