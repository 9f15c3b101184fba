"""Several worker processes share one SQLite store (WAL) and serve the same API."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from groundgate.testing.fake_upstream import FakeUpstream
from tests.servers import start_gateway

CONFIG = """
[store]
path = "{workdir}/shared.db"
[traces]
flush_interval_ms = 20
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.m]
deployments = ["up:gpt"]
"""


def test_two_workers_serve_and_share_traces(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    gateway = start_gateway(
        CONFIG.format(workdir=tmp_path, fake=fake_upstream.url),
        tmp_path,
        extra_args=["--workers", "2"],
    )
    try:
        ids = []
        with httpx.Client(base_url=gateway.url, timeout=20) as client:
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
                if httpx.get(f"{gateway.url}/v1/traces/{trace_id}").status_code == 200:
                    missing.discard(trace_id)
            time.sleep(0.1)
        assert not missing
    finally:
        gateway.stop()
    assert gateway.process.returncode is not None
