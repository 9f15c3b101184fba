"""Pure translation between Groundgate's canonical (OpenAI chat) shape and Anthropic's Messages
API: request bodies, finished responses and stream events. No I/O, so every mapping is unit
tested on its own; :mod:`groundgate.providers.anthropic` does the HTTP.

Deliberate, documented departures from a one-to-one mapping:

- ``temperature`` above 1 is clamped to 1 (Anthropic accepts 0..1, OpenAI 0..2).
- ``response_format`` (json_object / json_schema) has no Anthropic equivalent: an instruction
  to answer with JSON only (and the schema, if given) is appended to the system prompt.
- ``seed``, penalties, ``logit_bias``, ``logprobs`` and other OpenAI-only knobs are dropped;
  ``n`` > 1 is refused, since Anthropic returns a single choice.
- system and developer messages, wherever they stand, are joined into the top-level ``system``;
  consecutive same-role turns are merged, as Anthropic requires strict alternation.
- ``max_tokens`` is mandatory upstream: :data:`DEFAULT_MAX_TOKENS` when the client gave none.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from groundgate.errors import InvalidRequest, ProviderError, UnsupportedRequest, UpstreamUnavailable
from groundgate.providers.base import ChatCall, Chunk, Completion, Message, Usage

DEFAULT_MAX_TOKENS = 4096
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Stream error types that are the request's own fault: another try would fail the same way.
_PERMANENT_ERRORS = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
    }
)


# ---------------------------------------------------------------------------------- request


def to_anthropic_request(call: ChatCall, model: str) -> dict[str, Any]:
    """The ``POST /v1/messages`` body (without ``stream``) for a canonical chat call."""
    params = {k: v for k, v in call.params.items() if v is not None}
    if params.get("n", 1) != 1:
        raise UnsupportedRequest("n > 1 is not supported by Anthropic models", param="n")
    if "functions" in params or "function_call" in params:
        raise UnsupportedRequest(
            "the legacy functions/function_call fields are not supported; use tools",
            param="functions",
        )
    system, messages = _messages(call.messages)
    instruction = _json_instruction(params.get("response_format"))
    if instruction:
        system.append(instruction)
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": _max_tokens(params)}
    if system:
        body["system"] = "\n\n".join(system)
    if "temperature" in params:
        body["temperature"] = min(max(_number(params["temperature"], "temperature"), 0.0), 1.0)
    if "top_p" in params:
        body["top_p"] = _number(params["top_p"], "top_p")
    stop = params.get("stop")
    if stop:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise InvalidRequest("stop must be a string or a list of strings", param="stop")
        if [s for s in stops if s]:
            body["stop_sequences"] = [s for s in stops if s]
    tools = params.get("tools")
    if tools:
        body["tools"] = [_tool(tool) for tool in tools]
        choice = _tool_choice(params.get("tool_choice", "auto"))
        if params.get("parallel_tool_calls") is False and choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
        body["tool_choice"] = choice
    if isinstance(params.get("user"), str):
        body["metadata"] = {"user_id": params["user"]}
    return body


def _messages(source: list[Message]) -> tuple[list[str], list[dict[str, Any]]]:
    """System text pulled out, and strictly alternating user/assistant turns of blocks."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(source):
        role = message.get("role")
        if role in ("system", "developer"):
            text = _plain_text(message.get("content"), f"messages[{i}]")
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = _content_blocks(message.get("content"), f"messages[{i}]", images=True)
        elif role == "assistant":
            blocks = _content_blocks(message.get("content"), f"messages[{i}]", images=False)
            blocks += [_tool_use(c, f"messages[{i}]") for c in message.get("tool_calls") or []]
        elif role == "tool":
            role, blocks = "user", [_tool_result(message, f"messages[{i}]")]
        else:
            raise _unsupported(f"messages[{i}]", f"unsupported role {role!r}")
        if not blocks:
            continue  # Anthropic refuses empty turns; an empty message says nothing anyway.
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise InvalidRequest("at least one user or assistant message is required", param="messages")
    for turn in turns:
        if turn["role"] == "user":
            # Tool results must open the user turn that answers the tool calls.
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
        if len(turn["content"]) == 1 and turn["content"][0]["type"] == "text":
            turn["content"] = turn["content"][0]["text"]
    return system, turns


