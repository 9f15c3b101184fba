"""Pipelines declared in config, run in-process against the fake upstream: a stage added
through the registry runs (enter and exit) on plain, grounded and streamed requests; a
transform sees whole and streamed answers alike; exits run in reverse order however a request
ends; a bad stage list is a config error naming its key."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from groundgate.config import load_settings
from groundgate.container import Container
from groundgate.errors import ConfigError, ProviderError
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.registry import REGISTRY, StageSpec, register
from groundgate.pipeline.stage import Outcome, Stage
from groundgate.providers.base import ChatCall, Chunk
from groundgate.retrieval.documents import SourceDocument
from groundgate.testing.fake_upstream import Behavior, FakeUpstream

CONFIG = """
[store]
path = "{tmp}/g.db"
[cache]
enabled = false
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.plain]
deployments = ["up:m"]
extra_stages = {model_stages}
[apps.bot]
knowledge_base = "notes"
model = "plain"
extra_stages = {app_stages}
"""

Log = list[tuple[str, ...]]


class Toy(Stage):
    """Notes its enter and exit (and how the request ended) in a shared log."""

    span = "toy"

    def __init__(self, name: str, log: Log) -> None:
        self.name = name  # type: ignore[misc]
        self.log = log

    async def enter(self, ctx: RequestContext) -> None:
        self.log.append(("enter", self.name))

    async def exit(self, ctx: RequestContext, outcome: Outcome) -> None:
        ending = "ok" if outcome.ok else "cancelled" if outcome.cancelled else "error"
        self.log.append(("exit", self.name, ending))


class Shout(Stage):
    """Rewrites the answer to capitals on its way out; its exit notes the final text."""

    name = "shout"

    def __init__(self, log: Log) -> None:
        self.log = log

    async def transform(
        self, ctx: RequestContext, chunks: AsyncIterator[Chunk]
    ) -> AsyncIterator[Chunk]:
        async for chunk in chunks:
            for choice in chunk.choices:
                delta = choice.get("delta") or {}
                if isinstance(delta.get("content"), str):
                    delta["content"] = delta["content"].upper()
            yield chunk

    async def exit(self, ctx: RequestContext, outcome: Outcome) -> None:
        assert ctx.delivered is not None
        self.log.append(("exit", "shout", ctx.delivered.text))


@pytest.fixture
def log() -> Iterator[Log]:
    entries: Log = []
    register("toy", StageSpec(lambda s, t: Toy("toy", entries), "before"))
    register("toy2", StageSpec(lambda s, t: Toy("toy2", entries), "before"))
    register("late", StageSpec(lambda s, t: Toy("late", entries), "after", ("generate",)))
    register("shout", StageSpec(lambda s, t: Shout(entries), "after", ("generate",)))
    yield entries
    for name in ("toy", "toy2", "late", "shout"):
        REGISTRY.pop(name)


async def started(
    tmp: Path, fake: FakeUpstream, model_stages: list[str], app_stages: list[str]
) -> Container:
    path = tmp / "g.toml"
    text = CONFIG.format(
        tmp=tmp,
        fake=fake.url,
        model_stages=str(model_stages).replace("'", '"'),
        app_stages=str(app_stages).replace("'", '"'),
    )
    path.write_text(text)
    container = Container(load_settings(path))
    await container.start()
    return container


def chat(container: Container, model: str, *, stream: bool) -> RequestContext:
    call = ChatCall(messages=[{"role": "user", "content": "hi"}])
    return container.new_chat(model, call, stream=stream)


async def streamed(container: Container, ctx: RequestContext) -> str:
    flight = await container.open(ctx)
    text = ""
    async for chunk in flight.chunks():
        for choice in chunk.choices:
            text += (choice.get("delta") or {}).get("content") or ""
    await flight.close()
    return text


def answer_of(ctx: RequestContext) -> str:
    assert ctx.completion is not None
    return str(ctx.completion.choices[0]["message"]["content"])


async def test_a_stage_added_in_config_runs_on_plain_grounded_and_streamed_requests(
    tmp_path: Path, fake_upstream: FakeUpstream, log: Log
) -> None:
    container = await started(tmp_path, fake_upstream, ["toy"], ["toy"])
    try:
        await container.ingestor("notes").ingest(
            "default", "notes", [SourceDocument(id="a", text="Lunch is served at noon.")]
        )
        requests = [
            chat(container, "plain", stream=False),
            chat(container, "plain", stream=True),
            container.new_ask("When is lunch?", app="bot"),
            chat(container, "bot", stream=True),
        ]
        for ctx in requests:
            log.clear()
            if ctx.stream:
                assert await streamed(container, ctx)
            else:
                await container.complete(ctx)
            assert log == [("enter", "toy"), ("exit", "toy", "ok")]
            spans = [s.name for s in ctx.trace.spans]
            assert spans[spans.index("toy") + 1] == "generate"  # before generate, as declared
        assert "retrieve" in spans and ctx.source == "rag"  # the app walked its full path
    finally:
        await container.stop()


async def test_a_transform_sees_whole_and_streamed_answers_alike(
    tmp_path: Path, fake_upstream: FakeUpstream, log: Log
) -> None:
    container = await started(tmp_path, fake_upstream, ["shout"], [])
    try:
        whole = chat(container, "plain", stream=False)
        await container.complete(whole)
        assert answer_of(whole) == "ECHO: HI"
        assert await streamed(container, chat(container, "plain", stream=True)) == "ECHO: HI"
        assert log == [("exit", "shout", "ECHO: HI")] * 2  # the final text, both ways
    finally:
        await container.stop()


async def test_exits_run_in_reverse_order_on_error_and_on_disconnect(
    tmp_path: Path, fake_upstream: FakeUpstream, log: Log
) -> None:
    container = await started(tmp_path, fake_upstream, ["toy", "toy2", "late"], [])
    try:
        fake_upstream.script(Behavior(status=400))  # not retried: generate fails
        with pytest.raises(ProviderError):
            await container.complete(chat(container, "plain", stream=False))
        # "late" (after generate) never entered, so it has no exit.
        assert log == [
            ("enter", "toy"),
            ("enter", "toy2"),
            ("exit", "toy2", "error"),
            ("exit", "toy", "error"),
        ]
        log.clear()
        # A client that goes away mid-stream: its reader is cancelled, then the API ends it.
        fake_upstream.script(Behavior(content="a b c d e f", stream_chunks=6, stream_delay_ms=200))
        ctx = chat(container, "plain", stream=True)
        flight = await container.open(ctx)
        first = asyncio.Event()

        async def read() -> None:
            async for chunk in flight.chunks():
                if any((c.get("delta") or {}).get("content") for c in chunk.choices):
                    first.set()

        reader = asyncio.create_task(read())
        await asyncio.wait_for(first.wait(), 5)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await flight.close(asyncio.CancelledError())
        assert log[3:] == [
            ("exit", "late", "cancelled"),
            ("exit", "toy2", "cancelled"),
            ("exit", "toy", "cancelled"),
        ]
        assert ctx.trace.status == "cancelled" and ctx.usage.estimated
        assert container.resilience.bulkhead("up:m").in_flight == 0  # the upstream let go
    finally:
        await container.stop()


@pytest.mark.parametrize(
    ("model_stages", "app_stages", "problem"),
    [
        (["nope"], [], "models.plain.extra_stages[0]: unknown stage 'nope'"),
        (["retrieve"], [], "models.plain.extra_stages[0]: stage 'retrieve' needs an app"),
        ([], ["record"], "apps.bot.extra_stages[0]: 'record' is always on"),
    ],
)
def test_unknown_stages_are_config_errors_naming_the_key(
    tmp_path: Path, model_stages: list[str], app_stages: list[str], problem: str
) -> None:
    path = tmp_path / "g.toml"
    path.write_text(
        CONFIG.format(
            tmp=tmp_path,
            fake="http://127.0.0.1:9",
            model_stages=str(model_stages).replace("'", '"'),
            app_stages=str(app_stages).replace("'", '"'),
        )
    )
    with pytest.raises(ConfigError) as info:
        Container(load_settings(path))
    assert problem in str(info.value)


@pytest.mark.parametrize(
    ("stages", "problem"),
    [
        (["route", "generate", "retrieve", "prompt", "cite"], "'retrieve' must come before"),
        (["route", "retrieve", "prompt", "cite", "generate"], "'cite' must come after"),
        (["route", "prompt", "retrieve", "generate"], "'prompt' needs 'retrieve' before it"),
        (["route", "retrieve", "prompt"], "a pipeline needs the 'generate' stage"),
        (["route", "generate", "generate"], "stages listed twice: generate"),
    ],
)
def test_bad_orders_are_config_errors_naming_the_key(
    tmp_path: Path, stages: list[str], problem: str
) -> None:
    path = tmp_path / "g.toml"
    text = CONFIG.format(tmp=tmp_path, fake="http://127.0.0.1:9", model_stages=[], app_stages=[])
    path.write_text(text + f"stages = {stages}".replace("'", '"') + "\n")
    with pytest.raises(ConfigError) as info:
        Container(load_settings(path))
    assert "apps.bot.stages: " + problem in str(info.value)


class Hold(Stage):
    """Must see the whole answer before the client sees any: notes when its input ended."""

    name = "hold"
    needs_whole_answer = True

    def __init__(self, log: Log) -> None:
        self.log = log

    async def transform(
        self, ctx: RequestContext, chunks: AsyncIterator[Chunk]
    ) -> AsyncIterator[Chunk]:
        async for chunk in chunks:
            yield chunk
        self.log.append(("hold", "saw the end"))


async def test_a_stage_that_needs_the_whole_answer_holds_the_stream_back(
    tmp_path: Path, fake_upstream: FakeUpstream, log: Log
) -> None:
    register("hold", StageSpec(lambda s, t: Hold(log), "after", ("generate",)))
    try:
        container = await started(tmp_path, fake_upstream, ["hold"], [])
        try:
            flight = await container.open(chat(container, "plain", stream=True))
            async for _ in flight.chunks():
                log.append(("client", "chunk"))
            await flight.close()
        finally:
            await container.stop()
    finally:
        REGISTRY.pop("hold")
    assert log[0] == ("hold", "saw the end") and len(log) > 2  # nothing reached the client before
