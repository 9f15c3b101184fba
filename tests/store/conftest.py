"""The ``store`` fixture runs each conformance test once per backend.

PostgreSQL tests need the server that ``pg_server`` starts once per session; where it cannot
start they skip with the reason, or fail when GROUNDGATE_REQUIRE_SERVICES is set (as in CI).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from groundgate.store.base import Store
from tests.store.backends import postgres_store, sqlite_store
from tests.store.pg_server import PgServer

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        async with sqlite_store(tmp_path) as backend:
            yield backend
    elif request.param == "postgres":
        server: PgServer = request.getfixturevalue("pg_server")
        async with postgres_store(server) as backend:
            yield backend
    else:  # pragma: no cover - a backend listed without a branch
        raise AssertionError(request.param)
