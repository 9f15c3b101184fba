"""`groundgate eval run --score/--judge`, `eval pairwise` and `datasets synth` as a user runs
them: real subprocesses, a real SQLite store, the session's fake upstream as the judge's and
the drafting model's provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from groundgate.testing.fake_upstream import Behavior, FakeUpstream

CONFIG = """
[store]
path = "{root}/gg.db"
[cache]
enabled = false
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.judge]
deployments = ["up:judge-model"]
[prices."up:judge-model"]
input_per_mtok = 1000000.0
output_per_mtok = 0.0
[apps.handbook]
knowledge_base = "handbook"
model = "local"
top_k = 2
"""
CASES = [
    {
        "id": "vac",
        "question": "How many days of paid vacation do employees receive?",
        "answers": ["28 days"],
        "pattern": "28",
    },
    {"id": "none", "question": "Who won the 1954 world cup?", "answerable": False},
]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GROUNDGATE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "groundgate", *args, "-c", "gg.toml"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstream) -> Path:
    root = tmp_path_factory.mktemp("evalscore")
    (root / "docs").mkdir()
    (root / "docs" / "vacation.md").write_text(
        "# Vacation\n\nEmployees receive 28 days of paid vacation per year.\n"
    )
    (root / "gg.toml").write_text(CONFIG.format(root=root, fake=fake_upstream_server.url))
    (root / "golden.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES))
    proc = run("ingest", "docs", "--kb", "handbook", "-q", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root


def judge_by_rule(path: str, body: Any) -> Behavior:
    """Rubric: 4 for any answer. Pairwise: always a tie."""
    if "[Answer A]" in body["messages"][-1]["content"]:
        return Behavior(content='{"winner": "tie"}')
    return Behavior(content='{"score": 4, "reason": "fine"}')


def test_run_with_scorers_and_judge_then_pairwise(
    workspace: Path, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.respond_with(judge_by_rule)
    proc = run(
        "eval", "golden.jsonl", "--app", "handbook", "--score", "regex", "--score", "judge",
        "--judge", "judge", "--rubric", "States the number of days.", "--out", "r.json",
        cwd=workspace,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((workspace / "r.json").read_text())
    assert report["metrics"]["judge"] == 0.75 and report["metrics"]["regex_match"] == 1.0
    assert report["coverage"]["regex_match"] == 1 and "similarity" not in report["metrics"]
    vac = report["per_case"][0]
    assert vac["details"]["judge"]["prompt"] == "judge-rubric@1"
    assert report["metrics"]["scoring_upstream_calls"] == 2
    assert "2 scored, 0 unparseable" in proc.stdout and "judge-rubric@1" in proc.stdout
    rubric_sent = [r.json["messages"][-1]["content"] for r in fake_upstream.requests()]
    assert all("States the number of days." in text for text in rubric_sent)

    pair = run("eval", "pairwise", "r.json", "r.json", "--judge", "judge", cwd=workspace)
    assert pair.returncode == 0, pair.stdout + pair.stderr
    assert "A wins 0, B wins 0, ties 2, not judged 0; 4 upstream calls" in pair.stdout


def test_bad_scorer_options_exit_2(workspace: Path) -> None:
    bogus = run("eval", "golden.jsonl", "--app", "handbook", "--score", "bogus", cwd=workspace)
    assert bogus.returncode == 2 and "unknown scorer 'bogus'" in bogus.stderr
    no_model = run("eval", "golden.jsonl", "--app", "handbook", "--score", "judge", cwd=workspace)
    assert no_model.returncode == 2 and "--score judge needs --judge MODEL" in no_model.stderr
    unknown = run("eval", "pairwise", "a.json", "b.json", "--judge", "nope", cwd=workspace)
    assert unknown.returncode == 2 and "no model named 'nope'" in unknown.stderr


def test_datasets_synth_writes_labelled_drafts(
    workspace: Path, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(
        Behavior(content='{"question": "How many vacation days?", "answer": "28 days"}')
    )
    proc = run(
        "datasets", "synth", "--app", "handbook", "--model", "judge", "--n", "3",
        "--seed", "1", "--out", "drafts.jsonl", cwd=workspace,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Wrote 1 draft cases" in proc.stderr and "1 model calls, cost $" in proc.stderr
    [case] = [json.loads(line) for line in (workspace / "drafts.jsonl").read_text().splitlines()]
    assert case["label"] == "synthetic-draft" and case["relevant_ids"] == ["vacation.md"]
    missing = run(
        "datasets", "synth", "--kb", "nokb", "--model", "judge", "--out", "x.jsonl",
        cwd=workspace,
    )  # fmt: skip
    assert missing.returncode == 2 and "no knowledge base 'nokb'" in missing.stderr
