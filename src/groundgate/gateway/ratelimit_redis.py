"""The Redis limiter: every replica enforces the same limits.

Each check-and-charge is one Lua script, so it is atomic on the server, and reads the clock
with Redis ``TIME`` rather than the client's, so replicas with skewed clocks agree (scripts
are replicated by effect, so ``TIME`` is allowed before writes). Scripts go by EVALSHA with
their SHA1 computed here; on NOSCRIPT (a fresh or restarted server, SCRIPT FLUSH) the script
is sent once with SCRIPT LOAD and the call repeated.

Keys are ``{namespace}:rl:<key>`` (buckets), ``{namespace}:cc:<key>`` (concurrency) and
``{namespace}:sp:<key>`` (spend). The braces are a Redis Cluster hash tag: every key of one
namespace lives in one slot, so the multi-key script stays valid on a cluster.

A bucket is a string ``"<written at, µs> <debt, µs>"`` expiring when the debt has drained, so
an idle bucket costs no memory. Keeping the debt relative to its write time (rather than an
absolute arrival time near 1.7e15 µs) keeps the arithmetic exact to well under a microsecond.
A concurrency key is a sorted set of holder ids scored by expiry time; expired holders are
removed on each ``enter``, and the set itself expires with its last holder.

Any Redis failure (connection refused, timeout, a read-only replica after failover, OOM)
raises :class:`LimiterUnavailable`; the caller decides whether to fail open or closed.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from groundgate.gateway.ratelimit import (
    EPSILON_S,
    Decision,
    LimiterUnavailable,
    RateLimit,
    check_request,
)

_US = 1_000_000

# Shared by the two GCRA scripts: `now` from Redis TIME (µs), and reading a bucket's debt
# drained to now / writing it back (deleting an idle bucket). A clock that stepped back drains
# nothing rather than adding debt.
_READ_DEBT = """
local function read_debt(key, now)
  local v = redis.call('GET', key)
  if not v then return 0 end
  local sep = string.find(v, ' ', 1, true)
  local at = tonumber(string.sub(v, 1, sep - 1))
  local debt = tonumber(string.sub(v, sep + 1)) - math.max(0, now - at)
  if debt < 0 then return 0 end
  return debt
end
local function write_debt(key, now, debt)
  if debt > 0 then
    redis.call('SET', key, string.format('%d %.17g', now, debt), 'PX', math.ceil(debt / 1000))
  else
    redis.call('DEL', key)
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# KEYS: the buckets. ARGV[3i-2], ARGV[3i-1], ARGV[3i]: window (µs), limit, cost of bucket i.
# Returns {allowed (0|1), retry_after_us, then per bucket: remaining, reset_us}; fractional
# numbers as strings (a Lua number becomes a truncated integer in a reply).
_ACQUIRE = (
    _READ_DEBT
    + """
local eps = tonumber(ARGV[#ARGV])
local n = #KEYS
local debts, charged, wait = {}, {}, 0
for i = 1, n do
  local w, lim, c = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  debts[i] = read_debt(KEYS[i], now)
  charged[i] = debts[i] + c * (w / lim)
  if c > lim then
    wait = math.max(wait, w)
  elseif charged[i] > w + eps then
    wait = math.max(wait, charged[i] - w)
  end
end
local allowed = wait == 0
local out = {allowed and 1 or 0, string.format('%.17g', wait)}
for i = 1, n do
  local w, lim = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1])
  local debt = debts[i]
  if allowed then
    debt = charged[i]
    write_debt(KEYS[i], now, debt)
  end
  local remaining = math.floor((w - debt + eps) / (w / lim))
  out[#out + 1] = math.min(lim, math.max(0, remaining))
  out[#out + 1] = string.format('%.17g', math.max(0, debt))
end
return out
"""
)

# KEYS[1]: the bucket. ARGV: window (µs), limit, delta (units, may be negative).
_ADJUST = (
    _READ_DEBT
    + """
local w, lim, delta = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
write_debt(KEYS[1], now, read_debt(KEYS[1], now) + delta * (w / lim))
return 1
"""
)

