"""Shared pieces of the benchmarks: start the fake upstream and a gateway as subprocesses,
and drive closed-loop HTTP load with latency percentiles. Loopback only, bounded in time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def pin(pid: int, cores: set[int] | None) -> None:
    """Pin a process to some cores (Linux); a no-op where that is not possible."""
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, cores)


def start_fake_upstream(latency_ms: float, cores: set[int] | None = None) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "groundgate.testing.fake_upstream",
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
            "--no-record",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    pin(process.pid, cores)
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"fake upstream did not start: {line}")
    return Server(line.split("listening on", 1)[1].strip(), process)


def start_gateway(
    config: str, workdir: Path | None = None, timeout: float = 60, cores: set[int] | None = None
) -> Server:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="groundgate-bench-"))
    path = workdir / "groundgate.toml"
    path.write_text(config.replace("{workdir}", str(workdir)), "utf-8")
    port = free_port()
    log = (workdir / "gateway.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "groundgate", "serve", "--config", str(path), "--port", str(port)],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    pin(process.pid, cores)
    server = Server(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + timeout
    import urllib.request

    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((workdir / "gateway.log").read_text())
        try:
            with urllib.request.urlopen(server.url + "/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("gateway did not become ready")


@dataclass
class LoadResult:
    concurrency: int
    duration_s: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "requests": self.ok + self.errors,
            "failed": self.errors,
            "throughput_rps": round(self.ok / self.duration_s, 1),
            "p50_ms": round(self.percentile(50), 3),
            "p99_ms": round(self.percentile(99), 3),
        }


async def closed_loop(
    url: str,
    body: bytes,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 1.0,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """``concurrency`` clients, each sending the next request when the last one is answered."""
    result = LoadResult(concurrency, duration_s)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    all_headers = {"content-type": "application/json", **(headers or {})}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        measure_from = start + warmup_s
        stop_at = measure_from + duration_s

        async def worker() -> None:
            while True:
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                try:
                    async with session.post(url, data=body, headers=all_headers) as resp:
                        await resp.read()
                        good = resp.status == 200
                        status = resp.status
                except Exception as exc:  # counted, never hidden
                    good, status = False, type(exc).__name__  # type: ignore[assignment]
                done = time.perf_counter()
                if sent < measure_from:
                    continue
                if good:
                    result.latencies_ms.append((done - sent) * 1000)
                else:
                    result.errors += 1
                    if len(result.error_samples) < 5:
                        result.error_samples.append(str(status))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return result


def bar(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def run_loop(coro: Any) -> Any:
    """Run on uvloop when it is installed, as ``groundgate serve`` does."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory, removed with everything in it on exit."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
