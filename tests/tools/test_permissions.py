"""Per-key tool permissions: stored on the key, granted no wider than the creator's own
(admin API), set by ``groundgate keys create --tools``, and turned into ``Principal.tools``,
which ``ToolSet.for_app(app, allowed=principal.tools)`` applies (see test_mcp_tools too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from groundgate.api.errors import install_error_handlers
from groundgate.api.routes import admin
from groundgate.config_tools import tool_permitted
from groundgate.gateway.grants import principal_for
from groundgate.gateway.principal import SCOPES, Principal
from groundgate.store.sqlite import SQLiteStore

PRINCIPALS = {
    "bootstrap": Principal(tenant="default", key_id=None, scopes=SCOPES),
    "limited": Principal(
        tenant="acme",
        key_id="aaaaaaaaaaaa",
        scopes=frozenset({"chat", "admin"}),
        tools=frozenset({"calc", "mcp:files"}),
    ),
}


class AsPrincipal:
    """Stands in for the auth layer: puts the named principal on the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = dict(scope.get("headers") or []).get(b"x-test-principal", b"").decode()
        if name:
            scope.setdefault("state", {})["principal"] = PRINCIPALS[name]
        await self.app(scope, receive, send)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, SQLiteStore]]:
    store = SQLiteStore(str(tmp_path / "admin.db"))
    await store.open()
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(admin.router)
    app.state.runtime = SimpleNamespace(store=store)
    transport = httpx.ASGITransport(app=AsPrincipal(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        yield c, store
    await store.close()


async def create(c: httpx.AsyncClient, who: str, tools: object) -> httpx.Response:
    body = {"name": "k", "scopes": ["chat"], "tools": tools}
    return await c.post("/v1/admin/keys", json=body, headers={"x-test-principal": who})


async def test_a_key_grants_only_tools_it_may_call(
    client: tuple[httpx.AsyncClient, SQLiteStore],
) -> None:
    c, store = client
    ok = await create(c, "limited", ["calc", "files__read", "mcp:files"])
    assert ok.status_code == 201, ok.text
    assert ok.json()["tools"] == ["calc", "files__read", "mcp:files"]
    stored = await store.keys.get_key(ok.json()["id"])
    assert stored is not None
    assert principal_for(stored, None).tools == frozenset({"calc", "files__read", "mcp:files"})
    for wider in (["calc", "weather"], ["mcp:other"], ["other__read"], None):
        resp = await create(c, "limited", wider)
        assert resp.status_code == 403, (wider, resp.text)
        assert resp.json()["error"]["type"] == "permission_error"
    anything = await create(c, "bootstrap", None)
    assert anything.status_code == 201 and anything.json()["tools"] is None


async def test_malformed_tool_names_are_refused(
    client: tuple[httpx.AsyncClient, SQLiteStore],
) -> None:
    c, _ = client
    resp = await create(c, "bootstrap", ["has space"])
    assert resp.status_code == 400 and "tools" in resp.text


def test_permission_rule() -> None:
    allowed = frozenset({"calc", "mcp:files"})
    assert tool_permitted("calc", allowed) and tool_permitted("files__read", allowed)
    assert not tool_permitted("weather", allowed)
    assert not tool_permitted("other__read", allowed)
    assert not tool_permitted("files", allowed)


def test_cli_creates_a_key_with_tools(tmp_path: Path) -> None:
    (tmp_path / "groundgate.toml").write_text(f'[store]\npath = "{tmp_path}/gg.db"\n')
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GROUNDGATE_CONFIG", None)
    args = ["keys", "create", "--tenant", "acme", "--name", "agent", "--tools", "calc, mcp:files"]
    proc = subprocess.run(
        [sys.executable, "-m", "groundgate", *args, "--json", "-c", "groundgate.toml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tools"] == ["calc", "mcp:files"]
