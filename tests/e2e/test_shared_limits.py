"""Two gateway processes sharing one Redis enforce one rate limit between them."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import aiohttp
import httpx

from groundgate.testing.fake_upstream import FakeUpstream
from tests.gateway.redis_server import RedisServer
from tests.servers import start_gateway

CONFIG = """
[auth]
mode = "required"
[limits]
backend = "redis"
[store]
path = "{root}/shared.db"
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.gpt]
deployments = ["up:gpt"]
"""
LIMIT = 120  # requests per minute: a burst of 120, then 2 per second


async def hammer(urls: list[str], key: str, seconds: float) -> tuple[int, int, int, float]:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "x"}]}
    headers = {"Authorization": f"Bearer {key}"}
    counts = {200: 0, 429: 0}
    other = 0
    async with aiohttp.ClientSession(headers=headers) as session:
        started = time.monotonic()

        async def worker(url: str) -> None:
            nonlocal other
            while time.monotonic() - started < seconds:
                async with session.post(url + "/v1/chat/completions", json=body) as resp:
                    await resp.read()
                    if resp.status in counts:
                        counts[resp.status] += 1
                    else:
                        other += 1

        await asyncio.gather(*(worker(urls[i % 2]) for i in range(16)))
        elapsed = time.monotonic() - started
    return counts[200], counts[429], other, elapsed


def test_two_replicas_share_one_limit(
    fake_upstream_server: FakeUpstream, redis_server: RedisServer, tmp_path: Path
) -> None:
    admin_key = secrets.token_urlsafe(32)
    env = {"GROUNDGATE_ADMIN_KEY": admin_key, "GROUNDGATE_REDIS_URL": redis_server.url}
    config = CONFIG.format(root=tmp_path, fake=fake_upstream_server.url)
    replicas = [start_gateway(config, tmp_path / name, env=env) for name in ("a", "b")]
    try:
        created = httpx.post(
            f"{replicas[0].url}/v1/admin/keys",
            headers={"Authorization": f"Bearer {admin_key}"},
            json={
                "name": "shared",
                "tenant": "t",
                "scopes": ["chat"],
                "requests_per_minute": LIMIT,
            },
        )
        assert created.status_code == 201, created.text
        allowed, denied, other, elapsed = asyncio.run(
            hammer([r.url for r in replicas], created.json()["key"], 3.0)
        )
        assert other == 0 and denied > 0
        # GCRA: the full burst, then LIMIT/60 per second over the (slightly longer) window.
        expected = LIMIT + LIMIT / 60 * elapsed
        assert abs(allowed - expected) <= 0.02 * expected + 1, (allowed, expected)
    finally:
        for replica in replicas:
            replica.stop()
