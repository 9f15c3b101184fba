"""Property-based tests of every route against the gateway's own OpenAPI schema (schemathesis).

A dedicated gateway (auth ``open``, so every route is reachable) serves a fake upstream model,
the local model, an app and a knowledge base; a second one, the same with keys required, is
fuzzed with fewer examples through a tenant's key that holds every scope, so the key checks,
tenant scoping and a tenant admin's limits are fuzzed too. Schemathesis loads
``/openapi.json`` from each and, for every operation, sends the schema's examples, its coverage
cases (boundaries, missing and wrong-typed fields, unexpected methods) and a bounded number of
fuzzed requests over real HTTP, then checks each response:

- ``not_a_server_error``: no 5xx, whatever the input;
- ``status_code_conformance``: the status is documented (the schema lists each operation's
  OpenAI-style errors: 400/401/403/404/409/413/429/5xx, see ``api.app._document_errors``);
- ``content_type_conformance`` and ``response_schema_conformance``: the body has a documented
  type and shape (every error must be ``{"error": {message, type, param, code}}``);
- ``response_headers_conformance``; ``unsupported_method`` and ``allow_header_conformance``:
  an undocumented method is a 405 whose ``Allow`` lists every method the path supports.

Left out on purpose: ``positive_data_acceptance`` and ``negative_data_rejection``. The gateway
checks more than its schema can say (an ask names an app or a knowledge base; names follow a
pattern the routes check themselves, with their own messages), so those would grade the
documentation's precision, not the server. The stateful checks (``use_after_free``, ...) need
the stateful phase, which the pytest integration does not run.

Generated values seldom name something that exists, so dictionaries feed real names (the
knowledge base, its documents, models, an app, a key, a tenant, a trace) into half of the
values of those parameters, which gets requests past "not found" into the handlers.
No operation is excluded. Destructive ones are pointed at data of their own: deleting a
knowledge base uses ``scratch``, deleting a document uses ``disposable``, so the handbook the
other operations read stays in place (deleting it would only turn later reads into 404s, but
would also stop them from reaching the code behind the lookup).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.openapi import from_url
from schemathesis.schemas import BaseSchema

from groundgate.api.routes.chat import TIMEOUT_HEADER
from groundgate.testing.fake_upstream import FakeUpstream
from tests.servers import GatewayProcess, start_gateway

CONFIG = """
[server]
request_timeout_s = 8
max_body_bytes = 262144

[auth]
mode = "open"
open_admin = true

[store]
path = "{workdir}/groundgate.db"

[traces]
flush_interval_ms = 20

[reliability]
max_attempts = 2
base_delay_ms = 1
max_delay_ms = 5
max_retry_after_s = 1
breaker_failures = 100000
breaker_min_calls = 100000

# The fuzzed formats and tools are still checked on every answer (a crash would be a 500), but
# an echo never matches them: flagged, not turned into the guard's deliberate 502.
[guards]
schema = "flag"

[providers.fake]
type = "openai"
base_url = "{fake}/v1"
api_key_env = "GG_TEST_OPENAI_KEY"
timeout_s = 2

[providers.fake_claude]
type = "anthropic"
base_url = "{fake}"
api_key_env = "GG_TEST_ANTHROPIC_KEY"
timeout_s = 2

[models.gpt-fake]
deployments = ["fake:gpt-4o-mini"]

[models.claude-fake]
deployments = ["fake_claude:claude-sonnet"]

[embedders.fake-embed]
deployments = ["fake:text-embedding-3-small"]

