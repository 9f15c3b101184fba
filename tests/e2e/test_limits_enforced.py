"""Limits a client must not lift, against a real gateway with keys required: the models a key
may run (also through ``/v1/ask``), an app's filters and ``top_k``, the deadline, and the
expiry of keys made by an expiring key."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.servers import GatewayProcess, start_gateway

ADMIN_KEY = "adm-" + secrets.token_urlsafe(32)
CONFIG = """
[auth]
mode = "required"
[traces]
flush_interval_ms = 20
[reliability]
breaker_failures = 100000
breaker_min_calls = 100000
[providers.up]
type = "openai"
base_url = "{fake}/v1"
timeout_s = 30
[models.gpt]
deployments = ["up:gpt-4o-mini"]

[apps.people]
knowledge_base = "policies"
filters = {{ team = "people" }}
cache = {{ exact = false, semantic = false }}

[apps.capped]
knowledge_base = "policies"
top_k = 1
cache = {{ exact = false, semantic = false }}

[apps.slow]
knowledge_base = "policies"
model = "gpt"
timeout_s = 1
cache = {{ exact = false, semantic = false }}
"""

POLICIES = [
    {
        "id": "vacation",
        "metadata": {"team": "people"},
        "text": "Employees receive 28 days of paid vacation per year.",
    },
    {
        "id": "parental",
        "metadata": {"team": "people"},
        "text": "Parents receive 20 days of paid parental leave per year.",
    },
    {
        "id": "expenses",
        "metadata": {"team": "finance"},
        "text": "Expenses are paid back within 14 days per claim.",
    },
]
QUESTION = "How many days per year?"


@dataclass
class Gate:
    process: GatewayProcess

    def client(self, key: str = ADMIN_KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.Client(base_url=self.process.url, headers=headers, timeout=60)

    def make_key(self, key: str = ADMIN_KEY, **body: Any) -> dict[str, Any]:
        with self.client(key) as client:
            resp = client.post("/v1/admin/keys", json={"name": "k", **body})
        assert resp.status_code == 201, resp.text
        created: dict[str, Any] = resp.json()
        return created

    def ask(self, key: str = ADMIN_KEY, **body: Any) -> httpx.Response:
        with self.client(key) as client:
            return client.post("/v1/ask", json={"question": QUESTION, **body})

    def retrieved(self, answer: httpx.Response) -> list[str]:
        """The documents the answer's retrieval returned, best first (from its trace)."""
        assert answer.status_code == 200, answer.text
        with self.client() as client:
            trace = client.get(f"/v1/traces/{answer.json()['trace_id']}").json()
        passages = trace["attrs"]["retrieval"]["passages"]
        return [p["chunk_id"].split("#")[0] for p in passages]


@pytest.fixture(scope="module")
def gate(
    fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gate]:
    workdir: Path = tmp_path_factory.mktemp("limits")
    process = start_gateway(
        CONFIG.format(fake=fake_upstream_server.url),
        workdir,
        env={"GROUNDGATE_ADMIN_KEY": ADMIN_KEY},
    )
    gate = Gate(process)
    try:
        with gate.client() as client:
            resp = client.post(
                "/v1/knowledge-bases/policies/documents", json={"documents": POLICIES}
            )
        assert resp.status_code == 200, resp.text
        yield gate
    finally:
        process.stop()


# -- the models a key may run ----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"app": "people", "model": "gpt"},  # the app's model swapped for one not granted
        {"kb": "policies", "model": "gpt"},
        {"kb": "policies"},  # an ad-hoc ask runs "local", which the key lacks too
    ],
)
def test_ask_runs_no_model_the_key_lacks(
    gate: Gate, fake_upstream: FakeUpstream, body: dict[str, Any]
) -> None:
    key = gate.make_key(scopes=["chat"], models=["people"])["key"]
    assert gate.ask(key, app="people").status_code == 200  # the app it holds, as configured
    refused = gate.ask(key, **body)
    assert refused.status_code == 404, refused.text
    assert refused.json()["error"]["code"] == "model_not_found"
    assert fake_upstream.requests() == []


def test_ask_runs_a_model_the_key_holds(gate: Gate, fake_upstream: FakeUpstream) -> None:
    key = gate.make_key(scopes=["chat"], models=["people", "gpt"])["key"]
    answer = gate.ask(key, app="people", model="gpt")
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "up:gpt-4o-mini"
    assert len(fake_upstream.requests()) == 1


# -- what a limited key is told ---------------------------------------------------------------


