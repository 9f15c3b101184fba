"""Pure unit tests of the OpenAI <-> Anthropic Messages API translation (no I/O)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from groundgate.errors import (
    InvalidRequest,
    ProviderError,
    UnsupportedRequest,
    UpstreamUnavailable,
)
from groundgate.providers.anthropic_translate import (
    DEFAULT_MAX_TOKENS,
    StreamTranslator,
    finish_reason,
    from_anthropic_response,
    stream_error,
    to_anthropic_request,
)
from groundgate.providers.base import ChatCall, Chunk

USER = {"role": "user", "content": "hi"}


def req(messages: list[dict[str, Any]] | None = None, **params: Any) -> dict[str, Any]:
    return to_anthropic_request(ChatCall(messages=messages or [USER], params=params), "claude-x")


# ---------------------------------------------------------------------------------- messages


def test_minimal_request() -> None:
    assert req() == {
        "model": "claude-x",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": DEFAULT_MAX_TOKENS,
    }


def test_system_and_developer_messages_become_top_level_system() -> None:
    body = req(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Cite sources."}]},
            USER,
            {"role": "system", "content": "Late rule."},
        ]
    )
    assert body["system"] == "Be brief.\n\nCite sources.\n\nLate rule."
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_no_system_key_without_system_messages() -> None:
    assert "system" not in req()


def test_consecutive_same_role_messages_are_merged() -> None:
    body = req(
        [
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "three"},
            {"role": "assistant", "content": "four"},
            {"role": "user", "content": "five"},
        ]
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "three"}, {"type": "text", "text": "four"}],
        },
        {"role": "user", "content": "five"},
    ]


def test_empty_messages_are_skipped_and_an_empty_conversation_is_refused() -> None:
    body = req([{"role": "user", "content": ""}, {"role": "user", "content": "real"}])
    assert body["messages"] == [{"role": "user", "content": "real"}]
    with pytest.raises(InvalidRequest):
        req([{"role": "system", "content": "only a system prompt"}])


def test_unknown_role_is_refused() -> None:
    with pytest.raises(UnsupportedRequest):
        req([{"role": "function", "name": "f", "content": "x"}])


def test_image_parts_data_url_and_http_url() -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]
    body = req([{"role": "user", "content": content}])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("data:image/png,notbase64", InvalidRequest),
        ("ftp://example.com/a.png", InvalidRequest),
        ("data:image/tiff;base64,AAAA", UnsupportedRequest),
    ],
)
def test_bad_image_urls_are_refused(url: str, error: type[Exception]) -> None:
    part = {"type": "image_url", "image_url": {"url": url}}
    with pytest.raises(error):
        req([{"role": "user", "content": [part]}])


def test_unsupported_content_part_is_refused() -> None:
    part = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(UnsupportedRequest):
        req([{"role": "user", "content": [part]}])


def test_assistant_tool_calls_become_tool_use_blocks() -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    body = req(
        [
            USER,
            {"role": "assistant", "content": "Let me check.", "tool_calls": [call]},
        ]
    )
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    }


def test_tool_call_with_null_content_and_empty_arguments() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "now", "arguments": ""}}
    body = req([USER, {"role": "assistant", "content": None, "tool_calls": [call]}])
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "c", "name": "now", "input": {}}
    ]


@pytest.mark.parametrize("arguments", ['{"city": ', "[1, 2]"])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    with pytest.raises(InvalidRequest):
        req([USER, {"role": "assistant", "tool_calls": [call]}])


def test_tool_messages_become_one_user_turn_of_tool_results() -> None:
    calls = [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    body = req(
        [
            USER,
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "a", "content": "result a"},
            {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "res b"}]},
            {"role": "user", "content": "and now?"},
        ]
    )
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "a", "content": "result a"},
        {"type": "tool_result", "tool_use_id": "b", "content": "res b"},
        {"type": "text", "text": "and now?"},
    ]


def test_tool_results_are_put_first_in_their_user_turn() -> None:
    body = req(
        [
            {"role": "user", "content": "context first"},
            {"role": "tool", "tool_call_id": "a", "content": "r"},
        ]
    )
    kinds = [block["type"] for block in body["messages"][0]["content"]]
    assert kinds == ["tool_result", "text"]


def test_tool_message_without_id_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        req([USER, {"role": "tool", "content": "r"}])


# ------------------------------------------------------------------------------------ params


def test_max_tokens_mapping() -> None:
    assert req(max_tokens=50)["max_tokens"] == 50
    assert req(max_completion_tokens=70)["max_tokens"] == 70
    assert req(max_tokens=50, max_completion_tokens=70)["max_tokens"] == 70
    assert req(max_tokens=None)["max_tokens"] == DEFAULT_MAX_TOKENS
    with pytest.raises(InvalidRequest):
        req(max_tokens=0)


def test_temperature_is_clamped_to_anthropic_range() -> None:
    assert req(temperature=0.3)["temperature"] == 0.3
    assert req(temperature=1.7)["temperature"] == 1.0
    assert req(temperature=0)["temperature"] == 0.0
    with pytest.raises(InvalidRequest):
        req(temperature="hot")


def test_top_p_stop_and_user() -> None:
    body = req(top_p=0.9, stop="END", user="user-42")
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "user-42"}
    assert req(stop=["a", "b"])["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in req(stop=[])


def test_unsupported_params_are_dropped() -> None:
    body = req(
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        logit_bias={"1": 2},
        logprobs=True,
        top_logprobs=3,
        n=1,
    )
    assert set(body) == {"model", "messages", "max_tokens"}


def test_n_above_one_is_refused() -> None:
    with pytest.raises(UnsupportedRequest) as info:
        req(n=2)
    assert info.value.param == "n"


def test_legacy_functions_are_refused() -> None:
    with pytest.raises(UnsupportedRequest):
        req(functions=[{"name": "f", "parameters": {}}])


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_tools_translate_with_default_auto_choice() -> None:
    bare = {"type": "function", "function": {"name": "now"}}
    body = req(tools=[WEATHER_TOOL, bare])
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    assert req(tools=[WEATHER_TOOL], tool_choice=choice)["tool_choice"] == expected


def test_parallel_tool_calls_false_disables_parallel_use() -> None:
    body = req(tools=[WEATHER_TOOL], parallel_tool_calls=False)
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    body = req(tools=[WEATHER_TOOL], tool_choice="required", parallel_tool_calls=False)
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    body = req(tools=[WEATHER_TOOL], tool_choice="none", parallel_tool_calls=False)
    assert body["tool_choice"] == {"type": "none"}
    assert "disable_parallel_tool_use" not in req(tools=[WEATHER_TOOL])["tool_choice"]


def test_tool_choice_without_tools_is_not_sent() -> None:
    body = req(tool_choice="auto", parallel_tool_calls=False)
    assert "tool_choice" not in body and "tools" not in body


def test_bad_tools_are_refused() -> None:
    with pytest.raises(UnsupportedRequest):
        req(tools=[{"type": "code_interpreter"}])
    with pytest.raises(InvalidRequest):
        req(tools=[{"type": "function", "function": {"description": "no name"}}])
    with pytest.raises(InvalidRequest):
        req(tools=[WEATHER_TOOL], tool_choice="sometimes")


def test_response_format_json_object_adds_instruction() -> None:
    body = req(
        [{"role": "system", "content": "Be brief."}, USER],
        response_format={"type": "json_object"},
    )
    first, instruction = body["system"].split("\n\n")
    assert first == "Be brief."
    assert "JSON" in instruction
    assert "response_format" not in body


def test_response_format_json_schema_includes_the_schema() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    body = req(response_format=fmt)
    assert "JSON" in body["system"]
    assert orjson.dumps(schema).decode() in body["system"]


def test_response_format_text_changes_nothing() -> None:
    assert "system" not in req(response_format={"type": "text"})


# ---------------------------------------------------------------------------------- response


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": content,
        "stop_reason": stop_reason,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_creation_input_tokens": 3,
            "cache_read_input_tokens": 2,
        },
    }


def test_text_response() -> None:
    data = message([{"type": "text", "text": "Hello "}, {"type": "text", "text": "world"}])
    completion = from_anthropic_response(data, "a:m")
    assert completion.choices == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello world"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert completion.id == "msg_1"
    assert isinstance(completion.created, int) and completion.created > 0
    assert completion.usage.prompt_tokens == 15  # 10 + cache writes 3 + cache reads 2
    assert completion.usage.completion_tokens == 5


def test_tool_use_response() -> None:
    data = message(
        [
            {"type": "thinking", "thinking": "hmm", "signature": "x"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
        ],
        stop_reason="tool_use",
    )
    choice = from_anthropic_response(data, "a:m").choices[0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [c["id"] for c in calls] == ["toolu_1", "toolu_2"]
    assert calls[0]["type"] == "function"
    assert calls[0]["function"]["name"] == "get_weather"
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"city": "Oslo"}
    assert calls[1]["function"]["arguments"] == "{}"


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, "stop"),
        ("something_new", "stop"),
    ],
)
def test_finish_reason(stop_reason: str | None, expected: str) -> None:
    assert finish_reason(stop_reason) == expected


def test_response_without_content_is_a_transient_error() -> None:
    with pytest.raises(ProviderError) as info:
        from_anthropic_response({"type": "error"}, "a:m")
    assert info.value.transient


# ------------------------------------------------------------------------------------ stream


def deltas(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [c.choices[0]["delta"] for c in chunks]


def feed_all(events: list[dict[str, Any]]) -> tuple[StreamTranslator, list[Chunk]]:
    translator = StreamTranslator("a:m")
    out: list[Chunk] = []
    for event in events:
        out.extend(translator.feed(event))
    return translator, out


START = {
    "type": "message_start",
    "message": {
        "id": "msg_s",
        "content": [],
        "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 4},
    },
}


def test_stream_text() -> None:
    translator, chunks = feed_all(
        [
            START,
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
            {"type": "ping"},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "He"},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "y"},
            },
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 7},
            },
            {"type": "message_stop"},
        ]
    )
    assert translator.done
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "He"},
        {"content": "y"},
        {},
    ]
    assert all(c.id == "msg_s" for c in chunks)
    assert [c.usage for c in chunks[:-1]] == [None, None, None]
    last = chunks[-1]
    assert last.choices[0]["finish_reason"] == "stop"
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (16, 7)


def test_stream_tool_calls() -> None:
    def tool_start(index: int, tool_id: str, name: str) -> dict[str, Any]:
        block = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
        return {"type": "content_block_start", "index": index, "content_block": block}

    def args(index: int, partial: str) -> dict[str, Any]:
        delta = {"type": "input_json_delta", "partial_json": partial}
        return {"type": "content_block_delta", "index": index, "delta": delta}

    _, chunks = feed_all(
        [
            START,
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "ok"},
            },
            tool_start(1, "toolu_a", "f"),
            args(1, ""),
            args(1, '{"x": '),
            args(1, "1}"),
            tool_start(2, "toolu_b", "g"),
            args(2, "{}"),
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 9},
            },
            {"type": "message_stop"},
        ]
    )
    assert deltas(chunks)[2:-1] == [
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "toolu_a",
                    "type": "function",
                    "function": {"name": "f", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"x": '}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "toolu_b",
                    "type": "function",
                    "function": {"name": "g", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]},
    ]
    assert chunks[-1].choices[0]["finish_reason"] == "tool_calls"


def test_stream_arguments_for_unknown_block_is_an_error() -> None:
    delta = {"type": "input_json_delta", "partial_json": "{}"}
    with pytest.raises(ProviderError):
        feed_all([START, {"type": "content_block_delta", "index": 3, "delta": delta}])


def test_stream_ignores_thinking_and_unknown_events() -> None:
    translator, chunks = feed_all(
        [
            START,
            {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "hm"},
            },
            {"type": "brand_new_event"},
        ]
    )
    assert len(chunks) == 1 and not translator.done


def test_stream_message_stop_without_message_delta_still_finishes() -> None:
    translator, chunks = feed_all([START, {"type": "message_stop"}])
    assert translator.done
    assert chunks[-1].choices[0]["finish_reason"] == "stop"
    assert chunks[-1].usage is not None


def test_stream_error_events() -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(UpstreamUnavailable) as info:
        feed_all([START, overloaded])
    assert info.value.transient and "Overloaded" in info.value.message

    bad = {"type": "error", "error": {"type": "invalid_request_error", "message": "nope"}}
    with pytest.raises(ProviderError) as info2:
        feed_all([START, bad])
    assert not info2.value.transient

    assert stream_error({"type": "api_error", "message": "boom"}, "a:m").transient


def test_stream_event_that_is_not_an_object() -> None:
    with pytest.raises(ProviderError) as info:
        StreamTranslator("a:m").feed([1, 2])
    assert info.value.transient
