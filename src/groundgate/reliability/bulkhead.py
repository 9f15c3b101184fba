"""A bulkhead per deployment: at most ``max_concurrent`` calls in flight, at most ``max_queue``
waiting for a slot, and nobody waits longer than ``max_wait_s``.

Past that the gateway sheds load (``Overloaded``, a 503 with Retry-After) instead of piling up
requests that would time out anyway; one slow deployment then cannot soak up every worker.

A freed slot is handed straight to the oldest waiter (FIFO), and a newcomer queues behind any
waiter even if it arrives at the instant a slot frees, so waiters are never overtaken.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from groundgate.errors import Overloaded


class Bulkhead:
    def __init__(
        self,
        name: str,
        max_concurrent: int,
        max_queue: int,
        max_wait_s: float,
        *,
        retry_after_s: float = 1.0,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        if max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.max_wait_s = max_wait_s
        # What shed clients are told to wait: a rough guess, since calls here last ~seconds.
        self.retry_after_s = retry_after_s
        self._in_flight = 0
        # One future per waiter, oldest first. A future resolved with a result means "this
        # slot is yours now" (in_flight was not decremented: the slot changed hands).
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._rejected = 0  # shed at once: queue full
        self._timed_out = 0  # shed after waiting too long

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        # A cancelled waiter's future can sit in the deque until its task runs its cleanup.
        return sum(1 for f in self._waiters if not f.done())

    @asynccontextmanager
    async def slot(self, timeout_s: float | None = None) -> AsyncIterator[None]:
        """Hold a slot for the body of the ``async with``.

        Raises ``Overloaded`` at once when every slot is busy and the queue is full, and after
        waiting ``min(max_wait_s, timeout_s)`` without getting a slot.
        """
        await self.acquire(timeout_s)
        try:
            yield
        finally:
            self.release()

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "max_concurrent": self.max_concurrent,
            "in_flight": self._in_flight,
            "max_queue": self.max_queue,
            "waiting": self.waiting,
            "rejected": self._rejected,
            "timed_out": self._timed_out,
        }

    async def acquire(self, timeout_s: float | None = None) -> None:
        """Take a slot that outlives one ``async with`` (a stream holds it until it ends); the
        caller must ``release`` it exactly once. Raises ``Overloaded`` as ``slot`` does."""
        waiting = self.waiting
        # Slots are handed over, so live waiters imply every slot is busy; the `waiting == 0`
        # test only guards that FIFO invariant.
        if self._in_flight < self.max_concurrent and waiting == 0:
            self._in_flight += 1
            return
        wait_s = self.max_wait_s if timeout_s is None else min(self.max_wait_s, timeout_s)
        if waiting >= self.max_queue or wait_s <= 0:
            self._rejected += 1
            raise self._overloaded(f"{self._in_flight} in flight, {waiting} waiting")

        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            async with asyncio.timeout(wait_s):
                await future
        except TimeoutError:
            if self._got_slot(future):
                return  # handed a slot just as the wait ran out: use it
            self._timed_out += 1
            raise self._overloaded(f"no slot free within {wait_s:.3g}s") from None
        except BaseException:
            # Cancelled (or anything else) while waiting: give back a slot we were handed.
            if self._got_slot(future):
                self.release()
            raise
        finally:
            if not future.done():
                future.cancel()
            # Already popped if a slot was handed over; otherwise free our queue place now.
            with contextlib.suppress(ValueError):
                self._waiters.remove(future)

    @staticmethod
    def _got_slot(future: asyncio.Future[None]) -> bool:
        return future.done() and not future.cancelled()

    def release(self) -> None:
        """Give back a slot taken with ``acquire``: to the oldest waiter, else to the pool."""
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():  # skip waiters that were cancelled but not yet cleaned up
                future.set_result(None)
                return
        self._in_flight -= 1

    def _overloaded(self, detail: str) -> Overloaded:
        return Overloaded(
            f"deployment '{self.name}' is overloaded ({detail})", retry_after=self.retry_after_s
        )
