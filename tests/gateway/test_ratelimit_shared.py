"""Two OS processes sharing one Redis enforce one limit, as replicas of the gateway would.

Each process runs this module as a worker: it connects, says it is ready, waits for a common
start time, then hammers the same limit from several tasks as fast as it can for a fixed
time. GCRA from idle admits at most ``N + t / T`` units over a span ``t`` (``N`` per window
``W``, ``T = W / N``): the burst plus one unit per interval. With both processes saturating
the limit the whole time, the total admitted must equal that within 2%, and never exceed it.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
import uuid
from pathlib import Path

from groundgate.gateway.ratelimit import RateLimit
from groundgate.gateway.ratelimit_redis import RedisRateLimiter
from tests.gateway.redis_server import RedisServer

LIMIT, WINDOW_S = 200, 10.0  # T = 50 ms
DURATION_S = 1.5
TASKS_PER_PROCESS = 8
ROOT = Path(__file__).resolve().parents[2]


async def _hammer(url: str, namespace: str) -> dict[str, float]:
    limiter = RedisRateLimiter(url, namespace=namespace)
    limit = RateLimit("key:shared:rpm", LIMIT, WINDOW_S)
    try:
        # Warm the pool and load the scripts before the clock starts, on another key.
        await asyncio.gather(
            *(limiter.acquire([RateLimit("warmup", 10**6)], [1]) for _ in range(TASKS_PER_PROCESS))
        )
        print("ready", flush=True)
        start_at = float(await asyncio.to_thread(sys.stdin.readline))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        stop_at = start_at + DURATION_S
        stats = {"admitted": 0.0, "denied": 0.0, "first_sent": math.inf, "last_done": 0.0}

        async def worker() -> None:
            while (sent := time.time()) < stop_at:
                stats["first_sent"] = min(stats["first_sent"], sent)
                decision = await limiter.acquire([limit], [1])
                stats["admitted" if decision.allowed else "denied"] += 1
                stats["last_done"] = max(stats["last_done"], time.time())

        await asyncio.gather(*(worker() for _ in range(TASKS_PER_PROCESS)))
        return stats
    finally:
        await limiter.aclose()


def _start_worker(url: str, namespace: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.gateway.test_ratelimit_shared", url, namespace],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_two_processes_share_one_limit(redis_server: RedisServer) -> None:
    namespace = f"shared-{uuid.uuid4().hex[:8]}"
    workers = [_start_worker(redis_server.url, namespace) for _ in range(2)]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        start_at = time.time() + 0.2
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(f"{start_at!r}\n")
            worker.stdin.flush()
        results = []
        for worker in workers:
            out, _ = worker.communicate(timeout=30)
            assert worker.returncode == 0, out
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    admitted = sum(int(r["admitted"]) for r in results)
    began = min(r["first_sent"] for r in results)
    ended = max(r["last_done"] for r in results)
    elapsed = ended - began
    interval = WINDOW_S / LIMIT
    expected = LIMIT + elapsed / interval
    detail = f"{results}, elapsed {elapsed:.3f}s, expected {expected:.1f}"
    # Both processes really competed for the same limit the whole time.
    for result in results:
        assert result["admitted"] > 0 and result["denied"] > 100, detail
        assert result["last_done"] - result["first_sent"] > DURATION_S * 0.9, detail
    assert admitted <= LIMIT + math.floor(elapsed / interval) + 1, detail  # never over
    assert abs(admitted - expected) <= 0.02 * expected, detail


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_hammer(sys.argv[1], sys.argv[2]))), flush=True)
