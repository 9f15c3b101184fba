"""The in-process limiter: exact for one replica, no services.

Each operation runs to completion without awaiting, so it is atomic on the event loop; a
lock makes it safe from other threads too. Memory stays bounded: an entry that has drained
(an idle bucket, a slot set whose holders all expired, an expired spend counter) is
equivalent to no entry, and tables sweep those once they double in size since the last
sweep. Past ``max_keys`` live entries, the ones closest to expiring are dropped first (for a
bucket: the one nearest idle, which forgets the least).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from groundgate.gateway.ratelimit import (
    REFUSED_BY_BUDGET,
    REFUSED_BY_CONCURRENCY,
    REFUSED_BY_RATE,
    Admittance,
    Decision,
    RateLimit,
    check_request,
    gcra_acquire,
)

V = TypeVar("V")

# Below this many entries a table never sweeps: a sweep would cost more than it frees.
MIN_SWEEP = 1024


class _Table(Generic[V]):
    """A dict whose entries expire (``expires(value)`` is a monotonic time), kept bounded."""

    def __init__(self, max_keys: int, expires: Callable[[V], float]) -> None:
        self.data: dict[str, V] = {}
        self._max_keys = max_keys
        self._expires = expires
        self._sweep_at = min(MIN_SWEEP, max_keys)

    def get(self, key: str, now: float) -> V | None:
        value = self.data.get(key)
        if value is not None and self._expires(value) <= now:
            del self.data[key]
            return None
        return value

    def put(self, key: str, value: V, now: float) -> None:
        self.data[key] = value
        if len(self.data) > self._sweep_at:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        expires = self._expires
        self.data = {k: v for k, v in self.data.items() if expires(v) > now}
        if len(self.data) > self._max_keys:
            # Keep the latest-expiring 90% so the next forced eviction is far off.
            keep = heapq.nlargest(
                self._max_keys * 9 // 10, self.data.items(), key=lambda kv: expires(kv[1])
            )
            self.data = dict(keep)
        self._sweep_at = min(max(MIN_SWEEP, 2 * len(self.data)), self._max_keys)


def _bucket_expiry(entry: tuple[float, float]) -> float:
    at, debt = entry
    return at + debt


class _Holders:
    """The holders of one slot key: holder id -> expiry, in the order they entered, and the
    latest expiry (when the entry as a whole has drained). Expired holders are dropped when
    they are in the way (a count near the capacity, or ahead of a leaving holder), so that a
    request costs O(1) rather than a scan of every request in flight."""

    __slots__ = ("expiries", "latest")

    def __init__(self) -> None:
        self.expiries: dict[int, float] = {}
        self.latest = 0.0

    def prune(self, now: float) -> None:
        self.expiries = {h: exp for h, exp in self.expiries.items() if exp > now}

    def add(self, holder: int, expiry: float) -> None:
        self.expiries[holder] = expiry
        self.latest = max(self.latest, expiry)

    def remove_oldest(self, now: float) -> None:
        """The holder that entered first and has not expired leaves (expired ones before it
        go with it)."""
        expiries = self.expiries
        while expiries:
            if expiries.pop(next(iter(expiries))) > now:
                return


def _slots_expiry(holders: _Holders) -> float:
    return holders.latest


def _spend_expiry(entry: tuple[float, float]) -> float:
    return entry[1]


class MemoryRateLimiter:
    def __init__(
        self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (time it was written, debt in seconds at that time)
        self._buckets: _Table[tuple[float, float]] = _Table(max_keys, _bucket_expiry)
        # key -> {holder id: expiry}, in the order holders entered
        self._slots: _Table[_Holders] = _Table(max_keys, _slots_expiry)
        # key -> (amount, expiry)
        self._spend: _Table[tuple[float, float]] = _Table(max_keys, _spend_expiry)
        self._holder_ids = itertools.count()

    def tracked_keys(self) -> int:
        """Entries held across all tables, expired ones not yet swept included."""
        return len(self._buckets.data) + len(self._slots.data) + len(self._spend.data)

    def _debt(self, key: str, now: float) -> float:
        entry = self._buckets.get(key, now)
        if entry is None:
            return 0.0
        at, debt = entry
        # A clock never runs backwards here, but stay safe: a negative lapse drains nothing.
        return max(0.0, debt - max(0.0, now - at))

    def _store(self, key: str, debt: float, now: float) -> None:
        if debt > 0:
            self._buckets.put(key, (now, debt), now)
        else:
            self._buckets.data.pop(key, None)

    async def acquire(self, limits: Sequence[RateLimit], cost: Sequence[int]) -> Decision:
        return (await self.admit([], [], limits, cost)).rates

    async def adjust(self, limit: RateLimit, delta: int) -> None:
        with self._lock:
            now = self._clock()
            debt = self._debt(limit.key, now) + delta * limit.interval_s
            self._store(limit.key, debt, now)

    async def enter(self, key: str, limit: int, ttl_s: float = 300) -> bool:
        return (await self.admit([], [(key, limit)], [], [], ttl_s)).allowed

    async def leave(self, key: str) -> None:
        with self._lock:
            now = self._clock()
            holders = self._slots.get(key, now)
            if holders is None:
                return
            holders.remove_oldest(now)
            if not holders.expiries:
                del self._slots.data[key]

    async def add_spend(self, keys: Sequence[str], amount_usd: float, ttl_s: float) -> None:
        with self._lock:
            now = self._clock()
            for key in keys:
                entry = self._spend.get(key, now)
                total = (entry[0] if entry is not None else 0.0) + amount_usd
                self._spend.put(key, (total, now + ttl_s), now)

    async def admit(
        self,
        budgets: Sequence[tuple[str, float]],
        slots: Sequence[tuple[str, int]],
        limits: Sequence[RateLimit],
        cost: Sequence[int],
        ttl_s: float = 300,
    ) -> Admittance:
        check_request(limits, cost)
        with self._lock:
            now = self._clock()
            spent = [entry[0] if (entry := self._spend.get(k, now)) else 0.0 for k, _ in budgets]
            for i, ((_, ceiling), used) in enumerate(zip(budgets, spent, strict=True)):
                if used >= ceiling:
                    return Admittance(REFUSED_BY_BUDGET, i, spent, Decision(False, 0.0, {}, {}))
            held: list[_Holders | None] = []
            for i, (key, capacity) in enumerate(slots):
                holders = self._slots.get(key, now)
                if holders is not None and len(holders.expiries) >= capacity:
                    # Only near the capacity can expired holders change the answer.
                    holders.prune(now)
                    if len(holders.expiries) >= capacity:
                        refused = Decision(False, 0.0, {}, {})
                        return Admittance(REFUSED_BY_CONCURRENCY, i, spent, refused)
                held.append(holders)
            debts = [self._debt(limit.key, now) for limit in limits]
            decision, final = gcra_acquire(limits, cost, debts)
            if not decision.allowed:
                return Admittance(REFUSED_BY_RATE, 0, spent, decision)
            for limit, debt in zip(limits, final, strict=True):
                self._store(limit.key, debt, now)
            for (key, _), holders in zip(slots, held, strict=True):
                if holders is None:
                    holders = _Holders()
                    holders.add(next(self._holder_ids), now + ttl_s)
                    self._slots.put(key, holders, now)
                else:
                    holders.add(next(self._holder_ids), now + ttl_s)
            return Admittance(None, 0, spent, decision)

    async def settle_all(
        self,
        adjusts: Sequence[tuple[RateLimit, int]],
        spend_keys: Sequence[str],
        amount_usd: float,
        ttl_s: float,
        leave_keys: Sequence[str],
    ) -> None:
        for limit, delta in adjusts:
            await self.adjust(limit, delta)
        if amount_usd and spend_keys:
            await self.add_spend(spend_keys, amount_usd, ttl_s)
        for key in leave_keys:
            await self.leave(key)

    async def get_spend(self, keys: Sequence[str]) -> list[float]:
        with self._lock:
            now = self._clock()
            entries = [self._spend.get(k, now) for k in keys]
            return [entry[0] if entry is not None else 0.0 for entry in entries]

    async def aclose(self) -> None:
        with self._lock:
            self._buckets.data.clear()
            self._slots.data.clear()
            self._spend.data.clear()
