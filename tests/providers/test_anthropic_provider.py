"""AnthropicProvider over real HTTP against the fake upstream's ``POST /v1/messages``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from groundgate.config import ProviderConfig
from groundgate.errors import (
    ProviderError,
    UnsupportedRequest,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from groundgate.providers.anthropic import AnthropicProvider
from groundgate.providers.base import ChatCall, Chunk, ManagedProvider
from groundgate.testing.fake_upstream import Behavior, FakeUpstream

KEY_ENV = "GG_TEST_ANTHROPIC_PROVIDER_KEY"
KEY = "sk-ant-provider-test-key"
MODEL = "claude-test"
QUESTION = [{"role": "user", "content": "what is the capital of France"}]
WEATHER_CALL = {
    "id": "toolu_weather",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def up(server: FakeUpstream) -> Iterator[FakeUpstream]:
    server.reset()
    yield server
    server.reset()


def make_provider(up: FakeUpstream, **overrides: Any) -> AnthropicProvider:
    fields: dict[str, Any] = {
        "type": "anthropic",
        "base_url": up.url,
        "api_key_env": KEY_ENV,
        "timeout_s": 5,
        **overrides,
    }
    return AnthropicProvider("claude", ProviderConfig(**fields))


@pytest.fixture
async def provider(
    up: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AnthropicProvider]:
    monkeypatch.setenv(KEY_ENV, KEY)
    p = make_provider(up)
    await p.start()
    try:
        yield p
    finally:
        await p.aclose()


async def collect(provider: AnthropicProvider, call: ChatCall, timeout: float = 5.0) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(call, MODEL, timeout=timeout)]


def content_of(chunks: list[Chunk]) -> str:
    return "".join(c.choices[0]["delta"].get("content") or "" for c in chunks if c.choices)


def last_body(up: FakeUpstream) -> dict[str, Any]:
    body = up.requests()[-1].json
    assert isinstance(body, dict)
    return body


# ------------------------------------------------------------------------------- happy paths


async def test_is_a_managed_provider(provider: AnthropicProvider) -> None:
    assert isinstance(provider, ManagedProvider)
    assert provider.readiness() == (True, "ok")


async def test_complete_text(provider: AnthropicProvider, up: FakeUpstream) -> None:
    up.set_default(Behavior(content="Paris is the capital.", prompt_tokens=11))
    completion = await provider.complete(ChatCall(QUESTION), MODEL, timeout=5)
    assert completion.choices[0]["message"] == {
        "role": "assistant",
        "content": "Paris is the capital.",
    }
    assert completion.choices[0]["finish_reason"] == "stop"
    assert completion.usage.prompt_tokens == 11
    assert completion.usage.completion_tokens == 4
    assert completion.id is not None and completion.id.startswith("msg_fake_")
    request = up.requests()[-1]
    assert request.path == "/v1/messages"
    assert request.json["model"] == MODEL
    assert request.json["max_tokens"] == 4096
    assert "stream" not in request.json


async def test_headers_are_sent(provider: AnthropicProvider, up: FakeUpstream) -> None:
    await provider.complete(ChatCall(QUESTION), MODEL, timeout=5)
    headers = up.requests()[-1].headers
    assert headers["x-api-key"] == KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers


async def test_configured_api_version_is_sent(
    up: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    p = make_provider(up, api_version="2099-01-01")
    await p.start()
    try:
        await p.complete(ChatCall(QUESTION), MODEL, timeout=5)
    finally:
        await p.aclose()
    assert up.requests()[-1].headers["anthropic-version"] == "2099-01-01"


async def test_system_prompt_is_extracted(provider: AnthropicProvider, up: FakeUpstream) -> None:
    messages = [{"role": "system", "content": "You answer in one word."}, *QUESTION]
    params = {"max_tokens": 20, "temperature": 1.5, "stop": "END", "seed": 3}
    await provider.complete(ChatCall(messages, params), MODEL, timeout=5)
    body = last_body(up)
    assert body["system"] == "You answer in one word."
    assert body["messages"] == QUESTION
    assert body["max_tokens"] == 20
    assert body["temperature"] == 1.0
    assert body["stop_sequences"] == ["END"]
    assert "seed" not in body


async def test_stream_text(provider: AnthropicProvider, up: FakeUpstream) -> None:
    up.set_default(Behavior(content="Paris, of course.", stream_chunks=4, prompt_tokens=9))
    chunks = await collect(provider, ChatCall(QUESTION))
    assert chunks[0].choices[0]["delta"] == {"role": "assistant", "content": ""}
    assert content_of(chunks) == "Paris, of course."
    assert len([c for c in chunks if c.choices[0]["delta"].get("content")]) == 4
    last = chunks[-1]
    assert last.choices[0]["finish_reason"] == "stop"
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (9, 3)
    assert all(c.usage is None for c in chunks[:-1])
    assert last_body(up)["stream"] is True


async def test_complete_returns_tool_calls(provider: AnthropicProvider, up: FakeUpstream) -> None:
    up.set_default(Behavior(content="", tool_calls=[WEATHER_CALL]))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    call = ChatCall(QUESTION, {"tools": tools, "tool_choice": "required"})
    completion = await provider.complete(call, MODEL, timeout=5)
    choice = completion.choices[0]
    assert choice["finish_reason"] == "tool_calls"
    (tool_call,) = choice["message"]["tool_calls"]
    assert tool_call["id"] == "toolu_weather"
    assert tool_call["type"] == "function"
    assert tool_call["function"]["name"] == "get_weather"
    assert orjson.loads(tool_call["function"]["arguments"]) == {"city": "Paris"}
    body = last_body(up)
    empty_schema = {"type": "object", "properties": {}}
    assert body["tools"] == [{"name": "get_weather", "input_schema": empty_schema}]
    assert body["tool_choice"] == {"type": "any"}


async def test_stream_tool_calls(provider: AnthropicProvider, up: FakeUpstream) -> None:
    second = {"id": "toolu_time", "function": {"name": "now", "arguments": "{}"}}
    up.set_default(Behavior(content="", tool_calls=[WEATHER_CALL, second], stream_chunks=3))
    chunks = await collect(provider, ChatCall(QUESTION))
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for delta_call in chunk.choices[0]["delta"].get("tool_calls") or []:
            slot = calls.setdefault(delta_call["index"], {"arguments": ""})
            if "id" in delta_call:
                slot["id"] = delta_call["id"]
                slot["name"] = delta_call["function"]["name"]
            slot["arguments"] += delta_call["function"]["arguments"]
    assert sorted(calls) == [0, 1]
    assert calls[0]["id"] == "toolu_weather" and calls[0]["name"] == "get_weather"
    assert orjson.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert calls[1]["id"] == "toolu_time" and orjson.loads(calls[1]["arguments"]) == {}
    assert chunks[-1].choices[0]["finish_reason"] == "tool_calls"


async def test_tool_round_trip_is_sent_in_anthropic_shape(
    provider: AnthropicProvider, up: FakeUpstream
) -> None:
    messages: list[dict[str, Any]] = [
        *QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]},
        {"role": "tool", "tool_call_id": "toolu_weather", "content": "18C and sunny"},
    ]
    await provider.complete(ChatCall(messages), MODEL, timeout=5)
    body = last_body(up)
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_weather",
                "name": "get_weather",
                "input": {"city": "Paris"},
            }
        ],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_weather", "content": "18C and sunny"}
        ],
    }


async def test_unsupported_request_never_reaches_upstream(
    provider: AnthropicProvider, up: FakeUpstream
) -> None:
    with pytest.raises(UnsupportedRequest):
        await provider.complete(ChatCall(QUESTION, {"n": 3}), MODEL, timeout=5)
    with pytest.raises(UnsupportedRequest):
        await collect(provider, ChatCall(QUESTION, {"n": 3}))
    assert up.requests() == []


# ------------------------------------------------------------------------------------ errors


async def test_400_is_rejected_not_transient(provider: AnthropicProvider, up: FakeUpstream) -> None:
    up.set_default(Behavior(status=400, error_message="messages: roles must alternate"))
    with pytest.raises(UpstreamRejected) as info:
        await provider.complete(ChatCall(QUESTION), MODEL, timeout=5)
    assert not info.value.transient
    assert info.value.upstream_status == 400
    assert "roles must alternate" in info.value.message


@pytest.mark.parametrize("status", [529, 503])
async def test_overloaded_and_unavailable_are_transient(
    provider: AnthropicProvider, up: FakeUpstream, status: int
) -> None:
    up.set_default(Behavior(status=status, error_message="Overloaded"))
    with pytest.raises(UpstreamUnavailable) as info:
        await provider.complete(ChatCall(QUESTION), MODEL, timeout=5)
    assert info.value.transient
    assert info.value.status_code == 503
    assert info.value.upstream_status == status
    with pytest.raises(UpstreamUnavailable):
        await collect(provider, ChatCall(QUESTION))


async def test_429_carries_retry_after(provider: AnthropicProvider, up: FakeUpstream) -> None:
    up.set_default(Behavior(status=429, retry_after=7))
    with pytest.raises(UpstreamRateLimited) as info:
        await provider.complete(ChatCall(QUESTION), MODEL, timeout=5)
    assert info.value.transient
    assert info.value.retry_after == 7


async def test_401_is_not_transient(provider: AnthropicProvider, up: FakeUpstream) -> None:
    up.set_default(Behavior(status=401, error_message="invalid x-api-key"))
    with pytest.raises(ProviderError) as info:
        await provider.complete(ChatCall(QUESTION), MODEL, timeout=5)
    assert not info.value.transient


async def test_hang_times_out_within_budget(provider: AnthropicProvider, up: FakeUpstream) -> None:
    up.set_default(Behavior(hang=True))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as info:
        await provider.complete(ChatCall(QUESTION), MODEL, timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert info.value.transient

    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await collect(provider, ChatCall(QUESTION), timeout=0.3)
    assert time.monotonic() - started < 1.5


async def test_malformed_body_is_transient(provider: AnthropicProvider, up: FakeUpstream) -> None:
    up.set_default(Behavior(malformed=True))
    with pytest.raises(ProviderError) as info:
        await provider.complete(ChatCall(QUESTION), MODEL, timeout=5)
    assert info.value.transient
    assert "not valid JSON" in info.value.message
    with pytest.raises(ProviderError) as info2:
        await collect(provider, ChatCall(QUESTION))
    assert info2.value.transient


@pytest.mark.parametrize("failure", [{"truncated": True}, {"reset": True}])
async def test_broken_connections_are_transient(
    provider: AnthropicProvider, up: FakeUpstream, failure: dict[str, bool]
) -> None:
    up.set_default(Behavior.from_dict(failure))
    with pytest.raises(ProviderError) as info:
        await provider.complete(ChatCall(QUESTION), MODEL, timeout=5)
    assert info.value.transient
    with pytest.raises(ProviderError) as info2:
        await collect(provider, ChatCall(QUESTION))
    assert info2.value.transient


async def test_mid_stream_failure_raises_after_some_chunks(
    provider: AnthropicProvider, up: FakeUpstream
) -> None:
    up.set_default(Behavior(content="one two three four five six", stream_chunks=6))
    up.script(Behavior(content="one two three four five six", stream_chunks=6, stream_fail_after=2))
    received: list[Chunk] = []
    with pytest.raises(ProviderError) as info:
        async for chunk in provider.stream(ChatCall(QUESTION), MODEL, timeout=5):
            received.append(chunk)
    assert info.value.transient
    texts = [c.choices[0]["delta"].get("content") for c in received]
    assert len([t for t in texts if t]) == 2
    assert all(c.choices[0]["finish_reason"] is None for c in received)


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )


MESSAGE_START = {
    "type": "message_start",
    "message": {"id": "msg_raw", "content": [], "usage": {"input_tokens": 3, "output_tokens": 1}},
}
TEXT_START = {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}
TEXT_DELTA = {
    "type": "content_block_delta",
    "index": 0,
    "delta": {"type": "text_delta", "text": "Hi"},
}


@pytest.mark.parametrize(
    ("tail", "error", "transient"),
    [
        # The body ends cleanly, but before message_stop: an incomplete answer.
        ((), ProviderError, True),
        (
            ({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},),
            UpstreamUnavailable,
            True,
        ),
        (
            ({"type": "error", "error": {"type": "invalid_request_error", "message": "no"}},),
            ProviderError,
            False,
        ),
    ],
)
async def test_stream_that_ends_badly(
    monkeypatch: pytest.MonkeyPatch,
    tail: tuple[dict[str, Any], ...],
    error: type[ProviderError],
    transient: bool,
) -> None:
    """A hand-written upstream, for endings the fake upstream does not script."""

    async def messages(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(sse(MESSAGE_START, TEXT_START, TEXT_DELTA, *tail))
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    monkeypatch.setenv(KEY_ENV, KEY)
    async with TestServer(app, host="127.0.0.1") as server:
        p = AnthropicProvider(
            "claude",
            ProviderConfig(
                type="anthropic", base_url=str(server.make_url("")), api_key_env=KEY_ENV
            ),
        )
        await p.start()
        received: list[Chunk] = []
        try:
            with pytest.raises(error) as info:
                async for chunk in p.stream(ChatCall(QUESTION), MODEL, timeout=5):
                    received.append(chunk)
        finally:
            await p.aclose()
    assert info.value.transient is transient
    assert content_of(received) == "Hi"
    if not tail:
        assert "message_stop" in info.value.message


async def test_missing_api_key(up: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    p = make_provider(up)
    assert p.readiness() == (False, "not started")
    await p.start()
    try:
        ready, reason = p.readiness()
        assert not ready and KEY_ENV in reason
        with pytest.raises(ProviderError) as info:
            await p.complete(ChatCall(QUESTION), MODEL, timeout=5)
        assert not info.value.transient
        assert KEY_ENV in info.value.message
        with pytest.raises(ProviderError) as info2:
            await collect(p, ChatCall(QUESTION))
        assert not info2.value.transient
        assert up.requests() == []

        # Set later (e.g. a secret mounted after start): picked up without a restart.
        monkeypatch.setenv(KEY_ENV, KEY)
        assert p.readiness() == (True, "ok")
        await p.complete(ChatCall(QUESTION), MODEL, timeout=5)
        assert up.requests()[-1].headers["x-api-key"] == KEY
    finally:
        await p.aclose()


async def test_not_started_is_a_clear_error(up: FakeUpstream) -> None:
    p = make_provider(up)
    with pytest.raises(ProviderError) as info:
        await p.complete(ChatCall(QUESTION), MODEL, timeout=5)
    assert "not started" in info.value.message and not info.value.transient


async def test_embed_is_not_supported(provider: AnthropicProvider, up: FakeUpstream) -> None:
    with pytest.raises(ProviderError) as info:
        await provider.embed(["hello"], "any", timeout=5)
    assert not info.value.transient
    assert "embeddings" in info.value.message
    assert up.requests() == []
