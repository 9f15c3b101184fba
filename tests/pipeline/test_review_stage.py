"""The review stage's rules, in-process against the fake upstream: a guard's ``review``
decision (made on the way in, as guard_in does, or on the answer, as guard_out sets the
groundedness) holds the answer, whole or streamed; a tenant rule does; a request no rule can
pick is not even looked at. Toy stages stand in for the guard stages."""

from __future__ import annotations

import math
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from groundgate.config import load_settings
from groundgate.container import Container
from groundgate.errors import HeldForReview
from groundgate.guards.decision import GuardDecision, GuardReport
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.registry import REGISTRY, StageSpec, register
from groundgate.pipeline.stage import Stage
from groundgate.pipeline.stages.review import sampled
from groundgate.providers.base import ChatCall, Chunk
from groundgate.testing.fake_upstream import FakeUpstream

CONFIG = """
[store]
path = "{tmp}/g.db"
[cache]
enabled = false
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.gated]
deployments = ["up:m"]
extra_stages = ["flagger"]
guards = {{ review = {{ mode = "hold", tenants = ["vip"] }} }}
[models.graded]
deployments = ["up:m"]
extra_stages = ["grader"]
guards = {{ review = {{ mode = "hold", below_groundedness = 0.4 }} }}
"""


class Flagger(Stage):
    """Asks for review on the way in, as an input guard with action ``review`` would."""

    name = "flagger"

    async def enter(self, ctx: RequestContext) -> None:
        text = str(ctx.call.messages[-1]["content"])
        if "suspicious" in text:
            ctx.guards = ctx.guards or GuardReport()
            ctx.guards.add(GuardDecision("injection", "review", score=0.97))
        if "[EMAIL_1]" in text:  # as reversible PII redaction leaves it
            ctx.restore["[EMAIL_1]"] = "ada@example.org"


class Grader(Stage):
    """Scores the answer once it has seen all of it, as guard_out's groundedness check does."""

    name = "grader"

    async def transform(
        self, ctx: RequestContext, chunks: AsyncIterator[Chunk]
    ) -> AsyncIterator[Chunk]:
        text = ""
        async for chunk in chunks:
            text += "".join((c.get("delta") or {}).get("content") or "" for c in chunk.choices)
            yield chunk
        ctx.guards = ctx.guards or GuardReport()
        ctx.guards.groundedness = 0.2 if "weak" in text else 0.9


@pytest.fixture
async def container(tmp_path: Path, fake_upstream: FakeUpstream) -> AsyncIterator[Container]:
    register("flagger", StageSpec(lambda s, t: Flagger(), "before"))
    register("grader", StageSpec(lambda s, t: Grader(), "after", ("generate",)))
    try:
        path = tmp_path / "g.toml"
        path.write_text(CONFIG.format(tmp=tmp_path, fake=fake_upstream.url))
        runtime = Container(load_settings(path))
        await runtime.start()
        try:
            yield runtime
        finally:
            await runtime.stop()
    finally:
        REGISTRY.pop("flagger")
        REGISTRY.pop("grader")


def chat(container: Container, model: str, text: str, *, stream: bool) -> RequestContext:
    call = ChatCall(messages=[{"role": "user", "content": text}])
    return container.new_chat(model, call, stream=stream)


async def run(container: Container, ctx: RequestContext) -> str:
    """The answer's text as the client gets it; HeldForReview when it is held."""
    if not ctx.stream:
        await container.complete(ctx)
        assert ctx.completion is not None
        return str(ctx.completion.choices[0]["message"]["content"])
    flight = await container.open(ctx)
    await flight.prime()  # the API does this: a held stream is refused before any byte
    text = ""
    async for chunk in flight.chunks():
        text += "".join((c.get("delta") or {}).get("content") or "" for c in chunk.choices)
    await flight.close()
    return text


def review_stage(container: Container, ctx: RequestContext) -> Stage:
    pipeline = container.pipelines.for_request(ctx)
    return next(s for s in pipeline.stages if s.name == "review")


