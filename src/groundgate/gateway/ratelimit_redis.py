"""The Redis limiter: every replica enforces the same limits.

Two Lua scripts do everything: ``admit`` (budgets, concurrency slots and rates of one arriving
request, all or nothing) and ``settle`` (token reconciliation, spend and slot release of a
finished request), so a request costs two round trips. Each is atomic on the server and
reads the clock with Redis ``TIME`` rather than the client's, so replicas with skewed clocks
agree (scripts are replicated by effect, so ``TIME`` is allowed before writes). Scripts go
by EVALSHA with their SHA1 computed here; on NOSCRIPT (a fresh or restarted server, SCRIPT
FLUSH) the script is sent once with SCRIPT LOAD and the call repeated.

Keys are ``{namespace}:rl:<key>`` (buckets), ``{namespace}:cc:<key>`` (concurrency) and
``{namespace}:sp:<key>`` (spend). The braces are a Redis Cluster hash tag: every key of one
namespace lives in one slot, so the multi-key script stays valid on a cluster.

A bucket is a string ``"<written at, µs> <debt, µs>"`` expiring when the debt has drained, so
an idle bucket costs no memory. Keeping the debt relative to its write time (rather than an
absolute arrival time near 1.7e15 µs) keeps the arithmetic exact to well under a microsecond.
A concurrency key is a sorted set of holder ids scored by expiry time; expired holders are
removed on each admission, and the set itself expires with its last holder.

Any Redis failure (connection refused, timeout, a read-only replica after failover, OOM)
raises :class:`LimiterUnavailable`; the caller decides whether to fail open or closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from groundgate.gateway.ratelimit import (
    EPSILON_S,
    REFUSED_BY_BUDGET,
    REFUSED_BY_CONCURRENCY,
    REFUSED_BY_RATE,
    Admittance,
    Decision,
    LimiterUnavailable,
    RateLimit,
    check_request,
)
from groundgate.redis_client import redis_client
from groundgate.shielded import shielded

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

# Shared by both scripts below: reading/writing a bucket's debt, the GCRA arithmetic over a run
# of buckets (as ``gcra_acquire`` in Python), and ``slice`` to cut KEYS/ARGV into their runs.
_GCRA = (
    _READ_DEBT
    + """
local function slice(t, from, count)
  local out = {}
  for i = 1, count do out[i] = t[from + i - 1] end
  return out
end
-- keys: the buckets; args: (window µs, limit, cost) per bucket. Appends, per bucket, remaining
-- and reset (µs, as a string: a Lua number in a reply is truncated to an integer) to out.
local function gcra(keys, args, eps, out)
  local debts, charged, wait = {}, {}, 0
  for i = 1, #keys do
    local w, lim, c = tonumber(args[3*i-2]), tonumber(args[3*i-1]), tonumber(args[3*i])
    debts[i] = read_debt(keys[i], now)
    charged[i] = debts[i] + c * (w / lim)
    if c > lim then
      wait = math.max(wait, w)
    elseif charged[i] > w + eps then
      wait = math.max(wait, charged[i] - w)
    end
  end
  for i = 1, #keys do
    local w, lim = tonumber(args[3*i-2]), tonumber(args[3*i-1])
    local debt = debts[i]
    if wait == 0 then
      debt = charged[i]
      write_debt(keys[i], now, debt)
    end
    local remaining = math.floor((w - debt + eps) / (w / lim))
    out[#out + 1] = math.min(lim, math.max(0, remaining))
    out[#out + 1] = string.format('%.17g', math.max(0, debt))
  end
  return wait
end
"""
)

# What an arriving request checks, all or nothing. KEYS: nb spend counters, ns concurrency sets,
# nr buckets. ARGV: nb, ns, nr, eps (µs), slot ttl (µs), holder id, nb ceilings, ns slot limits,
# then (window µs, limit, cost) per bucket. Budgets are checked first, then slots (expired
# holders are dropped), then rates; only when all pass are the buckets charged and the slots
# taken. Returns {status (0 admitted, 1 budget, 2 concurrency, 3 rate), index of the refusing
# budget or slot, wait (µs), nb spend values, then remaining and reset per bucket (when the rates
# were reached)}.
_ADMIT = (
    _GCRA
    + """
local nb, ns, nr = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local eps, ttl, holder = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local out = {0, 0, '0'}
for i = 1, nb do out[3 + i] = redis.call('GET', KEYS[i]) or '0' end
for i = 1, nb do
  if tonumber(out[3 + i]) >= tonumber(ARGV[6 + i]) then
    out[1], out[2] = 1, i - 1
    return out
  end
end
for i = 1, ns do
  local key = KEYS[nb + i]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now))
  if redis.call('ZCARD', key) >= tonumber(ARGV[6 + nb + i]) then
    out[1], out[2] = 2, i - 1
    return out
  end
