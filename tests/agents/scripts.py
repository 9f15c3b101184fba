"""Scripted models for the agent tests: the fake upstream picks each reply from the request
body (how many assistant turns it already holds: the run's step), never from a queue, so a run
reads the same however its requests interleave with others."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from groundgate.testing.fake_upstream import Behavior

Turn = Callable[[int, list[dict[str, Any]]], Behavior]


def tool_call(name: str, arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def step_of(body: Any) -> int:
    messages = body.get("messages", []) if isinstance(body, dict) else []
    return sum(1 for m in messages if m.get("role") == "assistant")


def tool_results(body: Any) -> list[str]:
    return [str(m.get("content")) for m in body.get("messages", []) if m.get("role") == "tool"]


def plan(*turns: Behavior | Turn) -> Callable[[str, Any], Behavior | None]:
    """Turn ``n`` answers the request at step ``n`` (the last one repeats: a model that
    loops); a callable turn gets the step and the messages."""

    def respond(path: str, body: Any) -> Behavior | None:
        if not path.endswith("/chat/completions"):
            return None
        step = step_of(body)
        turn = turns[min(step, len(turns) - 1)]
        return turn if isinstance(turn, Behavior) else turn(step, body.get("messages", []))

    return respond


def calls(*made: tuple[str, dict[str, Any]], **usage: int) -> Turn:
    """A turn proposing ``made`` (ids unique per step)."""

    def turn(step: int, messages: list[dict[str, Any]]) -> Behavior:
        proposed = [tool_call(n, a, f"call_{step}_{i}") for i, (n, a) in enumerate(made)]
        return Behavior(tool_calls=proposed, **usage)  # type: ignore[arg-type]

    return turn


def answer_from_tools(prefix: str = "Result: ") -> Turn:
    def turn(step: int, messages: list[dict[str, Any]]) -> Behavior:
        results = [str(m.get("content")) for m in messages if m.get("role") == "tool"]
        return Behavior(content=prefix + " | ".join(results))

    return turn
