"""Real servers for the test suite: the Groundgate gateway as a subprocess on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class GatewayProcess:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    config_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_gateway(
    config_text: str,
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    ready_timeout: float = 60.0,
) -> GatewayProcess:
    """Write the config, start ``groundgate serve`` and wait until /readyz says ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "groundgate.toml"
    config_path.write_text(config_text, "utf-8")
    port = free_port()
    log_path = workdir / "gateway.log"
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    full_env.pop("GROUNDGATE_CONFIG", None)
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "groundgate",
            "serve",
            "--config",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *(extra_args or []),
        ],
        cwd=workdir,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    gateway = GatewayProcess(f"http://127.0.0.1:{port}", port, process, log_path, config_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited with {process.returncode}:\n{gateway.log_text()}")
        try:
            if httpx.get(gateway.url + "/readyz", timeout=1.0).status_code == 200:
                return gateway
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    gateway.stop()
    raise RuntimeError(f"gateway not ready after {ready_timeout}s:\n{gateway.log_text()}")


def wait_for_trace(url: str, trace_id: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The stored trace, once the gateway (which writes traces in batches) has written it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        resp = httpx.get(f"{url}/v1/traces/{trace_id}")
        if resp.status_code == 200:
            body: dict[str, Any] = resp.json()
            return body
        time.sleep(0.05)
    raise AssertionError(f"trace {trace_id} never recorded")
