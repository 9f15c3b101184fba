"""The fake upstream, exercised over real HTTP on 127.0.0.1: replies, failures, control."""

from __future__ import annotations

import asyncio
import base64
import math
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from groundgate.testing import Behavior, FakeUpstream

USER = [{"role": "user", "content": "hello fake world"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def up(server: FakeUpstream) -> Iterator[FakeUpstream]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def client(up: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=up.url, timeout=5) as c:
        yield c


def chat(client: httpx.Client, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {"model": "gpt-test", "messages": USER, **extra}
    headers = body.pop("headers", None)
    return client.post("/v1/chat/completions", json=body, headers=headers)


def claude(client: httpx.Client, **extra: Any) -> httpx.Response:
    body = {"model": "claude-test", "max_tokens": 100, "messages": USER, **extra}
    return client.post("/v1/messages", json=body)


def sse(text: str) -> list[tuple[str | None, str]]:
    """(event name, data) per server-sent event."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        events.append((name, data))
    return events


# --- OpenAI chat ---------------------------------------------------------------------------


def test_chat_echoes_last_user_text(client: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "two "}, {"type": "text", "text": "parts"}],
        },
    ]
    r = chat(client, messages=messages)
    assert r.status_code == 200
    body = r.json()
    assert body["id"].startswith("chatcmpl-fake-")
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-test"
    assert body["system_fingerprint"]
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "echo: two parts", "refusal": None}
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}


def test_chat_max_tokens_truncates_with_length(client: httpx.Client) -> None:
    body = chat(client, max_tokens=2).json()
    assert body["choices"][0]["message"]["content"] == "echo: hello"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


def test_chat_content_usage_and_tool_calls(up: FakeUpstream, client: httpx.Client) -> None:
    calls = [{"id": "call_1", "function": {"name": "lookup", "arguments": {"q": "x"}}}]
    up.script(Behavior(content="scripted", prompt_tokens=7, completion_tokens=9, tool_calls=calls))
    body = chat(client).json()
    message = body["choices"][0]["message"]
    assert message["content"] == "scripted"
    assert message["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q":"x"}'},
        }
    ]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 9, "total_tokens": 16}


def test_chat_rejects_bad_requests(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", content=b"{nope")
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert chat(client, messages=[]).status_code == 400


def test_chat_stream(client: httpx.Client) -> None:
    r = chat(client, stream=True, stream_options={"include_usage": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["transfer-encoding"] == "chunked"
    events = sse(r.text)
    assert events[-1] == (None, "[DONE]")
    chunks = [orjson.loads(data) for _, data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:5]]
    assert len(pieces) == 4  # Behavior.stream_chunks
    assert "".join(pieces) == "echo: hello fake world"
    assert chunks[5]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert chunks[6]["choices"] == []
    assert chunks[6]["usage"]["completion_tokens"] == 4
    assert len(chunks) == 7


def test_chat_stream_without_usage_and_with_tool_calls(
    up: FakeUpstream, client: httpx.Client
) -> None:
    args = '{"city": "Paris"}'
    up.script(Behavior(tool_calls=[{"function": {"name": "weather", "arguments": args}}]))
    chunks = [orjson.loads(d) for _, d in sse(chat(client, stream=True).text)[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert all(c["choices"] for c in chunks)  # no usage chunk unless asked for
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0] == {
        "index": 0,
        "id": "call_fake_0",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    assert "".join(c["function"]["arguments"] for c in calls[1:]) == args
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_stream_chunks_arrive_as_written(up: FakeUpstream) -> None:
    up.script(Behavior(stream_chunks=3, stream_delay_ms=80))
    arrivals: list[float] = []
    body = {"model": "m", "messages": USER, "stream": True}
    async with aiohttp.ClientSession() as session:
        start = time.monotonic()
        async with session.post(up.openai_base_url + "/chat/completions", json=body) as resp:
            async for line in resp.content:
                if b'"content":"' in line and b'"role"' not in line:
                    arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 3
    assert arrivals[0] < 0.07  # the first piece did not wait for the rest
    assert arrivals[2] - arrivals[0] >= 0.15


def test_openai_sdk_compatible(up: FakeUpstream) -> None:
    sdk = openai.OpenAI(base_url=up.openai_base_url, api_key="sk-fake", max_retries=0)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello fake world"}]
    try:
        done = sdk.chat.completions.create(model="gpt-x", messages=messages)
        assert done.choices[0].message.content == "echo: hello fake world"
        stream = sdk.chat.completions.create(model="gpt-x", messages=messages, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "echo: hello fake world"
        emb = sdk.embeddings.create(model="e", input=["a", "b"])  # base64 on the wire
        assert len(emb.data[0].embedding) == 8
        assert emb.data[0].embedding != emb.data[1].embedding
    finally:
        sdk.close()
    assert up.requests()[0].headers["authorization"] == "Bearer sk-fake"


# --- embeddings and models -----------------------------------------------------------------


def test_embeddings(client: httpx.Client) -> None:
    r = client.post(
        "/v1/embeddings", json={"model": "e", "input": ["alpha", "beta gamma", "alpha"]}
    )
    body = r.json()
    vectors = [d["embedding"] for d in body["data"]]
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert len(vectors[0]) == 8
    assert vectors[0] == vectors[2] != vectors[1]
    assert math.isclose(sum(v * v for v in vectors[1]), 1.0)
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert body["object"] == "list" and body["model"] == "e"

    single = client.post("/v1/embeddings", json={"model": "e", "input": "alpha", "dimensions": 3})
    assert len(single.json()["data"][0]["embedding"]) == 3
    tokens = client.post("/v1/embeddings", json={"model": "e", "input": [[1, 2], [3]]}).json()
    assert tokens["usage"]["prompt_tokens"] == 3 and len(tokens["data"]) == 2
    b64 = client.post(
        "/v1/embeddings", json={"model": "e", "input": "alpha", "encoding_format": "base64"}
    ).json()
    decoded = struct.unpack("<8f", base64.b64decode(b64["data"][0]["embedding"]))
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(decoded, vectors[0], strict=True))
    assert client.post("/v1/embeddings", json={"model": "e", "input": [{}]}).status_code == 400


def test_embeddings_honour_status(up: FakeUpstream, client: httpx.Client) -> None:
    up.script(Behavior(status=503))
    assert client.post("/v1/embeddings", json={"model": "e", "input": "x"}).status_code == 503


def test_models(client: httpx.Client) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    assert {m["object"] for m in body["data"]} == {"model"}
    assert "gpt-4o-mini" in [m["id"] for m in body["data"]]


# --- Anthropic -----------------------------------------------------------------------------


def test_messages(up: FakeUpstream, client: httpx.Client) -> None:
    r = client.post(
        "/v1/messages",
        json={"model": "claude-test", "max_tokens": 50, "system": "be kind", "messages": USER},
        headers={"x-api-key": "sk-ant-x", "anthropic-version": "2023-06-01"},
    )
    body = r.json()
    assert body["id"].startswith("msg_fake_")
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["model"] == "claude-test"
    assert body["content"] == [{"type": "text", "text": "echo: hello fake world"}]
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None
    assert body["usage"]["input_tokens"] == 5 and body["usage"]["output_tokens"] == 4
    headers = up.requests()[-1].headers
    assert headers["x-api-key"] == "sk-ant-x"
    assert headers["anthropic-version"] == "2023-06-01"


def test_messages_limits_and_stop_sequences(client: httpx.Client) -> None:
    body = claude(client, max_tokens=2).json()
    assert body["content"][0]["text"] == "echo: hello"
    assert body["stop_reason"] == "max_tokens"
    body = claude(client, stop_sequences=["fake"]).json()
    assert body["content"][0]["text"] == "echo: hello "
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "fake")


def test_messages_tool_use_and_tool_results(up: FakeUpstream, client: httpx.Client) -> None:
    calls = [{"id": "toolu_1", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]
    up.script(Behavior(tool_calls=calls))
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "w", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t", "content": "sunny"}],
        },
    ]
    body = claude(client, messages=messages).json()
    assert body["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}
    ]
    assert body["stop_reason"] == "tool_use"
    # The echo skips the tool-result-only message.
    assert claude(client, messages=messages).json()["content"][0]["text"] == "echo: weather?"


def test_messages_requires_max_tokens(client: httpx.Client) -> None:
    r = client.post("/v1/messages", json={"model": "c", "messages": USER})
    assert r.status_code == 400
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]


def test_messages_stream(up: FakeUpstream, client: httpx.Client) -> None:
    up.script(
        Behavior(
            content="hi there", tool_calls=[{"function": {"name": "f", "arguments": '{"a":1}'}}]
        )
    )
    events = sse(claude(client, stream=True).text)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    data = [orjson.loads(d) for _, d in events]
    assert all(name == d["type"] for name, d in zip(names, data, strict=True))
    start = data[0]["message"]
    assert start["usage"]["output_tokens"] == 1 and start["content"] == []
    text = "".join(
        d["delta"]["text"] for d in data if d["type"] == "content_block_delta" and d["index"] == 0
    )
    assert text == "hi there"
    tool_start = next(d for d in data if d["type"] == "content_block_start" and d["index"] == 1)
    assert tool_start["content_block"] == {
        "type": "tool_use",
        "id": "toolu_fake_0",
        "name": "f",
        "input": {},
    }
    partial = "".join(
        d["delta"]["partial_json"]
        for d in data
        if d["type"] == "content_block_delta" and d["index"] == 1
    )
    assert orjson.loads(partial) == {"a": 1}
    assert names.count("content_block_stop") == 2
    assert data[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert data[-2]["usage"]["output_tokens"] == 3


def test_messages_errors_use_anthropic_shape(up: FakeUpstream, client: httpx.Client) -> None:
    up.script(Behavior(status=529, error_message="busy"))
    r = claude(client, stream=True)
    assert r.status_code == 529
    assert r.json() == {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}


# --- failure behaviours --------------------------------------------------------------------


def test_status_with_retry_after(up: FakeUpstream, client: httpx.Client) -> None:
    up.script(
        Behavior(status=429, retry_after=2, error_message="slow down"),
        Behavior(status=500, retry_after=0.25),
    )
    r = chat(client)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "2"
    assert r.json()["error"]["message"] == "slow down"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    r = chat(client, stream=True)
    assert (r.status_code, r.headers["retry-after"]) == (500, "0.25")
    assert r.headers["retry-after-ms"] == "250"
    assert r.json()["error"]["type"] == "server_error"
    assert up.stats()["completed"] == 2


def test_latency(up: FakeUpstream, client: httpx.Client) -> None:
    up.set_default(Behavior(latency_ms=120))
    start = time.monotonic()
    assert chat(client).status_code == 200
    assert time.monotonic() - start >= 0.12


def test_hang_until_client_gives_up(up: FakeUpstream, client: httpx.Client) -> None:
    up.script(Behavior(hang=True))
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", json={"model": "m", "messages": USER}, timeout=0.2)
    stats = up.wait_for(lambda s: s["cancelled"] == 1)
    assert stats == {"received": 1, "completed": 0, "cancelled": 1, "in_flight": 0}


def test_hang_on_messages_and_embeddings(up: FakeUpstream, client: httpx.Client) -> None:
    up.set_default(Behavior(hang=True))
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            "/v1/messages", json={"model": "c", "max_tokens": 5, "messages": USER}, timeout=0.1
        )
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/embeddings", json={"model": "e", "input": "x"}, timeout=0.1)
    up.wait_for(lambda s: s["cancelled"] == 2 and s["in_flight"] == 0)


def test_malformed(up: FakeUpstream, client: httpx.Client) -> None:
    up.script(Behavior(malformed=True), Behavior(malformed=True), Behavior(malformed=True))
    r = chat(client)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        orjson.loads(r.content)
    bad = [d for _, d in sse(chat(client, stream=True).text)]
    assert bad[-1] == "[DONE]"
    with pytest.raises(ValueError):
        orjson.loads(bad[1])
    orjson.loads(bad[0])
    names = [n for n, d in sse(claude(client, stream=True).text)]
    assert "content_block_delta" in names and names[-1] == "message_stop"


def test_truncated(up: FakeUpstream, client: httpx.Client) -> None:
    up.script(Behavior(truncated=True), Behavior(truncated=True))
    with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete|without sending complete"):
        chat(client)
    with pytest.raises(httpx.RemoteProtocolError):
        claude(client, stream=True)
    assert up.wait_for(lambda s: s["completed"] == 2)["cancelled"] == 0


def test_reset(up: FakeUpstream, client: httpx.Client) -> None:
    up.script(Behavior(reset=True), Behavior(reset=True, latency_ms=20))
    for _ in range(2):
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            chat(client)
    assert chat(client).status_code == 200  # the script is used up; a new connection works
    assert up.wait_for(lambda s: s["completed"] == 3)["in_flight"] == 0


def test_stream_fail_after(up: FakeUpstream) -> None:
    up.script(Behavior(stream_fail_after=2), Behavior(stream_fail_after=10))
    for expected in (2, 4):  # the second fails after all 4 pieces, before the finish chunk
        pieces = []
        with (
            httpx.Client(timeout=5) as c,
            c.stream(
                "POST",
                up.openai_base_url + "/chat/completions",
                json={"model": "m", "messages": USER, "stream": True},
            ) as r,
            pytest.raises(httpx.RemoteProtocolError),
        ):
            for line in r.iter_lines():
                assert "[DONE]" not in line and '"finish_reason":"stop"' not in line
                if '"content":"' in line and '"role"' not in line:
                    pieces.append(line)
        assert len(pieces) == expected


def test_report_usage_false_ignores_include_usage(up: FakeUpstream, client: httpx.Client) -> None:
    up.script(Behavior(report_usage=False))
    options = {"include_usage": True}
    for reply in (chat(client, stream=True, stream_options=options), chat(client, stream=True)):
        assert '"usage"' not in reply.text and reply.text.endswith("data: [DONE]\n\n")
    assert '"usage"' in chat(client, stream=True, stream_options=options).text  # the default


def test_n_choices_stream_each_with_its_finish(up: FakeUpstream, client: httpx.Client) -> None:
    events = [orjson.loads(d) for _, d in sse(chat(client, stream=True, n=2).text)[:-1]]
    finishes = [c["index"] for e in events for c in e["choices"] if c["finish_reason"]]
    assert finishes == [0, 1]
    for index in (0, 1):
        text = "".join(
            c["delta"].get("content") or ""
            for e in events
            for c in e["choices"]
            if c["index"] == index
        )
        assert text == "echo: hello fake world"
    choices = chat(client, n=3).json()["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2]
    assert chat(client, n=0).status_code == 400


def test_stream_fail_after_on_messages(up: FakeUpstream, client: httpx.Client) -> None:
    up.script(Behavior(stream_fail_after=1))
    with pytest.raises(httpx.RemoteProtocolError):
        claude(client, stream=True)


async def test_client_disconnect_mid_stream_counts_cancelled(up: FakeUpstream) -> None:
    up.script(Behavior(stream_chunks=5, stream_delay_ms=100))
    body = {"model": "m", "messages": USER, "stream": True}
    async with aiohttp.ClientSession() as session:
        resp = await session.post(up.openai_base_url + "/chat/completions", json=body)
        await resp.content.readline()
        resp.close()  # walk away mid-stream
    stats = await up.wait_for_async(lambda s: s["cancelled"] == 1)
    assert stats["completed"] == 0 and stats["in_flight"] == 0


# --- control: script, header override, recording, stats ------------------------------------


def test_script_order_then_default(up: FakeUpstream, client: httpx.Client) -> None:
    up.set_default(Behavior(content="default"))
    up.script(Behavior(content="one"), Behavior(status=418), Behavior(content="three"))
    assert chat(client).json()["choices"][0]["message"]["content"] == "one"
    assert client.get("/v1/models").status_code == 418  # any route consumes the next entry
    assert claude(client).json()["content"][0]["text"] == "three"
    assert chat(client).json()["choices"][0]["message"]["content"] == "default"


def test_header_override(up: FakeUpstream, client: httpx.Client) -> None:
    up.set_default(Behavior(content="default"))
    up.script(Behavior(content="scripted"))
    r = chat(client, headers={"x-fake-behavior": '{"status": 503, "retry_after": 1}'})
    assert (r.status_code, r.headers["retry-after"]) == (503, "1")
    r = chat(client, headers={"x-fake-behavior": '{"stream_chunks": 2}'})
    assert r.json()["choices"][0]["message"]["content"] == "default"  # over the default
    # The override did not eat the script.
    assert chat(client).json()["choices"][0]["message"]["content"] == "scripted"
    bad = chat(client, headers={"x-fake-behavior": '{"no_such_field": 1}'})
    assert bad.status_code == 400 and "no_such_field" in bad.json()["error"]["message"]
    assert chat(client, headers={"x-fake-behavior": "{oops"}).status_code == 400


def test_recorded_requests(up: FakeUpstream, client: httpx.Client) -> None:
    before = time.time()
    chat(client, headers={"X-Custom": "yes"})
    client.get("/v1/models")
    first, second = up.requests()
    assert (first.path, first.method) == ("/v1/chat/completions", "POST")
    assert first.headers["x-custom"] == "yes"
    assert first.json == {"model": "gpt-test", "messages": USER}
    assert before <= first.received_at <= time.time()
    assert (second.path, second.method, second.json) == ("/v1/models", "GET", None)
    client.get("/__control/stats")  # control calls are neither recorded nor counted
    assert len(up.requests()) == 2 and up.stats()["received"] == 2


def test_recording_is_bounded_or_off() -> None:
    with FakeUpstream(max_recorded=3) as bounded, httpx.Client() as c:
        for i in range(5):
            c.post(bounded.openai_base_url + "/embeddings", json={"model": "e", "input": str(i)})
        assert [r.json["input"] for r in bounded.requests()] == ["2", "3", "4"]
        assert bounded.stats()["received"] == 5
    with FakeUpstream(record=False) as silent, httpx.Client() as c:
        c.get(silent.openai_base_url + "/models")
        assert silent.requests() == [] and silent.stats()["completed"] == 1


def test_wait_for_times_out(up: FakeUpstream) -> None:
    with pytest.raises(TimeoutError):
        up.wait_for(lambda s: s["received"] > 0, timeout=0.05)


def test_reset_restores_constructor_default() -> None:
    with FakeUpstream(default=Behavior(content="base")) as fake, httpx.Client() as c:
        url = fake.openai_base_url + "/chat/completions"
        fake.set_default(Behavior(content="changed"))
        fake.script(Behavior(status=500))
        fake.reset()
        r = c.post(url, json={"model": "m", "messages": USER})
        assert r.json()["choices"][0]["message"]["content"] == "base"
        assert fake.stats()["received"] == 1 and len(fake.requests()) == 1


def test_concurrent_requests_are_counted(up: FakeUpstream) -> None:
    up.set_default(Behavior(latency_ms=30))

    def hit() -> None:
        with httpx.Client(timeout=5) as c:
            assert (
                c.post(
                    up.openai_base_url + "/chat/completions", json={"model": "m", "messages": USER}
                ).status_code
                == 200
            )

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for t in threads:
        t.start()
    up.wait_for(lambda s: s["in_flight"] > 1)
    for t in threads:
        t.join()
    assert up.wait_for(lambda s: s["completed"] == 20)["in_flight"] == 0


def test_http_control_endpoints(up: FakeUpstream, client: httpx.Client) -> None:
    assert client.post("/__control/default", json={"content": "via http"}).json() == {"ok": True}
    assert (
        client.post("/__control/script", json=[{"status": 502}, {"content": "second"}]).status_code
        == 200
    )
    assert chat(client).status_code == 502
    assert chat(client).json()["choices"][0]["message"]["content"] == "second"
    assert chat(client).json()["choices"][0]["message"]["content"] == "via http"
    stats = client.get("/__control/stats").json()
    assert stats == {"received": 3, "completed": 3, "cancelled": 0, "in_flight": 0}
    recorded = client.get("/__control/requests").json()
    assert [r["path"] for r in recorded] == ["/v1/chat/completions"] * 3
    assert recorded[0]["json"]["model"] == "gpt-test" and "received_at" in recorded[0]
    assert client.post("/__control/default", json={"bogus": 1}).status_code == 400
    assert client.post("/__control/script", json={"status": 500}).status_code == 400
    assert client.post("/__control/reset").json() == {"ok": True}
    assert client.get("/__control/stats").json()["received"] == 0
    assert chat(client).json()["choices"][0]["message"]["content"] == "echo: hello fake world"


def test_start_on_busy_port_fails(server: FakeUpstream) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        FakeUpstream(port=port).start()


def test_stop_with_requests_in_flight_is_quick() -> None:
    fake = FakeUpstream(default=Behavior(hang=True)).start()
    errors: list[Exception] = []

    def hit() -> None:
        try:
            httpx.get(fake.openai_base_url + "/models", timeout=5)
        except httpx.HTTPError as exc:
            errors.append(exc)

    caller = threading.Thread(target=hit)
    caller.start()
    fake.wait_for(lambda s: s["in_flight"] == 1)
    start = time.monotonic()
    fake.stop()
    fake.stop()  # idempotent
    caller.join(timeout=5)
    assert time.monotonic() - start < 2
    assert len(errors) == 1
    assert not [t for t in threading.enumerate() if t.name == f"fake-upstream {fake.url}"]


# --- CLI -----------------------------------------------------------------------------------


def test_cli_serves_and_prints_its_address() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "groundgate.testing.fake_upstream",
            "--port",
            "0",
            "--latency-ms",
            "5",
            "--no-record",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        r = httpx.post(
            url + "/v1/chat/completions", json={"model": "m", "messages": USER}, timeout=5
        )
        assert r.json()["choices"][0]["message"]["content"] == "echo: hello fake world"
        assert httpx.get(url + "/__control/stats").json()["completed"] == 1
        assert httpx.get(url + "/__control/requests").json() == []  # --no-record
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Traceback" not in err and "RuntimeWarning" not in err


async def test_usable_from_async_tests(up: FakeUpstream) -> None:
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(
            *[session.get(up.openai_base_url + "/models") for _ in range(5)]
        )
        assert [r.status for r in results] == [200] * 5
        for r in results:
            r.release()
    await up.wait_for_async(lambda s: s["completed"] == 5)
