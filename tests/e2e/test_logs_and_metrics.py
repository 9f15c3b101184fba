"""Structured logs and Prometheus metrics of a real gateway process.

One gateway logs JSON at debug level with uvicorn's access lines on: every line it writes is
parsed, checked for the request fields, and scanned for the secrets the requests carried (an
Authorization header, keys in bodies, keys in a URL's path and query, the process's own
admin and provider keys). Its /metrics is checked against what the requests did, and against
a flood of names no configuration knows (models, ad-hoc knowledge bases, tenants).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from groundgate.testing.fake_upstream import FakeUpstream
from tests.servers import GatewayProcess, free_port, start_gateway

ADMIN_KEY = "adm-" + secrets.token_urlsafe(32)
PROVIDER_KEY = "sk-prov-" + secrets.token_hex(20)
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
CONFIG = """
[server]
log_level = "warning"  # [logging] wins
[logging]
level = "debug"
format = "json"
[store]
path = "{workdir}/gateway.db"
[traces]
flush_interval_ms = 20
[reliability]
max_attempts = 1
breaker_failures = 100000
breaker_min_calls = 100000
[providers.fake]
type = "openai"
base_url = "{fake}/v1"
api_key_env = "GG_LOGS_PROVIDER_KEY"
[providers.dead]
type = "openai"
base_url = "http://127.0.0.1:{dead_port}/v1"
timeout_s = 1
[models.gpt]
deployments = ["fake:gpt-4o-mini"]
[models.all-dead]
deployments = ["dead:gpt-4o"]
[prices."fake:gpt-4o-mini"]
input_per_mtok = 1000.0
output_per_mtok = 2000.0
"""


@pytest.fixture(scope="module")
def gateway(
    fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("logs")
    config = CONFIG.format(workdir=workdir, fake=fake_upstream_server.url, dead_port=free_port())
    process = start_gateway(
        config,
        workdir,
        env={"GROUNDGATE_ADMIN_KEY": ADMIN_KEY, "GG_LOGS_PROVIDER_KEY": PROVIDER_KEY},
        extra_args=["--access-log"],
    )
    try:
        yield process
    finally:
        process.stop()


def chat(
    gw: GatewayProcess,
    model: str,
    text: str = "hi",
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}], **extra},
        headers=ADMIN if headers is None else headers,
        timeout=20,
    )


def log_lines(gw: GatewayProcess) -> list[dict[str, Any]]:
    """Every line the gateway wrote, each parsed as JSON (a line that is not fails here)."""
    lines = []
    for line in gw.log_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line[:300]!r}")
    return lines


def request_line(gw: GatewayProcess, **match: Any) -> dict[str, Any]:
    """The request's log line (written once the response is sent: wait for it)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in log_lines(gw):
            if line["logger"] == "groundgate.request" and all(
                line.get(k) == v for k, v in match.items()
            ):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no request line with {match}")


def test_one_json_line_per_request_with_its_ids(gateway: GatewayProcess) -> None:
    answered = chat(gateway, "gpt")
    assert answered.status_code == 200, answered.text
    trace_id = answered.headers["x-groundgate-trace-id"]
    line = request_line(gateway, trace_id=trace_id)
    assert line["level"] == "info" and line["ts"].endswith("Z")
    assert line["msg"] == "POST /v1/chat/completions 200"
    assert (line["method"], line["route"], line["status"]) == ("POST", "/v1/chat/completions", 200)
    assert (line["model"], line["tenant"], line["source"], line["stream"]) == (
        "gpt",
        "default",
        "model",
        False,
    )
    assert 0 < line["duration_ms"] < 20_000
    assert "error" not in line

    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={"model": "gpt", "messages": [{"role": "user", "content": "s"}], "stream": True},
        headers=ADMIN,
        timeout=20,
    ) as streamed:
        assert streamed.status_code == 200
        streamed.read()
        stream_id = streamed.headers["x-groundgate-trace-id"]
    assert request_line(gateway, trace_id=stream_id)["stream"] is True

    failed = chat(gateway, "all-dead")
    assert failed.status_code >= 500
    line = request_line(gateway, trace_id=failed.headers["x-groundgate-trace-id"])
    assert line["status"] == failed.status_code
    assert line["error"]["type"] == failed.json()["error"]["type"]
    assert line["error"]["class"] in ("UpstreamUnavailable", "ProviderError", "UpstreamTimeout")

    # Refused before any route ran: logged all the same, with the error's type and code.
    refused = chat(gateway, "gpt", headers={"authorization": "Bearer nope-" + "x" * 20})
    assert refused.status_code == 401
    line = request_line(gateway, status=401, route="/v1/chat/completions")
    assert line["error"] == {"type": "authentication_error", "code": "invalid_api_key"}
    # A routed path logs its template: the path's variable part is the client's text.
    httpx.get(gateway.url + "/v1/traces/" + "f" * 32, headers=ADMIN, timeout=10)
    assert request_line(gateway, route="/v1/traces/{trace_id}")["status"] == 404