end
local wait = gcra(slice(KEYS, nb + ns + 1, nr), slice(ARGV, 7 + nb + ns, 3 * nr), eps, out)
out[3] = string.format('%.17g', wait)
if wait > 0 then
  out[1] = 3
  return out
end
for i = 1, ns do
  local key = KEYS[nb + i]
  redis.call('ZADD', key, string.format('%d', now + ttl), holder)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', key, math.max(1, math.ceil((tonumber(last[2]) - now) / 1000)))
end
return out
"""
)

# What a finished request does. KEYS: na buckets, nsp spend counters, nl concurrency sets. ARGV:
# na, nsp, nl, amount (USD), spend ttl (ms), then (window µs, limit, delta) per bucket, then
# the holder id to remove from each set. A charge may push a bucket into debt; a refund stops
# at an idle bucket (write_debt deletes it).
_SETTLE = (
    _READ_DEBT
    + """
local na, nsp, nl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, na do
  local w, lim, delta = tonumber(ARGV[3+3*i]), tonumber(ARGV[4+3*i]), tonumber(ARGV[5+3*i])
  write_debt(KEYS[i], now, read_debt(KEYS[i], now) + delta * (w / lim))
end
if tonumber(ARGV[4]) ~= 0 then
  for i = 1, nsp do
    redis.call('INCRBYFLOAT', KEYS[na + i], ARGV[4])
    redis.call('PEXPIRE', KEYS[na + i], ARGV[5])
  end