def _invalid(where: str, text: str) -> InvalidRequest:
    return InvalidRequest(f"{where}: {text}", param="messages")


def _unsupported(where: str, text: str) -> UnsupportedRequest:
    return UnsupportedRequest(f"{where}: {text}", param="messages")


def _plain_text(content: Any, where: str) -> str:
    """System text: a string, or text parts joined by newlines."""
    return "\n".join(block["text"] for block in _content_blocks(content, where, images=False))


def _content_blocks(content: Any, where: str, *, images: bool) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _invalid(where, "content must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for part in content:
        part = part if isinstance(part, dict) else {}
        kind = part.get("type")
        if kind in ("text", "refusal"):
            if part.get(kind):
                blocks.append({"type": "text", "text": str(part[kind])})
        elif kind == "image_url" and images:
            blocks.append(_image(part.get("image_url"), where))
        else:
            raise _unsupported(where, f"unsupported content part {kind!r}")
    return blocks


def _image(image_url: Any, where: str) -> dict[str, Any]:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise _invalid(where, "image_url.url must be a string")
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    header, sep, data = url.partition(",")
    media_type = header.removeprefix("data:").removesuffix(";base64")
    if not (sep and header.startswith("data:") and header.endswith(";base64") and data):
        raise _invalid(where, "image URLs must be http(s) or base64 data: URLs")
    if media_type not in _IMAGE_TYPES:
        raise _unsupported(where, f"unsupported image type {media_type!r}")
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _tool_use(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not function.get("name") or not call.get("id"):
        raise _invalid(where, "tool calls need an id and a function name")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        raise _invalid(
            where, f"tool call {call['id']} has arguments that are not valid JSON"
        ) from None
    if not isinstance(parsed, dict):
        raise _invalid(where, f"tool call {call['id']} arguments must be a JSON object")
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": parsed}


def _tool_result(message: Message, where: str) -> dict[str, Any]:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise _invalid(where, "tool messages need a tool_call_id")
    blocks = _content_blocks(message.get("content"), where, images=False)
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_call_id}
    if blocks:
        result["content"] = blocks[0]["text"] if len(blocks) == 1 else blocks
    return result


def _tool(tool: Any) -> dict[str, Any]:
    tool = tool if isinstance(tool, dict) else {}
    function = tool.get("function")
    if tool.get("type", "function") != "function" or not isinstance(function, dict):
        raise UnsupportedRequest("only function tools are supported", param="tools")
    if not isinstance(function.get("name"), str) or not function["name"]:
        raise InvalidRequest("every tool needs a function name", param="tools")
    out: dict[str, Any] = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    simple = {"auto": "auto", "required": "any", "none": "none"}
    if isinstance(choice, str) and choice in simple:
        return {"type": simple[choice]}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str) and function["name"]:
        return {"type": "tool", "name": function["name"]}
    raise InvalidRequest(f"unsupported tool_choice {choice!r}", param="tool_choice")


def _json_instruction(response_format: Any) -> str | None:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind not in ("json_object", "json_schema"):
        return None
    text = "Respond with one valid JSON object only: no prose and no markdown code fences."
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if kind == "json_schema" and schema:
        text += " It must conform to this JSON Schema:\n" + orjson.dumps(schema).decode()
    return text


def _max_tokens(params: dict[str, Any]) -> int:
    value = params.get("max_completion_tokens", params.get("max_tokens", DEFAULT_MAX_TOKENS))
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest("max_tokens must be a positive integer", param="max_tokens")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{name} must be a number", param=name)
    return float(value)


# --------------------------------------------------------------------------------- response


