"""Usage of an answer whose upstream never reported it.

Usage normally arrives in a stream's last chunk. A stream cut short (the client went away,
the upstream broke, the deadline passed) or from an upstream that ignores ``include_usage``
has none, yet the upstream read the prompt and generated what was sent: that is billed by
estimate (the same estimate admission charges up front, from the request's messages, and the
generated text at the same rate), marked as estimated, rather than not at all. The same holds
for a whole answer from an upstream that leaves ``usage`` out of its body.
"""

from __future__ import annotations

from typing import Any

from groundgate.gateway.shaping import estimate_input_tokens, estimate_output_tokens
from groundgate.providers.base import ChatCall, Chunk, Completion, Usage


class StreamMeter:
    """Counts what a stream delivered: whether usage was reported, and the generated text."""

    __slots__ = ("chars", "reported")

    def __init__(self) -> None:
        self.chars = 0
        self.reported = False

    def add(self, chunk: Chunk) -> None:
        if chunk.usage is not None:
            self.reported = True
        for choice in chunk.choices:
            delta = choice.get("delta")
            if delta:
                self.chars += _generated_chars(delta)

    def estimate(self, call: ChatCall) -> Usage:
        return _estimated(call, self.chars)


def billed_usage(call: ChatCall, completion: Completion) -> Usage:
    """What a whole answer is billed at: the usage its upstream reported, else an estimate. No
    upstream generates an answer from nothing: one that left usage out of its body is billed by
    estimate rather than as free."""
    if completion.usage.total_tokens:
        return completion.usage
    return estimate_completion(call, completion.choices)


def estimate_completion(call: ChatCall, choices: list[dict[str, Any]]) -> Usage:
    """The usage of a whole answer that came without any: its messages read as deltas."""
    return _estimated(call, sum(_generated_chars(c.get("message") or {}) for c in choices))


def _estimated(call: ChatCall, generated_chars: int) -> Usage:
    """The prompt as admission estimates it, the generated text at the same rate."""
    return Usage(
        estimate_input_tokens(call.messages),
        estimate_output_tokens(generated_chars),
        estimated=True,
    )


def _generated_chars(delta: dict[str, Any]) -> int:
    chars = 0
    for field in ("content", "refusal"):
        value = delta.get(field)
        if isinstance(value, str):
            chars += len(value)
    for call in delta.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            for field in ("name", "arguments"):
                value = function.get(field)
                if isinstance(value, str):
                    chars += len(value)
    return chars
