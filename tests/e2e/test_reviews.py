"""The human review queue end to end: a real gateway with keys required, the openai SDK (and
httpx for a held stream), and ``groundgate review`` on the same store.

``hold`` answers 202 with a review to poll, whole or streamed (before any event), or the safe
answer; ``audit`` answers and queues; reviewers (the ``review`` scope) list and decide their
own tenant's reviews, once; the key that asked polls its own review and gets the approved (or
corrected) answer; the CLI decides and exports what ``groundgate eval`` reads."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletion

from groundgate.evals.dataset import load_dataset
from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.servers import KeyedGateway, start_gateway

ADMIN_KEY = "adm-" + secrets.token_urlsafe(32)
SAFE = "A person will check this answer and get back to you."
CONFIG = """
[auth]
mode = "required"
[store]
path = "{workdir}/gg.db"
[traces]
flush_interval_ms = 20
[reliability]
breaker_failures = 100000
breaker_min_calls = 100000
[providers.up]
type = "openai"
base_url = "{fake}/v1"
timeout_s = 30

[models.held]
deployments = ["up:m"]
guards = {{ review = {{ mode = "hold", always = true }} }}

[models.held-safe]
deployments = ["up:m"]
cache = {{ exact = true }}
guards = {{ review = {{ mode = "hold", always = true, safe_answer = "{safe}" }} }}

[models.audited]
deployments = ["up:m"]
guards = {{ review = {{ mode = "audit", always = true }} }}
"""


class Gate(KeyedGateway):
    def held(self, who: str, content: str, fake: FakeUpstream, model: str = "held") -> str:
        """A held request's review id."""
        fake.script(Behavior(content=content))
        body = {"model": model, "messages": [{"role": "user", "content": "Question?"}]}
        resp = self.post(who, "/v1/chat/completions", body)
        assert resp.status_code == 202, resp.text
        review_id: str = resp.json()["id"]
        return review_id


# Who is who: two keys that ask (one also polls its own reviews), a reviewer, all of acme; a
# reviewer that also asks, of globex; a CLI tenant's asker.
KEYS = {
    "asker": ("acme", ["chat"]),
    "asker2": ("acme", ["chat"]),
    "reviewer": ("acme", ["review"]),
    "outsider": ("globex", ["chat", "review"]),
    "cli_asker": ("initech", ["chat"]),
}


@pytest.fixture(scope="module")
def gate(
    fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gate]:
    workdir: Path = tmp_path_factory.mktemp("reviews")
    config = CONFIG.format(workdir=workdir, fake=fake_upstream_server.url, safe=SAFE)
    process = start_gateway(config, workdir, env={"GROUNDGATE_ADMIN_KEY": ADMIN_KEY})
    try:
        gate = Gate(process, ADMIN_KEY)
        gate.make_keys(KEYS)
        yield gate
    finally:
        process.stop()


def test_a_held_answer_is_202_then_the_approved_correction(
    gate: Gate, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Behavior(content="Refunds take 30 days."))
    raw = gate.sdk("asker").chat.completions.with_raw_response.create(
        model="held", messages=[{"role": "user", "content": "How long do refunds take?"}]
    )
    assert raw.status_code == 202
    held = raw.http_response.json()
    assert held["object"] == "review" and held["status"] == "pending"
    assert held["trace_id"] == raw.headers["x-groundgate-trace-id"]
    review_id = held["id"]
    assert raw.headers["location"] == f"/v1/reviews/{review_id}"
    assert len(fake_upstream.requests()) == 1  # generated, then held

    # The asker polls: pending, and nothing of the answer yet.
    polled = gate.get("asker", f"/v1/reviews/{review_id}")
    assert polled.status_code == 200, polled.text
    assert polled.json()["status"] == "pending" and polled.json()["answer"] is None
    assert "choices" not in polled.json()
    # Nobody else without the scope, and no other tenant, even with it.
    for who in ("asker2", "outsider"):
        assert gate.get(who, f"/v1/reviews/{review_id}").status_code == 404

    seen = gate.get("reviewer", f"/v1/reviews/{review_id}").json()
    assert seen["choices"][0]["message"]["content"] == "Refunds take 30 days."
    assert seen["messages"] == [{"role": "user", "content": "How long do refunds take?"}]
    assert seen["reasons"] == ["always"] and seen["key_id"] == gate.keys["asker"]["id"]

    denied = gate.post("asker", f"/v1/reviews/{review_id}/approve")
    assert denied.status_code == 403 and "review" in denied.json()["error"]["message"]
    correction = {"corrected_answer": "Refunds take 14 days.", "note": "policy changed"}
    approved = gate.post("reviewer", f"/v1/reviews/{review_id}/approve", correction)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["decided_by"] == gate.keys["reviewer"]["id"]

    answer = gate.get("asker", f"/v1/reviews/{review_id}").json()["answer"]
    completion = ChatCompletion.model_validate(answer)
    assert completion.choices[0].message.content == "Refunds take 14 days."
    assert completion.model == "held"

    for verb in ("approve", "reject"):
        again = gate.post("reviewer", f"/v1/reviews/{review_id}/{verb}")
        assert again.status_code == 409, again.text
        error = again.json()["error"]
        assert error["code"] == "review_already_decided" and "approved" in error["message"]

    # The trace says where the answer went, not that the request failed.
    trace: dict[str, Any] = {}
    deadline = time.monotonic() + 5
    while not trace:
        resp = gate.get("asker", f"/v1/traces/{held['trace_id']}")
        trace = resp.json() if resp.status_code == 200 else {}
        assert trace or time.monotonic() < deadline, "the trace was never written"
        time.sleep(0.05)
    assert trace["status"] == "held" and trace["http_status"] == 202


