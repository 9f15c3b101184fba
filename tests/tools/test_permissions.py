"""Tool permissions per key and per tenant: stored on the key and on the tenant, granted no
wider than the creator's own nor than the tenant's (admin API), set by ``groundgate keys create
--tools`` and ``groundgate keys tenants set --tools``, and turned into ``Principal.tools`` and
``Principal.tenant_tools``, whose intersection (``Principal.allowed_tools``) is what
``ToolSet.for_app`` gets (see test_mcp_tools and tests/agents/test_agent_tools_e2e.py too)."""

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
from groundgate.config_tools import permissions_within, tool_permitted
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


async def create(
    c: httpx.AsyncClient, who: str, tools: object, tenant: str | None = None
) -> httpx.Response:
    body = {"name": "k", "scopes": ["chat"], "tools": tools, "tenant": tenant}
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


async def test_a_tenants_tools_bound_the_keys_made_for_it(
    client: tuple[httpx.AsyncClient, SQLiteStore],
) -> None:
    c, store = client
    boot = {"x-test-principal": "bootstrap"}
    body = {"name": "acme", "tools": ["calc", "files__read", "calc"]}
    saved = await c.post("/v1/admin/tenants", json=body, headers=boot)
    assert saved.status_code == 200, saved.text
    assert saved.json()["tools"] == ["calc", "files__read"]
    listed = await c.get("/v1/admin/tenants", headers=boot)
    assert listed.json()["data"][0]["tools"] == ["calc", "files__read"]
    # Not even the bootstrap admin names a tool the tenant may not use for one of its keys.
    for creator in ("bootstrap", "limited"):
        wider = await create(c, creator, ["calc", "mcp:files"], "acme")
        assert wider.status_code == 403, (creator, wider.text)
        assert "tenant 'acme' may not use: ['mcp:files']" in wider.json()["error"]["message"]
    # A key without a list (bootstrap) or within its creator's and the tenant's gets both.
    for creator, tools in (("bootstrap", None), ("limited", ["calc", "files__read"])):
        made = await create(c, creator, tools, "acme")
        assert made.status_code == 201, (creator, made.text)
        stored = await store.keys.get_key(made.json()["id"])
        tenant = await store.keys.get_tenant("acme")
        assert stored is not None and tenant is not None
        assert principal_for(stored, tenant).allowed_tools == frozenset({"calc", "files__read"})
    bad = await c.post("/v1/admin/tenants", json={"name": "acme", "tools": ["a b"]}, headers=boot)
    assert bad.status_code == 400 and "tools" in bad.text


def test_key_and_tenant_permissions_intersect() -> None:
    key = frozenset({"calc", "weather", "mcp:files"})
    tenant = frozenset({"calc", "files__read", "mcp:crm"})
    both = permissions_within(key, tenant)
    assert both == frozenset({"calc", "files__read"})
    names = ["calc", "weather", "files__read", "files__write", "crm__get", "other"]
    for name in names:  # covered by the intersection exactly when covered by both
        expected = tool_permitted(name, key) and tool_permitted(name, tenant)
        assert tool_permitted(name, both) == expected, name
    assert permissions_within(None, tenant) == tenant
    assert permissions_within(key, None) == key
    assert permissions_within(None, None) is None
    assert permissions_within(frozenset({"mcp:files"}), frozenset({"mcp:files"})) == {"mcp:files"}
    limited = Principal("acme", "k", frozenset(), tools=key, tenant_tools=tenant)
    assert limited.allowed_tools == both


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


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GROUNDGATE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "groundgate", *args, "--json", "-c", "groundgate.toml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )


def test_cli_creates_a_key_with_tools(tmp_path: Path) -> None:
    (tmp_path / "groundgate.toml").write_text(f'[store]\npath = "{tmp_path}/gg.db"\n')
    args = ["keys", "create", "--tenant", "acme", "--name", "agent", "--tools", "calc, mcp:files"]
    proc = cli(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tools"] == ["calc", "mcp:files"]


def test_cli_sets_a_tenants_tools_and_keeps_its_keys_within_them(tmp_path: Path) -> None:
    (tmp_path / "groundgate.toml").write_text(f'[store]\npath = "{tmp_path}/gg.db"\n')
    proc = cli(tmp_path, "keys", "tenants", "set", "acme", "--tools", "calc, mcp:files")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tools"] == ["calc", "mcp:files"]
    args = ["keys", "create", "--tenant", "acme", "--name", "agent", "--tools", "calc,weather"]
    proc = cli(tmp_path, *args)
    assert proc.returncode == 1, proc.stdout
    assert "may not use: ['weather']" in json.loads(proc.stdout)["error"]["message"]
