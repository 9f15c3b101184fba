"""Admission: rate limits, concurrency and budgets, checked before a request runs and
settled after it (actual tokens replace the estimate, the cost joins the spend counters).

Limits apply per key and per tenant; a request must fit all of them. Budgets are read from
the shared spend counters, so every replica sees the same spend (with the Redis backend).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from groundgate.config import LimitsConfig
from groundgate.errors import BudgetExceeded, RateLimited
from groundgate.gateway.principal import Budgets, Limits, Principal
from groundgate.gateway.ratelimit import (
    REFUSED_BY_BUDGET,
    REFUSED_BY_CONCURRENCY,
    Decision,
    LimiterUnavailable,
    RateLimit,
    RateLimiter,
)

_MONTH_TTL = 32 * 86400


@dataclass(frozen=True, slots=True)
class Headroom:
    """The tightest per-minute limit of one kind when a request was admitted: how much it
    allows, how much is left, and how long until it is whole again. (``api`` tells the client
    as ``x-ratelimit-*`` headers.)"""

    kind: Literal["requests", "tokens"]
    limit: int
    remaining: int
    reset_s: float


@dataclass(slots=True)
class Ticket:
    """What an admitted request holds until it is settled. (``token_limits`` and
    ``spend_keys`` are the principal's plan's own sequences, shared: never changed.)"""

    token_limits: Sequence[RateLimit] = field(default_factory=list)
    estimated_tokens: int = 0
    slots: list[str] = field(default_factory=list)
    spend_keys: Sequence[str] = field(default_factory=list)
    headroom: list[Headroom] = field(default_factory=list)  # requests first, then tokens
    settled: bool = False


def _scopes(principal: Principal) -> list[tuple[str, Limits, Budgets]]:
    scopes = [(f"tenant:{principal.tenant}", principal.tenant_limits, principal.tenant_budgets)]
    if principal.key_id is not None:
        scopes.insert(0, (f"key:{principal.key_id}", principal.key_limits, principal.key_budgets))
    return scopes


_BudgetCheck = tuple[str, float, str, datetime]


def _budget_exceeded(check: _BudgetCheck, used: float) -> BudgetExceeded:
    _, ceiling, name, resets = check
    wait = (resets - datetime.now(UTC)).total_seconds()
    return BudgetExceeded(
        f"The {name} (${ceiling:.2f}) is spent (${used:.4f}); it resets at "
        f"{resets.strftime('%Y-%m-%d %H:%M')} UTC.",
        retry_after=max(1.0, wait),
    )


@dataclass(frozen=True, slots=True)
class _Period:
    """The UTC day and month spend counters are kept under, until the day ends."""

    day: str
    month: str
    day_end: datetime
    month_end: datetime
    until: float  # time.time() at day_end


def _period(now: datetime) -> _Period:
    day_end = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    month_end = (
        datetime(now.year + 1, 1, 1, tzinfo=UTC)
        if now.month == 12
        else datetime(now.year, now.month + 1, 1, tzinfo=UTC)
    )
    return _Period(
        now.strftime("%Y-%m-%d"), now.strftime("%Y-%m"), day_end, month_end, day_end.timestamp()
    )


class _Plan:
    """What admission asks of the limiter for one principal, built once per principal (the
    authenticator hands out the same principal object for a key until its record or its
    tenant's changes) instead of on every request: counter keys, rate limits, slots."""

    __slots__ = (
        "budget_specs",
        "budgets",
        "checks",
        "limits",
        "period",
        "principal",
        "rpm",
        "slots",
        "spend_keys",
        "token_cost",
        "token_limits",
        "tpm",
    )

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        scopes = _scopes(principal)
        self.slots = [
            (f"{scope}:concurrent", lim.concurrent) for scope, lim, _ in scopes if lim.concurrent
        ]
        self.limits: list[RateLimit] = []
        self.token_cost: list[bool] = []  # per limit: charged the estimate (else 1)
        for scope, lim, _ in scopes:
            if lim.requests_per_minute:
                self.limits.append(RateLimit(f"{scope}:rpm", lim.requests_per_minute))
                self.token_cost.append(False)
            if lim.tokens_per_minute:
                self.limits.append(RateLimit(f"{scope}:tpm", lim.tokens_per_minute))
                self.token_cost.append(True)
        self.token_limits = [lim for lim in self.limits if lim.key.endswith(":tpm")]
        self.rpm = [lim for lim in self.limits if lim.key.endswith(":rpm")]
        self.tpm = self.token_limits
        self.budget_specs = [(scope, budgets) for scope, _, budgets in scopes]
        self.period: _Period | None = None
        self.spend_keys: list[str] = []
        self.checks: list[_BudgetCheck] = []
        self.budgets: list[tuple[str, float]] = []

    def for_period(self, period: _Period) -> None:
        """The spend counters and budget checks of ``period`` (recomputed when the day turns)."""
        if self.period is period:
            return
        spend_keys: list[str] = []
        checks: list[_BudgetCheck] = []
        for scope, budgets in self.budget_specs:
            day_key = f"spend:{scope}:day:{period.day}"
            month_key = f"spend:{scope}:month:{period.month}"
            spend_keys += [day_key, month_key]
            if budgets.daily_usd is not None:
                checks.append(
                    (day_key, budgets.daily_usd, f"daily budget of {scope}", period.day_end)
                )
            if budgets.monthly_usd is not None:
                checks.append(
                    (month_key, budgets.monthly_usd, f"monthly budget of {scope}", period.month_end)
                )
        self.spend_keys, self.checks = spend_keys, checks
        self.budgets = [(key, ceiling) for key, ceiling, _, _ in checks]
        self.period = period


_PLANS_MAX = 10_000


class Admission:
    def __init__(self, limiter: RateLimiter, config: LimitsConfig) -> None:
        self.limiter = limiter
        self.config = config
        self._period = _period(datetime.now(UTC))
        # By the principal's identity (its dataclass hash would cost more than the plan saves).
        self._plans: dict[int, _Plan] = {}
        # Requests waiting for rate-limit room (limits.queue_ms): the admission queue's depth.
        self.waiting = 0

    def _current_period(self) -> _Period:
        if time.time() >= self._period.until:
            self._period = _period(datetime.now(UTC))
        return self._period

    def _plan(self, principal: Principal) -> _Plan:
        plan = self._plans.get(id(principal))
        if plan is None or plan.principal is not principal:
            if len(self._plans) >= _PLANS_MAX:
                self._plans.clear()
            plan = self._plans[id(principal)] = _Plan(principal)
        plan.for_period(self._current_period())
        return plan

    async def admit(self, principal: Principal, estimated_tokens: int) -> Ticket:
        """Budgets, concurrency and rate limits in one atomic limiter call (one Redis round
        trip): a request turned away for any of them has taken nothing from the others."""
        plan = self._plan(principal)
        # The plan's lists are shared by every request of the principal: read, never changed.
        ticket = Ticket(estimated_tokens=estimated_tokens, spend_keys=plan.spend_keys)
        checks, budgets, slots, limits = plan.checks, plan.budgets, plan.slots, plan.limits
        if not (budgets or slots or limits):
            return ticket
        token_cost = max(1, estimated_tokens)
        costs = [token_cost if tokens else 1 for tokens in plan.token_cost]
        deadline = time.monotonic() + self.config.queue_ms / 1000
        try:
            while True:
                outcome = await self.limiter.admit(budgets, slots, limits, costs)
                if outcome.refused_by is None:
                    break
                if outcome.refused_by == REFUSED_BY_BUDGET:
                    raise _budget_exceeded(checks[outcome.index], outcome.spent[outcome.index])
                if outcome.refused_by == REFUSED_BY_CONCURRENCY:
                    key, limit = slots[outcome.index]
                    raise RateLimited(
                        f"Too many concurrent requests for {key.rsplit(':', 1)[0]} "
                        f"(limit {limit}).",
                        retry_after=1.0,
                    )
                # Refused by a rate limit. Configured to queue briefly: wait for room if it
                # comes soon enough.
                wait = outcome.rates.retry_after_s
                if time.monotonic() + wait > deadline:
                    raise _rate_limited(limits, outcome.rates)
                self.waiting += 1
                try:
                    await asyncio.sleep(wait)
                finally:
                    self.waiting -= 1
        except LimiterUnavailable:
            if not self.config.fail_open:
                raise
            return ticket  # serve unmetered rather than not at all
        ticket.slots = [key for key, _ in slots]
        ticket.token_limits = plan.token_limits
        ticket.headroom = _headroom(plan, outcome.rates.remaining, outcome.rates.reset_s)
        return ticket

    async def settle(self, ticket: Ticket, actual_tokens: int | None, cost_usd: float) -> None:
        if ticket.settled:
            return
        ticket.settled = True
        adjusts: list[tuple[RateLimit, int]] = []
        if actual_tokens is not None and actual_tokens != ticket.estimated_tokens:
            delta = actual_tokens - ticket.estimated_tokens
            adjusts = [(limit, delta) for limit in ticket.token_limits]
        slots, ticket.slots = ticket.slots, []
        # Day counters simply live as long as month ones: one TTL for both.
        spend = ticket.spend_keys if cost_usd > 0 else []
        if not (adjusts or spend or slots):
            return
        # Backends finish a settle even when the request is cancelled meanwhile (the Redis
        # one shields its round trip; the in-process one never waits).
        with contextlib.suppress(LimiterUnavailable):  # best effort once the answer is served
            await self.limiter.settle_all(adjusts, spend, cost_usd, _MONTH_TTL, slots)


def _rate_limited(limits: list[RateLimit], decision: Decision) -> RateLimited:
    which = [
        lim.key.split(":", 2)[-1] for lim in limits if decision.remaining.get(lim.key, 1) <= 0
    ] or ["rate"]
    return RateLimited(
        f"Rate limit exceeded ({', '.join(sorted(set(which)))}); retry in "
        f"{decision.retry_after_s:.1f}s.",
        retry_after=decision.retry_after_s,
    )


def _headroom(plan: _Plan, remaining: dict[str, int], reset: dict[str, float]) -> list[Headroom]:
    """The tightest request and token limits (the ones with the least left)."""
    headroom: list[Headroom] = []
    kinds: tuple[tuple[Literal["requests", "tokens"], list[RateLimit]], ...] = (
        ("requests", plan.rpm),
        ("tokens", plan.tpm),
    )
    for kind, mine in kinds:
        if not mine:
            continue
        tightest = min(mine, key=lambda lim: remaining.get(lim.key, lim.limit))
        left = max(0, remaining.get(tightest.key, 0))
        headroom.append(Headroom(kind, tightest.limit, left, reset.get(tightest.key, 0.0)))
    return headroom
