"""The schema stage's decisions, in-process against the fake upstream: a re-ask that worked, a
give-up and a flag are each recorded in the request's guard report (with the errors, never the
answer), the re-asks' usage is billed, and the stage costs nothing when turned off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from groundgate.config import load_settings
from groundgate.container import Container
from groundgate.errors import SchemaValidationFailed
from groundgate.pipeline.context import RequestContext
from groundgate.providers.base import ChatCall
from groundgate.testing.fake_upstream import Behavior, FakeUpstream

CONFIG = """
[store]
path = "{tmp}/g.db"
[cache]
enabled = false
[guards]
schema = {{ action = "block", max_reasks = 1 }}
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.strict]
deployments = ["up:m"]
[models.flagged]
deployments = ["up:m"]
guards = {{ schema = "flag" }}
[models.unchecked]
deployments = ["up:m"]
guards = {{ schema = "off" }}
"""
JSON_ONLY = {"response_format": {"type": "json_object"}}


@pytest.fixture
async def container(tmp_path: Path, fake_upstream: FakeUpstream) -> AsyncIterator[Container]:
    path = tmp_path / "g.toml"
    path.write_text(CONFIG.format(tmp=tmp_path, fake=fake_upstream.url))
    built = Container(load_settings(path))
    await built.start()
    try:
        yield built
    finally:
        await built.stop()


def chat(container: Container, model: str, *, stream: bool = False) -> RequestContext:
    call = ChatCall([{"role": "user", "content": "list them"}], dict(JSON_ONLY))
    return container.new_chat(model, call, stream=stream)


async def test_reask_give_up_and_flag_are_recorded(
    container: Container, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Behavior(content="nope", prompt_tokens=5, completion_tokens=1),
        Behavior(content='{"ok": true}', prompt_tokens=7, completion_tokens=3),
    )
    fixed = chat(container, "strict")
    await container.complete(fixed)
    assert fixed.completion is not None
    assert fixed.completion.choices[0]["message"]["content"] == '{"ok": true}'
    assert fixed.guards is not None
    (decision,) = fixed.guards.decisions
    assert (decision.guard, decision.action) == ("schema", "reask")
    assert decision.detail == {
        "reasks": 1,
        "errors": ["content: not valid JSON: Expecting value (line 1, column 1)"],
    }
    assert (fixed.usage.prompt_tokens, fixed.usage.completion_tokens) == (12, 4)
    assert [a.status for a in fixed.trace.attempts] == ["ok", "ok"]

    fake_upstream.script(Behavior(content="[]"), Behavior(content="[1]"))
    failed = chat(container, "strict", stream=True)
    with pytest.raises(SchemaValidationFailed, match=r"after 2 tries"):
        flight = await container.open(failed)
        await flight.prime()
    assert failed.guards is not None
    (decision,) = failed.guards.decisions
    assert (decision.action, decision.detail["reasks"]) == ("block", 1)
    assert decision.detail["errors"] == ["content: expected a JSON object, got an array"]
    assert failed.trace.spans[-1].name == "schema" and failed.trace.spans[-1].status == "error"

    fake_upstream.script(Behavior(content="nope"))
    flagged = chat(container, "flagged")
    await container.complete(flagged)
    assert flagged.completion is not None
    assert flagged.completion.choices[0]["message"]["content"] == "nope"
    assert flagged.guards is not None
    assert [(d.action, d.detail["reasks"]) for d in flagged.guards.decisions] == [("flag", 0)]
    assert len(fake_upstream.requests()) == 5


async def test_a_valid_answer_is_timed_and_an_off_guard_costs_nothing(
    container: Container, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Behavior(content="{}"),
        Behavior(content='{"a": "b c d"}', stream_chunks=3),
        Behavior(content="nope"),
    )
    valid = chat(container, "strict")
    await container.complete(valid)
    assert valid.guards is not None and valid.guards.decisions == []
    assert "schema" in valid.guards.checked_ms
    # A valid streamed answer is held, then passed on as it came.
    held = chat(container, "strict", stream=True)
    flight = await container.open(held)
    await flight.prime()
    pieces = [
        (c.get("delta") or {}).get("content") or ""
        async for chunk in flight.chunks()
        for c in chunk.choices
    ]
    await flight.close()
    assert "".join(pieces) == '{"a": "b c d"}' and len([p for p in pieces if p]) == 3
    assert held.guards is not None and held.guards.decisions == []
    unchecked = chat(container, "unchecked")
    await container.complete(unchecked)
    assert unchecked.guards is None and len(fake_upstream.requests()) == 3