def test_a_limited_key_sees_its_headroom_on_every_answer(gate: Gate) -> None:
    key = gate.make_key(scopes=["chat"], requests_per_minute=100, tokens_per_minute=500_000)
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    with gate.client(key["key"]) as client:
        answers = [
            client.post("/v1/chat/completions", json=body),
            client.post("/v1/chat/completions", json={**body, "stream": True}),
            client.post("/v1/ask", json={"question": QUESTION, "kb": "policies"}),
        ]
    for left, answer in zip((99, 98, 97), answers, strict=True):
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-ratelimit-limit-requests"] == "100"
        assert answer.headers["x-ratelimit-remaining-requests"] == str(left)
        assert answer.headers["x-ratelimit-limit-tokens"] == "500000"
        assert int(answer.headers["x-ratelimit-remaining-tokens"]) < 500_000
        assert re.fullmatch(r"\d+\.\d{3}s", answer.headers["x-ratelimit-reset-requests"])


# -- an app's filters and top_k --------------------------------------------------------------


def test_app_filters_without_request_filters(gate: Gate) -> None:
    assert set(gate.retrieved(gate.ask(app="people"))) == {"vacation", "parental"}


def test_request_filters_cannot_replace_the_apps(gate: Gate) -> None:
    refused = gate.ask(app="people", filters={"team": "finance"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "filters"


def test_request_filters_cannot_widen_the_apps(gate: Gate) -> None:
    widened = gate.ask(app="people", filters={"team": {"$in": ["finance", "people"]}})
    assert set(gate.retrieved(widened)) == {"vacation", "parental"}


def test_request_filters_narrow_the_apps(gate: Gate) -> None:
    narrowed = gate.ask(app="people", filters={"doc_id": "parental"})
    assert gate.retrieved(narrowed) == ["parental"]


def test_request_top_k_is_capped_to_the_apps(gate: Gate) -> None:
    assert len(gate.retrieved(gate.ask(app="capped", top_k=3))) == 1
    # An ad-hoc ask has no app to cap it.
    assert len(gate.retrieved(gate.ask(kb="policies", top_k=3))) == 3


# -- the deadline ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "slow", "messages": [{"role": "user", "content": "x"}]}),
        ("/v1/ask", {"app": "slow", "question": QUESTION}),
    ],
)
def test_timeout_header_cannot_extend_the_apps_deadline(
    gate: Gate, fake_upstream: FakeUpstream, path: str, body: dict[str, Any]
) -> None:
    fake_upstream.set_default(Behavior(latency_ms=3000))
    with gate.client() as client:
        resp = client.post(path, json=body, headers={"x-groundgate-timeout": "30"})
    # The app's 1 s deadline holds; under the header's 30 s the answer would come at 3 s.
    assert resp.status_code == 504, resp.text


def test_a_longer_timeout_header_is_clamped_not_refused(gate: Gate) -> None:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "x"}]}
    with gate.client() as client:
        resp = client.post(
            "/v1/chat/completions", json=body, headers={"x-groundgate-timeout": "100000"}
        )
    assert resp.status_code == 200, resp.text


# -- keys made by an expiring key ------------------------------------------------------------


def test_a_key_never_outlives_its_maker(gate: Gate) -> None:
    maker = gate.make_key(tenant="acme", scopes=["admin", "chat"], expires_in_s=3600)
    deadline = maker["expires_at"]
    assert deadline is not None
    made = {
        "none": gate.make_key(maker["key"], scopes=["chat"]),
        "later": gate.make_key(maker["key"], scopes=["chat"], expires_in_s=7200),
        "later_at": gate.make_key(maker["key"], scopes=["chat"], expires_at=deadline + 1e6),
        "sooner": gate.make_key(maker["key"], scopes=["chat"], expires_in_s=60),
        "admin": gate.make_key(maker["key"], scopes=["admin", "chat"]),
    }
    grandchild = gate.make_key(made["admin"]["key"], scopes=["chat"])
    with gate.client() as client:
        stored = {
            label: client.get(f"/v1/admin/keys/{key['id']}").json()["expires_at"]
            for label, key in [*made.items(), ("grandchild", grandchild)]
        }
    for label in ("none", "later", "later_at", "admin", "grandchild"):
        assert stored[label] == deadline, label
    assert stored["sooner"] is not None and stored["sooner"] < deadline
    assert made["none"]["expires_at"] == deadline  # the creation response says so too


def test_the_bootstrap_admin_makes_keys_that_never_expire(gate: Gate) -> None:
    assert gate.make_key(tenant="acme", scopes=["chat"])["expires_at"] is None
    assert time.time() < gate.make_key(expires_in_s=60)["expires_at"]
