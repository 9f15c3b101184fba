"""One shape for every answer: a stream of chunks.

A whole answer (not streamed) travels as a stream of one chunk whose choices carry the whole
message under ``delta`` (everything else of each choice kept as it came). Post-generation
stages therefore read and rewrite text the same way for both (``choice["delta"]["content"]``),
and :class:`AnswerRecord` puts either back together: the whole message, or the deltas merged.
"""

from __future__ import annotations

from typing import Any

from groundgate.cache.answer import StreamRecorder, choice_chunks
from groundgate.providers.base import Chunk, Completion


class OneChunk:
    """A whole answer as a stream of one (an async iterator, not a generator: cheap, and the
    runner can take the chunk directly when no stage transforms the answer)."""

    __slots__ = ("_sent", "chunk")

    def __init__(self, chunk: Chunk) -> None:
        self.chunk = chunk
        self._sent = False

    def __aiter__(self) -> OneChunk:
        return self

    async def __anext__(self) -> Chunk:
        if self._sent:
            raise StopAsyncIteration
        self._sent = True
        return self.chunk


def whole_chunk(completion: Completion) -> Chunk:
    choices = [_renamed(choice, "message", "delta") for choice in completion.choices]
    return Chunk(
        choices, completion.usage, completion.id, completion.system_fingerprint, completion.extra
    )


def answer_chunks(completion: Completion, stream: bool) -> list[Chunk]:
    """A whole answer as a stage hands it on in place of the one it held: the chunks a stream
    of it would carry, or (not streamed) the one whole chunk."""
    if stream:
        return choice_chunks(completion.choices, completion.system_fingerprint)
    return [whole_chunk(completion)]


def _renamed(choice: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    # Key order kept: the client gets the choice as the upstream wrote it.
    return {(new if key == old else key): value for key, value in choice.items()}


class AnswerRecord:
    """What the client was given, put back together: for the exits (citations, the cache
    write, an output check) and for the whole answer's response body."""

    __slots__ = ("_chunks", "_stream", "complete", "extra", "fingerprint", "whole")

    def __init__(self, whole: bool) -> None:
        self.whole = whole
        self.complete = False  # the answer ran to its end (a cut-off stream is not complete)
        self.fingerprint: str | None = None
        self.extra: dict[str, Any] = {}  # what the chunks reported besides the answer
        self._chunks: list[Chunk] = []
        self._stream = StreamRecorder() if not whole else None

    def add(self, chunk: Chunk) -> None:
        if chunk.system_fingerprint:
            self.fingerprint = chunk.system_fingerprint
        if chunk.extra:
            self.extra.update(chunk.extra)
        if self._stream is not None:
            self._stream.add(chunk)
        else:
            self._chunks.append(chunk)

    def choices(self) -> list[dict[str, Any]] | None:
        """Every choice with its whole ``message``; None for a stream that never finished."""
        if self._stream is not None:
            return self._stream.choices()
        return [_renamed(c, "delta", "message") for chunk in self._chunks for c in chunk.choices]

    @property
    def text(self) -> str:
        """The first choice's content."""
        choices = self.choices()
        content = (choices[0].get("message") or {}).get("content") if choices else None
        return content if isinstance(content, str) else ""