def finish_reason(stop_reason: Any) -> str:
    return _FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def usage_of(data: Any) -> Usage:
    """Prompt tokens include cache writes and reads: all of them were read by the model."""
    if not isinstance(data, dict):
        return Usage()
    prompt = sum(
        int(data.get(key) or 0)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(prompt_tokens=prompt, completion_tokens=int(data.get("output_tokens") or 0))


def from_anthropic_response(data: Any, deployment: str) -> Completion:
    content = data.get("content") if isinstance(data, dict) else None
    if not isinstance(content, list):
        raise _broken(deployment, "returned no content")
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block.get("name"), "arguments": arguments}
            tool_calls.append({"id": block.get("id"), "type": "function", "function": function})
        # thinking, redacted_thinking, server tool blocks: not part of the OpenAI shape.
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if tool_calls:
        message["tool_calls"] = tool_calls
        message["content"] = message["content"] or None
    reason = finish_reason(data.get("stop_reason"))
    return Completion(
        choices=[{"index": 0, "message": message, "finish_reason": reason, "logprobs": None}],
        usage=usage_of(data.get("usage")),
        id=data.get("id"),
        created=int(time.time()),
        extra={"stop_reason": data.get("stop_reason")},
    )


# ----------------------------------------------------------------------------------- stream


class StreamTranslator:
    """Turns Messages API stream events into OpenAI-shaped chunks, one event at a time."""

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment
        self.id: str | None = None
        self.done = False  # message_stop seen
        self._input: Usage = Usage()
        self._output = 0
        self._tool_index: dict[int, int] = {}  # content block index -> tool call index
        self._finished = False  # the finish_reason chunk was emitted

    def feed(self, data: Any) -> list[Chunk]:
        if not isinstance(data, dict):
            raise _broken(self.deployment, "sent a stream event that is not an object")
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message") or {}
            self.id = message.get("id")
            self._input = usage_of(message.get("usage"))
            self._output = self._input.completion_tokens
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                block_index = _block_index(data, default=len(self._tool_index))
                index = self._tool_index.setdefault(block_index, len(self._tool_index))
                function = {"name": block.get("name"), "arguments": ""}
                call = {"index": index, "id": block.get("id"), "type": "function"}
                return [self._chunk({"tool_calls": [{**call, "function": function}]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            return self._delta(data)
        if kind == "message_delta":
            usage = data.get("usage") or {}
            self._output = int(usage.get("output_tokens") or self._output)
            later = usage_of(usage).prompt_tokens  # newer API versions repeat input counts
            self._input.prompt_tokens = max(self._input.prompt_tokens, later)
            return [self._final((data.get("delta") or {}).get("stop_reason"))]
        if kind == "message_stop":
            self.done = True
            return [] if self._finished else [self._final(None)]
        if kind == "error":
            raise stream_error(data.get("error"), self.deployment)
        return []  # ping, content_block_stop and event types added after this was written

    def _delta(self, data: dict[str, Any]) -> list[Chunk]:
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            index = self._tool_index.get(_block_index(data, default=-1))
            if index is None:
                raise _broken(self.deployment, "streamed arguments for an unknown tool call")
            call = {"index": index, "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking, signature and citation deltas have no OpenAI counterpart

    def _chunk(self, delta: dict[str, Any]) -> Chunk:
        return Chunk(choices=[{"index": 0, "delta": delta, "finish_reason": None}], id=self.id)

    def _final(self, stop_reason: Any) -> Chunk:
        self._finished = True
        choice = {"index": 0, "delta": {}, "finish_reason": finish_reason(stop_reason)}
        usage = Usage(self._input.prompt_tokens, self._output)
        return Chunk(choices=[choice], usage=usage, id=self.id)


def _broken(deployment: str, what: str) -> ProviderError:
    """The upstream answered with something that is not a valid Messages API reply."""
    return ProviderError(f"upstream {deployment} {what}", transient=True, deployment=deployment)


def _block_index(data: dict[str, Any], *, default: int) -> int:
    value = data.get("index")
    return value if isinstance(value, int) else default


def stream_error(error: Any, deployment: str) -> ProviderError:
    """An ``error`` event inside a 200 stream; overloaded and server errors are transient."""
    kind = error.get("type") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    text = f"upstream {deployment} failed mid-stream: {kind or 'error'}: {message or error}"
    if kind == "overloaded_error":
        return UpstreamUnavailable(text, transient=True, upstream_status=529, deployment=deployment)
    return ProviderError(text, transient=kind not in _PERMANENT_ERRORS, deployment=deployment)
