"""Persistence behind one interface: SQLite by default (PostgreSQL for scale-out)."""

from groundgate.store.base import Store
from groundgate.store.factory import open_store, opened_store

__all__ = ["Store", "open_store", "opened_store"]
