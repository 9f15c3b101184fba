"""Prompt labels move without a restart: an app naming ``myprompt@production`` answers with
whatever version the label points at on the next request, whether the label was moved with
``groundgate prompts promote`` (another process) or ``POST /v1/prompts/.../labels/...``; every
answer, trace and cache entry names the version (``myprompt@N``), never the label."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from groundgate.testing.fake_upstream import FakeUpstream
from tests.servers import KeyedGateway, start_gateway

ADMIN_KEY = "adm-" + secrets.token_urlsafe(32)
CONFIG = """
[store]
path = "{workdir}/groundgate.db"
[traces]
flush_interval_ms = 20
[prompts]
dir = "prompts"
label_refresh_s = 0
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.gpt]
deployments = ["up:gpt-x"]
[knowledge_bases.kb]
mode = "keyword"
[apps.bot]
knowledge_base = "kb"
model = "gpt"
prompt = "myprompt@production"
cache = {{ exact = true, semantic = false }}
"""
MYPROMPT = """
description = "two versions that say which one answered"
[[versions]]
version = 1
instructions = "Answer in English from the sources [1]."
[[versions]]
version = 2
instructions = "Answer in {{ language }} from the sources [1]."
[versions.variables.language]
type = "string"
default = "French"
[[versions.examples]]
user = "Combien de jours ?"
assistant = "Vingt-huit jours [1]."
"""
QUESTION = "How many vacation days do employees get?"


def cli(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``groundgate ARGS`` on the gateway's config, as an operator runs it beside it."""
    return subprocess.run(
        [sys.executable, "-m", "groundgate", *args, "--config", str(workdir / "groundgate.toml")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=workdir,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"},
    )


@pytest.fixture(scope="module")
def gate(
    fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeyedGateway]:
    workdir = tmp_path_factory.mktemp("prompt-labels")
    (workdir / "prompts").mkdir()
    (workdir / "prompts" / "myprompt.toml").write_text(MYPROMPT, "utf-8")
    config = CONFIG.format(workdir=workdir, fake=fake_upstream_server.url)
    (workdir / "groundgate.toml").write_text(config, "utf-8")
    # The label must be set before an app that names it can start.
    first = cli(workdir, "prompts", "promote", "myprompt@1", "--label", "production")
    assert first.returncode == 0 and "myprompt production: unset -> 1" in first.stdout, first
    process = start_gateway(config, workdir, env={"GROUNDGATE_ADMIN_KEY": ADMIN_KEY})
    try:
        gate = KeyedGateway(process, ADMIN_KEY)
        keys = {"chatter": ("acme", ["chat", "ingest"]), "embedder": ("acme", ["embeddings"])}
        gate.make_keys(keys)
        doc = {"id": "vacation", "text": "Employees get 28 days of paid vacation per year."}
        made = gate.post("chatter", "/v1/knowledge-bases/kb/documents", {"documents": [doc]})
        assert made.status_code == 200, made.text
        yield gate
    finally:
        process.stop()


def ask_bot(
    gate: KeyedGateway, fake: FakeUpstream
) -> tuple[dict[str, Any], str, list[dict[str, Any]] | None]:
    """(the answer's ``groundgate`` object, its cache status, the messages upstream got (None
    when nothing went upstream))."""
    before = len(fake.requests())
    with gate.http("chatter") as client:
        resp = client.post(
            "/v1/chat/completions",
            json={"model": "bot", "messages": [{"role": "user", "content": QUESTION}]},
        )
    assert resp.status_code == 200, resp.text
    sent = [r for r in fake.requests()[before:] if r.path.endswith("/chat/completions")]
    messages = sent[-1].json["messages"] if sent else None
    return resp.json()["groundgate"], resp.headers["x-groundgate-cache"], messages


def trace_attrs(gate: KeyedGateway, trace_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        resp = gate.get("chatter", f"/v1/traces/{trace_id}")
        if resp.status_code == 200:
            return resp.json()["attrs"]  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"trace {trace_id} never recorded")


def test_a_label_move_applies_on_the_next_request_without_a_restart(
    gate: KeyedGateway, fake_upstream: FakeUpstream
) -> None:
    answer, cache, sent = ask_bot(gate, fake_upstream)
    assert answer["prompt"] == "myprompt@1" and cache == "miss" and sent is not None
    assert sent[0]["content"].startswith("Answer in English from the sources")
    assert "28 days" in sent[0]["content"] and len(sent) == 2
    assert trace_attrs(gate, answer["trace_id"])["prompt"]["requested"] == "myprompt@production"

    moved = gate.process.cli("prompts", "promote", "myprompt@2", "--label", "production")
    assert moved.returncode == 0 and "myprompt production: 1 -> 2" in moved.stdout, moved
    answer, cache, sent = ask_bot(gate, fake_upstream)
    # The same question under the same label: not the cached answer of version 1.
    assert answer["prompt"] == "myprompt@2" and cache == "miss" and sent is not None
    # Version 2's variable filled with its default, its few-shot example before the question.
    assert sent[0]["content"].startswith("Answer in French from the sources [1].\n\nSources:")
    assert [m["content"] for m in sent[1:]] == [
        "Combien de jours ?",
        "Vingt-huit jours [1].",
        QUESTION,
    ]
    attrs = trace_attrs(gate, answer["trace_id"])["prompt"]
    assert (attrs["requested"], attrs["version"], attrs["template"]) == (
        "myprompt@production",
        "myprompt@2",
        "myprompt@2",
    )

    body = {"version": 1, "note": "roll back"}
    refused = gate.post("chatter", "/v1/prompts/myprompt/labels/production", body)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    back = gate.post("admin", "/v1/prompts/myprompt/labels/production", body)
    assert back.status_code == 200, back.text
    assert (back.json()["from_version"], back.json()["to_version"]) == (2, 1)
    answer, cache, sent = ask_bot(gate, fake_upstream)
    # Version 1 again: its own cached answer, keyed by the version.
    assert answer["prompt"] == "myprompt@1" and cache == "exact" and sent is None

    history = gate.process.cli("prompts", "history", "myprompt", "--json")
    moves = json.loads(history.stdout)["data"]
    assert [(m["from_version"], m["to_version"]) for m in moves] == [(2, 1), (1, 2), (None, 1)]
    assert (moves[0]["tenant"], moves[0]["moved_by"], moves[0]["note"]) == (
        "default",
        "admin",
        "roll back",
    )
    assert moves[1]["moved_by"].startswith("cli")


def test_prompts_over_http(gate: KeyedGateway) -> None:
    listed = gate.get("chatter", "/v1/prompts")
    assert listed.status_code == 200, listed.text
    prompts = {p["name"]: p for p in listed.json()["data"]}
    assert prompts["myprompt"]["versions"] == [1, 2]
    assert set(prompts["myprompt"]["tokens"]) == {"1", "2"}
    assert "grounded-answer" in prompts
    one = gate.get("chatter", "/v1/prompts/myprompt").json()
    assert [v["ref"] for v in one["versions"]] == ["myprompt@1", "myprompt@2"]
    labelled = gate.get("chatter", "/v1/prompts/myprompt/versions/production")
    assert labelled.status_code == 200, labelled.text
    assert labelled.json()["instructions"].startswith("Answer in")
    assert labelled.json()["ref"] == "myprompt@" + str(one["labels"]["production"])

    assert gate.get("embedder", "/v1/prompts").status_code == 403
    missing = gate.get("chatter", "/v1/prompts/nosuch")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "prompt_not_found"
    assert gate.get("chatter", "/v1/prompts/myprompt/versions/9").status_code == 404
    bad = gate.post("admin", "/v1/prompts/myprompt/labels/Not-A-Label", {"version": 1})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_label"
    unknown = gate.post("admin", "/v1/prompts/myprompt/labels/staging", {"version": 9})
    assert unknown.status_code == 404


def test_the_docs_app_still_answers_with_the_built_in_prompt(gate: KeyedGateway) -> None:
    with gate.http("chatter") as client:
        resp = client.post("/v1/ask", json={"app": "docs", "question": "What is Groundgate?"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["prompt"] == "grounded-answer@1"
