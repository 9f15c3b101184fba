"""Build the configured store by name."""

from __future__ import annotations

from collections.abc import Callable

from groundgate.config import StoreConfig
from groundgate.store.base import Store


def _sqlite(config: StoreConfig) -> Store:
    from groundgate.store.sqlite import SQLiteStore

    return SQLiteStore(config.path)


_BACKENDS: dict[str, Callable[[StoreConfig], Store]] = {"sqlite": _sqlite}


def open_store(config: StoreConfig) -> Store:
    return _BACKENDS[config.type](config)
