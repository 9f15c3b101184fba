"""Several worker processes share one SQLite store (WAL) and one metrics view, and serve the
same API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from groundgate.testing.fake_upstream import FakeUpstream
from tests.servers import GatewayProcess, start_gateway

ADMIN_KEY = "adm-" + "w" * 40
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
CONFIG = """
[server]
public_metrics = true
[auth]
mode = "required"
[store]
path = "{workdir}/shared.db"
[traces]
flush_interval_ms = 20
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.m]
deployments = ["up:gpt"]
[models.counted]
deployments = ["up:gpt-counted"]
[prices."up:gpt-counted"]
input_per_mtok = 1000000.0
output_per_mtok = 1000000.0
"""


@pytest.fixture(scope="module")
def gateway(
    fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("workers")
    process = start_gateway(
        CONFIG.format(workdir=workdir, fake=fake_upstream_server.url),
        workdir,
        env={"GROUNDGATE_ADMIN_KEY": ADMIN_KEY},
        extra_args=["--workers", "2"],
    )
    try:
        yield process
    finally:
        process.stop()
    assert process.process.returncode is not None


def test_two_workers_serve_and_share_traces(
    gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    ids = []
    with httpx.Client(base_url=gateway.url, timeout=20, headers=ADMIN) as client:
        for i in range(20):
            resp = client.post(
                "/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": f"n{i}"}]},
            )
            assert resp.status_code == 200
            assert resp.json()["choices"][0]["message"]["content"] == f"echo: n{i}"
            ids.append(resp.headers["x-groundgate-trace-id"])
    # Whichever worker answers the read, every trace is in the shared store.
    deadline = time.monotonic() + 10
    missing = set(ids)
    while missing and time.monotonic() < deadline:
        for trace_id in list(missing):
            resp = httpx.get(f"{gateway.url}/v1/traces/{trace_id}", headers=ADMIN)
            if resp.status_code == 200:
                missing.discard(trace_id)
        time.sleep(0.1)
    assert not missing


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_metrics_add_up_every_worker(gateway: GatewayProcess, fake_upstream: FakeUpstream) -> None:
    sent = 24

    def ask(i: int) -> float:
        # A connection per request, several at once: both workers take some.
        resp = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "counted", "messages": [{"role": "user", "content": f"c{i}"}]},
            headers=ADMIN,
            timeout=20,
        )
        assert resp.status_code == 200, resp.text
        return float(resp.headers["x-groundgate-cost-usd"])

    with ThreadPoolExecutor(8) as pool:
        spent = sum(pool.map(ask, range(sent)))
    # Each scrape reaches one worker (a new connection each time); each counts all.
    for _ in range(8):
        public = httpx.get(gateway.url + "/metrics", timeout=20).text
        counted = samples(public, "groundgate_requests_total")
        total = sum(v for labels, v in counted.items() if ("model", "counted") in labels)
        assert total == sent, counted
        assert "groundgate_cost_usd" not in public  # spend is not for everyone
    full = httpx.get(gateway.url + "/metrics", headers=ADMIN, timeout=20).text
    cost = samples(full, "groundgate_cost_usd_total")
    by_model = (("deployment", "up:gpt-counted"), ("model", "counted"))
    assert cost[by_model] == pytest.approx(spent, rel=1e-6)
    assert samples(full, "groundgate_trace_backlog")  # gauges are served too
