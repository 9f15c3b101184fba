"""End to end: the official openai SDK against a real gateway process and a real fake upstream."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.conftest import FAKE_OPENAI_KEY
from tests.servers import GatewayProcess

CONTEXT = (
    "Groundgate is an OpenAI-compatible gateway written in Python.\n\n"
    "The embedded store is SQLite in WAL mode. Traces are written in batches off the "
    "response path.\n\n"
    "The default port of the server is 8080."
)


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=20)


def test_local_model_answers_with_citations(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="local",
        messages=[
            {"role": "system", "content": CONTEXT},
            {"role": "user", "content": "Which port does the server use by default?"},
        ],
    )
    completion = raw.parse()
    answer = completion.choices[0].message.content or ""
    assert "8080" in answer
    assert "[3]" in answer
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert raw.headers["x-groundgate-source"] == "model"
    assert raw.headers["x-groundgate-model"] == "local:extractive"
    assert float(raw.headers["x-groundgate-cost-usd"]) == 0.0
    extra = completion.model_extra or {}
    assert extra["groundgate"]["trace_id"] == raw.headers["x-groundgate-trace-id"]
    cited = [c["index"] for c in extra["groundgate"]["citations"]]
    assert 3 in cited


def test_local_model_abstains_without_support(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="local",
        messages=[
            {"role": "system", "content": CONTEXT},
            {"role": "user", "content": "What is the boiling point of mercury?"},
        ],
    )
    answer = completion.choices[0].message.content or ""
    assert "could not find" in answer.lower()
    assert "[" not in answer


def test_local_model_streams(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="local",
        stream=True,
        stream_options={"include_usage": True},
        messages=[
            {"role": "system", "content": CONTEXT},
            {"role": "user", "content": "What is the embedded store?"},
        ],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "SQLite" in text
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    tail = (chunks[-1].model_extra or {})["groundgate"]
    assert tail["model"] == "local:extractive"
    assert [c["index"] for c in tail["citations"]] == [2]


def test_passthrough_forwards_parameters_and_key(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    # JSON, as the response_format asks (the schema guard would re-ask anything else).
    fake_upstream.script(Behavior(content='{"greeting": "hello there"}'))
    completion = client.chat.completions.create(
        model="gpt-fake",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there"},
        ],
        temperature=0.3,
        top_p=0.9,
        max_tokens=50,
        stop=["END"],
        seed=7,
        tools=tools,
        tool_choice="auto",
        response_format={"type": "json_object"},
        extra_body={"top_k": 5},
    )
    assert completion.choices[0].message.content == '{"greeting": "hello there"}'
    assert completion.model == "gpt-fake"
    sent = fake_upstream.requests()[-1]
    body = sent.json
    assert isinstance(body, dict)
    assert body["model"] == "gpt-4o-mini"
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9 and body["max_tokens"] == 50
    assert body["stop"] == ["END"] and body["seed"] == 7 and body["tool_choice"] == "auto"
    assert body["tools"] == tools
    assert body["response_format"] == {"type": "json_object"}
    assert body["top_k"] == 5
    assert sent.headers["authorization"] == f"Bearer {FAKE_OPENAI_KEY}"


def test_tool_calls_come_back(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    fake_upstream.script(Behavior(tool_calls=[call]))
    completion = client.chat.completions.create(
        model="gpt-fake",
        messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"city": "Oslo"}
    # A tool result goes back in the next turn and is forwarded as is.
    client.chat.completions.create(
        model="gpt-fake",
        messages=[
            {"role": "user", "content": "weather in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "12 C"},
        ],
    )
    forwarded = fake_upstream.requests()[-1].json
    assert isinstance(forwarded, dict)
    assert forwarded["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "12 C"}


def test_stream_passthrough_with_usage_and_cost(
    client: openai.OpenAI, fake_upstream: FakeUpstream, gateway: GatewayProcess
) -> None:
    fake_upstream.script(
        Behavior(content="one two three four", prompt_tokens=10, completion_tokens=4)
    )
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-fake",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "count"}],
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    last = chunks[-1]
    assert last.usage is not None and last.usage.prompt_tokens == 10
    # 10 * 150000/1e6 + 4 * 600000/1e6 = 1.5 + 2.4
    assert (last.model_extra or {})["groundgate"]["cost_usd"] == pytest.approx(3.9)
    trace_id = raw.headers["x-groundgate-trace-id"]
    trace = httpx.get(f"{gateway.url}/v1/traces/{trace_id}").json()
    assert trace["cost_usd"] == pytest.approx(3.9)
    assert trace["stream"] is True and trace["ttft_ms"] is not None


def test_stream_without_include_usage_has_no_usage_chunk(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-fake", stream=True, messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    sent = fake_upstream.requests()[-1].json
    assert isinstance(sent, dict)
    # The gateway still asks upstream for usage, for cost accounting.
    assert sent["stream_options"] == {"include_usage": True}


def test_anthropic_model_through_openai_sdk(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="claude-fake",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "ping"},
        ],
        max_tokens=64,
    )
    assert completion.choices[0].message.content == "echo: ping"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model="claude-fake", stream=True, messages=[{"role": "user", "content": "pong"}]
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: pong"


def test_fallback_chain_uses_next_deployment(
    client: openai.OpenAI, gateway: GatewayProcess
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="chain", messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.parse().choices[0].message.content == "echo: hello"
    assert raw.headers["x-groundgate-source"] == "fallback"
    assert raw.headers["x-groundgate-model"] == "fake:gpt-4o-mini"
    trace = httpx.get(f"{gateway.url}/v1/traces/{raw.headers['x-groundgate-trace-id']}").json()
    # The dead deployment is tried twice (max_attempts = 2), then the next one answers.
    assert [(a["deployment"], a["status"], a["try"]) for a in trace["attempts"]] == [
        ("dead:gpt-4o", "error", 1),
        ("dead:gpt-4o", "error", 2),
        ("fake:gpt-4o-mini", "ok", 1),
    ]


def test_models_and_embeddings(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"local", "gpt-fake", "claude-fake", "all-minilm-l6-v2", "fake-embed"} <= ids
    # The SDK asks for base64 by default and decodes it.
    result = client.embeddings.create(
        model="all-minilm-l6-v2",
        input=["a cat sits on the mat", "a kitten on a rug", "stock markets fell sharply"],
    )
    vectors = [d.embedding for d in result.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    dot = [sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors]
    assert dot[0] == pytest.approx(1.0, abs=1e-3)
    assert dot[1] > dot[2]
    assert result.usage.prompt_tokens > 0
    floats = client.embeddings.create(model="fake-embed", input="hello", encoding_format="float")
    assert len(floats.data) == 1 and len(floats.data[0].embedding) == 8
