"""`groundgate keys` as an operator runs it, on a real SQLite store."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from groundgate.gateway.keys import parse_key, verify
from groundgate.observe.logging import RedactingFormatter
from groundgate.store.sqlite import SQLiteStore


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GROUNDGATE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "groundgate", "keys", *args, "-c", "groundgate.toml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def run_json(*args: str, cwd: Path) -> dict[str, Any]:
    proc = run(*args, "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)  # exactly one JSON object
    assert proc.stdout.strip().count("\n") == 0
    return data


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "groundgate.toml").write_text(f'[store]\npath = "{tmp_path}/gg.db"\n')
    return tmp_path


def stored_hash(workspace: Path, key_id: str) -> str:
    with sqlite3.connect(workspace / "gg.db") as db:
        [(value,)] = db.execute("SELECT secret_hash FROM api_keys WHERE id = ?", (key_id,))
    return str(value)


def test_create_prints_the_key_once_and_it_verifies(workspace: Path) -> None:
    proc = run("create", "--tenant", "acme", "--name", "ci", cwd=workspace)
    assert proc.returncode == 0, proc.stderr
    full_key = proc.stdout.strip()  # alone on stdout: KEY=$(groundgate keys create ...)
    parsed = parse_key(full_key)
    assert parsed is not None
    assert "shown once" in proc.stderr and parsed[0] in proc.stderr
    assert full_key not in proc.stderr
    assert verify(parsed[1], stored_hash(workspace, parsed[0]))


def test_create_json_with_every_option(workspace: Path) -> None:
    before = time.time()
    created = run_json(
        "create",
        "--tenant",
        "acme",
        "--name",
        "billing",
        "--scope",
        "chat",
        "--scope",
        "admin",
        "--model",
        "gpt-4o",
        "--model",
        "support-bot",
        "--rpm",
        "60",
        "--tpm",
        "10000",
        "--concurrent",
        "2",
        "--daily-budget",
        "1.5",
        "--monthly-budget",
        "30",
        "--max-tokens",
        "512",
        "--expires-in-days",
        "7",
        cwd=workspace,
    )
    parsed = parse_key(created["key"])
    assert parsed is not None and parsed[0] == created["id"]
    assert created["tenant"] == "acme" and created["name"] == "billing"
    assert created["scopes"] == ["admin", "chat"]
    assert created["models"] == ["gpt-4o", "support-bot"]
    assert (created["requests_per_minute"], created["tokens_per_minute"]) == (60, 10000)
    assert (created["concurrent"], created["max_tokens"]) == (2, 512)
    assert (created["daily_budget_usd"], created["monthly_budget_usd"]) == (1.5, 30.0)
    assert created["expires_at"] == pytest.approx(before + 7 * 86400, abs=60)
    assert "secret_hash" not in created

    async def read_back() -> Any:
        store = SQLiteStore(str(workspace / "gg.db"))
        await store.open()
        try:
            return await store.keys.get_key(created["id"]), await store.keys.get_tenant("acme")
        finally:
            await store.close()

    record, tenant = asyncio.run(read_back())
    assert record.scopes == ["admin", "chat"] and record.max_tokens == 512
    assert tenant is not None and tenant.requests_per_minute is None  # created with no limits


def test_list_and_revoke(workspace: Path) -> None:
    first = run_json("create", "--tenant", "a", "--name", "one", cwd=workspace)
    second = run_json("create", "--tenant", "b", "--name", "two", cwd=workspace)
    listed = run_json("list", cwd=workspace)
    assert [k["id"] for k in listed["data"]] == [second["id"], first["id"]]
    assert all("key" not in k and "secret_hash" not in k for k in listed["data"])
    assert [k["id"] for k in run_json("list", "--tenant", "a", cwd=workspace)["data"]] == [
        first["id"]
    ]
    human = run("list", cwd=workspace)
    assert human.returncode == 0 and first["id"] in human.stdout and "active" in human.stdout
    assert first["key"] not in human.stdout

    revoked = run_json("revoke", first["id"], cwd=workspace)
    assert revoked == {"object": "api_key.revoked", "id": first["id"], "revoked": True}
    statuses = {k["id"]: k["status"] for k in run_json("list", cwd=workspace)["data"]}
    assert statuses == {first["id"]: "revoked", second["id"]: "active"}
    plain = run("revoke", second["id"], cwd=workspace)
    assert plain.returncode == 0 and second["id"] in plain.stderr


def test_revoke_unknown_or_malformed_id_fails(workspace: Path) -> None:
    for key_id in ("zzzzzzzzzzzz", "' OR '1'='1"):
        proc = run("revoke", key_id, cwd=workspace)
        assert proc.returncode == 1 and "No API key" in proc.stderr
        as_json = run("revoke", key_id, "--json", cwd=workspace)
        assert as_json.returncode == 1
        assert json.loads(as_json.stdout)["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "args",
    [
        ["--tenant", "bad name", "--name", "k"],
        ["--tenant", "t", "--name", "-k"],
        ["--tenant", "t", "--name", "k", "--scope", "root"],
        ["--tenant", "t", "--name", "k", "--rpm", "0"],
        ["--tenant", "t", "--name", "k", "--daily-budget", "-1"],
        ["--tenant", "t", "--name", "k", "--expires-in-days", "0"],
    ],
)
def test_create_rejects_invalid_input_before_touching_the_store(
    workspace: Path, args: list[str]
) -> None:
    proc = run("create", *args, cwd=workspace)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error" in proc.stderr and proc.stdout == ""
    as_json = run("create", *args, "--json", cwd=workspace)
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["error"]["code"] == "invalid_value"
    assert not (workspace / "gg.db").exists()


def test_tenants_set_list_delete(workspace: Path) -> None:
    saved = run_json("tenants", "set", "acme", "--rpm", "100", "--daily-budget", "5", cwd=workspace)
    assert saved["name"] == "acme" and saved["requests_per_minute"] == 100
    assert saved["daily_budget_usd"] == 5.0 and saved["tokens_per_minute"] is None
    replaced = run_json("tenants", "set", "acme", "--concurrent", "3", cwd=workspace)
    assert replaced["created_at"] == saved["created_at"]
    assert replaced["concurrent"] == 3 and replaced["requests_per_minute"] is None
    run_json("tenants", "set", "beta", cwd=workspace)
    listed = run_json("tenants", "list", cwd=workspace)
    assert [t["name"] for t in listed["data"]] == ["acme", "beta"]
    human = run("tenants", "list", cwd=workspace)
    assert human.returncode == 0 and "acme" in human.stdout and "beta" in human.stdout

    key = run_json("create", "--tenant", "acme", "--name", "k", cwd=workspace)
    blocked = run("tenants", "delete", "acme", cwd=workspace)
    assert blocked.returncode == 1 and "revoke them first" in blocked.stderr
    run_json("revoke", key["id"], cwd=workspace)
    deleted = run_json("tenants", "delete", "acme", cwd=workspace)
    assert deleted == {"object": "tenant.deleted", "name": "acme", "deleted": True}
    assert run("tenants", "delete", "acme", cwd=workspace).returncode == 1
    bad = run("tenants", "set", "bad name", cwd=workspace)
    assert bad.returncode == 2


def test_created_keys_never_reach_a_log_line(workspace: Path) -> None:
    """Keys as `groundgate keys create` makes them, in every place a log line may hold one,
    through the formatter the server logs with: the secret goes, the id (not secret) stays."""
    keys = [
        run_json("create", "--tenant", "acme", "--name", f"k{i}", cwd=workspace) for i in (1, 2)
    ]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for created in keys:
            key = created["key"]
            for template in (
                "Authorization: Bearer {}",
                "x-api-key: {}",
                '{{"api_key": "{}"}}',
                '127.0.0.1:5000 - "GET /v1/traces/{} HTTP/1.1" 404',
                "GET /v1/models?token={}&x=1",
                "token_{}",
                "rejected key '{}'",
                "{}",
            ):
                logger.warning(template.format(key))
            try:
                raise ValueError(f"bad key {key}")
            except ValueError:
                logger.exception("failed")  # the traceback is scrubbed too
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    for created in keys:
        secret = created["key"].removeprefix(f"gg_{created['id']}_")
        assert secret not in written and secret[:16] not in written
        assert f"gg_{created['id']}_[REDACTED]" in written
