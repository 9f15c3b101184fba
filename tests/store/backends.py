"""Store backends for conformance tests: every backend listed here must pass the same suite.

PostgreSQL runs on a real server that the test session starts (see tests/store/pg_server.py);
each test gets a fresh, empty schema of its own (a few ms, where a fresh database costs
~150 ms), which also exercises the store outside the ``public`` schema.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from groundgate.store.base import Store
from groundgate.store.sqlite import SQLiteStore
from tests.store.pg_server import PgServer

_schemas = itertools.count()


@asynccontextmanager
async def sqlite_store(tmp: Path) -> AsyncIterator[Store]:
    store = SQLiteStore(str(tmp / "conformance.db"))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def postgres_schema(server: PgServer) -> AsyncIterator[str]:
    """A fresh, empty schema for one test; yields a DSN whose search path starts there."""
    from psycopg import AsyncConnection

    name = f"gg_test_{next(_schemas)}"
    async with await AsyncConnection.connect(server.dsn(), autocommit=True) as admin:
        await admin.execute(f'CREATE SCHEMA "{name}"')
        try:
            yield server.dsn(schema=name)
        finally:
            await admin.execute(f'DROP SCHEMA "{name}" CASCADE')


@asynccontextmanager
async def postgres_store(server: PgServer, *, pool_size: int = 4) -> AsyncIterator[Store]:
    from groundgate.store.postgres import PostgresStore

    async with postgres_schema(server) as dsn:
        store = PostgresStore(dsn, pool_size=pool_size)
        await store.open()
        try:
            yield store
        finally:
            await store.close()
