"""Text helpers shared by the fake OpenAI and Anthropic APIs: echo, word counts, pieces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from groundgate.testing.fake_state import Behavior


def text_of(content: Any) -> str:
    """A message's text: the string itself, or its ``text`` parts joined (no separator)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        )
    return ""


def last_user_text(messages: list[Any]) -> str:
    """Text of the last user message that has any text.

    Messages carrying only tool results (Anthropic puts those in user messages) are
    skipped, so both APIs echo the same question through a tool-calling round trip.
    """
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            text = text_of(message.get("content"))
            if text:
                return text
    return ""


def count_words(text: str) -> int:
    return len(text.split())


def pieces(text: str, n: int) -> list[str]:
    """Split ``text`` into ``n`` pieces of near-equal length (fewer if it is shorter).

    Character slices rather than words, so a test can rely on the piece count; the pieces
    always join back to ``text`` exactly.
    """
    k = min(max(n, 1), len(text))
    if k == 0:
        return []
    size = len(text)
    return [text[i * size // k : (i + 1) * size // k] for i in range(k)]


def normalise_tool_calls(tool_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill in what a test may leave out: ``id``, ``type``, and ``arguments`` given as a dict."""
    out = []
    for i, call in enumerate(tool_calls):
        function = call.get("function") or {}
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments).decode()
        out.append(
            {
                "id": call.get("id") or f"call_fake_{i}",
                "type": "function",
                "function": {"name": function.get("name", "tool"), "arguments": arguments},
            }
        )
    return out


@dataclass(slots=True)
class Shaped:
    """The reply text after stop sequences and the token limit, and why it ended."""

    text: str | None
    truncated: bool = False  # cut by max_tokens
    stop_sequence: str | None = None


def shape(text: str | None, max_tokens: Any, stops: Any) -> Shaped:
    """Apply stop sequences (cut before the earliest) and then ``max_tokens`` as words."""
    if text is None:
        return Shaped(None)
    matched: str | None = None
    if isinstance(stops, str):
        stops = [stops]
    if isinstance(stops, list):
        cut = len(text)
        for stop in stops:
            at = text.find(stop) if isinstance(stop, str) and stop else -1
            if 0 <= at < cut:
                cut, matched = at, stop
        text = text[:cut]
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        words = text.split()
        if max_tokens < len(words):
            return Shaped(" ".join(words[:max_tokens]), truncated=True)
    return Shaped(text, stop_sequence=matched)


def reply_text(behavior: Behavior, last_user: str) -> str | None:
    """The text to answer with: scripted content, none for a tool-call-only reply, or echo."""
    if behavior.content is not None:
        return behavior.content
    if behavior.tool_calls:
        return None
    return "echo: " + last_user


def completion_words(text: str | None, tool_calls: list[dict[str, Any]]) -> int:
    args = sum(count_words(c["function"]["arguments"]) for c in tool_calls)
    return count_words(text or "") + args
