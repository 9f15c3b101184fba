"""Rate limits, concurrency slots and spend counters: one interface, two backends.

``memory`` (``ratelimit_memory``) keeps state in the process: the embedded default, exact for
one replica. ``redis`` (``ratelimit_redis``) keeps it in Redis behind atomic Lua scripts, so
every replica enforces the same limits. Both pass the same conformance suite.

Rate limits use GCRA, the generic cell rate algorithm. For a limit of ``N`` units per window
``W`` seconds:

* the emission interval is ``T = W / N``: one unit "costs" ``T`` seconds of the window;
* a bucket's state is its *debt* ``d`` (seconds): how far its theoretical arrival time lies
  ahead of now. An idle bucket has ``d = 0``; the debt drains at one second per second;
* a request of cost ``c`` is admitted iff ``d + c*T <= W`` (the burst tolerance is the full
  window: from idle, ``N`` units fit at once, which is what "N per window" means to a
  caller). Admitting sets ``d += c*T``; denying changes nothing;
* when denied, ``retry_after = d + c*T - W``: the wait until the request fits exactly;
* ``remaining = floor((W - d) / T)`` units fit right now (0 when in debt), and
  ``reset = d`` seconds until the bucket is idle (full) again;
* a cost larger than ``N`` can never fit: it is denied with ``retry_after = W``;
* over any span of length ``t`` starting idle, at most ``N + floor(t / T)`` units are admitted.

State kept in time units (not tokens) makes a change of ``N`` or ``W`` for an existing key
harmless: the debt is reread with the new interval. A tolerance of one microsecond absorbs
floating-point rounding, so ``N`` requests of cost 1 from idle are all admitted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from groundgate.errors import ConfigError, GroundgateError

# Rounding slack, in seconds, when deciding whether a charge fits within the window.
EPSILON_S = 1e-6


class LimiterUnavailable(GroundgateError):
    """The limiter's backend (Redis) cannot be reached; the caller fails open or closed."""

    status_code = 503
    error_type = "server_error"
    code = "rate_limiter_unavailable"


@dataclass(frozen=True, slots=True)
class RateLimit:
    key: str  # e.g. "key:abc123:rpm"; callers build keys, backends prefix them with a namespace
    limit: int  # units allowed per window
    window_s: float = 60.0

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"rate limit {self.key!r}: limit must be >= 1, got {self.limit}")
        if not self.window_s > 0:
            raise ValueError(f"rate limit {self.key!r}: window_s must be > 0")

    @property
    def interval_s(self) -> float:
        """The emission interval ``T = W / N``: the seconds one unit occupies."""
        return self.window_s / self.limit


@dataclass(slots=True)
class Decision:
    allowed: bool
    retry_after_s: float  # 0 when allowed; else how long until the request would fit
    remaining: dict[str, int]  # per RateLimit.key, after this request (if allowed)
    reset_s: dict[str, float]  # per key, seconds until the bucket is full (idle) again


REFUSED_BY_BUDGET, REFUSED_BY_CONCURRENCY, REFUSED_BY_RATE = "budget", "concurrency", "rate"


@dataclass(slots=True)
class Admittance:
    """What ``RateLimiter.admit`` decided for one request."""

    refused_by: str | None  # None when admitted, else one of the REFUSED_BY_* values
    index: int  # the refusing budget or slot (its position in the call); 0 otherwise
    spent: list[float]  # each budget's spend counter as read (empty if not read)
    rates: Decision  # the rate decision (remaining/reset empty if refused before rates)

    @property
    def allowed(self) -> bool:
        return self.refused_by is None


