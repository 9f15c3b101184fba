"""What a finished request feeds the drift monitor: read from the context and the trace, the
answer's signals only from an answered request."""

from __future__ import annotations

import time

import numpy as np

from groundgate.config import AppConfig
from groundgate.config_drift import DriftConfig
from groundgate.errors import ProviderError
from groundgate.guards.decision import GuardReport
from groundgate.observe.drift import DriftMonitor
from groundgate.observe.trace import Trace
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.drift_feed import feed_drift
from groundgate.pipeline.stage import Outcome
from groundgate.providers.base import ChatCall


def app_request(app_name: str, *, passages: list[float] | None) -> RequestContext:
    trace = Trace(id="t", tenant="default", endpoint="ask", model=app_name)
    ctx = RequestContext(
        trace=trace, model=app_name, call=ChatCall(messages=[]), deadline=time.monotonic() + 5
    )
    ctx.app, ctx.app_name = AppConfig(knowledge_base="kb"), app_name
    if passages is not None:
        trace.attrs["retrieval"] = {
            "passages": [{"chunk_id": f"c{i}", "score": s} for i, s in enumerate(passages)]
        }
    ctx.vectors[("mini:local:mini", "q")] = np.full(4, 0.5, dtype=np.float32)
    ctx.abstained = True
    ctx.guards = GuardReport(groundedness=0.25)
    return ctx


def counts(monitor: DriftMonitor, target: str) -> dict[str, int]:
    state = monitor.targets[target]
    out: dict[str, int] = {signal: w.open.count for signal, w in state.scalars.items()}
    out["embedding"] = state.embedding.open.count if state.embedding is not None else 0
    return out


def test_an_answered_request_feeds_every_signal_it_has_and_a_failed_one_only_its_input() -> None:
    monitor = DriftMonitor(DriftConfig(), ["bot"])
    feed_drift(monitor, app_request("bot", passages=[0.7, 0.2]), Outcome())
    state = monitor.targets["bot"]
    assert counts(monitor, "bot") == {
        "retrieval_score": 1,
        "abstention": 1,
        "groundedness": 1,
        "feedback": 0,
        "embedding": 1,
    }
    assert state.scalars["retrieval_score"].open.total == 0.7  # the top passage's
    assert state.scalars["abstention"].open.total == 1.0
    assert state.scalars["groundedness"].open.total == 0.25

    # Retrieval ran and found nothing: a top score of 0. The request then failed upstream:
    # it gave no answer to judge.
    failed = Outcome(ProviderError("down", transient=True))
    feed_drift(monitor, app_request("bot", passages=[]), failed)
    assert counts(monitor, "bot") == {
        "retrieval_score": 2,
        "abstention": 1,
        "groundedness": 1,
        "feedback": 0,
        "embedding": 2,
    }
    assert state.scalars["retrieval_score"].open.total == 0.7

    # Another target (or an ad-hoc knowledge-base question, "kb:NAME") is not watched.
    feed_drift(monitor, app_request("kb:docs", passages=[0.9]), Outcome())
    assert counts(monitor, "bot")["embedding"] == 2 and "kb:docs" not in monitor.targets
