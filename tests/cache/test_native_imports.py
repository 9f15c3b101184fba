"""The native libraries the cache and the local model load must live in one process, in
either import order (usearch 2.26.2 to 2.26.6 crash when onnxruntime is imported after them)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "modules", [("usearch.index", "onnxruntime"), ("onnxruntime", "usearch.index")]
)
def test_usearch_and_onnxruntime_load_together(modules: tuple[str, str]) -> None:
    code = "; ".join(f"import {m}" for m in modules) + "; print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result
