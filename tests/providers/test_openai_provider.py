"""The OpenAI-compatible adapter against the real fake upstream, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from groundgate.config import ProviderConfig
from groundgate.errors import (
    ProviderError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from groundgate.providers.base import ChatCall
from groundgate.providers.openai import OpenAIProvider
from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.servers import free_port

KEY_ENV = "GG_TEST_PROVIDER_KEY"


@pytest.fixture
async def provider(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[OpenAIProvider]:
    monkeypatch.setenv(KEY_ENV, "sk-provider-test-123456")
    config = ProviderConfig(
        type="openai", base_url=fake_upstream.openai_base_url, api_key_env=KEY_ENV, timeout_s=2
    )
    prov = OpenAIProvider("fake", config)
    await prov.start()
    yield prov
    await prov.aclose()


CALL = ChatCall(
    messages=[{"role": "user", "content": "hello world"}],
    params={"temperature": 0.5, "max_tokens": 20},
)


async def test_complete(provider: OpenAIProvider, fake_upstream: FakeUpstream) -> None:
    result = await provider.complete(CALL, "gpt-x", timeout=5)
    assert result.choices[0]["message"]["content"] == "echo: hello world"
    assert result.usage.prompt_tokens == 2 and result.usage.completion_tokens == 3
    sent = fake_upstream.requests()[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json == {
        "model": "gpt-x",
        "messages": CALL.messages,
        "temperature": 0.5,
        "max_tokens": 20,
    }
    assert sent.headers["authorization"] == "Bearer sk-provider-test-123456"


async def test_stream(provider: OpenAIProvider, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script(Behavior(content="alpha beta gamma", stream_chunks=3))
    chunks = [c async for c in provider.stream(CALL, "gpt-x", timeout=5)]
    text = "".join(c.choices[0]["delta"].get("content") or "" for c in chunks if c.choices)
    assert text == "alpha beta gamma"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert fake_upstream.requests()[-1].json["stream_options"] == {"include_usage": True}


async def test_embed(provider: OpenAIProvider) -> None:
    result = await provider.embed(["a", "b", "c"], "emb", timeout=5)
    assert len(result.vectors) == 3 and all(len(v) == 8 for v in result.vectors)
    assert result.vectors[0] != result.vectors[1]


@pytest.mark.parametrize(
    ("behavior", "error", "transient"),
    [
        (Behavior(status=400), UpstreamRejected, False),
        (Behavior(status=422), UpstreamRejected, False),
        (Behavior(status=401), ProviderError, False),
        (Behavior(status=404), ProviderError, False),
        (Behavior(status=429, retry_after=3), UpstreamRateLimited, True),
        (Behavior(status=500), ProviderError, True),
        (Behavior(status=503), UpstreamUnavailable, True),
        (Behavior(malformed=True), ProviderError, True),
        (Behavior(truncated=True), ProviderError, True),
        (Behavior(reset=True), ProviderError, True),
    ],
)
async def test_failures_are_classified(
    provider: OpenAIProvider,
    fake_upstream: FakeUpstream,
    behavior: Behavior,
    error: type[ProviderError],
    transient: bool,
) -> None:
    fake_upstream.script(behavior)
    with pytest.raises(error) as info:
        await provider.complete(CALL, "gpt-x", timeout=5)
    assert info.value.transient is transient
    assert info.value.deployment == "fake:gpt-x"
    if behavior.retry_after:
        assert info.value.retry_after == 3


async def test_timeout_is_bounded_by_the_budget(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Behavior(hang=True))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await provider.complete(CALL, "gpt-x", timeout=0.3)
    assert time.monotonic() - started < 1.5
    await fake_upstream.wait_for_async(lambda s: s["cancelled"] >= 1)


async def test_stream_failures(provider: OpenAIProvider, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script(Behavior(content="a b c d", stream_chunks=4, stream_fail_after=2))
    got = []
    with pytest.raises(ProviderError) as info:
        async for chunk in provider.stream(CALL, "gpt-x", timeout=5):
            got.append(chunk)
    assert info.value.transient
    assert len(got) >= 2
    fake_upstream.script(Behavior(malformed=True))
    with pytest.raises(ProviderError):
        [c async for c in provider.stream(CALL, "gpt-x", timeout=5)]


async def test_connection_refused_is_transient() -> None:
    config = ProviderConfig(type="openai", base_url=f"http://127.0.0.1:{free_port()}/v1")
    prov = OpenAIProvider("dead", config)
    await prov.start()
    try:
        with pytest.raises(ProviderError) as info:
            await prov.complete(CALL, "m", timeout=2)
        assert info.value.transient and "cannot connect" in info.value.message
    finally:
        await prov.aclose()


async def test_missing_key_is_not_ready(
    monkeypatch: pytest.MonkeyPatch, fake_upstream: FakeUpstream
) -> None:
    monkeypatch.delenv("GG_TEST_ABSENT_KEY", raising=False)
    config = ProviderConfig(
        type="openai", base_url=fake_upstream.openai_base_url, api_key_env="GG_TEST_ABSENT_KEY"
    )
    prov = OpenAIProvider("nokey", config)
    await prov.start()
    try:
        ready, reason = prov.readiness()
        assert not ready and "GG_TEST_ABSENT_KEY" in reason
        with pytest.raises(ProviderError) as info:
            await prov.complete(CALL, "m", timeout=2)
        assert not info.value.transient
        assert fake_upstream.requests() == []
    finally:
        await prov.aclose()