def test_no_secret_reaches_any_log_line(gateway: GatewayProcess) -> None:
    body_key = "sk-proj-" + secrets.token_hex(20)
    gg_key = "gg_abcdefghijkl_" + secrets.token_urlsafe(24)
    header_key = "sk-bogus-" + secrets.token_hex(20)
    path_key = "sk-live-" + secrets.token_hex(20)
    query_key = secrets.token_hex(24)
    field_key = "sk-field-" + secrets.token_hex(20)
    carried = [body_key, gg_key.split("_", 2)[2], header_key, path_key, query_key, field_key]

    chat(gateway, "gpt", f"my api_key={body_key}; the token is {gg_key}")
    chat(gateway, "gpt", "hi", api_key=field_key)  # an unknown field: a 400 that names it
    chat(gateway, "gpt", headers={"authorization": f"Bearer {header_key}"})
    chat(gateway, "gpt", headers={"x-api-key": gg_key})
    httpx.get(f"{gateway.url}/v1/traces/{path_key}?key={query_key}", headers=ADMIN, timeout=10)
    httpx.get(f"{gateway.url}/v1/models?api_key={path_key}", headers=ADMIN, timeout=10)
    httpx.get(f"{gateway.url}/nowhere/{path_key}?token={query_key}", timeout=10)
    chat(gateway, "all-dead", f"api_key={body_key}")
    request_line(gateway, route="/nowhere/" + "[REDACTED]")  # the last line is written

    lines = log_lines(gateway)
    text = gateway.log_text()
    assert len(lines) > 30  # debug level: the libraries' lines are scanned too
    assert any(line["logger"] == "uvicorn.access" for line in lines)
    for secret in (*carried, ADMIN_KEY, PROVIDER_KEY):
        assert secret not in text, secret
    # The query key was logged, scrubbed (the access line keeps the query string).
    assert "key=[REDACTED]" in text


def series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def values(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in _samples(text) if n == name}


def _samples(text: str) -> Iterator[tuple[tuple[str, tuple[tuple[str, str], ...]], float]]:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield (sample.name, tuple(sorted(sample.labels.items()))), sample.value


def scrape(gw: GatewayProcess) -> str:
    return httpx.get(gw.url + "/metrics", headers=ADMIN, timeout=20).text


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        v
        for key, v in values(text, name).items()
        if all((k, want) in key for k, want in labels.items())
    )


def test_metrics_count_what_the_requests_did(gateway: GatewayProcess) -> None:
    before = scrape(gateway)
    answers = [chat(gateway, "gpt", f"question {i}") for i in range(3)]
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={"model": "gpt", "messages": [{"role": "user", "content": "s"}], "stream": True},
        headers=ADMIN,
        timeout=20,
    ) as streamed:
        streamed.read()
    failed = chat(gateway, "all-dead")
    after = scrape(gateway)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    ok = {"endpoint": "chat.completions", "model": "gpt", "status": "ok", "code": "200"}
    assert grew("groundgate_requests_total", **ok, source="model", app="none", tier="none") == 4
    code = str(failed.status_code)
    assert grew("groundgate_requests_total", model="all-dead", status="error", code=code) == 1
    assert grew("groundgate_request_duration_seconds_count", model="gpt") == 4
    assert grew("groundgate_time_to_first_token_seconds_count", model="gpt") == 1  # streams only
    prompt = sum(a.json()["usage"]["prompt_tokens"] for a in answers)
    grown_prompt = grew("groundgate_tokens_total", model="gpt", kind="prompt")
    assert prompt <= grown_prompt  # the stream's tokens besides
    spent = sum(float(a.headers["x-groundgate-cost-usd"]) for a in answers)
    assert spent < grew("groundgate_cost_usd_total", model="gpt", deployment="fake:gpt-4o-mini")
    errors = values(after, "groundgate_upstream_errors_total")
    assert [dict(k)["error"] for k in errors if ("deployment", "dead:gpt-4o") in k] == [
        "connection"  # nothing listens there
    ]
    dead = {"deployment": "dead:gpt-4o"}
    assert grew("groundgate_upstream_attempts_total", **dead, outcome="error") == 1
    # Gauges exist from the start: breakers per configured deployment, queues per bulkhead.
    assert values(after, "groundgate_breaker_state")[(("deployment", "dead:gpt-4o"),)] == 0
    assert (("deployment", "fake:gpt-4o-mini"),) in values(after, "groundgate_bulkhead_waiting")
    assert values(after, "groundgate_admission_waiting") == {(): 0.0}
    assert values(after, "groundgate_traces_dropped_total") == {(("sink", "store"),): 0.0}


def test_a_flood_of_names_adds_no_series(gateway: GatewayProcess) -> None:
    keys = {}
    for i in range(25):
        created = httpx.post(
            gateway.url + "/v1/admin/keys",
            json={"name": f"k{i}", "tenant": f"flood-tenant-{i}"},
            headers=ADMIN,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        keys[i] = {"authorization": f"Bearer {created.json()['key']}"}

    def one_round(i: int) -> None:
        chat(gateway, f"flood-model-{i}")  # 404: no such model
        asked = httpx.post(
            gateway.url + "/v1/ask",
            json={"kb": f"flood-kb-{i}", "question": "q"},
            headers=ADMIN,
            timeout=20,
        )
        assert asked.status_code < 500, asked.text
        assert chat(gateway, "gpt", headers=keys[i % len(keys)]).status_code == 200

    one_round(0)  # every kind of request once: its series exist from here on
    warm = series(scrape(gateway))
    for i in range(1, 150):
        one_round(i)
    flooded = scrape(gateway)
    assert series(flooded) == warm
    for name in ("flood-model-", "flood-kb-", "flood-tenant-"):
        assert name not in flooded
