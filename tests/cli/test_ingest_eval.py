"""`groundgate ingest` and `groundgate eval` as a user runs them, on a real SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = """
[store]
path = "{root}/gg.db"

[apps.handbook]
knowledge_base = "handbook"
model = "local"
top_k = 3
{extra}
"""

CASES = [
    {
        "id": "vac",
        "question": "How many days of paid vacation do employees receive?",
        "answers": ["28 days"],
        "must_contain": ["28"],
        "relevant_ids": ["policies/vacation.md"],
    },
    {
        "id": "hotel",
        "question": "What is the cap on hotel costs per night?",
        "answers": ["180 euros"],
        "relevant_ids": ["policies/expenses.txt"],
    },
    {
        "id": "pw",
        "question": "How often must passwords be rotated?",
        "answers": ["every 90 days"],
        "relevant_ids": ["security.html"],
    },
    {
        "id": "none",
        "question": "What is the airspeed velocity of an unladen swallow?",
        "answerable": False,
    },
]
# Each document asked about three ways: enough cases for a drop to be told from noise (the
# gate fails only on a significant drop; three cases never are).
CASES += [
    {"id": f"{doc}-{n}", "question": question, "relevant_ids": [path]}
    for doc, path, questions in (
        ("vac", "policies/vacation.md", ("How much paid vacation per year?", "Vacation days?")),
        ("hotel", "policies/expenses.txt", ("How much may a hotel night cost?", "Hotel cap?")),
        ("pw", "security.html", ("When must passwords change?", "Password rotation interval?")),
    )
    for n, question in enumerate(questions, start=2)
]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GROUNDGATE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "groundgate", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ingest")
    docs = root / "docs"
    (docs / "policies").mkdir(parents=True)
    (docs / "policies" / "vacation.md").write_text(
        "# Vacation\n\nEmployees receive 28 days of paid vacation per year.\n"
    )
    (docs / "policies" / "expenses.txt").write_text(
        "Expenses\n\nHotel costs are capped at 180 euros per night. Receipts are due within "
        "a week.\n"
    )
    (docs / "security.html").write_text(
        "<html><head><title>Security</title></head><body><h1>Passwords</h1>"
        "<p>Passwords must be rotated every 90 days.</p><script>x()</script></body></html>"
    )
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 garbage without any objects")
    (docs / "bad.json").write_text("{not json")
    (docs / ".hidden.md").write_text("secret draft")
    (root / "groundgate.toml").write_text(CONFIG.format(root=root, extra=""))
    (root / "worse.toml").write_text(CONFIG.format(root=root, extra='filters = {team = "none"}'))
    (root / "golden.jsonl").write_text("\n".join(json.dumps(c) for c in CASES) + "\n")
    return root


def test_ingest_reports_bad_files_and_indexes_the_rest(workspace: Path) -> None:
    proc = run("ingest", "docs", "--kb", "handbook", "-c", "groundgate.toml", cwd=workspace)
    assert proc.returncode == 1, proc.stderr  # some files failed: say so in the exit code
    assert "broken.pdf" in proc.stderr and "bad.json" in proc.stderr
    assert "3 added" in proc.stderr
    assert ".hidden" not in proc.stderr
    again = run(
        "ingest",
        "docs/policies",
        "--kb",
        "handbook",
        "-c",
        "groundgate.toml",
        "--quiet",
        cwd=workspace,
    )
    assert again.returncode == 0, again.stderr
    answer = run(
        "ask",
        "How many vacation days?",
        "-c",
        "groundgate.toml",
        "--model",
        "local",
        "--context",
        "unused",
        cwd=workspace,
    )
    assert answer.returncode == 0


def test_ingest_rerun_is_a_no_op(workspace: Path) -> None:
    run("ingest", "docs", "--kb", "handbook", "-c", "groundgate.toml", "-q", cwd=workspace)
    proc = run("ingest", "docs", "--kb", "handbook", "-c", "groundgate.toml", cwd=workspace)
    assert "3 unchanged" in proc.stderr


def test_eval_gate_passes_baseline_and_fails_worse_config(workspace: Path) -> None:
    run("ingest", "docs", "--kb", "handbook", "-c", "groundgate.toml", "-q", cwd=workspace)
    base = run(
        "eval",
        "golden.jsonl",
        "--app",
        "handbook",
        "-c",
        "groundgate.toml",
        "--out",
        "base.json",
        cwd=workspace,
    )
    assert base.returncode == 0, base.stdout + base.stderr
    report = json.loads((workspace / "base.json").read_text())
    metrics = report["metrics"]
    assert metrics["recall@10"] == 1.0 and metrics["rules_pass"] == 1.0
    assert metrics["abstention_accuracy"] == 1.0
    same = run(
        "eval",
        "golden.jsonl",
        "--app",
        "handbook",
        "-c",
        "groundgate.toml",
        "--baseline",
        "base.json",
        "--max-drop",
        "0.02",
        cwd=workspace,
    )
    assert same.returncode == 0, same.stdout
    worse = run(
        "eval",
        "golden.jsonl",
        "--app",
        "handbook",
        "-c",
        "worse.toml",
        "--baseline",
        "base.json",
        "--max-drop",
        "0.02",
        cwd=workspace,
    )
    assert worse.returncode == 1, worse.stdout
    assert "recall@10" in worse.stdout


def test_eval_rejects_bad_dataset(workspace: Path) -> None:
    (workspace / "bad.jsonl").write_text('{"question": "ok"}\n{"answers": ["no question"]}\n')
    proc = run("eval", "bad.jsonl", "--app", "handbook", "-c", "groundgate.toml", cwd=workspace)
    assert proc.returncode == 2
    assert ":2" in proc.stdout + proc.stderr
