"""The CLI as a user runs it: real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONTEXT = "The gateway stores traces in SQLite.\n\nThe server listens on port 8080 by default."


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GROUNDGATE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "groundgate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def test_ask_answers_with_citation(tmp_path: Path) -> None:
    proc = run("ask", "Which port does the server listen on?", "--context", CONTEXT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "8080" in proc.stdout and "[2]" in proc.stdout
    assert "trace" in proc.stderr and "local:extractive" in proc.stderr
    # The trace was written to the embedded store in the working directory.
    assert (tmp_path / "data" / "groundgate.db").exists()


def test_ask_streams_and_reads_context_file(tmp_path: Path) -> None:
    (tmp_path / "ctx.txt").write_text(CONTEXT)
    proc = run("ask", "Where are traces stored?", "--context", "@ctx.txt", "--stream", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "SQLite" in proc.stdout


def test_ask_unknown_model_fails_clearly(tmp_path: Path) -> None:
    proc = run("ask", "hi", "--model", "ghost", cwd=tmp_path)
    assert proc.returncode == 1
    assert "The model 'ghost' does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_lists_commands(tmp_path: Path) -> None:
    proc = run("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for command in ("serve", "ask", "config"):
        assert command in proc.stdout
