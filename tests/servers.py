"""Real servers for the test suite: the Groundgate gateway as a subprocess on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai


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

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``groundgate ARGS --config`` this gateway's config, run beside it (its store), with
        a terminal wide enough that tables print unfolded."""
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **(env or {})}
        full_env.pop("GROUNDGATE_CONFIG", None)
        return subprocess.run(
            [sys.executable, "-m", "groundgate", *args, "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.config_path.parent,
            env=full_env,
        )

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


@dataclass
class KeyedGateway:
    """A gateway that requires keys, and the keys a test made on it, by name (``admin``: the
    bootstrap admin key)."""

    process: GatewayProcess
    admin_key: str
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)

    def key(self, who: str) -> str:
        return self.admin_key if who == "admin" else str(self.keys[who]["key"])

    def http(self, who: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key(who)}"}
        return httpx.Client(base_url=self.process.url, headers=headers, timeout=30)

    def sdk(self, who: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.process.url + "/v1", api_key=self.key(who), max_retries=0, timeout=30
        )

    def get(self, who: str, path: str, **params: Any) -> httpx.Response:
        with self.http(who) as client:
            return client.get(path, params=params)

    def post(self, who: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        with self.http(who) as client:
            return client.post(path, json=body) if body is not None else client.post(path)

    def make_keys(self, keys: dict[str, tuple[str, list[str]]]) -> None:
        """Create each ``name: (tenant, scopes)`` key with the admin key."""
        for name, (tenant, scopes) in keys.items():
            body = {"name": name, "tenant": tenant, "scopes": scopes}
            made = self.post("admin", "/v1/admin/keys", body)
            assert made.status_code == 201, made.text
            self.keys[name] = made.json()
