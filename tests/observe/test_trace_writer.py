"""The trace writer batches off the response path and loses nothing it acknowledged."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from groundgate.config import TracesConfig
from groundgate.observe.trace import Trace
from groundgate.observe.trace_writer import TraceWriter
from groundgate.store.sqlite import SQLiteStore


def trace(i: int) -> Trace:
    return Trace(id=f"t{i}", tenant="default", endpoint="chat.completions", model="m")


class FlakyStore:
    """A real SQLite store whose first writes fail, as a database restart would."""

    def __init__(self, inner: SQLiteStore, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.batches: list[int] = []

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> bool:
        return await self.inner.ping()

    async def write_traces(self, traces: list[Trace]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("database is restarting")
        self.batches.append(len(traces))
        await self.inner.write_traces(traces)

    async def get_trace(self, tenant: str, trace_id: str) -> dict[str, Any] | None:
        return await self.inner.get_trace(tenant, trace_id)


async def test_batches_and_flushes_on_close(tmp_path: Path) -> None:
    store = FlakyStore(SQLiteStore(str(tmp_path / "t.db")), failures=0)
    await store.open()
    writer = TraceWriter(store, TracesConfig(batch_size=10, flush_interval_ms=10_000))
    writer.start()
    for i in range(25):
        writer.submit(trace(i))
    assert writer.pending("t3") is not None  # readable before it is written
    await asyncio.sleep(0.05)
    assert sum(store.batches) >= 10  # a full batch wakes the writer at once
    await writer.aclose()
    assert sum(store.batches) == 25 and max(store.batches) <= 10
    assert writer.pending("t3") is None
    assert await store.get_trace("default", "t24") is not None
    await store.close()


async def test_store_failure_keeps_traces_and_retries(tmp_path: Path) -> None:
    store = FlakyStore(SQLiteStore(str(tmp_path / "t.db")), failures=2)
    await store.open()
    writer = TraceWriter(store, TracesConfig(batch_size=100, flush_interval_ms=5))
    writer.start()
    for i in range(5):
        writer.submit(trace(i))
    for _ in range(100):
        if writer.written == 5:
            break
        await asyncio.sleep(0.05)
    await writer.aclose()
    assert writer.written == 5 and writer.dropped == 0
    for i in range(5):
        assert await store.get_trace("default", f"t{i}") is not None
    await store.close()


async def test_queue_is_bounded(tmp_path: Path) -> None:
    store = FlakyStore(SQLiteStore(str(tmp_path / "t.db")), failures=0)
    await store.open()
    writer = TraceWriter(
        store, TracesConfig(queue_size=100, flush_interval_ms=10_000, batch_size=1000)
    )
    for i in range(150):
        writer.submit(trace(i))
    assert writer.backlog == 100 and writer.dropped == 50
    assert writer.pending("t0") is None and writer.pending("t149") is not None
    await writer.aclose()
    await store.close()