[apps.handbook]
knowledge_base = "handbook"
model = "local"
top_k = 3
"""

HANDBOOK = [
    {
        "id": "vacation",
        "title": "Vacation policy",
        "metadata": {"team": "people"},
        "text": "Employees receive 28 days of paid vacation per year.",
    },
    {
        "id": "expenses",
        "title": "Expense policy",
        "text": "Hotel costs are capped at 180 euros per night.",
    },
    {"id": "disposable", "text": "This document exists to be deleted by the fuzzer."},
]
MAX_EXAMPLES = 50
MAX_EXAMPLES_WITH_KEYS = 10  # a second pass through the same code, behind the key checks
SEED = 20_260_101
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "unsupported_method",
    "allow_header_conformance",
)


@dataclass
class Seeded:
    """What exists on the gateway before the run, for the dictionaries; and, where keys are
    required, the key the fuzzer sends."""

    gateway: GatewayProcess
    key_id: str
    trace_id: str
    caller_key: str | None = None


@pytest.fixture(scope="module")
def seeded(
    fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    workdir: Path = tmp_path_factory.mktemp("schemathesis")
    gateway = start_gateway(
        CONFIG.format(workdir=workdir, fake=fake_upstream_server.url),
        workdir,
        env={"GG_TEST_OPENAI_KEY": "sk-test-fuzz", "GG_TEST_ANTHROPIC_KEY": "sk-ant-test-fuzz"},
    )
    try:
        yield seed(gateway, {})
    finally:
        gateway.stop()


ADMIN_KEY = "adm-fuzz-" + "k" * 32


@pytest.fixture(scope="module")
def keyed(
    fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    """The same gateway with keys required. The fuzzer calls it with a key of one tenant that
    holds every scope: the key checks, tenant scoping and a tenant admin's limits all run."""
    workdir: Path = tmp_path_factory.mktemp("schemathesis-keyed")
    gateway = start_gateway(
        CONFIG.format(workdir=workdir, fake=fake_upstream_server.url).replace(
            'mode = "open"', 'mode = "required"'
        ),
        workdir,
        env={
            "GG_TEST_OPENAI_KEY": "sk-test-fuzz",
            "GG_TEST_ANTHROPIC_KEY": "sk-ant-test-fuzz",
            "GROUNDGATE_ADMIN_KEY": ADMIN_KEY,
        },
    )
    try:
        seeded = seed(gateway, {"Authorization": f"Bearer {ADMIN_KEY}"})
        with httpx.Client(base_url=gateway.url, timeout=60) as client:
            caller = client.post(
                "/v1/admin/keys",
                json={"name": "caller", "scopes": ["chat", "embeddings", "ingest", "admin"]},
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
            assert caller.status_code == 201, caller.text
        seeded.caller_key = caller.json()["key"]
        yield seeded
    finally:
        gateway.stop()


def seed(gateway: GatewayProcess, headers: dict[str, str]) -> Seeded:
    """Knowledge bases, a key and a trace for the dictionaries to name."""
    with httpx.Client(base_url=gateway.url, timeout=60, headers=headers) as client:
        for kb, docs in (("handbook", HANDBOOK), ("scratch", HANDBOOK[:1])):
            resp = client.post(f"/v1/knowledge-bases/{kb}/documents", json={"documents": docs})
            assert resp.status_code == 200, resp.text
        key = client.post("/v1/admin/keys", json={"name": "fuzz", "tenant": "acme"})
        assert key.status_code == 201, key.text
        chat = client.post(
            "/v1/chat/completions",
            json={"model": "local", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat.status_code == 200, chat.text
        trace_id = chat.headers["x-groundgate-trace-id"]
        # Traces are written off the response path: wait until this one is readable.
        deadline = time.monotonic() + 5
        while client.get(f"/v1/traces/{trace_id}").status_code != 200:
            assert time.monotonic() < deadline, "the seeded trace was never written"
            time.sleep(0.05)
    return Seeded(gateway, key.json()["id"], trace_id)


def fuzz_config(seeded: Seeded, max_examples: int = MAX_EXAMPLES) -> schemathesis.Config:
    half = 0.5

    def bind(dictionary: str) -> dict[str, Any]:
        return {"dictionary": dictionary, "probability": half}

    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": max_examples,
                "deterministic": True,
                "database": "none",  # nothing written into the working tree
                # Every integer and number in a request is sometimes an extreme one.
                "dictionaries": {
                    "integer": {"dictionary": "edge-integers", "probability": 0.3},
                    "number": {"dictionary": "edge-numbers", "probability": 0.2},
                },
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "request-timeout": 30,
            "headers": (
                {"Authorization": f"Bearer {seeded.caller_key}"} if seeded.caller_key else {}
            ),
            "dictionaries": {
                "kbs": {"values": ["handbook"]},
                "scratch": {"values": ["scratch"]},
                "docs": {"values": ["vacation", "expenses"]},
                "disposable": {"values": ["disposable"]},
                "models": {
                    "values": [
                        "local",
                        "gpt-fake",
                        "claude-fake",
                        "handbook",
                        "all-minilm-l6-v2",
                        "fake-embed",
                    ]
                },
                "apps": {"values": ["handbook"]},
                "keys": {"values": [seeded.key_id]},
                "tenants": {"values": ["acme", "default"]},
                "traces": {"values": [seeded.trace_id]},
                "edge-integers": {"values": [0, -1, 2**31, 2**63, -(2**63) - 1, 10**30, -(10**30)]},
                "edge-numbers": {"values": [5e-324, -1e308, 1e308, 2**53 + 1, 1e-7]},
                # Free-form strings to the schema; a fuzzer cannot guess they are dates.
                "dates": {"values": ["2026-01-01", "0001-01-01", "9999-12-31"]},
            },
            "parameters": {
                "path.kb": bind("kbs"),
                "path.doc_id": bind("docs"),
                "path.model_id": bind("models"),
                "path.key_id": bind("keys"),
                "path.name": bind("tenants"),
                "path.trace_id": bind("traces"),
                "body.trace_id": bind("traces"),
                "query.tenant": bind("tenants"),
                "query.key_id": bind("keys"),
                "query.start_date": bind("dates"),
                "query.end_date": bind("dates"),
                "body.model": bind("models"),
                "body.app": bind("apps"),
                "body.kb": bind("kbs"),
            },
            "operations": [
                {
                    "include-method": "DELETE",
                    "include-path": "/v1/knowledge-bases/{kb}",
                    "parameters": {"path.kb": bind("scratch")},
                },
                {
                    "include-method": "DELETE",
                    "include-path": "/v1/knowledge-bases/{kb}/documents/{doc_id}",
                    "parameters": {"path.doc_id": bind("disposable")},
                },
            ],
        }
    )


@pytest.fixture
def api_schema(
    seeded: Seeded, fake_upstream: FakeUpstream, request: pytest.FixtureRequest
) -> BaseSchema:
    # schemathesis' lazy loader (4.32) reads ``item._nodeid``, which pytest 9.2 dropped when
    # node ids became structured; give it the plain attribute it expects.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    return from_url(f"{seeded.gateway.url}/openapi.json", config=fuzz_config(seeded))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_every_operation_conforms(case: Case) -> None:
    floor_deadline(case)
    case.call_and_validate()


@pytest.fixture
def keyed_api_schema(
    keyed: Seeded, fake_upstream: FakeUpstream, request: pytest.FixtureRequest
) -> BaseSchema:
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    config = fuzz_config(keyed, max_examples=MAX_EXAMPLES_WITH_KEYS)
    return from_url(f"{keyed.gateway.url}/openapi.json", config=config)


keyed_schema = schemathesis.pytest.from_fixture("keyed_api_schema")


@keyed_schema.parametrize()
def test_every_operation_conforms_with_keys(case: Case) -> None:
    assert case.headers is not None and case.headers["Authorization"].startswith("Bearer gg_")
    floor_deadline(case)
    response = case.call_and_validate()
    assert response.status_code != 401, response.text  # the fuzzer got past the key check


def floor_deadline(case: Case) -> None:
    """A deadline shorter than an answer takes ends in 504 by design (the client asked for it,
    e.g. ``x-groundgate-timeout: 5e-324``). Valid deadlines are raised to 2 s, so any 504 left
    is a failure; invalid ones (0, negative, over 600, not a number) are sent as they are."""
    headers = case.headers or {}
    for name, value in headers.items():
        if name.lower() != TIMEOUT_HEADER:
            continue
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            return
        if 0 < seconds < 2:
            headers[name] = "2"


def test_schema_documents_what_the_fuzzer_needs(seeded: Seeded) -> None:
    """The fuzzer only reaches what the schema lists: every body parsed by hand is described,
    and every error is documented as a 4xx/5xx with the OpenAI error body (never FastAPI's 422:
    validation errors are 400s)."""
    spec = httpx.get(f"{seeded.gateway.url}/openapi.json").json()
    error_ref = "#/components/schemas/ErrorResponse"
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            assert "422" not in responses, (method, path)
            if method == "post":
                assert "requestBody" in op, path
            if path not in ("/healthz", "/readyz"):
                assert {"401", "403"} <= set(responses), (method, path)
                for status, response in responses.items():
                    if int(status) >= 400:
                        schema_ = response["content"]["application/json"]["schema"]
                        assert schema_ == {"$ref": error_ref}, (method, path, status)
    assert spec["components"]["schemas"]["ErrorResponse"]["required"] == ["error"]
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
