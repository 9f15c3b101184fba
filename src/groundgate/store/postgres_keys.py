"""API keys and tenants on PostgreSQL; semantics mirror :mod:`sqlite_keys` (the conformance
suite holds both to them). Scopes, models and tools are jsonb lists.

Creating a key and deleting a tenant both lock the tenant row first, so they serialise: a key
is never created for a tenant that a concurrent delete is removing.
"""

from __future__ import annotations

import time
from typing import Any

from groundgate.store.keys import (
    KEY_COLUMNS,
    TENANT_COLUMNS,
    ApiKeyRecord,
    TenantRecord,
    key_from_row,
    key_row,
    tenant_from_row,
    tenant_has_keys,
    tenant_row,
)
from groundgate.store.postgres_knowledge import Connect, pg_json, pg_text

_INSERT_KEY = f"""
INSERT INTO api_keys ({KEY_COLUMNS})
VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"""
# A no-op update rather than DO NOTHING: it takes the row lock, and it inserts the tenant
# afresh when a concurrent delete has just removed it.
_ENSURE_TENANT = """
INSERT INTO tenants (name, created_at) VALUES (%s, %s)
ON CONFLICT (name) DO UPDATE SET created_at = tenants.created_at"""
_UPSERT_TENANT = f"""
INSERT INTO tenants ({TENANT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (name) DO UPDATE SET requests_per_minute = excluded.requests_per_minute,
    tokens_per_minute = excluded.tokens_per_minute, concurrent = excluded.concurrent,
    daily_budget_usd = excluded.daily_budget_usd,
    monthly_budget_usd = excluded.monthly_budget_usd, tools = excluded.tools
RETURNING {TENANT_COLUMNS}"""


class PostgresKeys:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def create_key(self, key: ApiKeyRecord) -> None:
        row = key_row(key, pg_json, pg_text)
        async with self._connect() as conn, conn.transaction():
            await conn.execute(_ENSURE_TENANT, (row[1], key.created_at))
            await conn.execute(_INSERT_KEY, row)

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        async with self._connect() as conn:
            cur = await conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = %s", (pg_text(key_id),)
            )
            row = await cur.fetchone()
        return None if row is None else _key(row)

    async def list_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        query = f"SELECT {KEY_COLUMNS} FROM api_keys"
        params: tuple[Any, ...] = ()
        if tenant is not None:
            query, params = query + " WHERE tenant = %s", (pg_text(tenant),)
        async with self._connect() as conn:
            cur = await conn.execute(query + " ORDER BY created_at DESC, id", params)
            rows = await cur.fetchall()
        return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str, tenant: str | None = None) -> bool:
        query = "UPDATE api_keys SET revoked_at = coalesce(revoked_at, %s) WHERE id = %s"
        params: tuple[Any, ...] = (time.time(), pg_text(key_id))
        if tenant is not None:
            query, params = query + " AND tenant = %s", (*params, pg_text(tenant))
        async with self._connect() as conn:
            cur = await conn.execute(query, params)
            return cur.rowcount > 0

    async def upsert_tenant(self, tenant: TenantRecord) -> TenantRecord:
        row = tenant_row(tenant, pg_json, pg_text)
        async with self._connect() as conn:
            cur = await conn.execute(_UPSERT_TENANT, row)
            stored = await cur.fetchone()
        assert stored is not None
        return _tenant(stored)

    async def get_tenant(self, name: str) -> TenantRecord | None:
        async with self._connect() as conn:
            cur = await conn.execute(
                f"SELECT {TENANT_COLUMNS} FROM tenants WHERE name = %s", (pg_text(name),)
            )
            row = await cur.fetchone()
        return None if row is None else _tenant(row)

    async def list_tenants(self) -> list[TenantRecord]:
        async with self._connect() as conn:
            cur = await conn.execute(f"SELECT {TENANT_COLUMNS} FROM tenants ORDER BY name")
            rows = await cur.fetchall()
        return [_tenant(row) for row in rows]

    async def delete_tenant(self, name: str) -> bool:
        name_pg = pg_text(name)
        async with self._connect() as conn, conn.transaction():
            cur = await conn.execute("SELECT 1 FROM tenants WHERE name = %s FOR UPDATE", (name_pg,))
            if await cur.fetchone() is None:
                return False
            cur = await conn.execute(
                "SELECT count(*) FROM api_keys WHERE tenant = %s AND revoked_at IS NULL",
                (name_pg,),
            )
            row = await cur.fetchone()
            active = int(row[0]) if row else 0
            if active:
                raise tenant_has_keys(name, active)
            await conn.execute("DELETE FROM api_keys WHERE tenant = %s", (name_pg,))
            await conn.execute("DELETE FROM tenants WHERE name = %s", (name_pg,))
        return True


def _key(row: tuple[Any, ...]) -> ApiKeyRecord:
    return key_from_row(row, list)  # jsonb arrives decoded


def _tenant(row: tuple[Any, ...]) -> TenantRecord:
    return tenant_from_row(row, list)
