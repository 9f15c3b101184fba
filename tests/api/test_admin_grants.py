"""What a tenant admin may not do through the admin routes: the routes wired to the rules of
:mod:`groundgate.gateway.grants`. The caller's principal is set by a stand-in for the auth
layer (an ASGI wrapper that puts it on the request, as the real one does)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from groundgate.api.errors import install_error_handlers
from groundgate.api.routes import admin
from groundgate.gateway.principal import SCOPES, Budgets, Limits, Principal
from groundgate.store.keys import TenantRecord
from groundgate.store.sqlite import SQLiteStore

PRINCIPALS = {
    "bootstrap": Principal(tenant="default", key_id=None, scopes=SCOPES),
    "acme-admin": Principal(
        tenant="acme",
        key_id="aaaaaaaaaaaa",
        scopes=frozenset({"chat", "admin"}),
        key_limits=Limits(requests_per_minute=100),
        key_budgets=Budgets(daily_usd=10.0),
        max_tokens=1000,
    ),
    "acme-chat": Principal(tenant="acme", key_id="bbbbbbbbbbbb", scopes=frozenset({"chat"})),
}
WITHIN = {"requests_per_minute": 100, "daily_budget_usd": 10.0, "max_tokens": 1000}


class AsPrincipal:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        name = headers.get(b"x-test-principal", b"").decode()
        if name:
            scope.setdefault("state", {})["principal"] = PRINCIPALS[name]
        await self.app(scope, receive, send)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "admin.db"))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def client(store: SQLiteStore) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(admin.router)
    app.state.runtime = SimpleNamespace(store=store)
    transport = httpx.ASGITransport(app=AsPrincipal(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        yield c


def as_(name: str) -> dict[str, str]:
    return {"x-test-principal": name}


def denied(resp: httpx.Response) -> None:
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["type"] == "permission_error"


async def test_tenant_admin_creates_keys_within_its_own_grant(
    client: httpx.AsyncClient, store: SQLiteStore
) -> None:
    resp = await client.post(
        "/v1/admin/keys",
        headers=as_("acme-admin"),
        json={"name": "sub", "scopes": ["chat"], **WITHIN},
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["tenant"] == "acme" and created["scopes"] == ["chat"]
    assert [k.id for k in await store.keys.list_keys("acme")] == [created["id"]]


@pytest.mark.parametrize(
    "body",
    [
        {"tenant": "other", **WITHIN},
        {"tenant": "default", **WITHIN},
        {"scopes": ["chat", "embeddings"], **WITHIN},  # the default scopes: it lacks one
        {"scopes": ["ingest"], **WITHIN},
        {"scopes": ["chat"], **{**WITHIN, "requests_per_minute": 101}},
        {"scopes": ["chat"], "daily_budget_usd": 10.0, "max_tokens": 1000},  # no rpm: unlimited
        {"scopes": ["chat"], **{**WITHIN, "daily_budget_usd": 10.5}},
        {"scopes": ["chat"], "requests_per_minute": 100, "max_tokens": 1000},
        {"scopes": ["chat"], **{**WITHIN, "max_tokens": 1001}},
    ],
)
async def test_tenant_admin_cannot_escalate(
    client: httpx.AsyncClient, store: SQLiteStore, body: dict[str, Any]
) -> None:
    denied(
        await client.post("/v1/admin/keys", headers=as_("acme-admin"), json={"name": "x", **body})
    )
    assert await store.keys.list_keys() == []
    assert await store.keys.list_tenants() == []


async def test_tenant_admin_sees_and_revokes_only_its_own_tenant(
    client: httpx.AsyncClient, store: SQLiteStore
) -> None:
    boot = as_("bootstrap")
    mine = await client.post("/v1/admin/keys", headers=boot, json={"name": "a", "tenant": "acme"})
    theirs = await client.post(
        "/v1/admin/keys", headers=boot, json={"name": "o", "tenant": "other"}
    )
    mine_id, theirs_id = mine.json()["id"], theirs.json()["id"]
    acme = as_("acme-admin")

    listed = (await client.get("/v1/admin/keys", headers=acme)).json()["data"]
    assert [k["id"] for k in listed] == [mine_id]
    denied(await client.get("/v1/admin/keys", params={"tenant": "other"}, headers=acme))
    assert (await client.get(f"/v1/admin/keys/{theirs_id}", headers=acme)).status_code == 404
    assert (await client.delete(f"/v1/admin/keys/{theirs_id}", headers=acme)).status_code == 404
    other_key = await store.keys.get_key(theirs_id)
    assert other_key is not None and other_key.revoked_at is None
    assert (await client.delete(f"/v1/admin/keys/{mine_id}", headers=acme)).status_code == 200

    # Everything, for the bootstrap admin.
    everything = (await client.get("/v1/admin/keys", headers=boot)).json()["data"]
    assert {k["id"] for k in everything} == {mine_id, theirs_id}


async def test_tenant_admin_reads_only_its_tenant_and_changes_none(
    client: httpx.AsyncClient, store: SQLiteStore
) -> None:
    await store.keys.upsert_tenant(TenantRecord("acme", 1.0, requests_per_minute=5))
    await store.keys.upsert_tenant(TenantRecord("other", 1.0))
    acme = as_("acme-admin")
    listed = (await client.get("/v1/admin/tenants", headers=acme)).json()["data"]
    assert [t["name"] for t in listed] == ["acme"]
    assert (await client.get("/v1/admin/tenants/acme", headers=acme)).status_code == 200
    denied(await client.get("/v1/admin/tenants/other", headers=acme))
    # Its own tenant's limits bind it: it may not loosen them, nor delete any tenant.
    denied(await client.post("/v1/admin/tenants", headers=acme, json={"name": "acme"}))
    denied(await client.post("/v1/admin/tenants", headers=acme, json={"name": "new"}))
    denied(await client.delete("/v1/admin/tenants/other", headers=acme))
    denied(await client.delete("/v1/admin/tenants/acme", headers=acme))
    tenant = await store.keys.get_tenant("acme")
    assert tenant is not None and tenant.requests_per_minute == 5
    assert [t.name for t in await store.keys.list_tenants()] == ["acme", "other"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/admin/keys", {"name": "x", "scopes": ["chat"]}),
        ("GET", "/v1/admin/keys", None),
        ("GET", "/v1/admin/keys/aaaaaaaaaaaa", None),
        ("DELETE", "/v1/admin/keys/aaaaaaaaaaaa", None),
        ("POST", "/v1/admin/tenants", {"name": "acme"}),
        ("GET", "/v1/admin/tenants", None),
        ("GET", "/v1/admin/tenants/acme", None),
        ("DELETE", "/v1/admin/tenants/acme", None),
        ("POST", "/v1/admin/keys", {"invalid": True}),  # refused before the body is read
    ],
)
async def test_every_route_needs_the_admin_scope(
    client: httpx.AsyncClient, store: SQLiteStore, method: str, path: str, body: Any
) -> None:
    resp = await client.request(method, path, json=body, headers=as_("acme-chat"))
    denied(resp)
    assert "admin" in resp.json()["error"]["message"]
    assert await store.keys.list_keys() == [] and await store.keys.list_tenants() == []


async def test_no_principal_is_refused(client: httpx.AsyncClient) -> None:
    # A request that never passed the auth layer is denied, never treated as open mode.
    resp = await client.post("/v1/admin/keys", json={"name": "x", "tenant": "any"})
    assert resp.status_code == 401
