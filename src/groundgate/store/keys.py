"""API keys and tenants: records and the protocol that SQLite and PostgreSQL both implement.

A key row holds the hash of its secret, never the secret (see :mod:`groundgate.gateway.keys`).
Every key belongs to a tenant; creating a key for a tenant that does not exist yet creates the
tenant, with no limits, in the same transaction. Keys are revoked, never deleted, so a trace
or ledger entry can always name the key it came from; a tenant can be deleted only once it has
no active keys (its revoked keys go with it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from groundgate.errors import GroundgateError


class TenantHasKeys(GroundgateError):
    status_code = 409
    error_type = "invalid_request_error"
    code = "tenant_has_keys"


@dataclass(slots=True)
class ApiKeyRecord:
    id: str
    tenant: str
    name: str
    secret_hash: str
    scopes: list[str]
    models: list[str] | None  # None: every model and app
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    # Limits, budgets and the per-request max_tokens cap; None means none.
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent: int | None = None
    daily_budget_usd: float | None = None
    monthly_budget_usd: float | None = None
    max_tokens: int | None = None
    # Agent tools this key may call ([tools] names, SERVER__TOOL, mcp:SERVER); None: all.
    tools: list[str] | None = None

    def status(self, now: float) -> str:
        """``active``, ``revoked`` or ``expired``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(slots=True)
class TenantRecord:
    name: str
    created_at: float
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent: int | None = None
    daily_budget_usd: float | None = None
    monthly_budget_usd: float | None = None
    # Agent tools the tenant's keys may call at most (same forms as a key's); None: all.
    tools: list[str] | None = None


class KeyStore(Protocol):
    async def create_key(self, key: ApiKeyRecord) -> None:
        """Insert the key (and its tenant, with no limits, if there is none yet)."""
        ...

    async def get_key(self, key_id: str) -> ApiKeyRecord | None: ...

    async def list_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        """Newest first; every tenant's when ``tenant`` is None."""
        ...

    async def revoke_key(self, key_id: str, tenant: str | None = None) -> bool:
        """Revoke (idempotent: the first revocation time stays). False when there is no such
        key, or it belongs to another tenant than ``tenant``."""
        ...

    async def upsert_tenant(self, tenant: TenantRecord) -> TenantRecord:
        """Create the tenant or replace its limits, budgets and tools; returns it as stored (an
        existing tenant keeps its ``created_at``)."""
        ...

    async def get_tenant(self, name: str) -> TenantRecord | None: ...

    async def list_tenants(self) -> list[TenantRecord]:
        """By name."""
        ...

    async def delete_tenant(self, name: str) -> bool:
        """Delete the tenant and its revoked keys; False when there is none. Raises
        :class:`TenantHasKeys` while it has keys that are not revoked."""
        ...


KEY_COLUMNS = (
    "id, tenant, name, secret_hash, scopes, models, created_at, expires_at, revoked_at,"
    " requests_per_minute, tokens_per_minute, concurrent, daily_budget_usd,"
    " monthly_budget_usd, max_tokens, tools"
)
TENANT_COLUMNS = (
    "name, created_at, requests_per_minute, tokens_per_minute, concurrent,"
    " daily_budget_usd, monthly_budget_usd, tools"
)


def _same(value: str) -> str:
    return value


def key_row(
    key: ApiKeyRecord,
    json_list: Callable[[list[str]], Any],
    text: Callable[[str], str] = _same,
) -> tuple[Any, ...]:
    """The key as a row in ``KEY_COLUMNS`` order. Backends differ only in how a list becomes a
    JSON column (``json_list``) and how text is made storable (``text``)."""
    return (
        text(key.id),
        text(key.tenant),
        text(key.name),
        key.secret_hash,
        json_list(key.scopes),
        None if key.models is None else json_list(key.models),
        key.created_at,
        key.expires_at,
        key.revoked_at,
        key.requests_per_minute,
        key.tokens_per_minute,
        key.concurrent,
        key.daily_budget_usd,
        key.monthly_budget_usd,
        key.max_tokens,
        None if key.tools is None else json_list(key.tools),
    )


def key_from_row(row: Sequence[Any], json_list: Callable[[Any], list[str]]) -> ApiKeyRecord:
    """A row in ``KEY_COLUMNS`` order as a key; ``json_list`` reads a JSON list column."""
    scopes, models = row[4], row[5]
    return ApiKeyRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        json_list(scopes),
        None if models is None else json_list(models),
        created_at=row[6],
        expires_at=row[7],
        revoked_at=row[8],
        requests_per_minute=row[9],
        tokens_per_minute=row[10],
        concurrent=row[11],
        daily_budget_usd=row[12],
        monthly_budget_usd=row[13],
        max_tokens=row[14],
        tools=None if row[15] is None else json_list(row[15]),
    )


def tenant_row(
    tenant: TenantRecord,
    json_list: Callable[[list[str]], Any],
    text: Callable[[str], str] = _same,
) -> tuple[Any, ...]:
    """The tenant as a row in ``TENANT_COLUMNS`` order (lists and text as in :func:`key_row`)."""
    return (
        text(tenant.name),
        tenant.created_at,
        tenant.requests_per_minute,
        tenant.tokens_per_minute,
        tenant.concurrent,
        tenant.daily_budget_usd,
        tenant.monthly_budget_usd,
        None if tenant.tools is None else json_list(tenant.tools),
    )


def tenant_from_row(row: Sequence[Any], json_list: Callable[[Any], list[str]]) -> TenantRecord:
    """A row in ``TENANT_COLUMNS`` order as a tenant; ``json_list`` reads a JSON list column."""
    return TenantRecord(
        row[0],
        row[1],
        requests_per_minute=row[2],
        tokens_per_minute=row[3],
        concurrent=row[4],
        daily_budget_usd=row[5],
        monthly_budget_usd=row[6],
        tools=None if row[7] is None else json_list(row[7]),
    )


def tenant_has_keys(name: str, active: int) -> TenantHasKeys:
    return TenantHasKeys(
        f"Tenant '{name}' still has {active} active API key(s); revoke them first.",
        param="name",
    )
