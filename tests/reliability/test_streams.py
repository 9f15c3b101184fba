"""Streams through the fallback chain and the generate stage, with real providers against the
fake upstream: a stream holds its deployment (bulkhead slot, in-flight count, breaker verdict)
until it ends, the request deadline bounds all of it, it may fall back until its first chunk
with content, and only an answer after a failed attempt is labelled a fallback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from groundgate.config import load_settings
from groundgate.errors import ProviderError, UpstreamTimeout
from groundgate.observe.cost import PriceTable
from groundgate.observe.trace import Trace
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.stages.generate import Generate
from groundgate.providers.base import ChatCall, Chunk, ManagedProvider
from groundgate.providers.catalog import Catalog
from groundgate.providers.registry import build_provider
from groundgate.reliability.fallback import FallbackChain
from groundgate.reliability.resilience import Resilience
from groundgate.testing.fake_upstream import Behavior, FakeUpstream

CONFIG = """
[reliability]
max_attempts = 2
base_delay_ms = 1
max_delay_ms = 5
min_attempt_ms = 10
breaker_failures = 3
breaker_cooldown_s = 60
max_concurrent = 1
max_queue = 0
[providers.up]
type = "openai"
base_url = "{fake}/v1"
timeout_s = 5
[providers.claude]
type = "anthropic"
base_url = "{fake}"
timeout_s = 5
[models.single]
deployments = ["up:b"]
[models.claude]
deployments = ["claude:c"]
[models.balanced]
deployments = ["up:first", "up:second"]
routing = "weighted"
weights = [0, 1]
"""

SLOW = Behavior(content="one two three four five six", stream_chunks=6, stream_delay_ms=150)


@dataclass
class Rig:
    chain: FallbackChain
    catalog: Catalog
    resilience: Resilience

    async def generate(
        self, model: str, *, stream: bool = True, seconds: float = 10.0
    ) -> RequestContext:
        call = ChatCall(messages=[{"role": "user", "content": "hi"}])
        trace = Trace(id="t", tenant="default", endpoint="chat.completions", model=model)
        ctx = RequestContext(trace, model, call, time.monotonic() + seconds, stream=stream)
        ctx.entry = self.catalog.get(model, "chat")
        await Generate(self.chain, PriceTable({})).enter(ctx)
        return ctx

    def held(self, deployment: str) -> tuple[int, int]:
        """(bulkhead slots taken, in-flight count) of a deployment."""
        return (
            self.resilience.bulkhead(deployment).in_flight,
            self.resilience.stats(deployment).in_flight,
        )


@pytest.fixture
async def rig(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Rig]:
    path = tmp_path_factory.mktemp("streams") / "g.toml"
    path.write_text(CONFIG.format(fake=fake_upstream.url))
    settings = load_settings(path)
    providers: dict[str, ManagedProvider] = {
        name: build_provider(name, cfg, settings) for name, cfg in settings.providers.items()
    }
    for provider in providers.values():
        await provider.start()
    catalog = Catalog(settings, providers)
    resilience = Resilience(settings.reliability)
    yield Rig(FallbackChain(catalog, settings, resilience), catalog, resilience)
    for provider in providers.values():
        await provider.aclose()


async def read_all(ctx: RequestContext) -> list[Chunk]:
    assert ctx.answer is not None
    return [chunk async for chunk in ctx.answer]


def text_of(chunks: list[Chunk]) -> str:
    return "".join(c.choices[0]["delta"].get("content") or "" for c in chunks if c.choices)


async def close(ctx: RequestContext) -> None:
    aclose = getattr(ctx.answer, "aclose", None)
    assert aclose is not None
    await aclose()


async def end_by_reading(ctx: RequestContext) -> None:
    await read_all(ctx)


async def end_by_aclose(ctx: RequestContext) -> None:
    await close(ctx)


async def end_by_cancelling_the_reader(ctx: RequestContext) -> None:
    reader = asyncio.create_task(read_all(ctx))
    await asyncio.sleep(0.2)  # mid-stream: the upstream sends a piece every 150 ms
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader


@pytest.mark.parametrize(
    "end", [end_by_reading, end_by_aclose, end_by_cancelling_the_reader], ids=lambda f: f.__name__
)
async def test_stream_holds_its_slot_and_in_flight_count_until_it_ends(
    rig: Rig, fake_upstream: FakeUpstream, end: Callable[[RequestContext], object]
) -> None:
    fake_upstream.set_default(SLOW)
    ctx = await rig.generate("single")
    assert rig.held("up:b") == (1, 1)  # the first chunk is in, the stream is not over
    # max_concurrent = 1, max_queue = 0: the deployment is busy, a second stream is shed.
    with pytest.raises(ProviderError, match="overloaded"):
        await rig.generate("single")
    result = end(ctx)
    assert asyncio.iscoroutine(result)
    await result
    assert rig.held("up:b") == (0, 0)
    await close(await rig.generate("single"))  # free again
    assert rig.held("up:b") == (0, 0)
    # None of these endings was the deployment's fault.
    assert rig.resilience.breaker("up:b").snapshot()["consecutive_failures"] == 0


async def test_mid_stream_failures_open_the_breaker(rig: Rig, fake_upstream: FakeUpstream) -> None:
    # Every stream sends one piece of the answer, then the connection drops.
    fake_upstream.set_default(Behavior(content="a b c d", stream_chunks=4, stream_fail_after=1))
    for _ in range(3):  # breaker_failures = 3
        ctx = await rig.generate("single")
        with pytest.raises(ProviderError):
            await read_all(ctx)
    assert rig.resilience.breaker("up:b").snapshot()["state"] == "open"
    assert ctx.trace.attempts[-1].status == "error"  # the trace says the try failed
    assert rig.held("up:b") == (0, 0)


async def test_breaker_counts_a_stream_a_success_only_when_it_completes(
    rig: Rig, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(Behavior(content="a b c d", stream_chunks=4, stream_fail_after=1))
    for _ in range(2):
        with pytest.raises(ProviderError):
            await read_all(await rig.generate("single"))
    fake_upstream.set_default(SLOW)
    ctx = await rig.generate("single")
    breaker = rig.resilience.breaker("up:b")
    assert breaker.snapshot()["consecutive_failures"] == 2  # started, not yet a success
    await read_all(ctx)
    assert breaker.snapshot()["consecutive_failures"] == 0


async def test_the_request_deadline_bounds_the_whole_stream(
    rig: Rig, fake_upstream: FakeUpstream
) -> None:
    # 8 pieces 300 ms apart: 2.1 s of streaming, each wait well within the provider's timeout.
    fake_upstream.set_default(
        Behavior(content="a b c d e f g h", stream_chunks=8, stream_delay_ms=300)
    )
    started = time.monotonic()
    ctx = await rig.generate("single", seconds=0.8)
    received: list[Chunk] = []
    assert ctx.answer is not None
    with pytest.raises(UpstreamTimeout) as info:
        async for chunk in ctx.answer:
            received.append(chunk)
    assert type(info.value).__name__ == "DeadlineExceeded"
    assert "deadline" in info.value.message
    assert time.monotonic() - started < 1.6  # cut at 0.8 s, not run to its end at 2.1 s
    assert 0 < len(text_of(received)) < len("a b c d e f g h")
    await fake_upstream.wait_for_async(lambda s: s["cancelled"] >= 1, timeout=5)  # closed
    assert rig.held("up:b") == (0, 0)
    assert rig.resilience.breaker("up:b").snapshot()["consecutive_failures"] == 0


@pytest.mark.parametrize("model", ["single", "claude"])
async def test_stream_falls_back_until_the_first_chunk_with_content(
    rig: Rig, fake_upstream: FakeUpstream, model: str
) -> None:
    # The first try sends its leading event (a role delta; Anthropic's message_start) and
    # breaks before any text: nothing of the answer was sent, so it is tried again.
    fake_upstream.script(Behavior(stream_fail_after=0))
    ctx = await rig.generate(model)
    chunks = await read_all(ctx)
    assert text_of(chunks) == "echo: hi"
    roles = [c.choices[0]["delta"].get("role") for c in chunks if c.choices]
    assert roles.count("assistant") == 1 and roles[0] == "assistant"  # replayed once, first
    assert [(a.status, a.try_number) for a in ctx.trace.attempts] == [("error", 1), ("ok", 2)]
    assert len(fake_upstream.requests()) == 2


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_balanced_first_try_is_not_a_fallback(
    rig: Rig, fake_upstream: FakeUpstream, stream: bool
) -> None:
    # weights [0, 1]: the balancer always tries the second deployment first.
    ctx = await rig.generate("balanced", stream=stream)
    if stream:
        await read_all(ctx)
    assert (ctx.deployment, ctx.source) == ("up:second", "model")
    # After a failed attempt, it is one: both tries of "second" fail, "first" answers.
    fake_upstream.script(Behavior(status=503), Behavior(status=503))
    ctx = await rig.generate("balanced", stream=stream)
    if stream:
        await read_all(ctx)
    assert (ctx.deployment, ctx.source) == ("up:first", "fallback")


async def test_a_retry_on_the_same_deployment_is_not_a_fallback(
    rig: Rig, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Behavior(status=503))
    ctx = await rig.generate("single", stream=False)
    assert [a.status for a in ctx.trace.attempts] == ["error", "ok"]
    assert (ctx.deployment, ctx.source) == ("up:b", "model")
