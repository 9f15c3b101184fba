"""API keys and tenants on SQLite. Scopes, models and tools are JSON lists in text columns."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import orjson

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
from groundgate.store.sqlite_db import SQLiteDB, transaction

_INSERT_KEY = f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ({', '.join('?' * 16)})"
_ENSURE_TENANT = (
    "INSERT INTO tenants (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
)
_UPSERT_TENANT = f"""
INSERT INTO tenants ({TENANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET requests_per_minute = excluded.requests_per_minute,
    tokens_per_minute = excluded.tokens_per_minute, concurrent = excluded.concurrent,
    daily_budget_usd = excluded.daily_budget_usd,
    monthly_budget_usd = excluded.monthly_budget_usd, tools = excluded.tools"""


class SQLiteKeys:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def create_key(self, key: ApiKeyRecord) -> None:
        row = key_row(key, _json_list)

        def _create(db: sqlite3.Connection) -> None:
            db.execute(_ENSURE_TENANT, (key.tenant, key.created_at))
            db.execute(_INSERT_KEY, row)

        await self.db.write(lambda db: transaction(db, _create))

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        rows = await self.db.read(
            lambda db: db.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)
            ).fetchall()
        )
        return _key(rows[0]) if rows else None

    async def list_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        query = f"SELECT {KEY_COLUMNS} FROM api_keys"
        params: tuple[Any, ...] = ()
        if tenant is not None:
            query, params = query + " WHERE tenant = ?", (tenant,)
        query += " ORDER BY created_at DESC, id"
        rows = await self.db.read(lambda db: db.execute(query, params).fetchall())
        return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str, tenant: str | None = None) -> bool:
        query = "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?"
        params: tuple[Any, ...] = (time.time(), key_id)
        if tenant is not None:
            query, params = query + " AND tenant = ?", (*params, tenant)
        changed = await self.db.write(lambda db: db.execute(query, params).rowcount)
        return bool(changed > 0)

    async def upsert_tenant(self, tenant: TenantRecord) -> TenantRecord:
        row = tenant_row(tenant, _json_list)
        await self.db.write(lambda db: db.execute(_UPSERT_TENANT, row))
        stored = await self.get_tenant(tenant.name)
        assert stored is not None
        return stored

    async def get_tenant(self, name: str) -> TenantRecord | None:
        rows = await self.db.read(
            lambda db: db.execute(
                f"SELECT {TENANT_COLUMNS} FROM tenants WHERE name = ?", (name,)
            ).fetchall()
        )
        return _tenant(rows[0]) if rows else None

    async def list_tenants(self) -> list[TenantRecord]:
        rows = await self.db.read(
            lambda db: db.execute(f"SELECT {TENANT_COLUMNS} FROM tenants ORDER BY name").fetchall()
        )
        return [_tenant(row) for row in rows]

    async def delete_tenant(self, name: str) -> bool:
        def _delete(db: sqlite3.Connection) -> bool:
            (active,) = db.execute(
                "SELECT count(*) FROM api_keys WHERE tenant = ? AND revoked_at IS NULL", (name,)
            ).fetchone()
            if active:
                raise tenant_has_keys(name, int(active))
            db.execute("DELETE FROM api_keys WHERE tenant = ?", (name,))
            return bool(db.execute("DELETE FROM tenants WHERE name = ?", (name,)).rowcount > 0)

        return await self.db.write(lambda db: transaction(db, _delete))


def _json_list(values: list[str]) -> str:
    return orjson.dumps(values).decode()


def _key(row: tuple[Any, ...]) -> ApiKeyRecord:
    return key_from_row(row, orjson.loads)


def _tenant(row: tuple[Any, ...]) -> TenantRecord:
    return tenant_from_row(row, orjson.loads)