@pytest.mark.parametrize("stream", [False, True])
async def test_a_guard_asking_for_review_holds_the_answer(
    container: Container, stream: bool
) -> None:
    ctx = chat(container, "gated", "a suspicious question", stream=stream)
    with pytest.raises(HeldForReview) as held:
        await run(container, ctx)
    review = await container.reviews.get("default", held.value.review_id)
    assert review is not None and review.status == "pending" and review.mode == "hold"
    assert review.reasons == ["injection"]
    assert review.trace_id == ctx.trace_id and review.target == "gated"
    assert review.messages == [{"role": "user", "content": "a suspicious question"}]
    assert review.answer[0]["message"]["content"] == "echo: a suspicious question"
    assert review.guards["decisions"][0]["guard"] == "injection"
    # The request's own report says where its answer went.
    assert ctx.guards is not None and ctx.guards.review_id == review.id
    assert ctx.guards.decisions[-1].guard == "review"
    assert ctx.guards.decisions[-1].detail == {"reasons": ["injection"]}
    assert ctx.trace.status == "held" and ctx.trace.http_status == 202


async def test_a_held_answer_is_queued_as_the_client_would_get_it(container: Container) -> None:
    ctx = chat(container, "gated", "suspicious: mail [EMAIL_1]", stream=True)
    with pytest.raises(HeldForReview) as held:
        await run(container, ctx)
    review = await container.reviews.get("default", held.value.review_id)
    assert review is not None
    # The request as it went upstream; the answer with the placeholder put back.
    assert review.messages[0]["content"] == "suspicious: mail [EMAIL_1]"
    assert review.answer[0]["message"]["content"] == "echo: suspicious: mail ada@example.org"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_request_no_rule_can_pick_is_not_looked_at(
    container: Container, stream: bool
) -> None:
    ctx = chat(container, "gated", "a plain question", stream=stream)
    assert await run(container, ctx) == "echo: a plain question"
    stage = review_stage(container, ctx)
    assert not stage.sees_answer(ctx) and not stage.holds(ctx)  # the fast path stays
    assert (await container.reviews.page("default")).reviews == []


async def test_a_listed_tenant_is_reviewed(container: Container) -> None:
    ctx = chat(container, "gated", "a plain question", stream=False)
    ctx.tenant = "vip"
    with pytest.raises(HeldForReview) as held:
        await run(container, ctx)
    review = await container.reviews.get("vip", held.value.review_id)
    assert review is not None and review.reasons == ["tenant"]
    assert await container.reviews.get("default", held.value.review_id) is None


@pytest.mark.parametrize("stream", [False, True])
async def test_groundedness_below_the_threshold_holds_the_answer(
    container: Container, stream: bool
) -> None:
    weak = chat(container, "graded", "a weak answer please", stream=stream)
    with pytest.raises(HeldForReview) as held:
        await run(container, weak)
    review = await container.reviews.get("default", held.value.review_id)
    assert review is not None and review.reasons == ["groundedness<0.4"]
    # Well grounded: held only while it was being scored, then given out whole.
    strong = chat(container, "graded", "a fine answer please", stream=stream)
    assert await run(container, strong) == "echo: a fine answer please"
    assert len((await container.reviews.page("default")).reviews) == 1


def test_the_sampled_share_is_about_the_configured_one() -> None:
    ids = [secrets.token_hex(16) for _ in range(4000)]
    for share in (0.1, 0.5):
        picked = sum(sampled(trace_id, share) for trace_id in ids)
        spread = 4 * math.sqrt(len(ids) * share * (1 - share))  # four standard deviations
        assert abs(picked - len(ids) * share) < spread
    assert not any(sampled(trace_id, 0.0) for trace_id in ids)
    assert all(sampled(trace_id, 1.0) for trace_id in ids)
    assert sampled(ids[0], 0.5) == sampled(ids[0], 0.5)  # the same request, the same draw