end
for i = 1, nl do redis.call('ZREM', KEYS[na + nsp + i], ARGV[5 + 3*na + i]) end
return 1
"""
)

_REFUSALS = (None, REFUSED_BY_BUDGET, REFUSED_BY_CONCURRENCY, REFUSED_BY_RATE)


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
        self._client = redis_client(url, timeout_s=timeout_s, max_connections=max_connections)
        self._prefix = f"{{{namespace}}}:"
        self._admit = _Script(_ADMIT)
        self._settle = _Script(_SETTLE)
        # Holder ids this limiter put in each concurrency set, oldest first, with the local
        # monotonic time they expire: leave() takes back one of ours, never another's.
        self._held: dict[str, deque[tuple[str, float]]] = {}
        self._held_sweep_at = 1024
        # Slot releases of cancelled admissions, kept referenced until they finish.
        self._releases: set[asyncio.Task[None]] = set()

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

    async def admit(
        self,
        budgets: Sequence[tuple[str, float]],
        slots: Sequence[tuple[str, int]],
        limits: Sequence[RateLimit],
        cost: Sequence[int],
        ttl_s: float = 300,
    ) -> Admittance:
        check_request(limits, cost)
        holder = uuid.uuid4().hex  # one id for every slot of this request: the sets differ
        keys = [f"{self._prefix}sp:{key}" for key, _ in budgets]
        keys += [f"{self._prefix}cc:{key}" for key, _ in slots]
        keys += [f"{self._prefix}rl:{limit.key}" for limit in limits]
        args: list[str | int] = [len(budgets), len(slots), len(limits), repr(EPSILON_S * _US)]
        args += [max(1, math.ceil(ttl_s * _US)), holder]
        args += [repr(float(ceiling)) for _, ceiling in budgets]
        args += [limit for _, limit in slots]
        for limit, c in zip(limits, cost, strict=True):
            args += [repr(limit.window_s * _US), limit.limit, c]
        try:
            reply = await self._run(self._admit, keys, args)
        except asyncio.CancelledError:
            # The script may have run: a cancelled request (a client gone) must not sit on
            # its slots until they expire, so give them back in the background.
            if slots:
                self._release_later([(key, holder) for key, _ in slots])
            raise
        refused_by = _REFUSALS[int(reply[0])]
        nb = len(budgets)
        spent = [float(_text(v)) for v in reply[3 : 3 + nb]]
        decision = Decision(refused_by is None, float(_text(reply[2])) / _US, {}, {})
        outlook = reply[3 + nb :]
        for i, limit in enumerate(limits[: len(outlook) // 2]):
            decision.remaining[limit.key] = int(outlook[2 * i])
            decision.reset_s[limit.key] = float(_text(outlook[2 * i + 1])) / _US
        if refused_by is None:
            for key, _ in slots:
                self._hold(key, holder, ttl_s)
        return Admittance(refused_by, int(reply[1]), spent, decision)

    def _release_later(self, holders: list[tuple[str, str]]) -> None:
        async def release() -> None:
            with contextlib.suppress(LimiterUnavailable):
                await self._settle_now([], [], 0.0, 0.0, holders)

        task = asyncio.get_running_loop().create_task(release())
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def acquire(self, limits: Sequence[RateLimit], cost: Sequence[int]) -> Decision:
        if not limits:
            check_request(limits, cost)
            return Decision(True, 0.0, {}, {})
        return (await self.admit([], [], limits, cost)).rates

    async def enter(self, key: str, limit: int, ttl_s: float = 300) -> bool:
        return (await self.admit([], [(key, limit)], [], [], ttl_s)).allowed

    async def _settle_now(
        self,
        adjusts: Sequence[tuple[RateLimit, int]],
        spend_keys: Sequence[str],
        amount_usd: float,
        ttl_s: float,
        holders: Sequence[tuple[str, str]],
    ) -> None:
        keys = [f"{self._prefix}rl:{limit.key}" for limit, _ in adjusts]
        keys += [f"{self._prefix}sp:{key}" for key in spend_keys]
        keys += [f"{self._prefix}cc:{key}" for key, _ in holders]
        args: list[str | int] = [len(adjusts), len(spend_keys), len(holders)]
        args += [repr(float(amount_usd)), max(1, math.ceil(ttl_s * 1000))]
        for limit, delta in adjusts:
            args += [repr(limit.window_s * _US), limit.limit, delta]
        args += [holder for _, holder in holders]
        await self._run(self._settle, keys, args)

    async def adjust(self, limit: RateLimit, delta: int) -> None:
        await self._settle_now([(limit, delta)], [], 0.0, 0.0, [])

    async def add_spend(self, keys: Sequence[str], amount_usd: float, ttl_s: float) -> None:
        if keys and amount_usd:
            await self._settle_now([], keys, amount_usd, ttl_s, [])

    async def leave(self, key: str) -> None:
        holder = self._pop_holder(key)
        if holder is not None:
            await self._settle_now([], [], 0.0, 0.0, [(key, holder)])

    async def settle_all(
        self,
        adjusts: Sequence[tuple[RateLimit, int]],
        spend_keys: Sequence[str],
        amount_usd: float,
        ttl_s: float,
        leave_keys: Sequence[str],
    ) -> None:
        holders = [(key, h) for key in leave_keys if (h := self._pop_holder(key)) is not None]
        if not amount_usd:
            spend_keys = []
        if adjusts or spend_keys or holders:
            # Shielded: a client gone mid-stream cancels every await of the request's cleanup,
            # and a settle cut short would leave its spend unbilled and its slots taken.
            await shielded(self._settle_now(adjusts, spend_keys, amount_usd, ttl_s, holders))

    def _live_holders(self, key: str) -> deque[tuple[str, float]]:
        held = self._held.get(key, deque())
        now = time.monotonic()
        while held and held[0][1] <= now:
            held.popleft()  # expired on the server too: nothing to give back
        return held

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

    async def get_spend(self, keys: Sequence[str]) -> list[float]:
        if not keys:
            return []
        try:
            values = await self._client.mget([f"{self._prefix}sp:{key}" for key in keys])
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        return [float(_text(v)) if v is not None else 0.0 for v in values]

    async def aclose(self) -> None:
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)
        self._held.clear()
        await self._client.aclose(close_connection_pool=True)
