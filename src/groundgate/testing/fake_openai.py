"""Reply builders for the fake OpenAI API: chat completions (plain and SSE), embeddings, models.

Builders are pure: request body + behaviour + sequence number in, reply out. ``fake_wire``
puts the reply on the wire and applies the failure behaviours.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import time
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

FINGERPRINT = "fp_fake_upstream"
MODEL_IDS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "fake-model")
_DONE = SseEvent(b"[DONE]")


def build_chat(body: Any, behavior: Behavior, seq: int) -> Reply:
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter")

    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128:
        raise BadRequest("'n' must be an integer between 1 and 128")
    tool_calls = normalise_tool_calls(behavior.tool_calls or [])
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    shaped = shape(reply_text(behavior, last_user_text(messages)), max_tokens, body.get("stop"))
    if tool_calls:
        finish = "tool_calls"
    elif shaped.truncated:
        finish = "length"
    else:
        finish = "stop"
    prompt = behavior.prompt_tokens
    if prompt is None:
        prompt = sum(
            count_words(text_of(m.get("content"))) for m in messages if isinstance(m, dict)
        )
    completion = behavior.completion_tokens
    if completion is None:
        completion = completion_words(shaped.text, tool_calls) * n
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    head = {
        "id": f"chatcmpl-fake-{seq}",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": FINGERPRINT,
    }

    if body.get("stream") is True:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        # With n > 1 the choices stream one after another, each ending with its own finish.
        events = [
            event
            for index in range(n)
            for event in _chat_stream(
                head, shaped.text, tool_calls, finish, behavior.stream_chunks, index
            )
        ]
        if include_usage and behavior.report_usage:
            events.append(_chunk(head, [], usage))
        events.append(_DONE)
        return StreamReply(events)

    message: dict[str, Any] = {"role": "assistant", "content": shaped.text, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    choices = [
        {"index": index, "message": message, "logprobs": None, "finish_reason": finish}
        for index in range(n)
    ]
    body = {**head, "object": "chat.completion", "choices": choices}
    if behavior.report_usage:
        body["usage"] = usage
    return JsonReply(body)


def _chat_stream(
    head: dict[str, Any],
    text: str | None,
    tool_calls: list[dict[str, Any]],
    finish: str,
    n: int,
    choice: int = 0,
) -> list[SseEvent]:
    events = [_delta(head, {"role": "assistant", "content": ""}, index=choice)]
    for piece in pieces(text or "", n):
        events.append(_delta(head, {"content": piece}, content=True, index=choice))
    for index, call in enumerate(tool_calls):
        function = call["function"]
        # OpenAI's streaming form: the first delta names the call, later ones carry fragments
        # of the arguments string.
        first = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": function["name"], "arguments": ""},
        }
        events.append(_delta(head, {"tool_calls": [first]}, index=choice))
        for fragment in pieces(function["arguments"], n):
            frag = {"index": index, "function": {"arguments": fragment}}
            events.append(_delta(head, {"tool_calls": [frag]}, content=True, index=choice))
    events.append(_delta(head, {}, finish=finish, index=choice))
    return events


def _delta(
    head: dict[str, Any],
    delta: dict[str, Any],
    *,
    finish: str | None = None,
    content: bool = False,
    index: int = 0,
) -> SseEvent:
    choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
    return _chunk(head, [choice], None, content=content)


def _chunk(
    head: dict[str, Any],
    choices: list[dict[str, Any]],
    usage: dict[str, int] | None,
    *,
    content: bool = False,
) -> SseEvent:
    chunk = {**head, "object": "chat.completion.chunk", "choices": choices}
    if usage is not None:
        chunk["usage"] = usage
    return SseEvent(orjson.dumps(chunk), content=content)


def build_embeddings(body: Any, behavior: Behavior, seq: int) -> Reply:
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter")
    inputs = _embedding_inputs(body.get("input"))
    dims = body.get("dimensions", 8)
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 4096:
        raise BadRequest("'dimensions' must be an integer between 1 and 4096")
    as_base64 = body.get("encoding_format") == "base64"

    data = []
    tokens = 0
    for index, (key, count) in enumerate(inputs):
        tokens += count
        vector = embedding_vector(key, dims)
        encoded: Any = vector
        if as_base64:
            # What the openai SDK asks for by default: little-endian float32, base64.
            encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    if behavior.prompt_tokens is not None:
        tokens = behavior.prompt_tokens
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return JsonReply({"object": "list", "data": data, "model": model, "usage": usage})


def _embedding_inputs(raw: Any) -> list[tuple[str, int]]:
    """(hash key, token count) per input: a string, strings, a token array or token arrays."""
    if isinstance(raw, str):
        return [(raw, count_words(raw))]
    if isinstance(raw, list) and raw:
        if all(isinstance(t, int) for t in raw):
            return [(_token_key(raw), len(raw))]
        if all(isinstance(s, str) for s in raw):
            return [(s, count_words(s)) for s in raw]
        if all(isinstance(a, list) and all(isinstance(t, int) for t in a) for a in raw):
            return [(_token_key(a), len(a)) for a in raw]
    raise BadRequest("'input' must be a string, an array of strings or of token arrays")


def _token_key(tokens: list[int]) -> str:
    return "tokens:" + ",".join(map(str, tokens))


def embedding_vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector from a hash of ``text``: same text, same vector."""
    raw = hashlib.shake_256(text.encode()).digest(4 * dims)
    values = [v / 2**31 - 1.0 for v in struct.unpack(f"<{dims}I", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def build_models(body: Any, behavior: Behavior, seq: int) -> Reply:
    data = [
        {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "fake-upstream"}
        for model in MODEL_IDS
    ]
    return JsonReply({"object": "list", "data": data})
