"""Authentication over HTTP: one pure ASGI middleware in front of every route.

It reads the caller's credential (``Authorization: Bearer <key>`` or ``x-api-key``), asks the
gateway's ``Authenticator`` (gateway/auth.py) who that is and whether the route's scope is
theirs, puts the ``Principal`` on ``scope["state"]``, or answers 401/403 itself. It never
reads ``Host`` or ``X-Forwarded-*``: who you are depends on your key alone. Nothing here logs
a credential.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from groundgate.errors import AuthenticationFailed, GroundgateError
from groundgate.gateway.auth import Authenticator
from groundgate.gateway.principal import PermissionDenied

# Routes anyone may call: probes and the API description.
PUBLIC = frozenset({"/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/redoc"})
# Public routes that show more to a caller with the ``metrics`` scope: a key, if one is sent
# and valid, is put on the request; a missing or bad one leaves it anonymous.
DETAILED = frozenset({"/readyz", "/metrics"})


def required_scope(method: str, path: str) -> str | None:
    """The scope a route needs (None: any authenticated caller, tenant-scoped)."""
    if path.startswith("/v1/admin/") or path == "/v1/cache":
        return "admin"
    if path.startswith("/v1/prompts/") and method == "POST":
        return "admin"  # moving a prompt's label
    if path == "/v1/embeddings":
        return "embeddings"
    if path in ("/v1/chat/completions", "/v1/ask"):
        return "chat"
    if path.startswith("/v1/knowledge-bases") and method in ("POST", "PUT", "DELETE"):
        return "ingest"
    return None


def credential(headers: dict[bytes, bytes]) -> str | None:
    """The presented key: None when there is none, "" when the header is not a bearer token
    (which then fails the format check)."""
    value = headers.get(b"authorization")
    if value is not None:
        scheme, _, token = value.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return ""
    api_key = headers.get(b"x-api-key")
    return api_key.decode("latin-1").strip() if api_key is not None else None


class AuthMiddleware:
    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in PUBLIC:
            if path in DETAILED:
                principal = await self.authenticator.identify(credential(dict(scope["headers"])))
                if principal is not None:
                    scope.setdefault("state", {})["principal"] = principal
            await self.app(scope, receive, send)
            return
        try:
            principal = await self.authenticator.authenticate(credential(dict(scope["headers"])))
            self.authenticator.authorize(principal, required_scope(scope["method"], path))
        except (AuthenticationFailed, PermissionDenied) as exc:
            await _reject(send, exc)
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["tenant"] = principal.tenant
        await self.app(scope, receive, send)


async def _reject(send: Send, exc: GroundgateError) -> None:
    body: dict[str, Any] = {
        "error": {"message": exc.message, "type": exc.error_type, "param": None, "code": exc.code}
    }
    payload = orjson.dumps(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if exc.status_code == 401:
        headers.append((b"www-authenticate", b'Bearer realm="groundgate"'))
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
