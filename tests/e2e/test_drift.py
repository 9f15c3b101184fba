"""Drift end to end: the shared gateway watches ``drift-app`` in windows of 8 requests (two
make the baseline; tests/conftest.py). Questions about its knowledge base set the baseline;
then questions about something else move the question centroid, the retrieval score and the
abstention rate past their bounds on ``/metrics``, and a real Prometheus scraping the gateway
with deploy/prometheus/drift-rules.yml raises the alert."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import services_required
from tests.servers import GatewayProcess, free_port

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "drift-rules.yml"
DOCS = [
    {
        "id": "leave",
        "title": "Leave policy",
        "text": "Employees receive 28 days of paid vacation per year. Parental leave lasts 16 "
        "weeks at full pay. Sick days need a doctor's note after three days.",
    },
    {
        "id": "travel",
        "title": "Travel policy",
        "text": "Travel expenses are reimbursed within 14 days of submitting the receipts. "
        "Hotel costs are capped at 180 euros per night. Trains are preferred to planes for "
        "trips under four hours.",
    },
]
# The baseline: what the app is for (16 requests: two windows).
ON_TOPIC = [
    "How many vacation days do employees get?",
    "How many days of paid vacation are there per year?",
    "How long does parental leave last?",
    "Is parental leave paid in full?",
    "When do I need a doctor's note for sick days?",
    "How many sick days before a doctor's note is needed?",
    "How quickly are travel expenses reimbursed?",
    "When are travel receipts paid back?",
    "What is the hotel cost cap per night?",
    "How much may a hotel cost per night?",
    "Should I take the train or the plane for short trips?",
    "Are trains preferred to planes for trips under four hours?",
    "What is the vacation allowance?",
    "How many weeks of parental leave do employees get?",
    "What is the limit on hotel costs?",
    "How long until expenses are reimbursed?",
]
# Then: something else entirely (one window).
OFF_TOPIC = [
    "What is the boiling point of olive oil?",
    "Which planet has the most moons?",
    "How do I tune a ukulele?",
    "Who painted the ceiling of the Sistine Chapel?",
    "What is the best soil for growing tomatoes?",
    "How far away is the Andromeda galaxy?",
    "What key is Beethoven's fifth symphony in?",
    "How long should pasta be boiled?",
]


def ask(gateway: GatewayProcess, question: str) -> None:
    resp = httpx.post(
        f"{gateway.url}/v1/ask", json={"app": "drift-app", "question": question}, timeout=60
    )
    assert resp.status_code == 200, resp.text


def drift_gauges(gateway: GatewayProcess) -> dict[tuple[str, str], float]:
    """``groundgate_drift_distance`` and ``_bound`` of drift-app, by (name, signal)."""
    text = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("groundgate_drift_") and "signal" in sample.labels:
                assert sample.labels["target"] == "drift-app"  # only the watched target
                if "window" not in sample.labels:
                    found[sample.name, sample.labels["signal"]] = sample.value
    return found


@pytest.fixture
def prometheus(gateway: GatewayProcess, tmp_path: Path) -> Iterator[str | None]:
    """A real Prometheus scraping the gateway every second with the drift rules loaded (None
    where none is installed, unless services are required: CI installs Debian's)."""
    binary = shutil.which("prometheus")
    if binary is None:
        if services_required():
            pytest.fail("prometheus is not installed (apt-get install prometheus)")
        yield None
        return
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{RULES}]\n"
        "scrape_configs:\n"
        "  - job_name: groundgate\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{gateway.port}']}}]\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ},
    )
    log.close()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)


def pending_alerts(prometheus: str) -> set[tuple[str, str]]:
    try:
        resp = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5)
    except httpx.HTTPError:
        return set()
    if resp.status_code != 200:
        return set()
    return {
        (a["labels"]["target"], a["labels"]["signal"])
        for a in resp.json()["data"]["alerts"]
        if a["labels"]["alertname"] == "GroundgateDrift"
    }


def test_off_topic_questions_drift_past_the_bounds_and_raise_the_alert(
    gateway: GatewayProcess, prometheus: str | None
) -> None:
    resp = httpx.post(
        f"{gateway.url}/v1/knowledge-bases/drift-kb/documents", json={"documents": DOCS}, timeout=60
    )
    assert resp.status_code == 200, resp.text
    for question in ON_TOPIC:
        ask(gateway, question)
    baseline_only = drift_gauges(gateway)
    assert baseline_only["groundgate_drift_bound", "embedding"] == 0.05
    # The baseline is learned; no window has been compared with it yet.
    assert ("groundgate_drift_distance", "embedding") not in baseline_only

    for question in OFF_TOPIC:
        ask(gateway, question)
    gauges = drift_gauges(gateway)
    for signal in ("embedding", "retrieval_score", "abstention"):
        distance = gauges["groundgate_drift_distance", signal]
        assert distance > gauges["groundgate_drift_bound", signal], (signal, gauges)
    # Groundedness is fed (from the guard) but the answers stay grounded (abstentions are);
    # no feedback was given.
    assert gauges["groundgate_drift_distance", "groundedness"] < 0.1
    assert ("groundgate_drift_distance", "feedback") not in gauges

    if prometheus is None:
        pytest.skip("prometheus is not installed: the alert rule was not evaluated")
    # Prometheus evaluates the shipped rule on what it scraped: pending (``for: 10m``).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alerts = pending_alerts(prometheus)
        if ("drift-app", "embedding") in alerts:
            break
        time.sleep(0.5)
    assert {("drift-app", "embedding"), ("drift-app", "abstention")} <= alerts
