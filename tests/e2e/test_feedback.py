"""Feedback end to end: a real gateway with keys required, the openai SDK and httpx, and the CLI
on the same store.

Feedback on an answer (by its trace id or its ``id``) joins the trace and the metrics, once per
source (a repeat changes nothing, a change of mind replaces it); another tenant's trace is not
found; each key has its own feedback rate; a reviewer's decision is feedback too; and feedback
round-trips into an eval dataset that ``groundgate eval`` runs, and into ``report ab``."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from groundgate.evals.dataset import load_dataset
from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.servers import KeyedGateway, start_gateway

ADMIN_KEY = "adm-" + secrets.token_urlsafe(32)
RATE = 6  # feedback writes per minute per key
CONFIG = """
[auth]
mode = "required"
[store]
path = "{workdir}/gg.db"
[traces]
flush_interval_ms = 20
[feedback]
requests_per_minute = {rate}
[reliability]
breaker_failures = 100000
breaker_min_calls = 100000
[providers.up]
type = "openai"
base_url = "{fake}/v1"
timeout_s = 30

[models.m]
deployments = ["up:m"]

[models.held]
deployments = ["up:m"]
guards = {{ review = {{ mode = "hold", always = true }} }}

[models.split]
deployments = ["up:m"]
[[models.split.variants]]
name = "a"
weight = 1
[[models.split.variants]]
name = "b"
weight = 1

