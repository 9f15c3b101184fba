"""The embedded models load when a request first needs them (or at start with
``[local] preload``), and ``/readyz`` says which are loaded: a gateway whose traffic only goes
to remote providers never maps onnxruntime and stays small."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from groundgate.testing.fake_upstream import FakeUpstream
from tests.servers import GatewayProcess, start_gateway

pytestmark = pytest.mark.e2e

# What the issue allows a gateway that uses no local model, idle after a warm-up request.
REMOTE_ONLY_RSS_BAR_MB = 150

CONFIG = """
[store]
path = "{workdir}/groundgate.db"

[providers.remote]
type = "openai"
base_url = "{fake}/v1"

[models.remote]
deployments = ["remote:gpt-4o-mini"]
{extra}
"""

CONTEXT = "[1] Paris is the capital and largest city of France.\n[2] Lyon is known for its cuisine."


def start(fake: FakeUpstream, workdir: Path, extra: str = "") -> GatewayProcess:
    return start_gateway(CONFIG.format(workdir=workdir, fake=fake.url, extra=extra), workdir)


def local_models(gateway: GatewayProcess) -> dict[str, Any]:
    # On loopback without keys the caller may read the detail (the metrics scope).
    detail = httpx.get(gateway.url + "/readyz", timeout=10).json()
    models: dict[str, Any] = detail["local_models"]
    return models


def loaded(gateway: GatewayProcess) -> set[str]:
    return {name for name, state in local_models(gateway).items() if state["loaded"]}


def maps_onnxruntime(gateway: GatewayProcess) -> bool:
    maps = Path(f"/proc/{gateway.process.pid}/maps").read_text()
    return "libonnxruntime" in maps or "onnxruntime_pybind" in maps


def chat(gateway: GatewayProcess, model: str, messages: list[dict[str, str]]) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": model, "messages": messages},
        timeout=60,
    )


@pytest.fixture
def lazy_gateway(fake_upstream: FakeUpstream, tmp_path: Path) -> Iterator[GatewayProcess]:
    gateway = start(fake_upstream, tmp_path)
    try:
        yield gateway
    finally:
        gateway.stop()


def test_remote_traffic_never_loads_a_local_model_and_the_first_local_request_does(
    lazy_gateway: GatewayProcess,
) -> None:
    gateway = lazy_gateway
    for _ in range(3):  # warm-up
        assert chat(gateway, "remote", [{"role": "user", "content": "hi"}]).status_code == 200
    assert not maps_onnxruntime(gateway)
    rss_mb = psutil.Process(gateway.process.pid).memory_info().rss / 2**20
    assert rss_mb <= REMOTE_ONLY_RSS_BAR_MB, f"idle RSS {rss_mb:.0f} MB"
    assert loaded(gateway) == set()

    question = [
        {"role": "system", "content": CONTEXT},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    resp = chat(gateway, "local", question)
    assert resp.status_code == 200, resp.text
    assert "Paris" in resp.json()["choices"][0]["message"]["content"]
    # The answerer's model, and only it: the cache's int8 variant waits for the cache.
    assert loaded(gateway) == {"all-MiniLM-L6-v2"}
    assert local_models(gateway)["all-MiniLM-L6-v2"]["load_ms"] > 0
    assert maps_onnxruntime(gateway)


def test_preload_loads_the_configured_models_at_start(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    gateway = start(fake_upstream, tmp_path, extra="[local]\npreload = true\n")
    try:
        # The embedded defaults deploy both embedders on the local provider.
        assert loaded(gateway) == {"all-MiniLM-L6-v2", "all-MiniLM-L6-v2-int8"}
        assert maps_onnxruntime(gateway)
    finally:
        gateway.stop()


def test_a_first_grounded_request_waits_for_its_model_not_its_retrieval_budget(
    tmp_path: Path,
) -> None:
    # The knowledge base is written by another process (the CLI), so the gateway's first
    # question is also its first embedding: the model loads then (~0.3 s), which would not fit
    # the app's retrieval budget and would cost the answer its documents.
    config = (
        f'[store]\npath = "{tmp_path}/groundgate.db"\n'
        "[apps.handbook]\n"
        'knowledge_base = "handbook"\nmodel = "local"\nretrieval_timeout_ms = 200\n'
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "pto.md").write_text("# Time off\n\nEmployees receive 28 days of paid vacation.\n")
    (tmp_path / "groundgate.toml").write_text(config)
    ingest = [sys.executable, "-m", "groundgate", "ingest", str(docs), "--kb", "handbook"]
    subprocess.run(
        [*ingest, "--config", str(tmp_path / "groundgate.toml"), "--quiet"],
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    gateway = start_gateway(config, tmp_path)
    try:
        assert loaded(gateway) == set()
        answer = httpx.post(
            gateway.url + "/v1/ask",
            json={"app": "handbook", "question": "How many vacation days do employees get?"},
            timeout=60,
        ).json()
        assert answer["retrieval_error"] is None, answer
        assert "28 days" in answer["answer"]
    finally:
        gateway.stop()
