"""Authentication: one pure ASGI middleware in front of every route.

It turns the caller's credentials (``Authorization: Bearer <key>`` or ``x-api-key``) into a
``Principal`` on ``scope["state"]``, or answers 401/403 itself. It never reads ``Host`` or
``X-Forwarded-*``: who you are depends on your key alone. Keys are looked up by their
non-secret id after a strict format check, so malformed input never reaches the store, and
compared by hash in constant time. Nothing here logs a credential.
"""

from __future__ import annotations

import hmac
import os
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from groundgate.config import Settings
from groundgate.errors import AuthenticationFailed, GroundgateError
from groundgate.gateway.keys import parse_key, verify
from groundgate.gateway.principal import (
    DEFAULT_TENANT,
    OPEN_MODE,
    SCOPES,
    Budgets,
    Limits,
    PermissionDenied,
    Principal,
)
from groundgate.observe.redact import remember_secret
from groundgate.store.base import Store

# Routes anyone may call: probes and the API description.
PUBLIC = frozenset({"/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/redoc"})
# Public routes that show more to a caller with the ``metrics`` scope: a key, if one is sent
# and valid, is put on the request; a missing or bad one leaves it anonymous.
DETAILED = frozenset({"/readyz", "/metrics"})
_MIN_ADMIN_KEY = 32
_RECHECK_S = 2.0
_TENANT_TTL_S = 2.0
_TENANT_CACHE_MAX = 10_000


def required_scope(method: str, path: str) -> str | None:
    """The scope a route needs (None: any authenticated caller, tenant-scoped)."""
    if path.startswith("/v1/admin/") or path == "/v1/cache":
        return "admin"
    if path == "/v1/embeddings":
        return "embeddings"
    if path in ("/v1/chat/completions", "/v1/ask"):
        return "chat"
    if path.startswith("/v1/knowledge-bases") and method in ("POST", "PUT", "DELETE"):
        return "ingest"
    return None


class Authenticator:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        admin = os.environ.get(settings.auth.admin_key_env) or ""
        if admin and len(admin) < _MIN_ADMIN_KEY:
            raise GroundgateError(
                f"{settings.auth.admin_key_env} must be at least {_MIN_ADMIN_KEY} characters"
            )
        remember_secret(admin)  # never written anywhere, whatever its format
        self._admin = admin.encode() if admin else None
        self.required = settings.auth.mode == "required" or bool(self._admin)
        # Open mode's caller: the local administrator, without the admin routes unless the
        # config opens them (a web page or any local process could otherwise mint keys).
        self.open_principal = (
            OPEN_MODE
            if settings.auth.open_admin
            else Principal(tenant=DEFAULT_TENANT, key_id=None, scopes=SCOPES - {"admin"})
        )
        self._checked = 0.0
        # Tenant limits change rarely; caching them briefly halves the store reads per
        # request. Keys are read every time, so a revocation takes effect at once.
        self._tenants: dict[str, tuple[float, Any]] = {}

    async def _tenant(self, name: str) -> Any:
        now = time.monotonic()
        cached = self._tenants.get(name)
        if cached is not None and now - cached[0] < _TENANT_TTL_S:
            return cached[1]
        record = await self.store.keys.get_tenant(name)
        if len(self._tenants) > _TENANT_CACHE_MAX:
            self._tenants.clear()
        self._tenants[name] = (now, record)
        return record

    def forget_tenant(self, name: str) -> None:
        self._tenants.pop(name, None)

    async def decide_mode(self) -> None:
        """``auto``: keys become required once any exists (checked at start-up)."""
        if self.settings.auth.mode == "auto" and not self.required:
            self.required = bool(await self.store.keys.list_keys(None))
        if self.settings.auth.mode == "open":
            self.required = False

    def keys_exist(self) -> None:
        """A key was just created: from now on (auto mode) keys are required."""
        if self.settings.auth.mode == "auto":
            self.required = True

    async def authenticate(self, headers: dict[bytes, bytes]) -> Principal:
        raw = _credential(headers)
        if not self.required and self.settings.auth.mode == "auto":
            # A key created meanwhile (CLI, another worker) ends open mode within seconds.
            now = time.monotonic()
            if now - self._checked >= _RECHECK_S:
                self._checked = now
                await self.decide_mode()
        if not self.required:
            return self.open_principal
        if raw is None:
            raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>'.")
        if self._admin is not None and hmac.compare_digest(raw.encode(), self._admin):
            return Principal(tenant="default", key_id=None, scopes=SCOPES)
        parsed = parse_key(raw)
        if parsed is None:
            raise AuthenticationFailed("Invalid API key.")
        key_id, secret = parsed
        record = await self.store.keys.get_key(key_id)
        now = time.time()
        if (
            record is None
            or not verify(secret, record.secret_hash)
            or record.revoked_at is not None
            or (record.expires_at is not None and record.expires_at <= now)
        ):
            raise AuthenticationFailed("Invalid API key.")
        tenant = await self._tenant(record.tenant)
        return Principal(
            tenant=record.tenant,
            key_id=record.id,
            scopes=frozenset(record.scopes),
            models=frozenset(record.models) if record.models is not None else None,
            key_limits=Limits(
                record.requests_per_minute, record.tokens_per_minute, record.concurrent
            ),
            key_budgets=Budgets(record.daily_budget_usd, record.monthly_budget_usd),
            tenant_limits=Limits(
                tenant.requests_per_minute, tenant.tokens_per_minute, tenant.concurrent
            )
            if tenant
            else Limits(),
            tenant_budgets=Budgets(tenant.daily_budget_usd, tenant.monthly_budget_usd)
            if tenant
            else Budgets(),
            max_tokens=record.max_tokens,
            expires_at=record.expires_at,
        )

    async def identify(self, headers: dict[bytes, bytes]) -> Principal | None:
        """The caller of a public route: its principal, or None when anonymous."""
        try:
            return await self.authenticate(headers)
        except AuthenticationFailed:
            return None

    def open_mode_refusal(self, scope: str) -> PermissionDenied:
        return PermissionDenied(
            f"The '{scope}' routes are closed while the gateway runs without API keys (open "
            "mode). Create an admin key with `groundgate keys create --scope admin` (or set "
            f"{self.settings.auth.admin_key_env}) and send it as 'Authorization: Bearer <key>'; "
            "or set auth.open_admin = true to serve them without keys."
        )


def _credential(headers: dict[bytes, bytes]) -> str | None:
    value = headers.get(b"authorization")
    if value is not None:
        scheme, _, token = value.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return ""  # present but not a bearer token: fails the format check
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
                principal = await self.authenticator.identify(dict(scope["headers"]))
                if principal is not None:
                    scope.setdefault("state", {})["principal"] = principal
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        try:
            principal = await self.authenticator.authenticate(headers)
            needed = required_scope(scope["method"], path)
            if needed is not None:
                if (
                    needed not in principal.scopes
                    and principal is self.authenticator.open_principal
                ):
                    raise self.authenticator.open_mode_refusal(needed)
                principal.require(needed)
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