# KEYS[1]: the holders' sorted set. ARGV: limit, ttl (µs), holder id. Returns 1 if entered.
_ENTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((tonumber(last[2]) - now) / 1000)))
return 1
"""


class _Script:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisRateLimiter:
    def __init__(
        self,
        url: str,
        namespace: str = "gg",
        *,
        timeout_s: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        # A bounded pool: a burst of requests queues for a connection (up to timeout_s)
        # instead of opening one socket each. One retry covers a pooled connection the server
        # closed; more would hold a request long past its usefulness when Redis is down.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),
        )
        self._client = Redis(connection_pool=pool)
        self._prefix = f"{{{namespace}}}:"
        self._acquire = _Script(_ACQUIRE)
        self._adjust = _Script(_ADJUST)
        self._enter = _Script(_ENTER)
        # Holder ids this limiter put in each concurrency set, oldest first, with the local
        # monotonic time they expire: leave() takes back one of ours, never another's.
        self._held: dict[str, deque[tuple[str, float]]] = {}
        self._held_sweep_at = 1024

    def _unavailable(self, exc: BaseException) -> LimiterUnavailable:
        return LimiterUnavailable(f"rate limiter backend unavailable: {type(exc).__name__}: {exc}")

    async def _run(self, script: _Script, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        try:
            try:
                return await self._client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                sha = await self._client.script_load(script.source)
                return await self._client.evalsha(sha, len(keys), *keys, *args)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def acquire(self, limits: Sequence[RateLimit], cost: Sequence[int]) -> Decision:
        check_request(limits, cost)
        if not limits:
            return Decision(True, 0.0, {}, {})
        keys = [f"{self._prefix}rl:{limit.key}" for limit in limits]
        args: list[str | int] = []
        for limit, c in zip(limits, cost, strict=True):
            args += [repr(limit.window_s * _US), limit.limit, c]
        args.append(repr(EPSILON_S * _US))
        reply = await self._run(self._acquire, keys, args)
        decision = Decision(bool(reply[0]), float(_text(reply[1])) / _US, {}, {})
        for i, limit in enumerate(limits):
            decision.remaining[limit.key] = int(reply[2 + 2 * i])
            decision.reset_s[limit.key] = float(_text(reply[3 + 2 * i])) / _US
        return decision

    async def adjust(self, limit: RateLimit, delta: int) -> None:
        key = f"{self._prefix}rl:{limit.key}"
        await self._run(self._adjust, [key], [repr(limit.window_s * _US), limit.limit, delta])

    def _live_holders(self, key: str) -> deque[tuple[str, float]]:
        held = self._held.get(key, deque())
        now = time.monotonic()
        while held and held[0][1] <= now:
            held.popleft()  # expired on the server too: nothing to give back
        return held

    async def enter(self, key: str, limit: int, ttl_s: float = 300) -> bool:
        holder = uuid.uuid4().hex
        ttl_us = max(1, math.ceil(ttl_s * _US))
        entered = await self._run(self._enter, [f"{self._prefix}cc:{key}"], [limit, ttl_us, holder])
        if entered:
            self._hold(key, holder, ttl_s)
        return bool(entered)

    def _hold(self, key: str, holder: str, ttl_s: float) -> None:
        held = self._live_holders(key)
        held.append((holder, time.monotonic() + ttl_s))
        self._held[key] = held
        if len(self._held) > self._held_sweep_at:
            self._sweep_held()

    def _sweep_held(self) -> None:
        # Holders that never left (a bug elsewhere) must not grow this map without bound.
        self._held = {k: h for k in list(self._held) if (h := self._live_holders(k))}
        self._held_sweep_at = max(1024, 2 * len(self._held))

    def _pop_holder(self, key: str) -> str | None:
        held = self._live_holders(key)
        if not held:
            self._held.pop(key, None)
            return None
        holder, _ = held.popleft()
        if not held:
            del self._held[key]
        return holder

    async def leave(self, key: str) -> None:
        holder = self._pop_holder(key)
        if holder is None:
            return
        try:
            await self._client.zrem(f"{self._prefix}cc:{key}", holder)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def add_spend(self, keys: Sequence[str], amount_usd: float, ttl_s: float) -> None:
        if not keys:
            return
        ttl_ms = max(1, math.ceil(ttl_s * 1000))
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                for key in keys:
                    name = f"{self._prefix}sp:{key}"
                    pipe.incrbyfloat(name, amount_usd)
                    pipe.pexpire(name, ttl_ms)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def prepare(
        self, spend_keys: Sequence[str], slots: Sequence[tuple[str, int]], ttl_s: float = 300
    ) -> tuple[list[float], list[bool]]:
        holders = [uuid.uuid4().hex for _ in slots]
        ttl_us = max(1, math.ceil(ttl_s * _US))
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                if spend_keys:
                    pipe.mget([f"{self._prefix}sp:{key}" for key in spend_keys])
                for (key, limit), holder in zip(slots, holders, strict=True):
                    pipe.evalsha(
                        self._enter.sha, 1, f"{self._prefix}cc:{key}", limit, ttl_us, holder
                    )
                results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        spent: list[float] = []
        if spend_keys:
            values = results.pop(0)
            if isinstance(values, Exception):
                raise self._unavailable(values)
            spent = [float(_text(v)) if v is not None else 0.0 for v in values]
        entered: list[bool] = []
        for (key, limit), holder, result in zip(slots, holders, results, strict=True):
            if isinstance(result, NoScriptError):
                entered.append(await self.enter(key, limit, ttl_s))  # reloads the script
                continue
            if isinstance(result, Exception):
                raise self._unavailable(result)
            if result:
                self._hold(key, holder, ttl_s)
            entered.append(bool(result))
        return spent, entered

    async def settle_all(
        self,
        adjusts: Sequence[tuple[RateLimit, int]],
        spend_keys: Sequence[str],
        amount_usd: float,
        ttl_s: float,
        leave_keys: Sequence[str],
    ) -> None:
        """Every after-the-fact update of one request in a single round trip (a pipeline:
        each command is atomic on its own, and none depends on another's result)."""
        holders = [(key, h) for key in leave_keys if (h := self._pop_holder(key)) is not None]
        ttl_ms = max(1, math.ceil(ttl_s * 1000))
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for limit, delta in adjusts:
                    pipe.evalsha(
                        self._adjust.sha,
                        1,
                        f"{self._prefix}rl:{limit.key}",
                        repr(limit.window_s * _US),
                        limit.limit,
                        delta,
                    )
                if amount_usd:
                    for key in spend_keys:
                        pipe.incrbyfloat(f"{self._prefix}sp:{key}", amount_usd)
                        pipe.pexpire(f"{self._prefix}sp:{key}", ttl_ms)
                for key, holder in holders:
                    pipe.zrem(f"{self._prefix}cc:{key}", holder)
                results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        if any(isinstance(r, NoScriptError) for r in results[: len(adjusts)]):
            # The script cache was flushed: redo the adjustments the slow way (they reload it).
            for (limit, delta), result in zip(adjusts, results, strict=False):
                if isinstance(result, NoScriptError):
                    await self.adjust(limit, delta)
        errors = [
            r for r in results if isinstance(r, Exception) and not isinstance(r, NoScriptError)
        ]
        if errors:
            raise self._unavailable(errors[0])

    async def get_spend(self, keys: Sequence[str]) -> list[float]:
        if not keys:
            return []
        try:
            values = await self._client.mget([f"{self._prefix}sp:{key}" for key in keys])
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        return [float(_text(v)) if v is not None else 0.0 for v in values]

    async def aclose(self) -> None:
        self._held.clear()
        await self._client.aclose(close_connection_pool=True)