class RateLimiter(Protocol):
    async def acquire(self, limits: Sequence[RateLimit], cost: Sequence[int]) -> Decision:
        """GCRA on every limit at once, atomically: either every limit admits its cost and all
        are charged, or none is charged. ``cost[i]`` is the units for ``limits[i]`` (1 for
        requests, estimated tokens for token limits). A cost larger than the limit can never
        fit: it is denied with ``retry_after = window``. With no limits, always allowed."""
        ...

    async def adjust(self, limit: RateLimit, delta: int) -> None:
        """Reconcile after the fact: charge (``delta > 0``) or refund (``delta < 0``) units
        without denying (token estimates corrected by actual usage). A charge may push the
        bucket into debt (later requests wait it out); a refund stops at an idle bucket."""
        ...

    async def enter(self, key: str, limit: int, ttl_s: float = 300) -> bool:
        """Concurrency slot: True if fewer than ``limit`` are held, and take one. Slots expire
        after ``ttl_s`` in case a holder dies."""
        ...

    async def leave(self, key: str) -> None:
        """Give back one slot of ``key`` that this limiter took (the oldest still live)."""
        ...

    async def add_spend(self, keys: Sequence[str], amount_usd: float, ttl_s: float) -> None:
        """Add to spend counters (e.g. ``"spend:tenant:acme:day:2026-11-22"``); each counter
        expires ``ttl_s`` after its last addition."""
        ...

    async def admit(
        self,
        budgets: Sequence[tuple[str, float]],
        slots: Sequence[tuple[str, int]],
        limits: Sequence[RateLimit],
        cost: Sequence[int],
        ttl_s: float = 300,
    ) -> Admittance:
        """Everything an arriving request checks, atomically and in one go (one round trip
        where the backend can), in this order: each ``(spend key, ceiling)`` budget must be
        below its ceiling, each ``(key, limit)`` concurrency slot must have room, and the rate
        limits must admit ``cost`` (as ``acquire``). Either all pass, and the slots are taken
        and the buckets charged, or the first refusal is reported and nothing changes."""
        ...

    async def settle_all(
        self,
        adjusts: Sequence[tuple[RateLimit, int]],
        spend_keys: Sequence[str],
        amount_usd: float,
        ttl_s: float,
        leave_keys: Sequence[str],
    ) -> None:
        """``adjust`` each, ``add_spend`` and ``leave`` each, in one go (one round trip where
        the backend can): what a finished request does."""
        ...

    async def get_spend(self, keys: Sequence[str]) -> list[float]:
        """The counters' values, 0.0 for a counter that does not exist (or expired)."""
        ...

    async def aclose(self) -> None: ...


def check_request(limits: Sequence[RateLimit], cost: Sequence[int]) -> None:
    """Reject calls no backend can answer consistently (a programming error, not a client's)."""
    if len(limits) != len(cost):
        raise ValueError(f"{len(limits)} limits but {len(cost)} costs")
    if any(c < 0 for c in cost):
        raise ValueError("a cost must be >= 0 (refunds go through adjust)")
    if len({limit.key for limit in limits}) != len(limits):
        raise ValueError("a key may appear only once in one acquire")


def gcra_outlook(limit: RateLimit, debt_s: float) -> tuple[int, float]:
    """``(remaining, reset_s)`` of a bucket whose debt is ``debt_s`` seconds."""
    room = (limit.window_s - debt_s + EPSILON_S) / limit.interval_s
    remaining = min(limit.limit, max(0, math.floor(room)))
    return remaining, max(0.0, debt_s)


def gcra_acquire(
    limits: Sequence[RateLimit], cost: Sequence[int], debts: Sequence[float]
) -> tuple[Decision, list[float]]:
    """The GCRA decision for buckets whose current debts are ``debts`` (already drained to
    now). Returns the decision and the debts to store (unchanged when denied). The Redis
    backend runs the same arithmetic in Lua."""
    charged = [d + c * limit.interval_s for limit, c, d in zip(limits, cost, debts, strict=True)]
    wait = 0.0
    for limit, c, after in zip(limits, cost, charged, strict=True):
        if c > limit.limit:
            wait = max(wait, limit.window_s)
        elif after > limit.window_s + EPSILON_S:
            wait = max(wait, after - limit.window_s)
    allowed = wait == 0.0
    final = charged if allowed else list(debts)
    decision = Decision(allowed, wait, {}, {})
    for limit, debt in zip(limits, final, strict=True):
        decision.remaining[limit.key], decision.reset_s[limit.key] = gcra_outlook(limit, debt)
    return decision, final


def _memory(url: str | None) -> RateLimiter:
    from groundgate.gateway.ratelimit_memory import MemoryRateLimiter

    return MemoryRateLimiter()


def _redis(url: str | None) -> RateLimiter:
    if not url:
        raise ConfigError(["rate limiter 'redis' needs a url (e.g. redis://127.0.0.1:6379/0)"])
    from groundgate.gateway.ratelimit_redis import RedisRateLimiter

    return RedisRateLimiter(url)


BACKENDS: dict[str, Callable[[str | None], RateLimiter]] = {"memory": _memory, "redis": _redis}


def build_rate_limiter(kind: str, url: str | None = None) -> RateLimiter:
    """The limiter backend named ``kind`` ("memory" | "redis")."""
    try:
        factory = BACKENDS[kind]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError([f"unknown rate limiter {kind!r} (known: {known})"]) from None
    return factory(url)
