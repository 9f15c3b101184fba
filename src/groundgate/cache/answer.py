"""A cached answer: what is stored, how a streamed answer is put back together to be stored,
and how a stored answer is replayed as a stream.

The stored form is the non-streamed one (``choices`` with whole ``message`` objects), so an
answer first given as a stream can be served unstreamed and the other way round; both replays
carry the same message, role, content, tool calls and finish reason as the original.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from groundgate.providers.base import Chunk

# A replayed stream sends content in pieces of about this many characters, cut after spaces,
# so clients that render as they go behave as with a live stream.
_PIECE_CHARS = 24


@dataclass(slots=True)
class CachedAnswer:
    choices: list[dict[str, Any]]  # {"index", "message", "finish_reason"}, as OpenAI returns
    deployment: str | None  # the deployment that produced it
    trace_id: str  # the request that produced it
    created: int
    cost_usd: float  # what it cost then: what each hit saves
    usage: dict[str, int] = field(default_factory=dict)  # its token usage then
    citations: list[dict[str, Any]] = field(default_factory=list)
    abstained: bool = False
    system_fingerprint: str | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_bytes(cls, data: bytes) -> CachedAnswer:
        return cls(**orjson.loads(data))

    @property
    def text(self) -> str:
        """The first choice's content (what the semantic cache and the guard are about)."""
        content = (self.choices[0].get("message") or {}).get("content") if self.choices else None
        return content if isinstance(content, str) else ""


def replay_chunks(answer: CachedAnswer) -> list[Chunk]:
    """The answer as stream chunks: per choice a role chunk, content pieces, tool calls, then
    the finish reason."""
    return choice_chunks(answer.choices, answer.system_fingerprint)


def choice_chunks(choices: list[dict[str, Any]], fingerprint: str | None) -> list[Chunk]:
    """Whole choices (``message``, ``finish_reason``) as the stream chunks that carry them."""
    chunks: list[Chunk] = []
    for choice in choices:
        index = choice.get("index", 0)
        message = choice.get("message") or {}

        def emit(delta: dict[str, Any], finish: str | None = None, i: int = index) -> None:
            chunks.append(
                Chunk(
                    [{"index": i, "delta": delta, "finish_reason": finish}], None, None, fingerprint
                )
            )

        emit({"role": message.get("role", "assistant"), "content": ""})
        content = message.get("content")
        if isinstance(content, str):
            for piece in _pieces(content):
                emit({"content": piece})
        tool_calls = message.get("tool_calls")
        if tool_calls:
            emit({"tool_calls": [{"index": n, **call} for n, call in enumerate(tool_calls)]})
        emit({}, choice.get("finish_reason") or "stop")
    return chunks


async def replay_stream(chunks: list[Chunk]) -> AsyncIterator[Chunk]:
    for chunk in chunks:
        yield chunk


def _pieces(text: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    while start < len(text):
        cut = text.find(" ", start + _PIECE_CHARS)
        end = len(text) if cut < 0 else cut + 1
        pieces.append(text[start:end])
        start = end
    return pieces


class StreamRecorder:
    """Rebuilds the whole message of each choice from a stream's deltas, so a streamed answer
    can be cached like an unstreamed one."""

    def __init__(self) -> None:
        self._choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: Chunk) -> None:
        for choice in chunk.choices:
            index = choice.get("index", 0)
            state = self._choices.setdefault(
                index, {"role": "assistant", "content": [], "tool_calls": {}, "finish": None}
            )
            delta = choice.get("delta") or {}
            if delta.get("role"):
                state["role"] = delta["role"]
            if isinstance(delta.get("content"), str):
                state["content"].append(delta["content"])
            for call in delta.get("tool_calls") or []:
                _merge_tool_call(state["tool_calls"], call)
            if choice.get("finish_reason"):
                state["finish"] = choice["finish_reason"]

    def choices(self) -> list[dict[str, Any]] | None:
        """The finished choices in the unstreamed shape, or None if any choice never finished
        (a cut-off stream is not an answer to keep)."""
        if not self._choices or any(s["finish"] is None for s in self._choices.values()):
            return None
        result = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message: dict[str, Any] = {"role": state["role"], "content": "".join(state["content"])}
            if state["tool_calls"]:
                message["tool_calls"] = [
                    state["tool_calls"][n] for n in sorted(state["tool_calls"])
                ]
                if not message["content"]:
                    message["content"] = None
            result.append({"index": index, "message": message, "finish_reason": state["finish"]})
        return result


def _merge_tool_call(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    # OpenAI streams a tool call as its id, type and name first, then its arguments in pieces.
    n = delta.get("index", 0)
    call = calls.setdefault(
        n, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
    )
    if delta.get("id"):
        call["id"] = delta["id"]
    if delta.get("type"):
        call["type"] = delta["type"]
    function = delta.get("function") or {}
    if function.get("name"):
        call["function"]["name"] += function["name"]
    if function.get("arguments"):
        call["function"]["arguments"] += function["arguments"]
