"""Reply builder for the fake Anthropic Messages API (``POST /v1/messages``), plain and SSE.

Scripted ``tool_calls`` are given in the OpenAI shape (one vocabulary for tests) and come out
as ``tool_use`` content blocks, with their JSON arguments parsed into ``input``.
"""

from __future__ import annotations

from typing import Any

import orjson

from groundgate.testing.fake_state import Behavior
from groundgate.testing.fake_text import (
    completion_words,
    count_words,
    last_user_text,
    normalise_tool_calls,
    pieces,
    reply_text,
    shape,
    text_of,
)
from groundgate.testing.fake_wire import BadRequest, JsonReply, Reply, SseEvent, StreamReply


def build_messages(body: Any, behavior: Behavior, seq: int) -> Reply:
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: at least one message is required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise BadRequest("max_tokens: Field required")

    tool_calls = normalise_tool_calls(behavior.tool_calls or [])
    shaped = shape(
        reply_text(behavior, last_user_text(messages)), max_tokens, body.get("stop_sequences")
    )
    if tool_calls:
        stop_reason = "tool_use"
    elif shaped.truncated:
        stop_reason = "max_tokens"
    elif shaped.stop_sequence is not None:
        stop_reason = "stop_sequence"
    else:
        stop_reason = "end_turn"
    input_tokens = behavior.prompt_tokens
    if input_tokens is None:
        input_tokens = _prompt_words(body.get("system"), messages)
    output_tokens = behavior.completion_tokens
    if output_tokens is None:
        output_tokens = completion_words(shaped.text, tool_calls)

    blocks: list[dict[str, Any]] = []
    if shaped.text is not None:
        blocks.append({"type": "text", "text": shaped.text})
    for i, call in enumerate(tool_calls):
        given_id = (behavior.tool_calls or [])[i].get("id")
        blocks.append(
            {
                "type": "tool_use",
                "id": given_id or f"toolu_fake_{i}",
                "name": call["function"]["name"],
                "input": _tool_input(call["function"]["arguments"]),
            }
        )
    message = {
        "id": f"msg_fake_{seq}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": shaped.stop_sequence,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
    if body.get("stream") is not True:
        return JsonReply(message)
    return StreamReply(_stream_events(message, behavior.stream_chunks))


def _stream_events(message: dict[str, Any], n: int) -> list[SseEvent]:
    """The Messages API event sequence for a finished ``message``."""
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events = [_event("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            fragments = pieces(block["text"], n)
            delta_kind, field = "text_delta", "text"
        else:
            opening = {**block, "input": {}}
            fragments = pieces(orjson.dumps(block["input"]).decode(), n)
            delta_kind, field = "input_json_delta", "partial_json"
        events.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        if index == 0:
            events.append(_event("ping", {"type": "ping"}))
        for fragment in fragments:
            delta = {"type": delta_kind, field: fragment}
            data = {"type": "content_block_delta", "index": index, "delta": delta}
            events.append(_event("content_block_delta", data, content=True))
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    if not message["content"]:
        events.append(_event("ping", {"type": "ping"}))
    end = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    events.append(
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": end,
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    events.append(_event("message_stop", {"type": "message_stop"}))
    return events


def _event(name: str, data: dict[str, Any], *, content: bool = False) -> SseEvent:
    return SseEvent(orjson.dumps(data), event=name, content=content)


def _tool_input(arguments: str) -> dict[str, Any]:
    """Arguments JSON as a dict; anything else (Anthropic requires an object) becomes {}."""
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _prompt_words(system: Any, messages: list[Any]) -> int:
    """Whitespace words in the system prompt and every message (text and tool results)."""
    total = count_words(text_of(system))
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        total += count_words(text_of(content))
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    total += count_words(text_of(block.get("content")))
    return total
