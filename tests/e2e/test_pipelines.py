"""Pipelines declared in config, through a real gateway: a model whose config caches but whose
declared stages leave the cache out is never served from it (nor traced through it)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from groundgate.testing.fake_upstream import FakeUpstream
from tests.servers import start_gateway, wait_for_trace

CONFIG = """
[traces]
flush_interval_ms = 20
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.cached]
deployments = ["up:m"]
cache = {{ exact = true }}
[models.declared]
deployments = ["up:m"]
cache = {{ exact = true }}
stages = ["route", "generate"]
"""


def test_declared_stages_decide_the_path(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir: Path = tmp_path_factory.mktemp("pipelines")
    gateway = start_gateway(CONFIG.format(fake=fake_upstream.url), workdir)
    try:
        for model, second_source in (("cached", "cache"), ("declared", "model")):
            body = {
                "model": model,
                "temperature": 0,
                "messages": [{"role": "user", "content": "q"}],
            }
            replies = [httpx.post(gateway.url + "/v1/chat/completions", json=body) for _ in "12"]
            assert [r.status_code for r in replies] == [200, 200]
            assert replies[1].headers["x-groundgate-source"] == second_source
        spans = wait_for_trace(gateway.url, replies[1].headers["x-groundgate-trace-id"])["spans"]
        assert [s["name"] for s in spans] == ["route", "generate"]
        assert len(fake_upstream.requests()) == 3  # "cached" once, "declared" twice
    finally:
        gateway.stop()
