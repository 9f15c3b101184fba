"""Building the server for a config imports none of the heavy native libraries: the local
models import them when one first loads, the semantic cache's HNSW index with its first large
partition."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("onnxruntime", "onnx", "tokenizers", "usearch")

CODE = f"""
import sys
from groundgate.api.app import create_app
from groundgate.config import load_settings

create_app(load_settings(None))
print(sorted(m for m in {HEAVY!r} if m in sys.modules), flush=True)
from groundgate.providers.local import process_models
print(sorted(n for n, s in process_models().loaded().items() if s["loaded"]))
"""


def test_the_server_imports_no_model_runtime_until_a_model_loads(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CODE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=str(tmp_path),
    )
    lines = result.stdout.splitlines()
    assert lines[:1] == ["[]"], result.stdout + result.stderr  # nothing heavy imported
    assert result.returncode == 0, result.stderr
    assert lines[1:] == ["[]"]  # and no model loaded
