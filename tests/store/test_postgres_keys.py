"""PostgreSQL only: creating a key waits for a tenant delete in flight, then recreates it."""

from __future__ import annotations

import asyncio

from psycopg import AsyncConnection

from groundgate.store.keys import TenantRecord
from groundgate.store.postgres import PostgresStore
from tests.store.backends import postgres_schema
from tests.store.pg_server import PgServer
from tests.store.test_keys_conformance import key


async def test_key_creation_waits_for_a_tenant_delete_then_recreates_it(
    pg_server: PgServer,
) -> None:
    async with postgres_schema(pg_server) as dsn:
        store = PostgresStore(dsn, pool_size=2)
        await store.open()
        try:
            await store.keys.upsert_tenant(TenantRecord("acme", 1.0, requests_per_minute=7))
            async with await AsyncConnection.connect(dsn, autocommit=True) as other:
                # A delete_tenant in flight: it holds the tenant row, then removes it.
                async with other.transaction():
                    await other.execute("SELECT 1 FROM tenants WHERE name = 'acme' FOR UPDATE")
                    record = key("acme", created_at=2.0)
                    creating = asyncio.create_task(store.keys.create_key(record))
                    await asyncio.sleep(0.3)
                    assert not creating.done()  # queued on the tenant row
                    await other.execute("DELETE FROM tenants WHERE name = 'acme'")
                await asyncio.wait_for(creating, 10)
            assert await store.keys.get_key(record.id) == record
            # The old tenant (and its limits) is gone; the key's tenant exists afresh.
            assert await store.keys.get_tenant("acme") == TenantRecord("acme", 2.0)
        finally:
            await store.close()
