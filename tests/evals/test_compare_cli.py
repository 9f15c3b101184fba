"""``groundgate eval compare`` on report files, as a user runs it: the gate passes on noise,
fails on a real regression, and lists the cases that flipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from groundgate.evals.report import CaseRecord, EvalReport, write_report

N = 40


def report(path: Path, failing: set[int]) -> Path:
    cases = [
        CaseRecord(
            id=f"case-{i:02d}",
            question=f"q{i}?",
            scores={"rules_pass": 0.0 if i in failing else 1.0, "f1": 0.3 if i in failing else 0.9},
        )
        for i in range(N)
    ]
    body = EvalReport(
        dataset="golden.jsonl",
        created_at="2025-01-01T00:00:00+00:00",
        cases=N,
        metrics={"rules_pass": (N - len(failing)) / N},
        per_case=cases,
    )
    return write_report(body, path)


def compare(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GROUNDGATE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "groundgate", "eval", "compare", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def test_noise_passes_a_real_regression_fails_and_flips_are_listed(tmp_path: Path) -> None:
    base = report(tmp_path / "a.json", failing={1, 2, 3, 4})
    # Noise: two cases got worse, one better; rules_pass drops 0.025 > --max-drop 0.02.
    noisy = report(tmp_path / "noisy.json", failing={1, 2, 3, 10, 11})
    proc = compare(str(base), str(noisy), "--max-drop", "0.02", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout and "within noise" in proc.stdout

    # A real regression: twelve more cases fail.
    worse = report(tmp_path / "worse.json", failing={1, 2, 3, 4, *range(20, 32)})
    proc = compare(str(base), str(worse), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout and "case-20" in proc.stdout and "passed->failed" in proc.stdout

    proc = compare(str(base), str(noisy), "--json", "--metric", "rules_pass", cwd=tmp_path)
    result = json.loads(proc.stdout)
    assert [f["id"] for f in result["regressed"]] == ["case-10", "case-11"]
    assert [f["id"] for f in result["fixed"]] == ["case-04"]
    (rules,) = result["metrics"]
    assert rules["name"] == "rules_pass" and rules["significant"] is False
    assert rules["ci"][0] < rules["delta"] == -0.025 < rules["ci"][1]


def test_a_missing_run_is_a_clear_error(tmp_path: Path) -> None:
    base = report(tmp_path / "a.json", failing=set())
    proc = compare(str(base), "eval_nosuchrun", cwd=tmp_path)
    assert proc.returncode == 2 and "eval_nosuchrun" in proc.stdout + proc.stderr
