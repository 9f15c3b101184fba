"""One read at a time per key: callers that need the same value while it is being read share
that read instead of each starting their own (50 requests finding a cached key stale at the
same moment make one store read, not 50)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class SingleFlight(Generic[V]):
    def __init__(self) -> None:
        self._reads: dict[str, asyncio.Future[V]] = {}

    async def get(self, key: str, read: Callable[[], Awaitable[V]]) -> V:
        pending = self._reads.get(key)
        if pending is None:
            pending = asyncio.ensure_future(read())
            self._reads[key] = pending
            pending.add_done_callback(lambda done: self._done(key, done))
        # Shielded: one caller cancelled (its client went away) must not fail the others.
        return await asyncio.shield(pending)

    def forget(self, key: str) -> None:
        """Callers from now on start a new read (the value changed meanwhile)."""
        self._reads.pop(key, None)

    def _done(self, key: str, done: asyncio.Future[V]) -> None:
        if self._reads.get(key) is done:
            del self._reads[key]
