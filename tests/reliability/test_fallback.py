"""Fallback chains over real providers: the fake upstream and a port nobody listens on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from groundgate.config import Settings, load_settings
from groundgate.errors import (
    ContextWindowExceeded,
    ProviderError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from groundgate.observe.trace import Trace
from groundgate.providers.base import ChatCall, ManagedProvider
from groundgate.providers.catalog import Catalog
from groundgate.providers.registry import build_provider
from groundgate.reliability.fallback import DeadlineExceeded, FallbackChain
from groundgate.reliability.resilience import Resilience
from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.servers import free_port

CALL = ChatCall(messages=[{"role": "user", "content": "hi"}])

CONFIG = """
[reliability]
max_attempts = 2
base_delay_ms = 1
max_delay_ms = 5
max_retry_after_s = 1
min_attempt_ms = 10
breaker_failures = 3
breaker_cooldown_s = 0.3
[providers.up]
type = "openai"
base_url = "{fake}"
timeout_s = 2
[providers.alt]
type = "openai"
base_url = "{fake}"
timeout_s = 2
[providers.dead]
type = "openai"
base_url = "http://127.0.0.1:{dead}/v1"
[models.chain]
deployments = ["dead:a", "up:b", "up:c"]
[models.single]
deployments = ["up:b"]
[models.primary]
deployments = ["up:small"]
fallbacks = ["secondary"]
context_window_fallbacks = ["long"]
[models.secondary]
deployments = ["alt:mid"]
[models.long]
deployments = ["alt:long-context"]
"""


@dataclass
class Rig:
    chain: FallbackChain
    catalog: Catalog
    resilience: Resilience
    settings: Settings

    async def complete(self, model: str, seconds: float = 5.0) -> tuple[str, Trace]:
        trace = Trace(id="t", tenant="default", endpoint="chat.completions", model=model)
        served = await self.chain.complete(
            self.catalog.get(model, "chat"), CALL, time.monotonic() + seconds, trace
        )
        return served.deployment.id, trace


@pytest.fixture
async def rig(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Rig]:
    path = tmp_path_factory.mktemp("fallback") / "g.toml"
    path.write_text(CONFIG.format(fake=fake_upstream.openai_base_url, dead=free_port()))
    settings = load_settings(path)
    providers: dict[str, ManagedProvider] = {
        name: build_provider(name, cfg, settings) for name, cfg in settings.providers.items()
    }
    for prov in providers.values():
        await prov.start()
    catalog = Catalog(settings, providers)
    resilience = Resilience(settings.reliability)
    yield Rig(FallbackChain(catalog, settings, resilience), catalog, resilience, settings)
    for prov in providers.values():
        await prov.aclose()


def tried(trace: Trace) -> list[tuple[str, str, int]]:
    return [(a.deployment, a.status, a.try_number) for a in trace.attempts]


async def test_dead_deployment_is_retried_then_skipped(rig: Rig) -> None:
    dep, trace = await rig.complete("chain")
    assert dep == "up:b"
    assert tried(trace) == [("dead:a", "error", 1), ("dead:a", "error", 2), ("up:b", "ok", 1)]


async def test_transient_failure_is_retried_on_the_same_deployment(
    rig: Rig, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Behavior(status=502))
    dep, trace = await rig.complete("single")
    assert dep == "up:b"
    assert tried(trace) == [("up:b", "error", 1), ("up:b", "ok", 2)]
    assert trace.attempts[0].upstream_status == 502


async def test_rejected_request_is_not_retried_or_tried_elsewhere(
    rig: Rig, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(Behavior(status=400, error_message="bad tool schema"))
    with pytest.raises(UpstreamRejected) as info:
        await rig.complete("chain")
    assert "bad tool schema" in info.value.message
    assert len(fake_upstream.requests()) == 1


async def test_all_failed_is_503_listing_every_deployment(
    rig: Rig, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(Behavior(status=500))
    with pytest.raises(UpstreamUnavailable) as info:
        await rig.complete("chain")
    message = info.value.message
    assert message.startswith("all deployments of model 'chain' failed")
    for dep in ("dead:a", "up:b", "up:c"):
        assert dep in message
    assert info.value.status_code == 503


async def test_timeouts_everywhere_is_504(rig: Rig, fake_upstream: FakeUpstream) -> None:
    fake_upstream.set_default(Behavior(hang=True))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await rig.complete("single", seconds=0.5)
    assert time.monotonic() - started < 1.5


async def test_expired_deadline_calls_nothing(rig: Rig, fake_upstream: FakeUpstream) -> None:
    with pytest.raises(DeadlineExceeded):
        await rig.complete("single", seconds=-1)
    assert fake_upstream.requests() == []


async def test_breaker_opens_then_skips_without_calling(
    rig: Rig, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(Behavior(status=503))
    for _ in range(2):  # 2 requests x 2 tries = 4 failures >= breaker_failures (3)
        with pytest.raises(ProviderError):
            await rig.complete("single")
    assert rig.resilience.breaker("up:b").snapshot()["state"] == "open"
    calls = len(fake_upstream.requests())
    with pytest.raises(UpstreamUnavailable) as info:
        await rig.complete("single")
    assert "circuit open" in info.value.message
    assert len(fake_upstream.requests()) == calls  # skipped at once: no call, no timeout
    assert info.value.retry_after is not None


async def test_half_open_probe_closes_the_breaker(rig: Rig, fake_upstream: FakeUpstream) -> None:
    fake_upstream.set_default(Behavior(status=503))
    for _ in range(2):
        with pytest.raises(ProviderError):
            await rig.complete("single")
    fake_upstream.set_default(Behavior())
    await asyncio.sleep(0.35)  # the cool-down (0.3 s) passes
    dep, trace = await rig.complete("single")
    assert dep == "up:b" and tried(trace) == [("up:b", "ok", 1)]
    assert rig.resilience.breaker("up:b").snapshot()["state"] == "closed"


async def test_model_level_fallback(rig: Rig, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script(Behavior(status=500), Behavior(status=500))
    dep, trace = await rig.complete("primary")
    assert dep == "alt:mid"
    assert [(a.deployment, a.model) for a in trace.attempts][-1] == ("alt:mid", "secondary")


async def test_context_window_fallback(rig: Rig, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script(
        Behavior(status=400, error_message="This model's maximum context length is 8192 tokens")
    )
    dep, trace = await rig.complete("primary")
    assert dep == "alt:long-context"
    assert len(fake_upstream.requests()) == 2  # not retried on the small model
    assert trace.attempts[0].error is not None and "context" in trace.attempts[0].error


async def test_context_window_without_fallback_is_a_400(
    rig: Rig, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Behavior(status=400, error_message="maximum context length exceeded"))
    with pytest.raises(ContextWindowExceeded) as info:
        await rig.complete("single")
    assert info.value.status_code == 400 and info.value.code == "context_length_exceeded"


async def test_retry_after_is_honoured(rig: Rig, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script(Behavior(status=429, retry_after=0.2))
    _, trace = await rig.complete("single")
    assert tried(trace) == [("up:b", "error", 1), ("up:b", "ok", 2)]
    first, second = fake_upstream.requests()
    assert second.received_at - first.received_at >= 0.2


async def test_long_retry_after_moves_on(rig: Rig, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script(Behavior(status=429, retry_after=30))
    started = time.monotonic()
    dep, _ = await rig.complete("primary")
    assert dep == "alt:mid" and time.monotonic() - started < 2


async def test_stream_falls_back_before_first_chunk(rig: Rig, fake_upstream: FakeUpstream) -> None:
    fake_upstream.set_default(Behavior(status=503))
    trace = Trace(id="t", tenant="default", endpoint="chat.completions", model="primary")
    fake_upstream.set_default(Behavior())
    fake_upstream.script(Behavior(status=503), Behavior(status=503))
    opened = await rig.chain.open_stream(
        rig.catalog.get("primary", "chat"), CALL, time.monotonic() + 5, trace
    )
    assert opened.deployment.id == "alt:mid"
    chunks = [opened.result.first] + [c async for c in opened.result]
    text = "".join(c.choices[0]["delta"].get("content") or "" for c in chunks if c.choices)
    assert text == "echo: hi"
