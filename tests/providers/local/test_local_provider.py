from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import pytest

from groundgate.config import LocalModelConfig, ProviderConfig
from groundgate.errors import (
    InvalidRequest,
    Overloaded,
    ProviderError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from groundgate.providers.base import ChatCall, ManagedProvider, Provider
from groundgate.providers.local import LocalModels, LocalProvider
from groundgate.providers.local.answerer import NO_ANSWER
from groundgate.providers.local.embedder import INT8_MODEL_ID, MiniLMEmbedder

CONTEXT = (
    "Use only these sources.\n\n"
    "[1] Paris: Paris is the capital and largest city of France. It hosts the Louvre museum.\n"
    "[2] Lyon: Lyon is the third-largest city of France and is known for its cuisine."
)
MESSAGES = [
    {"role": "system", "content": CONTEXT},
    {"role": "user", "content": "What is the capital of France?"},
]


class GatedEmbedder:
    """The real embedder, but ``embed`` waits for ``gate``: lets a test hold worker threads."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()

    def embed(self, texts: Sequence[str]) -> Any:
        self.entered.set()
        self.gate.wait(10)
        return self.inner.embed(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def truncate_to_tokens(self, text: str, limit: int) -> tuple[str, bool]:
        return self.inner.truncate_to_tokens(text, limit)


def make(embedder: Any, **local: Any) -> LocalProvider:
    return LocalProvider(
        "local", ProviderConfig(type="local"), LocalModelConfig(**local), embedder=embedder
    )


@pytest.fixture
async def provider(embedder: MiniLMEmbedder) -> AsyncIterator[LocalProvider]:
    p = make(embedder)
    await p.start()
    yield p
    await p.aclose()


async def test_implements_the_protocols_and_reports_readiness(embedder: MiniLMEmbedder) -> None:
    p = make(embedder)
    assert isinstance(p, Provider) and isinstance(p, ManagedProvider)
    assert p.readiness() == (False, "not started")
    await p.start()
    await p.start()  # idempotent
    assert p.readiness() == (True, "ok")
    await p.aclose()
    assert p.readiness() == (False, "closed")
    with pytest.raises(UpstreamUnavailable):
        await p.complete(ChatCall(MESSAGES), "extractive", timeout=5)


async def test_models_load_on_first_use_once_however_many_calls_race() -> None:
    loads: list[tuple[str, int]] = []
    release = threading.Event()

    def load(model_id: str, solo_threads: int) -> MiniLMEmbedder:
        loads.append((model_id, solo_threads))
        release.wait(10)  # the racing calls all arrive while the first load still runs
        return MiniLMEmbedder(int8=model_id == INT8_MODEL_ID)

    models = LocalModels(load)
    config = LocalModelConfig(threads=4, solo_threads=2)
    p = LocalProvider("local", ProviderConfig(type="local"), config, models=models)
    await p.start()
    try:
        assert p.readiness() == (True, "ok")
        assert not loads and not any(s["loaded"] for s in models.loaded().values())
        calls = [p.embed(["hello"], "all-MiniLM-L6-v2", timeout=30) for _ in range(3)]
        racing = asyncio.gather(*calls, p.complete(ChatCall(MESSAGES), "extractive", timeout=30))
        for _ in range(500):
            if loads:
                break
            await asyncio.sleep(0.01)
        assert models.loaded()["all-MiniLM-L6-v2"] == {"loaded": False, "loading": True}
        release.set()
        *embedded, answered = await racing
        assert all(len(r.vectors[0]) == 384 for r in embedded)
        assert answered.extra["abstained"] is False
        assert loads == [("all-MiniLM-L6-v2", 2)]  # one load, for every caller
        state = models.loaded()
        assert state["all-MiniLM-L6-v2"]["loaded"] is True
        assert state["all-MiniLM-L6-v2-int8"] == {"loaded": False, "loading": False}
        # The int8 model serves its calls alone: nothing else loads for them.
        await p.embed(["hello"], "all-MiniLM-L6-v2-int8", timeout=60)
        assert [m for m, _ in loads] == ["all-MiniLM-L6-v2", "all-MiniLM-L6-v2-int8"]
    finally:
        await p.aclose()


async def test_preload_loads_the_served_models_at_start() -> None:
    loads: list[str] = []

    def load(model_id: str, solo_threads: int) -> MiniLMEmbedder:
        loads.append(model_id)
        return MiniLMEmbedder(int8=model_id == INT8_MODEL_ID)

    models = LocalModels(load)
    p = LocalProvider(
        "local",
        ProviderConfig(type="local"),
        LocalModelConfig(preload=True),
        models=models,
        serves=["extractive", "all-MiniLM-L6-v2"],  # no int8 deployment: not loaded
    )
    await p.start()
    try:
        assert loads == ["all-MiniLM-L6-v2"]
        assert models.loaded()["all-MiniLM-L6-v2"]["loaded"] is True
        assert not models.loaded()["all-MiniLM-L6-v2-int8"]["loaded"]
    finally:
        await p.aclose()


def broken_loader(calls: list[str]) -> Any:
    def load(model_id: str, solo_threads: int) -> MiniLMEmbedder:
        calls.append(model_id)
        raise RuntimeError("the model file is corrupt")

    return load


async def test_load_failure_is_reported_not_retried() -> None:
    calls: list[str] = []
    models = LocalModels(broken_loader(calls))
    p = LocalProvider("local", ProviderConfig(type="local"), LocalModelConfig(), models=models)
    await p.start()  # nothing loads yet
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable) as err:
            await p.complete(ChatCall(MESSAGES), "extractive", timeout=5)
        assert not err.value.transient and "corrupt" in err.value.message
    assert calls == ["all-MiniLM-L6-v2"]  # not retried
    ready, reason = p.readiness()
    assert not ready and "corrupt" in reason
    assert "corrupt" in str(models.loaded()["all-MiniLM-L6-v2"]["error"])
    await p.aclose()


async def test_preload_failure_fails_the_start() -> None:
    p = LocalProvider(
        "local",
        ProviderConfig(type="local"),
        LocalModelConfig(preload=True),
        models=LocalModels(broken_loader([])),
        serves=["extractive"],
    )
    with pytest.raises(UpstreamUnavailable) as err:
        await p.start()
    assert not err.value.transient and "corrupt" in err.value.message
    assert not p.readiness()[0]
    await p.aclose()


async def test_complete_answers_with_citations_and_usage(
    provider: LocalProvider, embedder: MiniLMEmbedder
) -> None:
    result = await provider.complete(ChatCall(MESSAGES), "extractive", timeout=10)
    assert len(result.choices) == 1
    choice = result.choices[0]
    content = choice["message"]["content"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and choice["logprobs"] is None
    assert content.startswith("Paris is the capital and largest city of France [1].")
    assert result.extra["abstained"] is False
    assert result.extra["citations"][0]["index"] == 1
    assert "capital" in result.extra["citations"][0]["snippet"]
    prompt = sum(embedder.count_tokens([CONTEXT, "What is the capital of France?"]))
    assert result.usage.prompt_tokens == prompt
    assert result.usage.completion_tokens == embedder.count_tokens([content])[0]
    assert result.id and result.id.startswith("chatcmpl-")


async def test_unanswerable_question_abstains(provider: LocalProvider) -> None:
    messages = [MESSAGES[0], {"role": "user", "content": "How tall is Mount Everest?"}]
    result = await provider.complete(ChatCall(messages), "extractive", timeout=10)
    assert result.choices[0]["message"]["content"] == NO_ANSWER
    assert result.extra == {"citations": [], "abstained": True}


async def test_unknown_models_are_permanent_errors(provider: LocalProvider) -> None:
    with pytest.raises(ProviderError, match="extractive") as err:
        await provider.complete(ChatCall(MESSAGES), "gpt-4o", timeout=5)
    assert err.value.transient is False
    with pytest.raises(ProviderError, match="all-MiniLM-L6-v2") as err:
        await provider.embed(["x"], "text-embedding-3-small", timeout=5)
    assert err.value.transient is False


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_cuts_the_answer(
    provider: LocalProvider, embedder: MiniLMEmbedder, key: str
) -> None:
    result = await provider.complete(ChatCall(MESSAGES, {key: 3}), "extractive", timeout=10)
    choice = result.choices[0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == "Paris is the"
    assert result.usage.completion_tokens == 3


@pytest.mark.parametrize("bad", [0, -1, "5", True])
async def test_invalid_max_tokens_is_rejected(provider: LocalProvider, bad: Any) -> None:
    with pytest.raises(InvalidRequest):
        await provider.complete(ChatCall(MESSAGES, {"max_tokens": bad}), "extractive", timeout=5)


async def test_stop_sequence_cuts_the_answer(provider: LocalProvider) -> None:
    result = await provider.complete(
        ChatCall(MESSAGES, {"stop": [" city"]}), "extractive", timeout=10
    )
    assert result.choices[0]["message"]["content"] == "Paris is the capital and largest"
    assert result.choices[0]["finish_reason"] == "stop"


@pytest.mark.parametrize("kind", ["json_object", "json_schema"])
async def test_json_response_format_returns_an_object(provider: LocalProvider, kind: str) -> None:
    params = {"response_format": {"type": kind}, "tools": [{"type": "function"}]}
    result = await provider.complete(ChatCall(MESSAGES, params), "extractive", timeout=10)
    body = json.loads(result.choices[0]["message"]["content"])
    assert body["answer"].startswith("Paris is the capital")
    assert body["citations"][0]["index"] == 1


async def test_json_mode_stays_valid_when_cut(provider: LocalProvider) -> None:
    params = {"response_format": {"type": "json_object"}, "max_tokens": 2}
    result = await provider.complete(ChatCall(MESSAGES, params), "extractive", timeout=10)
    assert json.loads(result.choices[0]["message"]["content"])["answer"] == "Paris is"
    assert result.choices[0]["finish_reason"] == "length"


async def test_stream_replays_the_completion_in_pieces(provider: LocalProvider) -> None:
    whole = await provider.complete(ChatCall(MESSAGES), "extractive", timeout=10)
    chunks = [c async for c in provider.stream(ChatCall(MESSAGES), "extractive", timeout=10)]
    assert chunks[0].choices[0]["delta"] == {"role": "assistant", "content": ""}
    middle = chunks[1:-1]
    assert len(middle) > 1
    text = "".join(c.choices[0]["delta"]["content"] for c in middle)
    assert text == whole.choices[0]["message"]["content"]
    assert all(c.usage is None and c.choices[0]["finish_reason"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices[0]["finish_reason"] == "stop" and last.choices[0]["delta"] == {}
    assert last.usage == whole.usage
    assert len({c.id for c in chunks}) == 1


async def test_stream_raises_before_the_first_chunk(provider: LocalProvider) -> None:
    with pytest.raises(ProviderError):
        async for _ in provider.stream(ChatCall(MESSAGES), "nope", timeout=5):
            pytest.fail("no chunk expected")


async def test_embed_returns_lists_with_usage(
    provider: LocalProvider, embedder: MiniLMEmbedder
) -> None:
    texts = ["A man is eating food.", "A man is riding a horse."]
    result = await provider.embed(texts, "all-MiniLM-L6-v2", timeout=10)
    assert len(result.vectors) == 2 and all(len(v) == 384 for v in result.vectors)
    assert all(isinstance(x, float) for x in result.vectors[0])
    np.testing.assert_allclose(result.vectors, embedder.embed(texts), atol=1e-6)
    assert result.usage.prompt_tokens == sum(embedder.count_tokens(texts))
    assert result.usage.completion_tokens == 0


async def test_embed_with_the_int8_variant(
    provider: LocalProvider, embedder: MiniLMEmbedder
) -> None:
    texts = ["A man is eating food.", "A man is riding a horse."]
    result = await provider.embed(texts, "all-MiniLM-L6-v2-int8", timeout=60)
    vectors = np.asarray(result.vectors)
    assert vectors.shape == (2, 384)
    cosines = (vectors * embedder.embed(texts)).sum(axis=1)
    assert np.all(cosines > 0.97) and np.all(cosines < 0.99999)  # its own, close numbers
    assert result.usage.prompt_tokens == sum(embedder.count_tokens(texts))
    with pytest.raises(ProviderError, match="all-MiniLM-L6-v2-int8"):  # named among the models
        await provider.embed(texts, "all-MiniLM-L12-v2", timeout=5)


@pytest.mark.parametrize("inputs", [[], [""], ["ok", ""]])
async def test_embed_rejects_empty_inputs(provider: LocalProvider, inputs: list[str]) -> None:
    with pytest.raises(InvalidRequest):
        await provider.embed(inputs, "all-MiniLM-L6-v2", timeout=5)


async def wait_until(event: threading.Event) -> None:
    for _ in range(1000):
        if event.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("worker never started")


async def test_work_runs_off_the_event_loop(embedder: MiniLMEmbedder) -> None:
    gated = GatedEmbedder(embedder)
    p = make(gated)
    task = asyncio.create_task(p.complete(ChatCall(MESSAGES), "extractive", timeout=30))
    await wait_until(gated.entered)
    # The loop runs while a worker is stuck: had the call blocked it, we would not be here
    # before the gate's own 10 s timeout released the call.
    assert not task.done()
    gated.gate.set()
    result = await task
    assert result.extra["abstained"] is False
    await p.aclose()


async def test_timeout_raises_upstream_timeout(embedder: MiniLMEmbedder) -> None:
    gated = GatedEmbedder(embedder)
    p = make(gated)
    await p.start()
    try:
        with pytest.raises(UpstreamTimeout) as err:
            await p.complete(ChatCall(MESSAGES), "extractive", timeout=0.05)
        assert err.value.transient and err.value.deployment == "local:extractive"
    finally:
        gated.gate.set()
        await p.aclose()


async def test_queue_is_bounded(embedder: MiniLMEmbedder) -> None:
    gated = GatedEmbedder(embedder)
    p = make(gated, threads=1, max_queue=1)
    await p.start()
    running = asyncio.create_task(p.complete(ChatCall(MESSAGES), "extractive", timeout=30))
    await wait_until(gated.entered)
    queued = asyncio.create_task(p.complete(ChatCall(MESSAGES), "extractive", timeout=30))
    await asyncio.sleep(0)
    with pytest.raises(Overloaded):
        await p.complete(ChatCall(MESSAGES), "extractive", timeout=30)
    with pytest.raises(Overloaded):
        await p.embed(["x"], "all-MiniLM-L6-v2", timeout=30)
    gated.gate.set()
    for task in (running, queued):
        assert (await task).extra["abstained"] is False
    # Capacity comes back once the work is done.
    assert (await p.embed(["x"], "all-MiniLM-L6-v2", timeout=30)).vectors
    await p.aclose()


async def test_timed_out_work_still_counts_against_the_bound(embedder: MiniLMEmbedder) -> None:
    gated = GatedEmbedder(embedder)
    p = make(gated, threads=1, max_queue=1)
    await p.start()
    with pytest.raises(UpstreamTimeout):
        await p.complete(ChatCall(MESSAGES), "extractive", timeout=0.05)
    await wait_until(gated.entered)
    # The abandoned call still holds the only thread; one more may wait, the next is shed.
    queued = asyncio.create_task(p.complete(ChatCall(MESSAGES), "extractive", timeout=30))
    await asyncio.sleep(0)
    with pytest.raises(Overloaded):
        await p.complete(ChatCall(MESSAGES), "extractive", timeout=30)
    gated.gate.set()
    assert (await queued).extra["abstained"] is False
    await p.aclose()


async def test_close_fails_queued_calls_cleanly(embedder: MiniLMEmbedder) -> None:
    gated = GatedEmbedder(embedder)
    p = make(gated, threads=1, max_queue=4)
    await p.start()
    running = asyncio.create_task(p.complete(ChatCall(MESSAGES), "extractive", timeout=30))
    await wait_until(gated.entered)
    queued = asyncio.create_task(p.complete(ChatCall(MESSAGES), "extractive", timeout=30))
    await asyncio.sleep(0)
    await p.aclose()
    with pytest.raises(UpstreamUnavailable):
        await queued
    gated.gate.set()
    # Work already running is allowed to finish.
    assert (await running).extra["abstained"] is False
