"""Admission on both limiter backends: what a request is refused for, what it holds while it
runs, what settling gives back, queueing, and what happens when the limiter is down."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import anyio
import pytest

from groundgate.config import LimitsConfig
from groundgate.errors import BudgetExceeded, RateLimited
from groundgate.gateway.admission import Admission, Ticket
from groundgate.gateway.principal import Budgets, Limits, Principal
from groundgate.gateway.ratelimit import LimiterUnavailable, RateLimit, RateLimiter
from groundgate.gateway.ratelimit_memory import MemoryRateLimiter
from groundgate.gateway.ratelimit_redis import RedisRateLimiter
from tests.gateway.redis_server import RedisServer
from tests.servers import free_port


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    backend: RateLimiter
    if request.param == "memory":
        backend = MemoryRateLimiter()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        backend = RedisRateLimiter(server.url, namespace=f"adm-{uuid.uuid4().hex[:8]}")
    try:
        yield backend
    finally:
        await backend.aclose()


def principal(
    *, key: Limits = Limits(), tenant: Limits = Limits(), budgets: Budgets = Budgets()
) -> Principal:
    return Principal(
        tenant="acme",
        key_id="k1",
        scopes=frozenset({"chat"}),
        key_limits=key,
        tenant_limits=tenant,
        key_budgets=budgets,
    )


async def test_a_spent_budget_refuses_with_its_name_and_reset(limiter: RateLimiter) -> None:
    admission = Admission(limiter, LimitsConfig())
    who = principal(key=Limits(requests_per_minute=10), budgets=Budgets(daily_usd=0.5))
    ticket = await admission.admit(who, 10)
    await admission.settle(ticket, 12, 0.5)  # this request spends the whole daily budget
    with pytest.raises(BudgetExceeded) as refused:
        await admission.admit(who, 10)
    message = str(refused.value)
    assert "daily budget of key:k1" in message and "$0.50" in message
    today = datetime.now(UTC).strftime("%Y-%m-%d")  # it resets at the next midnight UTC
    assert "resets at" in message and today not in message.split("resets at")[1]
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1
    # The refused request took none of the rate limit: 10 - 1 remain, not 10 - 2.
    rpm = RateLimit("key:k1:rpm", 10)
    assert (await limiter.acquire([rpm], [0])).remaining[rpm.key] == 9


async def test_concurrency_slots_are_held_until_settled(limiter: RateLimiter) -> None:
    admission = Admission(limiter, LimitsConfig())
    who = principal(key=Limits(concurrent=2), tenant=Limits(concurrent=5))
    first = await admission.admit(who, 10)
    second = await admission.admit(who, 10)
    assert first.slots == ["key:k1:concurrent", "tenant:acme:concurrent"]
    with pytest.raises(RateLimited) as refused:
        await admission.admit(who, 10)
    assert "concurrent requests for key:k1 (limit 2)" in str(refused.value)
    await admission.settle(first, 10, 0.0)
    third = await admission.admit(who, 10)  # the settled request gave its slot back
    for ticket in (second, third):
        await admission.settle(ticket, 10, 0.0)
    # Every slot was given back: the tenant's five are all free again.
    tenant_only = principal(tenant=Limits(concurrent=5))
    tickets = [await admission.admit(tenant_only, 1) for _ in range(5)]
    assert all(t.slots == ["tenant:acme:concurrent"] for t in tickets)


async def test_settling_reconciles_tokens_and_records_spend(limiter: RateLimiter) -> None:
    admission = Admission(limiter, LimitsConfig())
    who = principal(key=Limits(tokens_per_minute=1000))
    ticket = await admission.admit(who, 800)  # estimated high
    assert [(h.kind, h.limit, h.remaining) for h in ticket.headroom] == [("tokens", 1000, 200)]
    with pytest.raises(RateLimited):
        await admission.admit(who, 300)  # 800 + 300 > 1000
    await admission.settle(ticket, 100, 0.25)  # used 100: 700 refunded
    assert (await admission.admit(who, 800)).headroom[0].remaining == 100
    day, month = datetime.now(UTC).strftime("%Y-%m-%d"), datetime.now(UTC).strftime("%Y-%m")
    spent = await limiter.get_spend([f"spend:key:k1:day:{day}", f"spend:tenant:acme:month:{month}"])
    assert spent == [0.25, 0.25]
    await admission.settle(ticket, 100, 0.25)  # settling twice changes nothing
    assert (await limiter.get_spend([f"spend:key:k1:day:{day}"])) == [0.25]


async def test_a_cancelled_settle_still_reaches_redis(redis_server: RedisServer) -> None:
    """A client that goes away mid-stream cancels every await of the request's cleanup
    (Starlette's anyio cancel scope). Its settle must still bill the spend, even when its first
    await is connecting to Redis (a fresh limiter here: its pool has no connection yet)."""
    namespace = f"adm-{uuid.uuid4().hex[:8]}"
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    key = f"spend:key:k1:day:{day}"
    fresh = RedisRateLimiter(redis_server.url, namespace=namespace)
    reader = RedisRateLimiter(redis_server.url, namespace=namespace)
    try:
        admission = Admission(fresh, LimitsConfig())
        with anyio.CancelScope() as scope:
            scope.cancel()
            await admission.settle(Ticket(spend_keys=[key]), 12, 0.25)
        deadline = time.monotonic() + 5
        while await reader.get_spend([key]) != [0.25]:
            assert time.monotonic() < deadline, "the cancelled settle never recorded its spend"
            await asyncio.sleep(0.01)
    finally:
        await fresh.aclose()
        await reader.aclose()


async def test_queueing_waits_for_room_instead_of_refusing(limiter: RateLimiter) -> None:
    # 1,200 per minute: one request every 50 ms once the burst is spent.
    who = principal(key=Limits(requests_per_minute=1200))
    assert (await limiter.acquire([RateLimit("key:k1:rpm", 1200)], [1200])).allowed
    with pytest.raises(RateLimited) as refused:
        await Admission(limiter, LimitsConfig(queue_ms=0)).admit(who, 1)
    assert refused.value.retry_after is not None and 0 < refused.value.retry_after <= 0.05
    began = time.monotonic()
    ticket = await Admission(limiter, LimitsConfig(queue_ms=500)).admit(who, 1)
    assert 0.02 < time.monotonic() - began < 0.5  # it waited for its turn, then went in
    assert [(h.kind, h.remaining) for h in ticket.headroom] == [("requests", 0)]


@pytest.mark.parametrize("fail_open", [False, True])
async def test_a_down_limiter_fails_closed_unless_configured_open(fail_open: bool) -> None:
    down = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    admission = Admission(down, LimitsConfig(fail_open=fail_open))
    who = principal(key=Limits(requests_per_minute=10, concurrent=1))
    try:
        if not fail_open:
            with pytest.raises(LimiterUnavailable) as refused:
                await admission.admit(who, 10)
            assert refused.value.status_code == 503
            return
        ticket = await admission.admit(who, 10)  # served unmetered
        assert ticket.slots == [] and ticket.token_limits == [] and ticket.headroom == []
        await admission.settle(ticket, 10, 0.01)  # best effort: no error once served
    finally:
        await down.aclose()


async def test_no_limits_means_no_limiter_call() -> None:
    class Refuses(MemoryRateLimiter):
        async def admit(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            raise AssertionError("admission called the limiter with nothing to check")

    ticket = await Admission(Refuses(), LimitsConfig()).admit(
        Principal(tenant="t", key_id=None, scopes=frozenset()), 5
    )
    assert ticket.slots == [] and ticket.headroom == []


async def test_headroom_reports_the_tightest_limit_of_each_kind(limiter: RateLimiter) -> None:
    who = principal(
        key=Limits(requests_per_minute=50, tokens_per_minute=10_000),
        tenant=Limits(requests_per_minute=3, tokens_per_minute=90_000),
    )
    ticket = await Admission(limiter, LimitsConfig()).admit(who, 400)
    requests, tokens = ticket.headroom
    assert (requests.kind, requests.limit, requests.remaining) == ("requests", 3, 2)  # tenant's
    assert (tokens.kind, tokens.limit, tokens.remaining) == ("tokens", 10_000, 9_600)  # key's
    assert 0 < requests.reset_s <= 60 and 0 < tokens.reset_s <= 60
