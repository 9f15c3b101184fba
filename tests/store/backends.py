"""Store backends for conformance tests: every backend listed here must pass the same suite.

PostgreSQL joins the list when its server fixture is available (see tests/store/pg_server.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from groundgate.store.base import Store
from groundgate.store.sqlite import SQLiteStore

BackendFactory = Callable[[Path], "asynccontextmanager[Store]"]


@asynccontextmanager
async def sqlite_store(tmp: Path) -> AsyncIterator[Store]:
    store = SQLiteStore(str(tmp / "conformance.db"))
    await store.open()
    try:
        yield store
    finally:
        await store.close()
