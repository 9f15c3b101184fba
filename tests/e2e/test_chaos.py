"""Chaos: a flaky or dead primary, a healthy secondary, and everything down, through a real
gateway process. Bounded in time; the figures under sustained load are in bench/chaos.py."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator

import aiohttp
import httpx
import psutil
import pytest

from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.servers import GatewayProcess, free_port, start_gateway

CONFIG = """
[server]
request_timeout_s = 10
[reliability]
max_attempts = 2
base_delay_ms = 5
max_delay_ms = 20
breaker_failures = 3
breaker_failure_rate = 0.6
breaker_min_calls = 50
breaker_cooldown_s = 1
[providers.primary]
type = "openai"
base_url = "{primary}/v1"
timeout_s = 1
[providers.secondary]
type = "openai"
base_url = "{secondary}/v1"
[providers.dead1]
type = "openai"
base_url = "http://127.0.0.1:{dead1}/v1"
[providers.dead2]
type = "openai"
base_url = "http://127.0.0.1:{dead2}/v1"
[models.chat]
deployments = ["primary:gpt", "secondary:gpt"]
[models.down]
deployments = ["dead1:gpt", "dead2:gpt"]
"""
BODY = {"model": "chat", "messages": [{"role": "user", "content": "ping"}]}


@pytest.fixture(scope="module")
def primary() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chaos_gateway(
    primary: FakeUpstream,
    fake_upstream_server: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    config = CONFIG.format(
        primary=primary.url,
        secondary=fake_upstream_server.url,
        dead1=free_port(),
        dead2=free_port(),
    )
    gateway = start_gateway(config, tmp_path_factory.mktemp("chaos"))
    yield gateway
    gateway.stop()


def breaker(gateway: GatewayProcess, deployment: str) -> str:
    snapshot = httpx.get(f"{gateway.url}/readyz").json()["deployments"].get(deployment) or {}
    return str((snapshot.get("breaker") or {}).get("state", "closed"))


def wait_until_closed(gateway: GatewayProcess, primary: FakeUpstream) -> None:
    """Start from a closed breaker (an earlier test may have left it open)."""
    deadline = time.monotonic() + 5
    while breaker(gateway, "primary:gpt") != "closed" and time.monotonic() < deadline:
        time.sleep(0.2)
        httpx.post(f"{gateway.url}/v1/chat/completions", json=BODY, timeout=10)
    assert breaker(gateway, "primary:gpt") == "closed"


async def fire(
    url: str,
    body: dict[str, object],
    total: int,
    concurrency: int,
) -> list[tuple[int, str, float]]:
    """(status, answering deployment, seconds) per request."""
    results: list[tuple[int, str, float]] = []
    queue = iter(range(total))
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                async with session.post(url + "/v1/chat/completions", json=body) as resp:
                    await resp.read()
                    results.append(
                        (
                            resp.status,
                            resp.headers.get("x-groundgate-model", ""),
                            time.perf_counter() - started,
                        )
                    )

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def test_flaky_primary_every_request_succeeds(
    chaos_gateway: GatewayProcess, primary: FakeUpstream, fake_upstream: FakeUpstream
) -> None:
    rng = random.Random(7)
    primary.reset()
    primary.script(
        *[Behavior(status=503) if rng.random() < 0.3 else Behavior() for _ in range(600)]
    )
    results = asyncio.run(fire(chaos_gateway.url, BODY, 300, 20))
    assert [s for s, _, _ in results] == [200] * 300
    answered = {dep for _, dep, _ in results}
    assert answered <= {"primary:gpt", "secondary:gpt"} and "primary:gpt" in answered


def test_hanging_primary_opens_breaker_then_recovers(
    chaos_gateway: GatewayProcess, primary: FakeUpstream, fake_upstream: FakeUpstream
) -> None:
    primary.reset()
    wait_until_closed(chaos_gateway, primary)
    primary.set_default(Behavior(hang=True))
    with httpx.Client(base_url=chaos_gateway.url, timeout=30) as client:
        # Each request pays the primary's 1 s timeout once (a timeout moves on to the next
        # deployment rather than retrying) until the breaker opens after 3 failures.
        for _ in range(3):
            resp = client.post("/v1/chat/completions", json=BODY)
            assert resp.status_code == 200
            assert resp.headers["x-groundgate-model"] == "secondary:gpt"
            assert resp.headers["x-groundgate-source"] == "fallback"
        assert breaker(chaos_gateway, "primary:gpt") == "open"
        calls = primary.stats()["received"]
        # Now the dead primary is skipped at once: nowhere near its timeout.
        for _ in range(20):
            started = time.perf_counter()
            resp = client.post("/v1/chat/completions", json=BODY)
            assert resp.status_code == 200
            assert time.perf_counter() - started < 0.5
        assert primary.stats()["received"] == calls
        trace_id = resp.headers["x-groundgate-trace-id"]
        trace = client.get(f"/v1/traces/{trace_id}").json()
        assert trace["attempts"][0] == {
            **trace["attempts"][0],
            "deployment": "primary:gpt",
            "status": "skipped",
            "error": "circuit open",
        }
        metrics = client.get("/metrics").text
        assert 'groundgate_breaker_state{deployment="primary:gpt"} 2.0' in metrics

        # The primary recovers: after the cool-down a probe closes the breaker.
        primary.set_default(Behavior())
        time.sleep(1.1)
        answered = [
            client.post("/v1/chat/completions", json=BODY).headers["x-groundgate-model"]
            for _ in range(5)
        ]
        assert answered == ["primary:gpt"] * 5
        assert breaker(chaos_gateway, "primary:gpt") == "closed"


def test_everything_down_fails_fast_and_leaks_nothing(chaos_gateway: GatewayProcess) -> None:
    proc = psutil.Process(chaos_gateway.process.pid)
    body = {"model": "down", "messages": [{"role": "user", "content": "x"}]}
    asyncio.run(fire(chaos_gateway.url, body, 200, 20))  # warm up: breakers open
    fds, rss = proc.num_fds(), proc.memory_info().rss
    threads = proc.num_threads()
    started = time.perf_counter()
    results = asyncio.run(fire(chaos_gateway.url, body, 10_000, 50))
    elapsed = time.perf_counter() - started
    assert len(results) == 10_000
    assert {s for s, _, _ in results} == {503}
    assert max(t for _, _, t in results) < 10  # within the request deadline, none hung
    assert elapsed < 120
    # Nothing accumulates: descriptors, threads, memory. Client sockets closed a moment ago
    # may still be on their way out on the server side; a leak would not go away.
    settle_until = time.monotonic() + 10
    while proc.num_fds() > fds + 10 and time.monotonic() < settle_until:
        time.sleep(0.2)
    assert proc.num_fds() <= fds + 10
    assert proc.num_threads() <= threads + 2
    assert proc.memory_info().rss - rss < 32 * 2**20
    detail = httpx.post(f"{chaos_gateway.url}/v1/chat/completions", json=body).json()
    assert "dead1:gpt" in detail["error"]["message"] or "circuit open" in detail["error"]["message"]


def test_pid_is_alive_after_chaos(chaos_gateway: GatewayProcess) -> None:
    assert chaos_gateway.process.poll() is None
    assert httpx.get(f"{chaos_gateway.url}/healthz").status_code == 200
