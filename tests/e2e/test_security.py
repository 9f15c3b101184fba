"""The gateway attacked by its own test suite: a real server with keys required and rate
limits in a real Redis, probed with hostile keys, other tenants' ids and forged headers.

Every response the suite receives is kept, and the last test scans them, the server's log and
its database (the SQLite file and its write-ahead log, as raw bytes) for key material: the
secret of every key made (over HTTP and with ``groundgate keys create``), the admin key and the
provider keys the gateway holds."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from groundgate.api.auth import PUBLIC
from groundgate.gateway.keys import hash_secret, parse_key
from groundgate.testing.fake_state import Behavior
from groundgate.testing.fake_upstream import FakeUpstream
from tests.cli.test_keys_cli import run_json
from tests.conftest import FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY
from tests.gateway.redis_server import RedisServer
from tests.servers import GatewayProcess, start_gateway

ADMIN_KEY = "adm-" + secrets.token_urlsafe(32)
REDACTED = "[REDACTED]"
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
api_key_env = "GG_TEST_OPENAI_KEY"
[providers.claude]
type = "anthropic"
base_url = "{fake}"
api_key_env = "GG_TEST_ANTHROPIC_KEY"
[models.gpt]
deployments = ["up:gpt-4o-mini"]
[models.sonnet]
deployments = ["claude:claude-sonnet"]
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
    # Every response of the suite, headers and body, for the final scan for key material.
    seen: list[str] = field(default_factory=list)

    def client(self, who: str | None) -> httpx.Client:
        return self.client_with(self.keys[who] if who else None)

    def client_with(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(
            base_url=self.gateway.url,
            headers=headers,
            timeout=30,
            event_hooks={"response": [self._keep]},
        )

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        text = response.text
        request = response.request
        if (request.method, request.url.path, response.status_code) == (
            "POST",
            "/v1/admin/keys",
            201,
        ):
            # The one place a key is meant to appear: its creation, shown once.
            text = text.replace(response.json()["key"], "<the new key>")
        self.seen.append(f"{response.headers}\n{text}")


def secret_of(key: str) -> str:
    parsed = parse_key(key)
    assert parsed is not None, key
    return parsed[1]


def admin(team: Team) -> httpx.Client:
    return team.client_with(ADMIN_KEY)


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
        env={
            "GROUNDGATE_ADMIN_KEY": ADMIN_KEY,
            "GROUNDGATE_REDIS_URL": redis_server.url,
            "GG_TEST_OPENAI_KEY": FAKE_OPENAI_KEY,
            "GG_TEST_ANTHROPIC_KEY": FAKE_ANTHROPIC_KEY,
        },
    )
    team = Team(gateway)
    # A key as an operator makes one: the CLI, on the store the running gateway uses.
    made = run_json(
        "create",
        "--tenant",
        "acme",
        "--name",
        "cli",
        "--scope",
        "chat",
        "--scope",
        "ingest",
        cwd=workdir,
    )
    team.keys["cli"], team.ids["cli"] = made["key"], made["id"]
    team.used.append(made["key"])
    make_key(team, "alice", tenant="acme", scopes=["chat", "embeddings", "ingest"])
    make_key(team, "bob", tenant="globex", scopes=["chat", "embeddings", "ingest"])
    make_key(team, "acme-admin", tenant="acme", scopes=["chat", "admin"], requests_per_minute=1000)
    make_key(team, "limited", tenant="acme", scopes=["chat"], requests_per_minute=5)
    make_key(team, "narrow", tenant="acme", scopes=["chat"], models=["gpt"], max_tokens=100)
    yield team
    gateway.stop()


def authenticated_operations(team: Team) -> list[tuple[str, str, str | None]]:
    """(method, path, body content type) of every operation the app serves but the public
    probes: read from its OpenAPI document, which FastAPI builds from the app's routes, so a
    new route is probed without a change here. An operation is probed once per content type
    its body accepts (ingest takes JSON and multipart)."""
    with team.client(None) as client:
        spec = client.get("/openapi.json").json()
    operations = []
    for path, methods in spec["paths"].items():
        if path in PUBLIC:
            continue
        concrete = re.sub(r"\{[^}]+\}", "probe", path)
        for method, operation in methods.items():
            for content_type in operation.get("requestBody", {}).get("content") or [None]:
                operations.append((method.upper(), concrete, content_type))
    return operations


def body_of(content_type: str | None) -> dict[str, Any]:
    """A body of the type the operation documents (auth answers before the body is read)."""
    if content_type == "multipart/form-data":
        return {"files": {"files": ("probe.txt", b"probe", "text/plain")}}
    return {"json": {}} if content_type else {}


def test_hostile_keys_are_401_on_every_route(team: Team) -> None:
    operations = authenticated_operations(team)
    # 23 operations when this was written; new routes only add to them.
    assert len({(method, path) for method, path, _ in operations}) >= 23, operations
    error_fields = {"message", "type", "param", "code"}
    wrong = []
    with team.client(None) as client:
        for method, path, content_type in operations:
            body = body_of(content_type)
            for key in [*HOSTILE_KEYS, None]:
                # Raw UTF-8 bytes on the wire, as a hostile client would send them.
                headers = {} if key is None else {"Authorization": f"Bearer {key}".encode()}
                resp = client.request(method, path, headers=headers, **body)
                if resp.status_code != 401 or set(resp.json()["error"]) != error_fields:
                    wrong.append((method, path, content_type, (key or "")[:20], resp.status_code))
            resp = client.request(method, path, headers={"x-api-key": "' OR '1'='1"}, **body)
            if resp.status_code != 401:
                wrong.append((method, path, content_type, "x-api-key", resp.status_code))
    assert not wrong, wrong


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
    with team.client("alice") as alice:
        # Something of acme's to reach for, made (and seen by acme) before reaching for it.
        memo = {"documents": [{"id": "memo", "text": "Acme's roadmap is confidential."}]}
        assert alice.post("/v1/knowledge-bases/acme-forged/documents", json=memo).status_code == 200
        mine = alice.get("/v1/knowledge-bases").json()["data"]
        assert "acme-forged" in {kb["name"] for kb in mine}
    with team.client(None) as anonymous:
        assert anonymous.get("/v1/admin/keys", headers=forged).status_code == 401
    with team.client("bob") as bob:
        listed = bob.get("/v1/knowledge-bases", headers=forged)
        assert listed.status_code == 200
        assert "acme-forged" not in {kb["name"] for kb in listed.json()["data"]}
        assert bob.get("/v1/knowledge-bases/acme-forged", headers=forged).status_code == 404
        asked = bob.post("/v1/ask", json={"kb": "acme-forged", "question": "x"}, headers=forged)
        assert asked.status_code == 404 and "roadmap" not in asked.text
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
        listing = tenant_admin.get("/v1/admin/keys")
        listed = listing.json()["data"]
        assert {k["tenant"] for k in listed} == {"acme"}
        assert team.ids["cli"] in {k["id"] for k in listed}  # the CLI's key is listed too
        # Neither a secret nor its stored hash is ever listed, under any field name.
        for key in team.used:
            secret = secret_of(key)
            assert secret not in listing.text and hash_secret(secret) not in listing.text


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


def test_no_key_material_in_logs_traces_or_responses(
    team: Team, fake_upstream: FakeUpstream
) -> None:
    """Runs last in this module, when everything above has been logged, traced and answered.
    Key material is first put where it could stick (a question, which is traced; a model name,
    which an error echoes; an upstream error echoing the gateway's own credential), then every
    log line, stored trace and response of the suite is scanned for it."""
    cli = team.keys["cli"]
    traced = []
    with team.client("cli") as client:
        memo = {"documents": [{"id": "keys", "text": "Keys are rotated every quarter."}]}
        assert client.post("/v1/knowledge-bases/acme-keys/documents", json=memo).status_code == 200
        # A client pasting keys into a question. Its answer echoes the question to the one who
        # asked, so it is read aside from the kept responses; no-store keeps it out of the
        # answer cache, which stores questions as they are, like documents.
        question = f"Are {cli} and {ADMIN_KEY} and {FAKE_OPENAI_KEY} rotated?"
        asked = httpx.post(
            f"{team.gateway.url}/v1/ask",
            json={"kb": "acme-keys", "question": question},
            headers={"Authorization": f"Bearer {cli}", "Cache-Control": "no-store"},
            timeout=30,
        )
        assert asked.status_code == 200, asked.text
        traced.append(asked.headers["x-groundgate-trace-id"])
        unknown = client.post(
            "/v1/chat/completions",
            json={"model": cli, "messages": [{"role": "user", "content": "x"}]},
        )
        assert unknown.status_code == 404 and REDACTED in unknown.text, unknown.text
        for model, credential in (("gpt", FAKE_OPENAI_KEY), ("sonnet", FAKE_ANTHROPIC_KEY)):
            fake_upstream.set_default(
                Behavior(status=400, error_message=f"Incorrect API key provided: {credential}")
            )
            echoed = client.post(
                "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "x"}]},
            )
            assert echoed.status_code == 400 and REDACTED in echoed.text, echoed.text
            traced.append(echoed.headers["x-groundgate-trace-id"])
        # Traces are written off the response path: wait until each is stored.
        deadline = time.monotonic() + 10
        for trace_id in traced:
            while client.get(f"/v1/traces/{trace_id}").status_code != 200:
                assert time.monotonic() < deadline, f"trace {trace_id} never stored"
                time.sleep(0.05)
        stored_question = client.get(f"/v1/traces/{traced[0]}").json()["attrs"]["query"]
        assert f"gg_{team.ids['cli']}_{REDACTED}" in stored_question, stored_question
    with admin(team) as root:
        assert root.get("/metrics").status_code == 200  # every detail, kept for the scan

    material = {secret_of(key) for key in team.used} | {
        ADMIN_KEY,
        FAKE_OPENAI_KEY,
        FAKE_ANTHROPIC_KEY,
    }
    data = team.gateway.config_path.parent / "data"
    places = {path.name: path.read_bytes() for path in data.glob("groundgate.db*")}
    assert {"groundgate.db", "groundgate.db-wal"} <= set(places)  # the WAL holds recent writes
    places["log"] = team.gateway.log_path.read_bytes()
    places.update({f"response {i}": text.encode() for i, text in enumerate(team.seen)})
    assert len(team.seen) > 300  # every test's requests went through the kept clients
    leaks = [
        (where, secret[:10])
        for where, blob in places.items()
        for secret in material
        if secret.encode() in blob
    ]
    assert not leaks, leaks
