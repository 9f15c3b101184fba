"""Stored answers: a stream rebuilt into a message, and a message replayed as a stream."""

from __future__ import annotations

import pytest

from groundgate.cache.answer import CachedAnswer, StreamRecorder, replay_chunks
from groundgate.providers.base import Chunk

LONG = "Refunds are accepted within 30 days of delivery, and shipping is paid by us. " * 3


def answer(*choices: dict) -> CachedAnswer:
    return CachedAnswer(list(choices), "up:gpt", "trace1", 1700000000, 0.002, {"prompt_tokens": 5})


def message_choice(content: str | None, index: int = 0, **extra: object) -> dict:
    return {
        "index": index,
        "message": {"role": "assistant", "content": content, **extra},
        "finish_reason": "tool_calls" if extra else "stop",
    }


@pytest.mark.parametrize(
    "choices",
    [
        [message_choice(LONG)],
        [message_choice("")],
        [message_choice("first", 0), message_choice("second answer here", 1)],
        [
            message_choice(
                None,
                tool_calls=[
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            )
        ],
    ],
)
def test_replay_then_record_gives_back_the_same_choices(choices: list[dict]) -> None:
    original = answer(*choices)
    recorder = StreamRecorder()
    chunks = replay_chunks(original)
    for chunk in chunks:
        recorder.add(chunk)
    assert recorder.choices() == original.choices
    assert CachedAnswer.from_bytes(original.to_bytes()) == original


def test_long_content_streams_in_pieces_that_join_exactly() -> None:
    chunks = replay_chunks(answer(message_choice(LONG)))
    pieces = [c.choices[0]["delta"].get("content") for c in chunks]
    assert pieces[0] == "" and chunks[0].choices[0]["delta"]["role"] == "assistant"
    assert len(pieces) > 5 and "".join(p for p in pieces if p) == LONG
    assert chunks[-1].choices[0]["finish_reason"] == "stop"


def test_an_unfinished_stream_is_not_an_answer() -> None:
    recorder = StreamRecorder()
    recorder.add(Chunk([{"index": 0, "delta": {"role": "assistant", "content": "Hal"}}]))
    assert recorder.choices() is None
    assert StreamRecorder().choices() is None


def test_tool_call_arguments_arriving_in_pieces_are_joined() -> None:
    recorder = StreamRecorder()
    start = {"index": 0, "id": "c1", "type": "function", "function": {"name": "lookup"}}
    recorder.add(Chunk([{"index": 0, "delta": {"role": "assistant", "tool_calls": [start]}}]))
    for piece in ('{"q": ', '"refunds"}'):
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        recorder.add(Chunk([{"index": 0, "delta": delta}]))
    recorder.add(Chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]))
    choices = recorder.choices()
    assert choices is not None
    call = choices[0]["message"]["tool_calls"][0]
    assert call == {
        "id": "c1",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"q": "refunds"}'},
    }
    assert choices[0]["message"]["content"] is None
