"""What a trace keeps of the text for feedback exports (``feedback.keep_text = "all"``), in
process against the fake upstream: a plain model's question and answer, whole or streamed, cut
at ``max_text_chars``; nothing of an answer that failed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from groundgate.config import load_settings
from groundgate.container import Container
from groundgate.errors import GroundgateError
from groundgate.providers.base import ChatCall
from groundgate.testing.fake_upstream import Behavior, FakeUpstream

CONFIG = """
[store]
path = "{tmp}/g.db"
[cache]
enabled = false
[feedback]
keep_text = "all"
max_text_chars = 100
[reliability]
max_attempts = 1
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.m]
deployments = ["up:m"]
"""


@pytest.fixture
async def container(tmp_path: Path, fake_upstream: FakeUpstream) -> AsyncIterator[Container]:
    path = tmp_path / "g.toml"
    path.write_text(CONFIG.format(tmp=tmp_path, fake=fake_upstream.url))
    runtime = Container(load_settings(path))
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_models_question_and_answer_are_kept_cut(
    container: Container, fake_upstream: FakeUpstream, stream: bool
) -> None:
    question = "Why? " + "x" * 200
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": question}]},
    ]
    ctx = container.new_chat("m", ChatCall(messages=messages), stream=stream)
    if stream:
        flight = await container.open(ctx)
        async for _ in flight.chunks():
            pass
        await flight.close()
    else:
        await container.complete(ctx)
    attrs = ctx.trace.attrs
    assert attrs["question"] == question[:100]
    assert attrs["answer"] == ("echo: " + question)[:100]


async def test_a_failed_answer_keeps_nothing(
    container: Container, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Behavior(status=400))
    ctx = container.new_chat("m", ChatCall(messages=[{"role": "user", "content": "Hi?"}]))
    with pytest.raises(GroundgateError):
        await container.complete(ctx)
    assert not {"answer", "question"} & set(ctx.trace.attrs)
