"""The rate limiter contract, the same for every backend (the ``limiter`` fixture).

Redis runs on the real server the session starts (``redis_server``); each test gets its own
namespace, so no state leaks between tests. Windows are short and assertions are about what is
admitted, with margins for scheduling, not about timing precision.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from groundgate.errors import ConfigError
from groundgate.gateway.ratelimit import (
    LimiterUnavailable,
    RateLimit,
    RateLimiter,
    build_rate_limiter,
)
from groundgate.gateway.ratelimit_memory import MemoryRateLimiter
from groundgate.gateway.ratelimit_redis import RedisRateLimiter
from tests.gateway.redis_server import RedisServer
from tests.servers import free_port

BACKENDS = ["memory", "redis"]
_namespaces = itertools.count()


def _namespace() -> str:
    return f"t{next(_namespaces)}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=BACKENDS)
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    backend: RateLimiter
    if request.param == "memory":
        backend = MemoryRateLimiter()
    elif request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        backend = RedisRateLimiter(server.url, namespace=_namespace())
    else:  # pragma: no cover - a backend listed without a branch
        raise AssertionError(request.param)
    try:
        yield backend
    finally:
        await backend.aclose()


async def peek(limiter: RateLimiter, limit: RateLimit) -> tuple[bool, int, float]:
    """(fits now, remaining, reset_s) without charging: a cost of 0 changes nothing."""
    decision = await limiter.acquire([limit], [0])
    return decision.allowed, decision.remaining[limit.key], decision.reset_s[limit.key]


# -- GCRA ------------------------------------------------------------------------------------


async def test_allows_exactly_the_limit_from_idle_then_denies(limiter: RateLimiter) -> None:
    rpm = RateLimit("key:a:rpm", limit=5, window_s=5.0)  # one unit per second
    for expected_remaining in (4, 3, 2, 1, 0):
        decision = await limiter.acquire([rpm], [1])
        assert decision.allowed
        assert decision.retry_after_s == 0
        assert decision.remaining == {"key:a:rpm": expected_remaining}
    denied = await limiter.acquire([rpm], [1])
    assert not denied.allowed
    # The next unit fits one interval after the first was charged, less the time since.
    assert 0.8 < denied.retry_after_s <= 1.0
    assert denied.remaining == {"key:a:rpm": 0}
    # Denials charge nothing: asking again gives the same answer.
    again = await limiter.acquire([rpm], [1])
    assert not again.allowed and again.retry_after_s <= denied.retry_after_s


async def test_refills_over_time(limiter: RateLimiter) -> None:
    rps = RateLimit("key:a:rps", limit=2, window_s=0.5)  # one unit per 0.25 s
    assert (await limiter.acquire([rps], [1])).allowed
    assert (await limiter.acquire([rps], [1])).allowed
    denied = await limiter.acquire([rps], [1])
    assert not denied.allowed and 0 < denied.retry_after_s <= 0.25
    await asyncio.sleep(denied.retry_after_s + 0.02)
    assert (await limiter.acquire([rps], [1])).allowed  # one unit drained back
    assert not (await limiter.acquire([rps], [1])).allowed  # and only one
    await asyncio.sleep(0.55)  # a whole window: full again
    fits, remaining, reset = await peek(limiter, rps)
    assert fits and remaining == 2 and reset == 0


async def test_token_costs_charge_their_size(limiter: RateLimiter) -> None:
    tpm = RateLimit("key:a:tpm", limit=100, window_s=10.0)  # 10 tokens per second
    first = await limiter.acquire([tpm], [60])
    assert first.allowed and first.remaining["key:a:tpm"] == 40
    denied = await limiter.acquire([tpm], [50])
    assert not denied.allowed
    assert 0.9 < denied.retry_after_s <= 1.0  # 10 tokens short
    assert denied.remaining["key:a:tpm"] == 40  # nothing charged
    assert (await limiter.acquire([tpm], [40])).allowed


async def test_a_cost_larger_than_the_limit_never_fits(limiter: RateLimiter) -> None:
    tpm = RateLimit("key:a:tpm", limit=5, window_s=2.0)
    rpm = RateLimit("key:a:rpm", limit=100, window_s=60.0)
    denied = await limiter.acquire([rpm, tpm], [1, 6])
    assert not denied.allowed
    assert denied.retry_after_s == pytest.approx(2.0)
    assert denied.remaining == {"key:a:rpm": 100, "key:a:tpm": 5}
    assert (await peek(limiter, rpm))[1] == 100  # the limit that fit was not charged
    assert (await limiter.acquire([tpm], [5])).allowed  # exactly the limit still fits


async def test_limits_are_charged_all_or_none(limiter: RateLimiter) -> None:
    wide = RateLimit("tenant:acme:rpm", limit=10, window_s=10.0)
    narrow = RateLimit("key:k1:rpm", limit=2, window_s=10.0)
    for _ in range(2):
        assert (await limiter.acquire([wide, narrow], [1, 1])).allowed
    denied = await limiter.acquire([wide, narrow], [1, 1])
    assert not denied.allowed
    assert 0 < denied.retry_after_s <= 5.0  # set by the narrow limit: 5 s per unit
    assert denied.remaining == {"tenant:acme:rpm": 8, "key:k1:rpm": 0}
    # The wide limit was not charged by the denied request.
    alone = await limiter.acquire([wide], [1])
    assert alone.allowed and alone.remaining == {"tenant:acme:rpm": 7}


async def test_remaining_and_reset_agree(limiter: RateLimiter) -> None:
    limit = RateLimit("key:a:rpm", limit=4, window_s=20.0)  # 5 s per unit
    one = await limiter.acquire([limit], [1])
    assert one.remaining[limit.key] == 3
    assert 4.5 < one.reset_s[limit.key] <= 5.0
    three = await limiter.acquire([limit], [2])
    assert three.remaining[limit.key] == 1
    assert 14.5 < three.reset_s[limit.key] <= 15.0
    denied = await limiter.acquire([limit], [2])
    assert not denied.allowed
    # A denial reports the bucket as it stands; it fits once one more unit has drained.
    assert denied.remaining[limit.key] == 1
    assert 14.5 < denied.reset_s[limit.key] <= 15.0
    assert denied.retry_after_s == pytest.approx(denied.reset_s[limit.key] + 10.0 - 20.0)


async def test_adjust_charges_and_refunds(limiter: RateLimiter) -> None:
    tpm = RateLimit("key:a:tpm", limit=10, window_s=10.0)
    assert (await limiter.acquire([tpm], [4])).remaining[tpm.key] == 6
    await limiter.adjust(tpm, 3)  # used more than estimated
    assert (await peek(limiter, tpm))[1] == 3
    await limiter.adjust(tpm, -5)  # used less
    assert (await peek(limiter, tpm))[1] == 8
    await limiter.adjust(tpm, -100)  # a refund stops at a full bucket
    assert await peek(limiter, tpm) == (True, 10, 0.0)
    await limiter.adjust(tpm, 25)  # charges never deny: 15 units of debt beyond the window
    fits, remaining, reset = await peek(limiter, tpm)
    assert not fits and remaining == 0 and 24.5 < reset <= 25.0
    denied = await limiter.acquire([tpm], [1])
    assert not denied.allowed and 15.5 < denied.retry_after_s <= 16.0


async def test_adjust_on_an_idle_bucket(limiter: RateLimiter) -> None:
    tpm = RateLimit("key:idle:tpm", limit=10, window_s=10.0)
    await limiter.adjust(tpm, -3)
    assert await peek(limiter, tpm) == (True, 10, 0.0)
    await limiter.adjust(tpm, 10)
    assert (await peek(limiter, tpm))[:2] == (True, 0)
    await limiter.adjust(tpm, 0)
    assert (await peek(limiter, tpm))[:2] == (True, 0)


async def test_keys_are_isolated(limiter: RateLimiter) -> None:
    a = RateLimit("key:a:rpm", limit=1, window_s=10.0)
    b = RateLimit("key:b:rpm", limit=1, window_s=10.0)
    assert (await limiter.acquire([a], [1])).allowed
    assert not (await limiter.acquire([a], [1])).allowed
    assert (await limiter.acquire([b], [1])).allowed
    # Rate buckets, concurrency slots and spend counters are separate spaces.
    assert await limiter.enter("key:a:rpm", 1)
    await limiter.add_spend(["key:a:rpm"], 2.0, 60)
    assert not (await limiter.acquire([a], [1])).allowed
    assert await limiter.get_spend(["key:a:rpm", "key:b:rpm"]) == [2.0, 0.0]


async def test_concurrent_acquires_admit_exactly_the_limit(limiter: RateLimiter) -> None:
    limit = RateLimit("key:burst:rpm", limit=10, window_s=60.0)
    decisions = await asyncio.gather(*(limiter.acquire([limit], [1]) for _ in range(40)))
    assert sum(d.allowed for d in decisions) == 10


async def test_no_limits_always_allows(limiter: RateLimiter) -> None:
    decision = await limiter.acquire([], [])
    assert decision.allowed and decision.retry_after_s == 0
    assert decision.remaining == {} and decision.reset_s == {}


async def test_bad_calls_are_rejected(limiter: RateLimiter) -> None:
    a = RateLimit("key:a:rpm", limit=1)
    with pytest.raises(ValueError):
        await limiter.acquire([a], [1, 1])
    with pytest.raises(ValueError):
        await limiter.acquire([a], [-1])
    with pytest.raises(ValueError):
        await limiter.acquire([a, RateLimit("key:a:rpm", limit=5)], [1, 1])
    with pytest.raises(ValueError):
        RateLimit("key:a:rpm", limit=0)
    with pytest.raises(ValueError):
        RateLimit("key:a:rpm", limit=1, window_s=0)
    assert (await limiter.acquire([a], [1])).allowed  # nothing was charged


# -- concurrency slots -----------------------------------------------------------------------


async def test_concurrency_slots(limiter: RateLimiter) -> None:
    assert await limiter.enter("key:a:cc", 2)
    assert await limiter.enter("key:a:cc", 2)
    assert not await limiter.enter("key:a:cc", 2)
    assert await limiter.enter("key:b:cc", 2)  # another key has its own slots
    await limiter.leave("key:a:cc")
    assert await limiter.enter("key:a:cc", 2)
    assert not await limiter.enter("key:a:cc", 2)
    assert await limiter.enter("key:a:cc", 3)  # the limit is the caller's, per call
    for _ in range(3):
        await limiter.leave("key:a:cc")
    await limiter.leave("key:a:cc")  # leaving more often than entering is harmless
    await limiter.leave("key:never:cc")
    results = await asyncio.gather(*(limiter.enter("key:a:cc", 5) for _ in range(20)))
    assert sum(results) == 5


async def test_concurrency_slots_expire(limiter: RateLimiter) -> None:
    assert await limiter.enter("key:a:cc", 1, ttl_s=0.2)
    assert not await limiter.enter("key:a:cc", 1, ttl_s=0.2)
    await asyncio.sleep(0.3)  # the holder died without leaving
    assert await limiter.enter("key:a:cc", 1, ttl_s=5)
    assert not await limiter.enter("key:a:cc", 1, ttl_s=5)
    await limiter.leave("key:a:cc")
    assert await limiter.enter("key:a:cc", 1, ttl_s=5)


# -- spend -----------------------------------------------------------------------------------


async def test_spend_counters(limiter: RateLimiter) -> None:
    day = "spend:tenant:acme:day:2026-11-22"
    key = "spend:key:k1:day:2026-11-22"
    assert await limiter.get_spend([day, key]) == [0.0, 0.0]
    await limiter.add_spend([day, key], 1.25, ttl_s=60)
    await limiter.add_spend([day], 0.5, ttl_s=60)
    await limiter.add_spend([day], 0.000123, ttl_s=60)
    got = await limiter.get_spend([day, key, "spend:other"])
    assert got == pytest.approx([1.750123, 1.25, 0.0], abs=1e-12)
    await limiter.add_spend([], 1.0, ttl_s=60)
    assert await limiter.get_spend([]) == []


async def test_spend_counters_expire(limiter: RateLimiter) -> None:
    await limiter.add_spend(["spend:short"], 3.0, ttl_s=0.2)
    await limiter.add_spend(["spend:long"], 3.0, ttl_s=30)
    assert await limiter.get_spend(["spend:short"]) == [3.0]
    await asyncio.sleep(0.3)
    assert await limiter.get_spend(["spend:short", "spend:long"]) == [0.0, 3.0]
    await limiter.add_spend(["spend:short"], 1.0, ttl_s=30)  # starts afresh
    assert await limiter.get_spend(["spend:short"]) == [1.0]


# -- memory backend --------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_forgets_idle_entries() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = 0
    for round_ in range(50):
        for i in range(1000):
            key = f"key:{round_}:{i}"
            await limiter.acquire([RateLimit(key, 10, 1.0)], [1])
            assert await limiter.enter(key, 1, ttl_s=1.0)
            await limiter.add_spend([key], 0.1, ttl_s=1.0)
        limit = max(limit, limiter.tracked_keys())
        clock.now += 2.0  # everything so far has drained or expired
    # 50,000 keys of each kind went through; the tables only ever held about two rounds.
    assert limit <= 3 * 2 * 1024
    await limiter.aclose()
    assert limiter.tracked_keys() == 0


async def test_memory_caps_live_entries() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(max_keys=500, clock=clock)
    for i in range(5000):
        clock.now += 0.001
        await limiter.acquire([RateLimit(f"key:{i}", 10, 3600.0)], [1])
        await limiter.add_spend([f"spend:{i}"], 1.0, ttl_s=3600)
        assert limiter.tracked_keys() <= 2 * 500
    # The most recent (furthest from idle) entries are the ones kept.
    assert (await peek(limiter, RateLimit("key:4999", 10, 3600.0)))[1] == 9
    assert await limiter.get_spend(["spend:4999", "spend:0"]) == [1.0, 0.0]


async def test_memory_is_exact_at_the_burst_boundary_for_odd_intervals() -> None:
    for n, window in ((7, 60.0), (3, 0.1), (1000, 1.0), (13, 3.3)):
        limiter = MemoryRateLimiter(clock=FakeClock())
        limit = RateLimit("k", n, window)
        admitted = [(await limiter.acquire([limit], [1])).allowed for _ in range(n + 1)]
        assert admitted == [True] * n + [False], (n, window)


# -- redis backend ---------------------------------------------------------------------------


async def test_redis_is_exact_at_the_burst_boundary(redis_server: RedisServer) -> None:
    limiter = RedisRateLimiter(redis_server.url, namespace=_namespace())
    try:
        limit = RateLimit("k", 1000, 3600.0)
        decisions = await asyncio.gather(*(limiter.acquire([limit], [1]) for _ in range(1001)))
        assert sum(d.allowed for d in decisions) == 1000
    finally:
        await limiter.aclose()


async def test_redis_namespaces_are_isolated(redis_server: RedisServer) -> None:
    namespace = _namespace()
    first = RedisRateLimiter(redis_server.url, namespace=namespace)
    second = RedisRateLimiter(redis_server.url, namespace=_namespace())
    shared = RedisRateLimiter(redis_server.url, namespace=namespace)
    try:
        limit = RateLimit("key:a:rpm", limit=1, window_s=10.0)
        assert (await first.acquire([limit], [1])).allowed
        assert (await second.acquire([limit], [1])).allowed
        assert not (await shared.acquire([limit], [1])).allowed  # same namespace, same bucket
        await first.add_spend(["s"], 1.0, 60)
        assert await second.get_spend(["s"]) == [0.0]
        assert await shared.get_spend(["s"]) == [1.0]
    finally:
        for limiter in (first, second, shared):
            await limiter.aclose()


async def test_redis_reloads_scripts_after_a_flush(redis_server: RedisServer) -> None:
    limiter = RedisRateLimiter(redis_server.url, namespace=_namespace())
    try:
        limit = RateLimit("key:a:rpm", limit=3, window_s=10.0)
        assert (await limiter.acquire([limit], [1])).remaining[limit.key] == 2
        assert redis_server.command("SCRIPT", "FLUSH") == b"+OK"
        assert (await limiter.acquire([limit], [1])).remaining[limit.key] == 1
        assert redis_server.command("SCRIPT", "FLUSH") == b"+OK"
        await limiter.adjust(limit, -1)
        assert redis_server.command("SCRIPT", "FLUSH") == b"+OK"
        assert await limiter.enter("cc", 1)
        assert (await limiter.acquire([limit], [0])).remaining[limit.key] == 2
        assert redis_server.command("SCRIPT", "FLUSH") == b"+OK"
        await limiter.settle_all([(limit, 1)], ["s"], 0.5, 60, ["cc"])
        assert await limiter.get_spend(["s"]) == [0.5]
        assert await limiter.enter("cc", 1)  # given back by settle_all
    finally:
        await limiter.aclose()


async def test_redis_keeps_no_state_for_idle_buckets(redis_server: RedisServer) -> None:
    namespace = _namespace()
    limiter = RedisRateLimiter(redis_server.url, namespace=namespace)
    prefix = f"{{{namespace}}}:"
    try:
        limit = RateLimit("key:a:rps", limit=10, window_s=0.1)
        assert (await limiter.acquire([limit], [1])).allowed
        assert redis_server.command("EXISTS", f"{prefix}rl:key:a:rps") == b":1"
        ttl = int(redis_server.command("PTTL", f"{prefix}rl:key:a:rps")[1:])
        assert 0 < ttl <= 10  # the key lives exactly as long as the debt: 10 ms
        await asyncio.sleep(0.05)
        assert redis_server.command("EXISTS", f"{prefix}rl:key:a:rps") == b":0"
        assert await limiter.enter("cc", 2, ttl_s=0.05)
        await asyncio.sleep(0.1)
        assert redis_server.command("EXISTS", f"{prefix}cc:cc") == b":0"
    finally:
        await limiter.aclose()


async def _slow_reply_proxy(port: int, reply_delay_s: list[float]) -> asyncio.Server:
    """A TCP proxy to Redis that forwards commands at once but holds each reply back for
    ``reply_delay_s[0]`` (changeable while it runs): the server has run a command while its
    client still waits for the answer."""

    async def pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: list[float]
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if delay[0]:
                    await asyncio.sleep(delay[0])
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", port)
        with contextlib.suppress(asyncio.CancelledError):  # the proxy closing at the end
            await asyncio.gather(
                pipe(client_r, server_w, [0.0]), pipe(server_r, client_w, reply_delay_s)
            )

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_redis_cancelled_admission_gives_its_slots_back(redis_server: RedisServer) -> None:
    namespace = _namespace()
    reply_delay_s = [0.0]
    proxy = await _slow_reply_proxy(redis_server.port, reply_delay_s)
    port = proxy.sockets[0].getsockname()[1]
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{port}/0", namespace=namespace)
    holders = f"{{{namespace}}}:cc:cc"
    try:
        # Load the script and pool a connection, so the admit below runs on arrival.
        assert (await limiter.admit([], [], [], [])).allowed
        reply_delay_s[0] = 0.5
        task = asyncio.create_task(limiter.admit([], [("cc", 1)], [], []))
        await asyncio.sleep(0.2)  # the script has run on the server; its reply is held back
        assert redis_server.command("ZCARD", holders) == b":1"
        task.cancel()  # the client gave up (a disconnect), before the answer came
        with pytest.raises(asyncio.CancelledError):
            await task
        reply_delay_s[0] = 0.0
        await limiter.aclose()  # waits for the background release
        assert redis_server.command("ZCARD", holders) == b":0"
    finally:
        await limiter.aclose()
        proxy.close()


async def test_redis_down_raises_limiter_unavailable() -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    began = time.monotonic()
    try:
        with pytest.raises(LimiterUnavailable) as caught:
            await limiter.acquire([RateLimit("k", 1)], [1])
        assert caught.value.status_code == 503
        with pytest.raises(LimiterUnavailable):
            await limiter.add_spend(["s"], 1.0, 60)
        with pytest.raises(LimiterUnavailable):
            await limiter.get_spend(["s"])
        with pytest.raises(LimiterUnavailable):
            await limiter.enter("cc", 1)
        with pytest.raises(LimiterUnavailable):
            await limiter.adjust(RateLimit("k", 1), 1)
    finally:
        await limiter.aclose()
    assert time.monotonic() - began < 5.0  # fails fast; the caller decides what to do


# -- factory ---------------------------------------------------------------------------------


async def test_build_rate_limiter() -> None:
    memory = build_rate_limiter("memory", None)
    assert isinstance(memory, MemoryRateLimiter)
    await memory.aclose()
    with pytest.raises(ConfigError):
        build_rate_limiter("redis", None)
    with pytest.raises(ConfigError):
        build_rate_limiter("memcached", "memcached://x")


async def test_build_redis_rate_limiter(redis_server: RedisServer) -> None:
    redis = build_rate_limiter("redis", redis_server.url)
    assert isinstance(redis, RedisRateLimiter)
    try:
        assert (await redis.acquire([RateLimit(uuid.uuid4().hex, 1)], [1])).allowed
    finally:
        await redis.aclose()


async def test_settle_all_does_every_update_at_once(limiter: RateLimiter) -> None:
    tokens = RateLimit("settle:tpm", 100, window_s=60)
    assert (await limiter.acquire([tokens], [80])).allowed
    assert await limiter.enter("settle:cc", 1)
    assert not await limiter.enter("settle:cc", 1)
    # The request used 30 tokens, not the 80 estimated; it cost 0.25 USD; it is done.
    await limiter.settle_all(
        [(tokens, -50)], ["settle:day", "settle:month"], 0.25, 60, ["settle:cc"]
    )
    decision = await limiter.acquire([tokens], [70])
    assert decision.allowed  # the refund made room: 30 + 70 <= 100
    assert await limiter.get_spend(["settle:day", "settle:month"]) == [0.25, 0.25]
    assert await limiter.enter("settle:cc", 1)  # the slot was given back
    # Nothing to do is fine too.
    await limiter.settle_all([], [], 0.0, 60, [])


async def test_admit_checks_budgets_slots_and_rates_together(limiter: RateLimiter) -> None:
    rpm = RateLimit("adm:rpm", 10, window_s=60)
    await limiter.add_spend(["adm:day"], 1.5, 60)
    outcome = await limiter.admit(
        [("adm:day", 2.0), ("adm:none", 1.0)], [("adm:a", 1), ("adm:b", 2)], [rpm], [1]
    )
    assert outcome.allowed and outcome.refused_by is None
    assert outcome.spent == [1.5, 0.0]
    assert outcome.rates.remaining == {"adm:rpm": 9}
    # The slots were taken: "adm:a" (limit 1) is now full, "adm:b" has one left.
    assert not await limiter.enter("adm:a", 1)
    assert await limiter.enter("adm:b", 2)
    assert not await limiter.enter("adm:b", 2)


async def test_admit_refused_by_a_budget_takes_nothing(limiter: RateLimiter) -> None:
    rpm = RateLimit("adb:rpm", 10, window_s=60)
    await limiter.add_spend(["adb:month"], 2.0, 60)
    outcome = await limiter.admit(
        [("adb:day", 5.0), ("adb:month", 2.0)], [("adb:cc", 1)], [rpm], [1]
    )
    assert not outcome.allowed
    assert (outcome.refused_by, outcome.index, outcome.spent) == ("budget", 1, [0.0, 2.0])
    assert await peek(limiter, rpm) == (True, 10, 0.0)  # no request charged
    assert await limiter.enter("adb:cc", 1)  # no slot taken


async def test_admit_refused_by_a_full_slot_takes_nothing(limiter: RateLimiter) -> None:
    rpm = RateLimit("adc:rpm", 10, window_s=60)
    assert await limiter.enter("adc:b", 1)
    outcome = await limiter.admit([], [("adc:a", 1), ("adc:b", 1)], [rpm], [1])
    assert (outcome.refused_by, outcome.index) == ("concurrency", 1)
    assert await peek(limiter, rpm) == (True, 10, 0.0)
    assert await limiter.enter("adc:a", 1)  # the first slot was not taken either


async def test_admit_refused_by_a_rate_takes_no_slot(limiter: RateLimiter) -> None:
    rpm = RateLimit("adr:rpm", 1, window_s=60)
    first = await limiter.admit([], [("adr:cc", 5)], [rpm], [1])
    assert first.allowed
    second = await limiter.admit([], [("adr:cc", 5)], [rpm], [1])
    assert second.refused_by == "rate"
    assert 59 < second.rates.retry_after_s <= 60
    assert second.rates.remaining == {"adr:rpm": 0}
    # One slot held (the first request's), so exactly four more fit under the limit of 5.
    assert [await limiter.enter("adr:cc", 5) for _ in range(5)] == [True] * 4 + [False]


async def test_admit_with_nothing_to_check_is_allowed(limiter: RateLimiter) -> None:
    outcome = await limiter.admit([], [], [], [])
    assert outcome.allowed and outcome.spent == [] and outcome.rates.remaining == {}
