"""Writes traces to the store in batches, off the response path.

``submit`` only appends to a deque: the response never waits on the database. A background
task drains it every ``flush_interval_ms`` (or at ``batch_size``) and hands the batch to the
store, which does the blocking I/O in a thread. Traces not yet flushed stay readable through
``pending`` so that ``GET /v1/traces/{id}`` right after a response still finds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from groundgate.config import TracesConfig
from groundgate.observe.trace import Trace
from groundgate.store.base import Store

log = logging.getLogger("groundgate.traces")


class TraceWriter:
    def __init__(self, store: Store, config: TracesConfig) -> None:
        self._store = store
        self._config = config
        self._queue: deque[Trace] = deque()
        self._pending: dict[str, Trace] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = 0
        self.written = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="groundgate-trace-writer")

    def submit(self, trace: Trace) -> None:
        if len(self._queue) >= self._config.queue_size:
            # Bounded memory beats an unbounded backlog when the store is down; say so loudly.
            old = self._queue.popleft()
            self._pending.pop(old.id, None)
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("trace queue full: %d traces dropped so far", self.dropped)
        # Serialise here, on the event loop, in the request's own turn: done in the store's
        # thread, this Python-heavy work would hold the GIL for up to the interpreter's
        # switch interval (5 ms) at a time and stall every request in flight.
        trace.to_json()
        self._queue.append(trace)
        self._pending[trace.id] = trace
        if len(self._queue) >= self._config.batch_size:
            self._wake.set()

    def pending(self, trace_id: str) -> Trace | None:
        return self._pending.get(trace_id)

    @property
    def backlog(self) -> int:
        return len(self._queue)

    async def flush(self) -> None:
        while self._queue:
            batch = [
                self._queue.popleft() for _ in range(min(len(self._queue), self._config.batch_size))
            ]
            try:
                await self._store.write_traces(batch)
            except Exception:
                log.exception("writing %d traces failed; retrying later", len(batch))
                # Put them back in order; the next tick retries. They stay readable meanwhile.
                self._queue.extendleft(reversed(batch))
                raise
            self.written += len(batch)
            for trace in batch:
                self._pending.pop(trace.id, None)

    async def _run(self) -> None:
        interval = self._config.flush_interval_ms / 1000
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                await asyncio.sleep(min(1.0, interval * 10))

    async def aclose(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.error("%d traces could not be written at shutdown", len(self._queue))
