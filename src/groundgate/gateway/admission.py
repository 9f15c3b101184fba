"""Admission: rate limits, concurrency and budgets, checked before a request runs and
settled after it (actual tokens replace the estimate, the cost joins the spend counters).

Limits apply per key and per tenant; a request must fit all of them. Budgets are read from
the shared spend counters, so every replica sees the same spend (with the Redis backend).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from groundgate.config import LimitsConfig
from groundgate.errors import BudgetExceeded, RateLimited
from groundgate.gateway.principal import Budgets, Limits, Principal
from groundgate.gateway.ratelimit import LimiterUnavailable, RateLimit, RateLimiter

_MONTH_TTL = 32 * 86400


@dataclass(slots=True)
class Ticket:
    """What an admitted request holds until it is settled."""

    token_limits: list[RateLimit] = field(default_factory=list)
    estimated_tokens: int = 0
    slots: list[str] = field(default_factory=list)
    spend_keys: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False


def _scopes(principal: Principal) -> list[tuple[str, Limits, Budgets]]:
    scopes = [(f"tenant:{principal.tenant}", principal.tenant_limits, principal.tenant_budgets)]
    if principal.key_id is not None:
        scopes.insert(0, (f"key:{principal.key_id}", principal.key_limits, principal.key_budgets))
    return scopes


_BudgetCheck = tuple[str, float, str, datetime]


def _enforce_budgets(checks: list[_BudgetCheck], spent: list[float]) -> None:
    for (_, ceiling, name, resets), used in zip(checks, spent, strict=True):
        if used >= ceiling:
            wait = (resets - datetime.now(UTC)).total_seconds()
            raise BudgetExceeded(
                f"The {name} (${ceiling:.2f}) is spent (${used:.4f}); it resets at "
                f"{resets.strftime('%Y-%m-%d %H:%M')} UTC.",
                retry_after=max(1.0, wait),
            )


def _periods(now: datetime) -> tuple[str, str, datetime, datetime]:
    day_end = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    month_end = (
        datetime(now.year + 1, 1, 1, tzinfo=UTC)
        if now.month == 12
        else datetime(now.year, now.month + 1, 1, tzinfo=UTC)
    )
    return now.strftime("%Y-%m-%d"), now.strftime("%Y-%m"), day_end, month_end


class Admission:
    def __init__(self, limiter: RateLimiter, config: LimitsConfig) -> None:
        self.limiter = limiter
        self.config = config

    async def admit(self, principal: Principal, estimated_tokens: int) -> Ticket:
        ticket = Ticket(estimated_tokens=estimated_tokens)
        try:
            # Budgets and concurrency slots in one round trip, then the rate limits: a request
            # turned away for budget or concurrency has spent none of its rate limit.
            checks = self._budget_checks(principal, ticket)
            slots = [
                (f"{scope}:concurrent", lim.concurrent)
                for scope, lim, _ in _scopes(principal)
                if lim.concurrent
            ]
            if checks or slots:
                spent, entered = await self.limiter.prepare([c[0] for c in checks], slots)
                ticket.slots = [key for (key, _), ok in zip(slots, entered, strict=True) if ok]
                _enforce_budgets(checks, spent)
                for (key, limit), ok in zip(slots, entered, strict=True):
                    if not ok:
                        scope = key.rsplit(":", 1)[0]
                        raise RateLimited(
                            f"Too many concurrent requests for {scope} (limit {limit}).",
                            retry_after=1.0,
                        )
            await self._rates(principal, ticket)
        except LimiterUnavailable:
            if not self.config.fail_open:
                await self._leave(ticket)
                raise
            ticket.token_limits.clear()  # serve unmetered rather than not at all
        except BaseException:
            await self._leave(ticket)
            raise
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
        with contextlib.suppress(LimiterUnavailable):  # best effort once the answer is served
            await self.limiter.settle_all(adjusts, spend, cost_usd, _MONTH_TTL, slots)

    @staticmethod
    def _budget_checks(principal: Principal, ticket: Ticket) -> list[_BudgetCheck]:
        day, month, day_end, month_end = _periods(datetime.now(UTC))
        checks: list[_BudgetCheck] = []
        for scope, _, budgets in _scopes(principal):
            day_key, month_key = f"spend:{scope}:day:{day}", f"spend:{scope}:month:{month}"
            ticket.spend_keys += [day_key, month_key]
            if budgets.daily_usd is not None:
                checks.append((day_key, budgets.daily_usd, f"daily budget of {scope}", day_end))
            if budgets.monthly_usd is not None:
                checks.append(
                    (month_key, budgets.monthly_usd, f"monthly budget of {scope}", month_end)
                )
        return checks

    async def _rates(self, principal: Principal, ticket: Ticket) -> None:
        limits: list[RateLimit] = []
        costs: list[int] = []
        for scope, lim, _ in _scopes(principal):
            if lim.requests_per_minute:
                limits.append(RateLimit(f"{scope}:rpm", lim.requests_per_minute))
                costs.append(1)
            if lim.tokens_per_minute:
                limit = RateLimit(f"{scope}:tpm", lim.tokens_per_minute)
                limits.append(limit)
                costs.append(max(1, ticket.estimated_tokens))
                ticket.token_limits.append(limit)
        if not limits:
            return
        deadline = time.monotonic() + self.config.queue_ms / 1000
        while True:
            decision = await self.limiter.acquire(limits, costs)
            if decision.allowed:
                break
            # Configured to queue briefly: wait for room if it comes soon enough.
            if time.monotonic() + decision.retry_after_s > deadline:
                ticket.token_limits.clear()
                which = [
                    lim.key.split(":", 2)[-1]
                    for lim in limits
                    if decision.remaining.get(lim.key, 1) <= 0
                ] or ["rate"]
                raise RateLimited(
                    f"Rate limit exceeded ({', '.join(sorted(set(which)))}); retry in "
                    f"{decision.retry_after_s:.1f}s.",
                    retry_after=decision.retry_after_s,
                )
            await asyncio.sleep(decision.retry_after_s)
        ticket.headers.update(_headers(limits, decision.remaining, decision.reset_s))

    async def _leave(self, ticket: Ticket) -> None:
        slots, ticket.slots = ticket.slots, []
        if slots:
            await asyncio.gather(*(self._leave_one(key) for key in slots))

    async def _leave_one(self, key: str) -> None:
        with contextlib.suppress(LimiterUnavailable):
            await self.limiter.leave(key)


def _headers(
    limits: list[RateLimit], remaining: dict[str, int], reset: dict[str, float]
) -> dict[str, str]:
    """OpenAI-style x-ratelimit-* headers from the tightest request and token limits."""
    headers: dict[str, str] = {}
    for kind, suffix in (("requests", ":rpm"), ("tokens", ":tpm")):
        mine = [lim for lim in limits if lim.key.endswith(suffix)]
        if not mine:
            continue
        tightest = min(mine, key=lambda lim: remaining.get(lim.key, lim.limit))
        headers[f"x-ratelimit-limit-{kind}"] = str(tightest.limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, remaining.get(tightest.key, 0)))
        headers[f"x-ratelimit-reset-{kind}"] = f"{reset.get(tightest.key, 0.0):.3f}s"
    return headers
