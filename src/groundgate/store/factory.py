"""Build the configured store by name."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from groundgate.config import StoreConfig
from groundgate.errors import ConfigError
from groundgate.store.base import Store


def _sqlite(config: StoreConfig) -> Store:
    from groundgate.store.sqlite import SQLiteStore

    return SQLiteStore(config.path)


def _postgres(config: StoreConfig) -> Store:
    dsn = os.environ.get(config.dsn_env, "").strip()
    if not dsn:
        raise ConfigError(
            [
                f"store.dsn_env: environment variable {config.dsn_env} is not set"
                " (it must hold the PostgreSQL DSN, e.g. postgresql://user:pass@host/db)"
            ]
        )
    try:
        from groundgate.store.postgres import PostgresStore
    except ImportError as exc:
        raise ConfigError(
            [
                "store.type: 'postgres' needs the postgres extra"
                f" (pip install 'groundgate[postgres]'): {exc}"
            ]
        ) from exc
    return PostgresStore(dsn, pool_size=config.pool_size)


_BACKENDS: dict[str, Callable[[StoreConfig], Store]] = {"sqlite": _sqlite, "postgres": _postgres}


def open_store(config: StoreConfig) -> Store:
    return _BACKENDS[config.type](config)


@asynccontextmanager
async def opened_store(config: StoreConfig) -> AsyncIterator[Store]:
    """The store, open for the block and closed after it (a command's whole run)."""
    store = open_store(config)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
