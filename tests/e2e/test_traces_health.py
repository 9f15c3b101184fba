"""Traces, health, readiness and secret hygiene through a real gateway process."""

from __future__ import annotations

import time

import httpx
import pytest

from groundgate.testing.fake_upstream import FakeUpstream
from tests.conftest import FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY
from tests.servers import GatewayProcess


def chat(gateway: GatewayProcess, model: str, content: str = "hello") -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        timeout=20,
        json={"model": model, "messages": [{"role": "user", "content": content}]},
    )


def test_healthz_and_readyz(gateway: GatewayProcess) -> None:
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 200
    detail = ready.json()
    assert detail["ready"] is True and detail["store"]["ready"] is True
    assert detail["providers"]["local"]["ready"] is True
    assert detail["providers"]["fake"]["ready"] is True


def test_trace_records_the_request(gateway: GatewayProcess, fake_upstream: FakeUpstream) -> None:
    resp = chat(gateway, "gpt-fake", "trace me")
    assert resp.status_code == 200
    trace_id = resp.headers["x-groundgate-trace-id"]
    assert resp.json()["groundgate"]["trace_id"] == trace_id
    trace = httpx.get(f"{gateway.url}/v1/traces/{trace_id}").json()
    assert trace["id"] == trace_id
    assert trace["status"] == "ok" and trace["http_status"] == 200
    assert trace["model"] == "gpt-fake" and trace["deployment"] == "fake:gpt-4o-mini"
    assert trace["source"] == "model"
    assert [s["name"] for s in trace["spans"]] == ["route", "generate"]
    assert all(s["duration_ms"] >= 0 for s in trace["spans"])
    assert trace["usage"]["prompt_tokens"] > 0 and trace["usage"]["completion_tokens"] > 0
    expected_cost = (
        trace["usage"]["prompt_tokens"] * 150000 + trace["usage"]["completion_tokens"] * 600000
    ) / 1e6
    assert trace["cost_usd"] == pytest.approx(expected_cost)
    assert float(resp.headers["x-groundgate-cost-usd"]) == pytest.approx(expected_cost)


def test_error_requests_are_traced_and_persisted(gateway: GatewayProcess) -> None:
    resp = chat(gateway, "no-such-model")
    assert resp.status_code == 404
    trace_id = resp.headers["x-groundgate-trace-id"]
    # Wait past the batched flush, so this reads the persisted row, not the pending copy.
    time.sleep(0.3)
    trace = httpx.get(f"{gateway.url}/v1/traces/{trace_id}").json()
    assert trace["status"] == "error" and trace["http_status"] == 404
    assert trace["error"]["type"] == "ModelNotFound"


def test_usage_accepts_the_extreme_dates(gateway: GatewayProcess) -> None:
    # Found by schemathesis: the day after 9999-12-31 overflowed datetime (500).
    resp = httpx.get(
        f"{gateway.url}/v1/usage", params={"start_date": "0001-01-01", "end_date": "9999-12-31"}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["start_date"], body["end_date"]) == ("0001-01-01", "9999-12-31")
    assert body["totals"]["requests"] >= 1  # this session's requests are inside the range


@pytest.mark.parametrize("trace_id", ["0" * 32, "' OR '1'='1", "x" * 500])
def test_unknown_trace_is_404(gateway: GatewayProcess, trace_id: str) -> None:
    resp = httpx.get(f"{gateway.url}/v1/traces/{trace_id}")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


def test_secrets_never_leave_the_gateway(
    gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    ids = []
    for model in ("gpt-fake", "claude-fake", "chain"):
        resp = chat(gateway, model)
        ids.append(resp.headers["x-groundgate-trace-id"])
        assert FAKE_OPENAI_KEY not in resp.text and FAKE_ANTHROPIC_KEY not in resp.text
    for trace_id in ids:
        text = httpx.get(f"{gateway.url}/v1/traces/{trace_id}").text
        assert FAKE_OPENAI_KEY not in text and FAKE_ANTHROPIC_KEY not in text
    ready = httpx.get(gateway.url + "/readyz").text
    assert FAKE_OPENAI_KEY not in ready
    log = gateway.log_text()
    assert FAKE_OPENAI_KEY not in log and FAKE_ANTHROPIC_KEY not in log
