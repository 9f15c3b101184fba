"""Retention in a running gateway: the background task prunes on its own, and says so in
/metrics; ``groundgate prune`` does the same by hand."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from groundgate.store.sqlite import SQLiteStore
from tests.servers import GatewayProcess, start_gateway
from tests.store.test_feedback_conformance import feedback
from tests.store.test_retention_conformance import metric_samples
from tests.store.test_runs_conformance import run
from tests.store.test_trace_conformance import make_trace

DAY = 86400.0
OLD_RUNS = {
    "finished": run(created_at=1000.0, status="completed"),
    "waiting": run(created_at=1000.0, status="pending_approval"),
}
CONFIG = """
[store]
path = "{workdir}/groundgate.db"
[traces]
flush_interval_ms = 20
[retention]
interval_s = 0.2
[retention.traces]
max_age_days = 30
max_rows = 1000
"""


def seed(path: Path) -> None:
    """Two traces a month and more old, one a day old, before the gateway starts; feedback
    and agent runs two months old (one of them still waiting for approval)."""

    async def write() -> None:
        store = SQLiteStore(str(path))
        await store.open()
        try:
            now = time.time()
            await store.write_traces(
                [
                    make_trace("ancient", created_at=now - 90 * DAY),
                    make_trace("last-month", tenant="other", created_at=now - 31 * DAY),
                    make_trace("yesterday", created_at=now - DAY),
                ]
            )
            old = now - 60 * DAY
            await store.feedback.put_feedback(feedback(created_at=old, updated_at=old))
            await store.runs.add_run(OLD_RUNS["finished"])
            await store.runs.add_run(OLD_RUNS["waiting"])
        finally:
            await store.close()

    asyncio.run(write())


@pytest.fixture
def pruning_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    seed(tmp_path / "groundgate.db")
    gateway = start_gateway(CONFIG.format(workdir=tmp_path), tmp_path)
    try:
        yield gateway
    finally:
        gateway.stop()


def test_the_gateway_prunes_in_the_background(pruning_gateway: GatewayProcess) -> None:
    url = pruning_gateway.url
    deadline = time.monotonic() + 30
    samples: dict[str, float] = {}
    while time.monotonic() < deadline:
        samples = metric_samples(httpx.get(f"{url}/metrics").text)
        if samples.get('groundgate_retention_pruned_rows_total{kind="traces"}', 0) >= 2:
            break
        time.sleep(0.1)
    assert samples.get('groundgate_retention_pruned_rows_total{kind="traces"}') == 2, samples
    assert samples["groundgate_retention_last_run_timestamp_seconds"] > time.time() - 60
    assert httpx.get(f"{url}/v1/traces/ancient").status_code == 404
    assert httpx.get(f"{url}/v1/traces/yesterday").status_code == 200
    # Runs keep coming, and leave the gateway's own new traces alone.
    resp = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "local", "messages": [{"role": "user", "content": "hello"}]},
        timeout=30,
    )
    trace_id = resp.headers["x-groundgate-trace-id"]
    ran = samples["groundgate_retention_last_run_timestamp_seconds"]
    while time.monotonic() < deadline:
        samples = metric_samples(httpx.get(f"{url}/metrics").text)
        if samples["groundgate_retention_last_run_timestamp_seconds"] > ran + 0.3:
            break
        time.sleep(0.1)
    assert samples["groundgate_retention_last_run_timestamp_seconds"] > ran + 0.3
    assert httpx.get(f"{url}/v1/traces/{trace_id}").status_code == 200
    assert httpx.get(f"{url}/v1/traces/yesterday").status_code == 200


def test_prune_from_the_command_line(tmp_path: Path) -> None:
    seed(tmp_path / "groundgate.db")
    (tmp_path / "groundgate.toml").write_text(CONFIG.format(workdir=tmp_path), "utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GROUNDGATE_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "groundgate", "prune", "-c", "groundgate.toml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "2 traces, 0 embeddings, 0 question_vectors, 1 feedback, 1 agent_runs, 0 reviews,"
        " 0 eval_runs deleted"
    ) in proc.stdout

    async def left() -> list[str]:
        store = SQLiteStore(str(tmp_path / "groundgate.db"))
        await store.open()
        try:
            ids = [("default", "ancient"), ("other", "last-month"), ("default", "yesterday")]
            kept = [i for tenant, i in ids if await store.get_trace(tenant, i) is not None]
            runs = {n: await store.runs.get_run(r.tenant, r.id) for n, r in OLD_RUNS.items()}
            return kept + [n for n, r in runs.items() if r is not None]
        finally:
            await store.close()

    # The run still waiting for approval is never pruned, however old.
    assert asyncio.run(left()) == ["yesterday", "waiting"]
