"""`pip install groundgate` is enough: the wheel built by ``python -m build``, installed with
ordinary pip resolution into a fresh venv (no Makefile, no --no-deps step), serves the
embedded defaults and answers with the `local` model, and derives the cache's int8 model on
its first use. PyPI is reached through pip; its cache makes repeats quick (~30 s)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what points at the source tree or a config."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "GROUNDGATE_CONFIG", "PYTHONHOME")
    }
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


def test_a_plain_pip_install_serves_the_embedded_defaults(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, ROOT, env=clean_env())
    (wheel,) = dist.glob("groundgate-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, env=clean_env())
    python, pip = venv / "bin" / "python", venv / "bin" / "pip"
    run(pip, "install", "--quiet", wheel, env=clean_env())
    where = run(python, "-c", "import groundgate; print(groundgate.__file__)", env=clean_env())
    assert where.strip().startswith(str(venv)), where  # the wheel, not the source tree

    workdir = tmp_path / "run"
    workdir.mkdir()
    port = free_port()
    env = clean_env(GROUNDGATE_MODEL_CACHE=str(tmp_path / "models"))  # derive int8 afresh
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [venv / "bin" / "groundgate", "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(server, url, tmp_path / "serve.log")
        question = [
            {"role": "system", "content": "[1] Paris is the capital and largest city of France."},
            {"role": "user", "content": "What is the capital of France?"},
        ]
        resp = httpx.post(
            url + "/v1/chat/completions", json={"model": "local", "messages": question}, timeout=60
        )
        assert resp.status_code == 200, resp.text
        assert "Paris" in resp.json()["choices"][0]["message"]["content"]
        # The semantic cache's int8 embedder is derived from the shipped model on first use.
        resp = httpx.post(
            url + "/v1/embeddings",
            json={"model": "all-minilm-l6-v2-int8", "input": "hello"},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        assert len(resp.json()["data"][0]["embedding"]) == 384
        assert list((tmp_path / "models").glob("*-int8-*.onnx"))
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def wait_ready(server: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"groundgate serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"groundgate serve did not become ready:\n{log.read_text()}")
