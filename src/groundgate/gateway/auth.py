"""Authentication: who a presented credential is, as a ``Principal``, or a typed refusal.

The caller hands over the credential string alone (the HTTP layer reads it from
``Authorization: Bearer <key>`` or ``x-api-key``); who you are depends on your key alone.
Keys are looked up by their non-secret id after a strict format check, so malformed input
never reaches the store, and compared by hash in constant time. Nothing here logs a credential.

A verified key is kept for ``auth.key_cache_s`` (1 s by default) instead of being read from
the store on every request (that read, a hop to the store's thread, was the largest cost of
an authenticated request). What that bounds: a key revoked through this process's admin API
is refused on the next request (``forget_key``); one revoked elsewhere (the CLI, another
worker or replica) within ``key_cache_s``. Expiry is checked on every request. A key id the
store does not know is never cached, so a key created anywhere works at once. ``0`` reads the
store on every request.
"""

from __future__ import annotations

import hmac
import os
import time
from dataclasses import dataclass

from groundgate.config import Settings
from groundgate.errors import AuthenticationFailed, GroundgateError
from groundgate.gateway.grants import principal_for
from groundgate.gateway.keys import parse_key, secret_digest
from groundgate.gateway.principal import (
    DEFAULT_TENANT,
    OPEN_MODE,
    SCOPES,
    PermissionDenied,
    Principal,
)
from groundgate.gateway.single_flight import SingleFlight
from groundgate.observe.redact import remember_secret
from groundgate.store.base import Store
from groundgate.store.keys import ApiKeyRecord, TenantRecord

_MIN_ADMIN_KEY = 32
_RECHECK_S = 2.0
_TENANT_TTL_S = 2.0
_TENANT_CACHE_MAX = 10_000
_KEY_CACHE_MAX = 10_000


@dataclass(slots=True)
class _Verified:
    """A key as last read from the store, and the principal built from it."""

    fetched: float  # time.monotonic() of the read
    record: ApiKeyRecord
    digest: bytes  # the stored hash of the secret, as bytes
    tenant: TenantRecord | None = None
    principal: Principal | None = None


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
        # Tenant limits change rarely; they are cached briefly (a change made through this
        # process's admin API applies at once: ``forget_tenant``).
        self._tenants: dict[str, tuple[float, TenantRecord | None]] = {}
        self._tenant_reads: SingleFlight[TenantRecord | None] = SingleFlight()
        self._key_ttl = settings.auth.key_cache_s
        self._keys: dict[str, _Verified] = {}
        self._key_reads: SingleFlight[ApiKeyRecord | None] = SingleFlight()
        # Bumped by ``forget_key``: a read that began before it is not cached.
        self._generation = 0

    async def _tenant(self, name: str) -> TenantRecord | None:
        now = time.monotonic()
        cached = self._tenants.get(name)
        if cached is not None and now - cached[0] < _TENANT_TTL_S:
            return cached[1]
        record = await self._tenant_reads.get(name, lambda: self.store.keys.get_tenant(name))
        if cached is not None and cached[1] == record:
            record = cached[1]  # unchanged: keep the object, so principals built on it stay
        if len(self._tenants) > _TENANT_CACHE_MAX:
            self._tenants.clear()
        self._tenants[name] = (now, record)
        return record

    def forget_tenant(self, name: str) -> None:
        self._tenants.pop(name, None)
        self._tenant_reads.forget(name)

    def forget_key(self, key_id: str) -> None:
        """The key changed (revoked) through this process: read it afresh next time."""
        self._keys.pop(key_id, None)
        self._key_reads.forget(key_id)  # a read begun before the change is not joined
        self._generation += 1

    async def _key(self, key_id: str) -> _Verified | None:
        """The key's record: cached for ``key_cache_s``, else read from the store."""
        if self._key_ttl <= 0:
            record = await self.store.keys.get_key(key_id)
            return _Verified(0.0, record, record.secret_hash.encode()) if record else None
        now = time.monotonic()
        entry = self._keys.get(key_id)
        if entry is not None and now - entry.fetched < self._key_ttl:
            return entry
        generation = self._generation
        record = await self._key_reads.get(key_id, lambda: self.store.keys.get_key(key_id))
        if record is None:
            self._keys.pop(key_id, None)  # unknown ids are never cached
            return None
        entry = self._keys.get(key_id)
        if entry is not None and entry.record == record:
            entry.fetched = max(entry.fetched, now)  # unchanged: keep its principal
            return entry
        fresh = _Verified(now, record, record.secret_hash.encode())
        if generation == self._generation:
            if len(self._keys) >= _KEY_CACHE_MAX:
                self._keys.clear()
            self._keys[key_id] = fresh
        return fresh

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

    async def authenticate(self, credential: str | None) -> Principal:
        """The principal of ``credential`` (None: none was presented; "": one that is not a
        bearer token), or ``AuthenticationFailed``."""
        if not self.required and self.settings.auth.mode == "auto":
            # A key created meanwhile (CLI, another worker) ends open mode within seconds.
            now = time.monotonic()
            if now - self._checked >= _RECHECK_S:
                self._checked = now
                await self.decide_mode()
        if not self.required:
            return self.open_principal
        if credential is None:
            raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>'.")
        if self._admin is not None and hmac.compare_digest(credential.encode(), self._admin):
            return Principal(tenant="default", key_id=None, scopes=SCOPES)
        parsed = parse_key(credential)
        if parsed is None:
            raise AuthenticationFailed("Invalid API key.")
        key_id, secret = parsed
        entry = await self._key(key_id)
        if entry is None or not hmac.compare_digest(secret_digest(secret), entry.digest):
            raise AuthenticationFailed("Invalid API key.")
        record = entry.record
        if record.revoked_at is not None or (
            record.expires_at is not None and record.expires_at <= time.time()
        ):
            raise AuthenticationFailed("Invalid API key.")
        tenant = await self._tenant(record.tenant)
        if entry.principal is None or tenant is not entry.tenant:
            # Built once per key and tenant reading: the same principal object serves every
            # request meanwhile (admission keys its per-principal plan on it).
            entry.tenant, entry.principal = tenant, principal_for(record, tenant)
        return entry.principal

    async def identify(self, credential: str | None) -> Principal | None:
        """The caller of a public route: its principal, or None when anonymous."""
        try:
            return await self.authenticate(credential)
        except AuthenticationFailed:
            return None

    def authorize(self, principal: Principal, scope: str | None) -> None:
        """``PermissionDenied`` unless ``principal`` holds ``scope`` (None: any caller)."""
        if scope is None:
            return
        if scope not in principal.scopes and principal is self.open_principal:
            raise self.open_mode_refusal(scope)
        principal.require(scope)

    def open_mode_refusal(self, scope: str) -> PermissionDenied:
        return PermissionDenied(
            f"The '{scope}' routes are closed while the gateway runs without API keys (open "
            "mode). Create an admin key with `groundgate keys create --scope admin` (or set "
            f"{self.settings.auth.admin_key_env}) and send it as 'Authorization: Bearer <key>'; "
            "or set auth.open_admin = true to serve them without keys."
        )