def test_a_held_stream_is_202_before_any_event(gate: Gate, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script(Behavior(content="one two three four", stream_chunks=4))
    body = {"model": "held", "stream": True, "messages": [{"role": "user", "content": "Q?"}]}
    with (
        gate.http("asker") as client,
        client.stream("POST", "/v1/chat/completions", json=body) as resp,
    ):
        resp.read()
    assert resp.status_code == 202, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    review_id = resp.json()["id"]
    seen = gate.get("reviewer", f"/v1/reviews/{review_id}").json()
    assert seen["choices"][0]["message"]["content"] == "one two three four"  # all of it

    rejected = gate.post("reviewer", f"/v1/reviews/{review_id}/reject")  # no body at all
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    polled = gate.get("asker", f"/v1/reviews/{review_id}").json()
    assert polled["status"] == "rejected" and polled["answer"] is None


def test_reviews_are_listed_per_tenant_newest_first_with_the_scope(
    gate: Gate, fake_upstream: FakeUpstream
) -> None:
    assert gate.get("asker", "/v1/reviews").status_code == 403
    ours = [gate.held("asker", f"answer {i}", fake_upstream) for i in range(3)]
    theirs = gate.held("outsider", "their answer", fake_upstream)

    listed = gate.get("reviewer", "/v1/reviews", status="pending", target="held", limit=100)
    assert listed.status_code == 200, listed.text
    ids = [r["id"] for r in listed.json()["data"]]
    assert ids[:3] == ours[::-1] and theirs not in ids  # newest first, acme's only
    outsider_ids = [r["id"] for r in gate.get("outsider", "/v1/reviews").json()["data"]]
    assert theirs in outsider_ids and not set(ours) & set(outsider_ids)

    first = gate.get("reviewer", "/v1/reviews", status="pending", target="held", limit=2).json()
    assert [r["id"] for r in first["data"]] == ours[:0:-1] and first["has_more"]
    rest = gate.get(
        "reviewer", "/v1/reviews", status="pending", target="held", after=first["last_id"]
    ).json()
    assert rest["data"][0]["id"] == ours[0]
    assert gate.get("reviewer", "/v1/reviews", status="maybe").status_code == 400
    assert gate.get("reviewer", "/v1/reviews", after="rev_" + "0" * 24).status_code == 400


def test_audit_answers_at_once_and_queues_the_review(
    gate: Gate, fake_upstream: FakeUpstream
) -> None:
    client = gate.sdk("asker")
    fake_upstream.script(
        Behavior(content="Whole answer."), Behavior(content="Streamed answer.", stream_chunks=3)
    )
    raw = client.chat.completions.with_raw_response.create(
        model="audited", messages=[{"role": "user", "content": "Q1"}]
    )
    assert raw.status_code == 200
    assert raw.parse().choices[0].message.content == "Whole answer."
    stream = client.chat.completions.create(
        model="audited", stream=True, messages=[{"role": "user", "content": "Q2"}]
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Streamed answer."

    listed = gate.get("reviewer", "/v1/reviews", target="audited", status="pending").json()
    queued = {r["choices"][0]["message"]["content"]: r for r in listed["data"]}
    assert set(queued) == {"Whole answer.", "Streamed answer."}
    whole = queued["Whole answer."]
    assert whole["mode"] == "audit" and whole["trace_id"] == raw.headers["x-groundgate-trace-id"]


def test_the_safe_answer_is_served_and_the_original_waits(
    gate: Gate, fake_upstream: FakeUpstream
) -> None:
    client = gate.sdk("asker2")
    fake_upstream.script(*(Behavior(content=f"Risky answer {i}.") for i in range(3)))
    messages: Any = [{"role": "user", "content": "Can I have the safe one?"}]
    for _ in range(2):  # the same request twice: neither the held answer nor the safe one is
        completion = client.chat.completions.create(
            model="held-safe", messages=messages, temperature=0
        )
        assert completion.choices[0].message.content == SAFE
        assert completion.choices[0].finish_reason == "stop"
    stream = client.chat.completions.create(model="held-safe", messages=messages, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == SAFE
    assert len(fake_upstream.requests()) == 3  # none cached: every one was generated

    listed = gate.get("reviewer", "/v1/reviews", target="held-safe").json()["data"]
    originals = {r["choices"][0]["message"]["content"] for r in listed}
    assert originals == {"Risky answer 0.", "Risky answer 1.", "Risky answer 2."}


def review_cli(gate: Gate, *args: str) -> subprocess.CompletedProcess[str]:
    return gate.process.cli("review", *args)


def test_the_cli_decides_and_exports_an_eval_dataset(
    gate: Gate, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.script(Behavior(content="Kept as it is."))
    body = {
        "model": "held",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "First question?"},
            {"role": "assistant", "content": "First answer."},
            {"role": "user", "content": "Second question?"},
        ],
    }
    first = gate.post("cli_asker", "/v1/chat/completions", body).json()["id"]
    second = gate.held("cli_asker", "Wrong answer.", fake_upstream)
    third = gate.held("cli_asker", "Also wrong.", fake_upstream)

    listed = review_cli(gate, "list", "--tenant", "initech", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {r["id"] for r in json.loads(listed.stdout)["data"]} == {first, second, third}
    table = review_cli(gate, "list", "--tenant", "initech")
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if "rev_" in line]
    assert len(rows) == 3 and all("pending" in r and "held" in r for r in rows)

    approved = review_cli(gate, "approve", first, "--tenant", "initech", "--json")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["status"] == "approved"
    corrected = review_cli(gate, "reject", second, "--tenant", "initech", "--correct", "Right.")
    assert corrected.returncode == 0, corrected.stderr
    assert corrected.stderr.strip() == f"Review {second} rejected."
    assert review_cli(gate, "reject", third, "--tenant", "initech").returncode == 0
    twice = review_cli(gate, "approve", first, "--tenant", "initech")
    assert twice.returncode == 1 and "already approved" in twice.stderr
    elsewhere = review_cli(gate, "show", first, "--tenant", "acme")
    assert elsewhere.returncode == 1
    error = json.loads(elsewhere.stdout)["error"]  # show speaks JSON, its errors too
    assert error["message"] == f"No review with id '{first}' in tenant 'acme'."
    # The gateway reads the CLI's decision: the asker gets its answer.
    polled = gate.get("cli_asker", f"/v1/reviews/{first}").json()
    assert polled["answer"]["choices"][0]["message"]["content"] == "Kept as it is."

    out = tmp_path / "reviewed.jsonl"
    exported = review_cli(gate, "export", str(out), "--tenant", "initech", "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["skipped"] == 1  # rejected, with nothing to expect
    cases = {case.id: case for case in load_dataset(out)}
    assert set(cases) == {first, second}
    kept = cases[first]
    assert kept.question == "Second question?" and kept.answers == ["Kept as it is."]
    assert [(t.role, t.content) for t in kept.history] == [
        ("system", "Be brief."),
        ("user", "First question?"),
        ("assistant", "First answer."),
    ]
    assert kept.label == "approved"
    assert cases[second].answers == ["Right."] and cases[second].label == "rejected"
