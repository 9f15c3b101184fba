"""The ``store`` fixture runs each conformance test once per backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from groundgate.store.base import Store
from tests.store.backends import sqlite_store

BACKENDS = ["sqlite"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        async with sqlite_store(tmp_path) as backend:
            yield backend
    else:  # pragma: no cover - extended by other backends
        raise AssertionError(request.param)
