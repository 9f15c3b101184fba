"""End to end through the openai SDK: the schema guard re-asks a malformed structured answer
(content for ``response_format``, arguments for tool calls) with its validation errors and
gives the client the valid one, whole or streamed, billing every try; gives up with a 502
``schema_validation_failed`` (a real status for streams too); flags without re-asking when so
configured; and refuses a client schema that is not JSON Schema before anything goes upstream.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.servers import GatewayProcess

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
AS_PERSON: Any = {
    "type": "json_schema",
    "json_schema": {"name": "person", "schema": PERSON, "strict": True},
}
ASK = [{"role": "user", "content": "Who wrote the first program?"}]
INVALID = '{"name": "Ada", "age": "thirty-six"}'
VALID = '{"name": "Ada", "age": 36}'
# The session gateway prices fake:gpt-4o-mini at 150000 / 600000 USD per million tokens.
IN_USD, OUT_USD = 0.15, 0.6


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=20)


def sent_messages(fake: FakeUpstream) -> list[list[dict[str, Any]]]:
    return [r.json["messages"] for r in fake.requests() if r.path.endswith("/chat/completions")]


def trace_of(gateway: GatewayProcess, trace_id: str) -> dict[str, Any]:
    trace: dict[str, Any] = httpx.get(f"{gateway.url}/v1/traces/{trace_id}").json()
    return trace


def test_a_malformed_answer_is_reasked_and_the_valid_one_returned(
    client: openai.OpenAI, fake_upstream: FakeUpstream, gateway: GatewayProcess
) -> None:
    fake_upstream.script(
        Behavior(content=INVALID, prompt_tokens=100, completion_tokens=10),
        Behavior(content=VALID, prompt_tokens=200, completion_tokens=20),
    )
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-fake", messages=ASK, response_format=AS_PERSON
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == VALID
    assert completion.choices[0].finish_reason == "stop"
    first, second = sent_messages(fake_upstream)
    assert first == ASK
    # Asked again: the question, the invalid answer, and what was wrong with it.
    assert second[: len(ASK)] == ASK
    assert second[1] == {"role": "assistant", "content": INVALID}
    assert second[2]["role"] == "user"
    assert 'content at $.age: the value is not of type "integer"' in second[2]["content"]
    # Both calls are billed: tokens and cost.
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (300, 30)
    cost = 300 * IN_USD + 30 * OUT_USD
    assert float(raw.headers["x-groundgate-cost-usd"]) == pytest.approx(cost)
    trace = trace_of(gateway, raw.headers["x-groundgate-trace-id"])
    assert trace["cost_usd"] == pytest.approx(cost)
    assert [a["status"] for a in trace["attempts"]] == ["ok", "ok"]
    assert "schema" in [s["name"] for s in trace["spans"]]


def test_tool_call_arguments_are_reasked(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }

    def call(arguments: str) -> dict[str, Any]:
        return {"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": arguments}}  # fmt: skip

    fake_upstream.script(
        Behavior(tool_calls=[call('{"town": "Oslo"}')]),
        Behavior(tool_calls=[call('{"city": "Oslo"}')]),
    )
    completion = client.chat.completions.create(
        model="gpt-fake",
        messages=ASK,
        tools=[tool],  # type: ignore[list-item]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"city": "Oslo"}
    second = sent_messages(fake_upstream)[1]
    assert [m["role"] for m in second] == ["user", "assistant", "tool", "user"]
    assert second[1]["tool_calls"][0]["function"]["arguments"] == '{"town": "Oslo"}'
    assert second[2]["tool_call_id"] == "call_1"
    assert '"city" is a required property' in second[2]["content"]


def test_an_answer_that_stays_invalid_is_a_502_after_every_try(
    client: openai.OpenAI, fake_upstream: FakeUpstream, gateway: GatewayProcess
) -> None:
    fake_upstream.script(*[Behavior(content="not JSON at all")] * 4)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="gpt-fake", messages=ASK, response_format={"type": "json_object"}
        )
    error = caught.value
    assert error.status_code == 502
    assert error.code == "schema_validation_failed"
    assert "after 3 tries" in error.message and "content: not valid JSON" in error.message
    assert "not JSON at all" not in error.message  # what failed, not the answer itself
    assert len(sent_messages(fake_upstream)) == 3  # 1 + max_reasks (2 by default)
    trace = trace_of(gateway, error.response.headers["x-groundgate-trace-id"])
    assert trace["http_status"] == 502 and len(trace["attempts"]) == 3


def test_a_streamed_answer_is_held_reasked_and_streamed_valid(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Behavior(content=INVALID, prompt_tokens=100, completion_tokens=10),
        Behavior(content=VALID, prompt_tokens=200, completion_tokens=20),
    )
    chunks = list(
        client.chat.completions.create(
            model="gpt-fake",
            messages=ASK,
            response_format=AS_PERSON,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    with_choices = [c for c in chunks if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == VALID
    assert [c.choices[0].finish_reason for c in with_choices][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    usage = chunks[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (300, 30)
    cost = (chunks[-1].model_extra or {})["groundgate"]["cost_usd"]
    assert cost == pytest.approx(300 * IN_USD + 30 * OUT_USD)
    first, second = fake_upstream.requests()[-2:]
    assert first.json["stream"] is True and "stream" not in second.json  # asked again whole
    assert second.json["messages"][1] == {"role": "assistant", "content": INVALID}


def test_a_streamed_answer_that_stays_invalid_is_a_502_status(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(*[Behavior(content="[1, 2]")] * 4)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="gpt-fake", messages=ASK, response_format={"type": "json_object"}, stream=True
        )
    assert caught.value.status_code == 502
    assert caught.value.code == "schema_validation_failed"
    assert "expected a JSON object, got an array" in caught.value.message
    assert len(sent_messages(fake_upstream)) == 3


@pytest.mark.parametrize("stream", [False, True])
def test_flag_passes_the_invalid_answer_without_reasking(
    client: openai.OpenAI, fake_upstream: FakeUpstream, stream: bool
) -> None:
    fake_upstream.script(Behavior(content=INVALID))
    response = client.chat.completions.create(
        model="gpt-fake-schema-flag", messages=ASK, response_format=AS_PERSON, stream=stream
    )
    if isinstance(response, openai.Stream):
        text = "".join(c.choices[0].delta.content or "" for c in response if c.choices)
    else:
        text = response.choices[0].message.content or ""
    assert text == INVALID
    assert len(sent_messages(fake_upstream)) == 1


def test_a_client_schema_that_is_not_json_schema_is_a_400_before_upstream(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    bad: Any = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strnig"}}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-fake", messages=ASK, response_format=bad)
    assert caught.value.code == "invalid_schema"
    assert (caught.value.body or {}).get("param") == "response_format.json_schema.schema"  # type: ignore[union-attr]
    assert sent_messages(fake_upstream) == []
