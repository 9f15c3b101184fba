"""The gateway attacked by its own test suite: a real server with keys required and rate
limits in a real Redis, probed with hostile keys, other tenants' ids and forged headers."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from groundgate.testing.fake_upstream import FakeUpstream
from tests.gateway.redis_server import RedisServer
from tests.servers import GatewayProcess, start_gateway

ADMIN_KEY = "adm-" + secrets.token_urlsafe(32)
CONFIG = """
[auth]
mode = "required"
[limits]
backend = "redis"
[traces]
flush_interval_ms = 20
[reliability]
breaker_failures = 100000
breaker_min_calls = 100000
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.gpt]
deployments = ["up:gpt-4o-mini"]
[models.other]
deployments = ["up:gpt-4o"]
[prices."up:gpt-4o-mini"]
input_per_mtok = 1000000.0
output_per_mtok = 1000000.0
"""

HOSTILE_KEYS = [
    "' OR '1'='1",
    "x' OR 1=1; --",
    "; DROP TABLE api_keys; --",
    "gg_' OR '1'='1_" + "a" * 40,
    "ключ🔑" * 10,
    "a" * 10_240,
    "gg_" + "a" * 12 + "_" + "b" * 43,  # well-formed, unknown
    "null",
    "%00",
]


@dataclass
class Team:
    gateway: GatewayProcess
    keys: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    used: list[str] = field(default_factory=list)

    def client(self, who: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return httpx.Client(base_url=self.gateway.url, headers=headers, timeout=30)


def admin(team: Team) -> httpx.Client:
    return httpx.Client(
        base_url=team.gateway.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )


def make_key(team: Team, label: str, **body: object) -> None:
    with admin(team) as client:
        resp = client.post("/v1/admin/keys", json={"name": label, **body})
    assert resp.status_code == 201, resp.text
    team.keys[label], team.ids[label] = resp.json()["key"], resp.json()["id"]
    team.used.append(resp.json()["key"])


@pytest.fixture(scope="module")
def team(
    fake_upstream_server: FakeUpstream,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Team]:
    workdir: Path = tmp_path_factory.mktemp("secure")
    gateway = start_gateway(
        CONFIG.format(fake=fake_upstream_server.url),
        workdir,
        env={"GROUNDGATE_ADMIN_KEY": ADMIN_KEY, "GROUNDGATE_REDIS_URL": redis_server.url},
    )
    team = Team(gateway)
    make_key(team, "alice", tenant="acme", scopes=["chat", "embeddings", "ingest"])
    make_key(team, "bob", tenant="globex", scopes=["chat", "embeddings", "ingest"])
    make_key(team, "acme-admin", tenant="acme", scopes=["chat", "admin"], requests_per_minute=1000)
    make_key(team, "limited", tenant="acme", scopes=["chat"], requests_per_minute=5)
    make_key(team, "narrow", tenant="acme", scopes=["chat"], models=["gpt"], max_tokens=100)
    yield team
    gateway.stop()


ROUTES = [
    (
        "POST",
        "/v1/chat/completions",
        {"model": "gpt", "messages": [{"role": "user", "content": "x"}]},
    ),
    ("POST", "/v1/embeddings", {"model": "all-minilm-l6-v2", "input": "x"}),
    ("POST", "/v1/ask", {"kb": "kb", "question": "x"}),
    ("GET", "/v1/models", None),
    ("GET", "/v1/traces/" + "0" * 32, None),
    ("GET", "/v1/usage", None),
    ("GET", "/v1/knowledge-bases", None),
    ("POST", "/v1/knowledge-bases/kb/documents", {"documents": [{"text": "x"}]}),
    ("GET", "/v1/knowledge-bases/kb/documents", None),
    ("DELETE", "/v1/knowledge-bases/kb/documents/d", None),
    ("GET", "/v1/admin/keys", None),
    ("POST", "/v1/admin/keys", {"name": "x", "tenant": "acme"}),
    ("GET", "/v1/admin/tenants", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_hostile_keys_are_401_on_every_route(
    team: Team, method: str, path: str, body: object
) -> None:
    for key in [*HOSTILE_KEYS, None]:
        # Raw UTF-8 bytes on the wire, as a hostile client would send them.
        headers = {} if key is None else {"Authorization": f"Bearer {key}".encode()}
        resp = httpx.request(
            method, team.gateway.url + path, json=body, timeout=30, headers=headers
        )
        assert resp.status_code == 401, (key, resp.text)
        assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
    resp = httpx.request(
        method, team.gateway.url + path, json=body, timeout=30, headers={"x-api-key": "' OR '1'='1"}
    )
    assert resp.status_code == 401


def test_forged_host_and_forwarded_headers_change_nothing(team: Team) -> None:
    forged = {
        "Host": "localhost",
        "X-Forwarded-For": "127.0.0.1",
        "X-Real-IP": "127.0.0.1",
        "X-Forwarded-Host": "admin.internal",
        "X-Forwarded-Proto": "https",
        "X-Groundgate-Tenant": "acme",
        "Forwarded": "for=127.0.0.1",
    }
    resp = httpx.get(team.gateway.url + "/v1/admin/keys", headers=forged)
    assert resp.status_code == 401
    with team.client("bob") as bob:
        listed = bob.get("/v1/knowledge-bases", headers=forged)
        assert listed.status_code == 200
        assert all(kb["name"] != "acme-secret" for kb in listed.json()["data"])
        assert bob.get("/v1/admin/keys", headers=forged).status_code == 403


def test_tenants_see_nothing_of_each_other(team: Team) -> None:
    with team.client("alice") as alice, team.client("bob") as bob:
        ingest = alice.post(
            "/v1/knowledge-bases/acme-secret/documents",
            json={"documents": [{"id": "plan", "text": "The merger closes on March 3rd."}]},
        )
        assert ingest.status_code == 200, ingest.text
        chat = alice.post(
            "/v1/chat/completions",
            json={"model": "gpt", "messages": [{"role": "user", "content": "hello"}]},
        )
        assert chat.status_code == 200
        trace_id = chat.headers["x-groundgate-trace-id"]
        asked = alice.post(
            "/v1/ask", json={"kb": "acme-secret", "question": "When does the merger close?"}
        )
        assert "March 3rd" in asked.json()["answer"]
        time.sleep(0.2)
        assert alice.get(f"/v1/traces/{trace_id}").status_code == 200
        probes = [
            bob.get(f"/v1/traces/{trace_id}"),
            bob.get("/v1/knowledge-bases/acme-secret"),
            bob.get("/v1/knowledge-bases/acme-secret/documents"),
            bob.get("/v1/knowledge-bases/acme-secret/documents/plan"),
            bob.delete("/v1/knowledge-bases/acme-secret/documents/plan"),
            bob.delete("/v1/knowledge-bases/acme-secret"),
            bob.post("/v1/ask", json={"kb": "acme-secret", "question": "merger?"}),
        ]
        assert [p.status_code for p in probes] == [404] * len(probes)
        for probe in probes:
            assert "March" not in probe.text
        assert all(
            kb["name"] != "acme-secret" for kb in bob.get("/v1/knowledge-bases").json()["data"]
        )
        # Bob's own knowledge base of the same name is a different one.
        bob.post(
            "/v1/knowledge-bases/acme-secret/documents",
            json={"documents": [{"id": "plan", "text": "Globex plans a picnic."}]},
        )
        assert (
            "picnic"
            not in alice.post(
                "/v1/ask", json={"kb": "acme-secret", "question": "What does Globex plan?"}
            ).text
        )
        assert alice.get("/v1/knowledge-bases/acme-secret/documents/plan").status_code == 200
        bob_usage = bob.get("/v1/usage").json()
        assert {r["key_id"] for r in bob_usage["data"]} <= {team.ids["bob"]}


def test_non_admin_cannot_escalate(team: Team) -> None:
    with team.client("alice") as alice:
        assert (
            alice.post(
                "/v1/admin/keys", json={"name": "mine", "tenant": "acme", "scopes": ["admin"]}
            ).status_code
            == 403
        )
        assert alice.get("/v1/admin/keys").status_code == 403
        assert (
            alice.post(
                "/v1/admin/tenants", json={"name": "acme", "daily_budget_usd": 1e9}
            ).status_code
            == 403
        )
        assert alice.get("/v1/usage", params={"tenant": "globex"}).status_code == 403
        assert alice.get("/v1/usage", params={"key_id": team.ids["bob"]}).status_code == 403
    with team.client("acme-admin") as tenant_admin:
        # A tenant admin manages its own tenant only, and grants nothing it does not hold.
        other = tenant_admin.post("/v1/admin/keys", json={"name": "x", "tenant": "globex"})
        assert other.status_code == 403
        wider = tenant_admin.post("/v1/admin/keys", json={"name": "x", "scopes": ["ingest"]})
        assert wider.status_code == 403
        looser = tenant_admin.post(
            "/v1/admin/keys", json={"name": "x", "requests_per_minute": 10_000}
        )
        assert looser.status_code == 403
        ok = tenant_admin.post(
            "/v1/admin/keys", json={"name": "helper", "scopes": ["chat"], "requests_per_minute": 10}
        )
        assert ok.status_code == 201 and ok.json()["tenant"] == "acme"
        team.used.append(ok.json()["key"])
        listed = tenant_admin.get("/v1/admin/keys").json()["data"]
        assert {k["tenant"] for k in listed} == {"acme"}
        assert all("secret" not in str(k).lower() or "hash" not in k for k in listed)


def test_key_restrictions_hold(team: Team) -> None:
    with team.client("narrow") as narrow:
        denied = narrow.post(
            "/v1/chat/completions",
            json={"model": "other", "messages": [{"role": "user", "content": "x"}]},
        )
        assert denied.status_code == 404  # a key must not learn what else exists
        too_long = narrow.post(
            "/v1/chat/completions",
            json={
                "model": "gpt",
                "max_tokens": 5000,
                "messages": [{"role": "user", "content": "x"}],
            },
        )
        assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "max_tokens"
        assert (
            narrow.post(
                "/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": "x"}
            ).status_code
            == 403
        )
        ssrf = narrow.post(
            "/v1/chat/completions",
            json={
                "model": "gpt",
                "messages": [{"role": "user", "content": "x"}],
                "base_url": "http://169.254.169.254/",
            },
        )
        assert ssrf.status_code == 400


def test_rate_limit_answers_429_with_headers(team: Team) -> None:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "x"}]}
    with team.client("limited") as limited:
        statuses = []
        for _ in range(6):
            resp = limited.post("/v1/chat/completions", json=body)
            statuses.append(resp.status_code)
        assert statuses == [200] * 5 + [429]
        assert float(resp.headers["retry-after"]) >= 1
        assert resp.json()["error"]["type"] == "rate_limit_error"
        ok_headers = limited.get("/v1/models").headers
        assert "x-groundgate-trace-id" not in ok_headers  # not a model call
    with team.client("alice") as alice:
        resp = alice.post("/v1/chat/completions", json=body)
        assert resp.status_code == 200  # another key of the same tenant is not affected


def test_budget_refuses_with_a_clear_message(team: Team) -> None:
    make_key(team, "thrifty", tenant="budgeted", scopes=["chat"], daily_budget_usd=0.5)
    body = {"model": "gpt", "messages": [{"role": "user", "content": "one two three"}]}
    with team.client("thrifty") as thrifty:
        first = thrifty.post("/v1/chat/completions", json=body)
        assert first.status_code == 200
        assert float(first.headers["x-groundgate-cost-usd"]) > 0.5  # 1 USD per token here
        second = thrifty.post("/v1/chat/completions", json=body)
        assert second.status_code == 429
        error = second.json()["error"]
        assert error["type"] == "insufficient_quota" and error["code"] == "budget_exceeded"
        assert "daily budget" in error["message"] and "resets at" in error["message"]
        time.sleep(0.3)  # traces are written in batches off the response path
        usage = thrifty.get("/v1/usage").json()
        refused = thrifty.get(f"/v1/traces/{second.headers['x-groundgate-trace-id']}")
        assert refused.status_code == 200, refused.text
        assert refused.json()["error"]["type"] == "BudgetExceeded"
        assert usage["totals"]["requests"] == 2, usage
        assert usage["totals"]["cost_usd"] > 0.5
        assert usage["totals"]["errors"] == 1  # the refused request is traced too


def test_revocation_is_immediate(team: Team) -> None:
    make_key(team, "temp", tenant="acme", scopes=["chat"])
    with team.client("temp") as temp:
        assert temp.get("/v1/models").status_code == 200
        with admin(team) as root:
            assert root.delete(f"/v1/admin/keys/{team.ids['temp']}").status_code == 200
        assert temp.get("/v1/models").status_code == 401


def test_no_key_in_logs_or_traces(team: Team) -> None:
    # Runs last in this module: everything above has been logged and traced by now.
    time.sleep(0.3)
    with team.client("alice") as alice:
        resp = alice.post(
            "/v1/chat/completions",
            json={"model": "gpt", "messages": [{"role": "user", "content": "trace me"}]},
        )
        trace = alice.get(f"/v1/traces/{resp.headers['x-groundgate-trace-id']}").text
    with admin(team) as root:
        metrics = root.get("/metrics").text
    log = team.gateway.log_text()
    database = (team.gateway.config_path.parent / "data" / "groundgate.db").read_bytes()
    for key in [*team.used, ADMIN_KEY]:
        # gg_<12-char id>_<secret>; the secret itself may contain "_".
        secret = key[16:] if key.startswith("gg_") else key
        for where, text in (("log", log), ("trace", trace), ("metrics", metrics)):
            assert key not in text and secret not in text, where
        assert secret.encode() not in database