# An app over a keyword-searched knowledge base, embedded by the fake upstream (no local
# model to load); the fake upstream answers "echo: <the last user message>".
[embedders.fake-embed]
deployments = ["up:text-embedding-3-small"]
[knowledge_bases.faq]
mode = "keyword"
embedder = "fake-embed"
[apps.faq]
knowledge_base = "faq"
model = "m"
cache = {{ exact = false, semantic = false }}
"""
DOCS = [
    {"id": "refunds", "title": "Refunds", "text": "Refunds are paid within 14 days of a return."},
    {"id": "shipping", "title": "Shipping", "text": "Parcels ship from Lyon on weekdays."},
]

# Every key is acme's but the outsider; most tests have keys of their own (each key has its own
# feedback rate).
KEYS = {
    "asker": ["chat"],
    "frontend": ["feedback"],
    "embedder": ["embeddings"],
    "validator": ["chat"],
    "flood": ["feedback"],
    "reviewer": ["review"],
    "held_asker": ["chat"],
    "rt": ["chat"],
    "ingester": ["ingest"],
    "ab": ["chat"],
}


class Gate(KeyedGateway):
    def feedback(self, who: str, **body: Any) -> httpx.Response:
        return self.post(who, "/v1/feedback", body)

    def ask(self, who: str, model: str, question: str, **extra: Any) -> tuple[str, str]:
        """(the answer's text, its trace id) of a chat completion."""
        reply = self.sdk(who).chat.completions.create(
            model=model, messages=[{"role": "user", "content": question}], **extra
        )
        trace_id: str = (reply.model_extra or {})["groundgate"]["trace_id"]
        assert reply.id == f"chatcmpl-{trace_id}"
        return reply.choices[0].message.content or "", trace_id

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.process.cli(*args)


@pytest.fixture(scope="module")
def gate(
    fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gate]:
    workdir: Path = tmp_path_factory.mktemp("feedback")
    config = CONFIG.format(workdir=workdir, fake=fake_upstream_server.url, rate=RATE)
    process = start_gateway(config, workdir, env={"GROUNDGATE_ADMIN_KEY": ADMIN_KEY})
    try:
        gate = Gate(process, ADMIN_KEY)
        gate.make_keys({name: ("acme", scopes) for name, scopes in KEYS.items()})
        gate.make_keys({"outsider": ("globex", ["chat"])})
        yield gate
    finally:
        process.stop()


def samples(gate: Gate) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = gate.get("admin", "/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("groundgate_feedback")
        for s in family.samples
    }


def test_feedback_joins_its_trace_once_per_source(gate: Gate, fake_upstream: FakeUpstream) -> None:
    _, trace_id = gate.ask("asker", "m", "Where is my parcel?")
    given = {"thumbs": "up", "source": "end-user:7", "label": "helpful"}
    first = gate.feedback("asker", trace_id=f"chatcmpl-{trace_id}", **given)  # the answer's id
    assert first.status_code == 201, first.text
    view = first.json()
    assert view["trace_id"] == trace_id and view["target"] == "m"
    assert (view["score"], view["label"], view["source"]) == (1.0, "helpful", "end-user:7")
    assert view["key_id"] == gate.keys["asker"]["id"]

    # A retry is the same feedback: nothing changes, nothing counts twice.
    again = gate.feedback("asker", trace_id=trace_id, **given)
    assert again.status_code == 200 and again.json() == view
    # A change of mind replaces what that source said, and keeps when it first said it.
    changed = gate.feedback(
        "asker", trace_id=trace_id, source="end-user:7", score=0.25, corrected_answer="In Lyon."
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["score"], changed.json()["label"]) == (0.25, None)
    assert changed.json()["created_at"] == view["created_at"]
    # A key that may only give feedback; its source defaults to the key.
    other = gate.feedback("frontend", trace_id=trace_id, comment="Too terse.")
    assert other.status_code == 201, other.text
    assert other.json()["source"] == f"key:{gate.keys['frontend']['id']}"

    trace = gate.get("asker", f"/v1/traces/{trace_id}").json()
    # A plain model's trace keeps no text unless feedback.keep_text = "all".
    assert not {"answer", "question"} & set(trace["attrs"])
    assert [(f["source"], f["score"], f["corrected_answer"]) for f in trace["feedback"]] == [
        ("end-user:7", 0.25, "In Lyon."),
        (f"key:{gate.keys['frontend']['id']}", None, None),
    ]

    metrics = samples(gate)
    for kind, count in (("positive", 1), ("negative", 1), ("unscored", 1), ("neutral", 0)):
        key = ("groundgate_feedback_total", (("kind", kind), ("target", "m")))
        assert metrics.get(key, 0) == count, (kind, metrics)
    assert metrics[("groundgate_feedback_score_count", (("target", "m"),))] == 2
    assert metrics[("groundgate_feedback_score_sum", (("target", "m"),))] == 1.25
    assert metrics[("groundgate_feedback_corrections_total", (("target", "m"),))] == 1


def test_feedback_is_tenant_scoped_checked_and_refused_whole(gate: Gate) -> None:
    _, trace_id = gate.ask("validator", "m", "Is it raining?")
    # Another tenant's trace is "not found", as a trace that does not exist is.
    theirs = gate.feedback("outsider", trace_id=trace_id, thumbs="down")
    assert theirs.status_code == 404 and theirs.json()["error"]["param"] == "trace_id"
    assert gate.feedback("validator", trace_id="0" * 32, thumbs="up").status_code == 404
    denied = gate.feedback("embedder", trace_id=trace_id, thumbs="up")
    assert denied.status_code == 403 and "feedback" in denied.json()["error"]["message"]
    for bad in (
        {"score": 1, "thumbs": "up"},  # one verdict, not two
        {"score": 1.5},  # out of [0, 1]
        {},  # nothing said
        {"thumbs": "up", "source": "review"},  # the reviewers' source
        {"thumbs": "sideways"},
    ):
        refused = gate.feedback("validator", trace_id=trace_id, **bad)
        assert refused.status_code == 400, (bad, refused.text)
    assert gate.get("validator", f"/v1/traces/{trace_id}").json()["feedback"] == []


def test_each_key_has_a_feedback_rate(gate: Gate) -> None:
    _, trace_id = gate.ask("asker", "m", "How fast?")
    for i in range(RATE):
        resp = gate.feedback("flood", trace_id=trace_id, score=i / RATE)
        assert resp.status_code in (200, 201), resp.text
    refused = gate.feedback("flood", trace_id=trace_id, thumbs="up")
    assert refused.status_code == 429, refused.text
    assert float(refused.headers["retry-after"]) > 0
    # Another key of the same tenant is not held back by it.
    assert gate.feedback("frontend", trace_id=trace_id, thumbs="up").status_code == 201


def test_a_review_decision_is_feedback_on_the_trace(
    gate: Gate, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Behavior(content="Refunds take 30 days."))
    body = {"model": "held", "messages": [{"role": "user", "content": "Refund time?"}]}
    held = gate.post("held_asker", "/v1/chat/completions", body)
    assert held.status_code == 202, held.text
    review = held.json()
    decided = gate.post(
        "reviewer",
        f"/v1/reviews/{review['id']}/reject",
        {"corrected_answer": "Refunds take 14 days.", "note": "policy changed"},
    )
    assert decided.status_code == 200, decided.text
    trace = gate.get("held_asker", f"/v1/traces/{review['trace_id']}").json()
    [verdict] = trace["feedback"]
    assert verdict["source"] == "review" and verdict["target"] == "held"
    assert (verdict["score"], verdict["label"], verdict["comment"]) == (
        0.0,
        "rejected",
        "policy changed",
    )
    assert verdict["corrected_answer"] == "Refunds take 14 days."
    assert verdict["key_id"] == gate.keys["reviewer"]["id"]


def test_feedback_round_trips_into_an_eval_run(
    gate: Gate, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    ingested = gate.post("ingester", "/v1/knowledge-bases/faq/documents", {"documents": DOCS})
    assert ingested.status_code == 200, ingested.text
    liked, liked_trace = gate.ask("rt", "faq", "How long until refunds are paid?")
    _, fixed_trace = gate.ask("rt", "faq", "Where do parcels ship from?")
    _, disliked_trace = gate.ask("rt", "faq", "Do parcels ship on Sundays?")
    gate.ask("rt", "faq", "Nobody rates this one?")
    assert gate.feedback("rt", trace_id=liked_trace, thumbs="up", label="accurate").is_success
    fixed = {"thumbs": "down", "label": "wrong", "corrected_answer": "From Lyon, on weekdays."}
    assert gate.feedback("rt", trace_id=fixed_trace, **fixed).is_success
    assert gate.feedback("rt", trace_id=disliked_trace, thumbs="down").is_success

    out = tmp_path / "feedback.jsonl"
    exported = gate.cli(
        "datasets", "export", "--feedback", str(out), "--tenant", "acme", "--target", "faq",
        "--json",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    # Thumbs down without a correction says what is wrong, not what is right: no case.
    assert json.loads(exported.stdout)["skipped"] == {"nothing_expected": 1}
    cases = {case.id: case for case in load_dataset(out)}
    assert set(cases) == {liked_trace, fixed_trace}
    good = cases[liked_trace]
    assert good.question == "How long until refunds are paid?"
    assert good.answers == [liked] and good.answer == liked and liked.startswith("echo")
    assert good.context == ["Refunds are paid within 14 days of a return."]
    assert (good.labels, good.score, good.label) == (["accurate"], 1.0, "feedback")
    assert cases[fixed_trace].answers == ["From Lyon, on weekdays."]
    assert cases[fixed_trace].score == 0.0

    only_good = tmp_path / "good.jsonl"
    kept = gate.cli(
        "datasets", "export", "--feedback", str(only_good), "--tenant", "acme",
        "--min-score", "0.5", "--json",
    )  # fmt: skip
    assert kept.returncode == 0, kept.stderr
    assert [case.id for case in load_dataset(only_good)] == [liked_trace]

    # The same app answers the liked question as it did, and not the corrected one.
    report = tmp_path / "report.json"
    ran = gate.cli("eval", str(out), "--app", "faq", "--out", str(report))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    scored = json.loads(report.read_text())
    assert scored["cases"] == 2 and scored["metrics"]["exact"] == 0.5


def test_report_ab_compares_the_variants_feedback(gate: Gate) -> None:
    given: dict[str, list[float]] = {"a": [], "b": []}
    for user in range(RATE):
        raw = gate.sdk("ab").chat.completions.with_raw_response.create(
            model="split",
            messages=[{"role": "user", "content": "Which plan suits me?"}],
            user=f"user-{user}",
        )
        variant = raw.headers["x-groundgate-variant"]
        trace_id = json.loads(raw.text)["groundgate"]["trace_id"]
        score = 1.0 if variant == "a" else 0.0
        given[variant].append(score)
        assert gate.feedback("ab", trace_id=trace_id, score=score).status_code == 201
    assert given["a"] and given["b"], "six users all landed in one variant"

    ran = gate.cli("report", "ab", "--target", "split", "--tenant", "acme", "--json")
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["feedback"] == "recorded"
    by_name = {v["name"]: v["metrics"]["feedback"] for v in result["variants"]}
    assert (by_name["a"]["value"], by_name["a"]["n"]) == (1.0, len(given["a"]))
    assert (by_name["b"]["value"], by_name["b"]["n"]) == (0.0, len(given["b"]))
