"""The admin API through a real gateway process, in open mode with the admin routes opened
(the caller is the bootstrap admin). What a tenant admin may not do is held in
tests/api/test_admin_grants.py."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from groundgate.gateway.keys import parse_key, verify
from tests.servers import GatewayProcess, start_gateway

CONFIG = """
[auth]
mode = "open"
open_admin = true

[store]
path = "{workdir}/groundgate.db"
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("admin")
    process = start_gateway(CONFIG.format(workdir=workdir), workdir)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def api(gw: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        yield client


def db_rows(gw: GatewayProcess, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(gw.config_path.parent / "groundgate.db") as db:
        return db.execute(query, params).fetchall()


def create(api: httpx.Client, **body: Any) -> dict[str, Any]:
    resp = api.post("/v1/admin/keys", json={"name": "k", **body})
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def test_create_returns_the_key_once_and_stores_only_its_hash(
    api: httpx.Client, gw: GatewayProcess
) -> None:
    created = create(api, name="ci-bot")
    parsed = parse_key(created["key"])
    assert parsed is not None and parsed[0] == created["id"]
    assert created["tenant"] == "default" and created["status"] == "active"
    assert created["scopes"] == ["chat", "embeddings"] and created["models"] is None
    assert "secret_hash" not in created
    [(secret_hash,)] = db_rows(gw, "SELECT secret_hash FROM api_keys WHERE id = ?", parsed[0])
    assert verify(parsed[1], secret_hash)
    for db_file in gw.config_path.parent.glob("groundgate.db*"):  # the WAL too
        assert parsed[1].encode() not in db_file.read_bytes()
    # Neither the secret nor its hash is ever shown again.
    for path in ("/v1/admin/keys", f"/v1/admin/keys/{created['id']}", "/v1/admin/tenants"):
        text = api.get(path).text
        assert created["id"] in text or path == "/v1/admin/tenants"
        assert parsed[1] not in text and secret_hash not in text and "secret_hash" not in text
    assert parsed[1] not in gw.log_text() and created["key"] not in gw.log_text()


def test_create_with_every_field_creates_the_tenant(api: httpx.Client) -> None:
    before = time.time()
    created = create(
        api,
        tenant="acme-1",
        name="billing.service_2",
        scopes=["ingest", "chat", "chat"],
        models=["gpt-fake", "handbook"],
        expires_in_s=3600,
        requests_per_minute=60,
        tokens_per_minute=10_000,
        concurrent=3,
        daily_budget_usd=1.5,
        monthly_budget_usd=20,
        max_tokens=512,
    )
    assert created["tenant"] == "acme-1" and created["name"] == "billing.service_2"
    assert created["scopes"] == ["chat", "ingest"] and created["models"] == ["gpt-fake", "handbook"]
    assert created["expires_at"] == pytest.approx(created["created_at"] + 3600)
    assert created["created_at"] >= before - 1
    limits = {k: created[k] for k in ("requests_per_minute", "tokens_per_minute", "concurrent")}
    assert limits == {"requests_per_minute": 60, "tokens_per_minute": 10_000, "concurrent": 3}
    assert (created["daily_budget_usd"], created["monthly_budget_usd"]) == (1.5, 20.0)
    assert created["max_tokens"] == 512
    tenant = api.get("/v1/admin/tenants/acme-1").json()
    assert tenant["name"] == "acme-1" and tenant["requests_per_minute"] is None
    assert tenant["daily_budget_usd"] is None
    got = api.get(f"/v1/admin/keys/{created['id']}").json()
    assert got == {k: v for k, v in created.items() if k != "key"}

    expiring = create(api, tenant="acme-1", expires_at=time.time() + 60)
    assert expiring["expires_at"] > time.time()


def test_list_keys_newest_first_and_by_tenant(api: httpx.Client) -> None:
    first = create(api, tenant="lister", name="one")
    second = create(api, tenant="lister", name="two")
    other = create(api, tenant="lister-other", name="three")
    listed = api.get("/v1/admin/keys", params={"tenant": "lister"}).json()
    assert listed["object"] == "list"
    assert [k["id"] for k in listed["data"]] == [second["id"], first["id"]]
    everything = [k["id"] for k in api.get("/v1/admin/keys").json()["data"]]
    assert {first["id"], second["id"], other["id"]} <= set(everything)
    assert everything.index(other["id"]) < everything.index(first["id"])
    assert api.get("/v1/admin/keys", params={"tenant": "nobody"}).json()["data"] == []
    assert_error(api.get("/v1/admin/keys", params={"tenant": "bad name"}), 400)


def test_revoke(api: httpx.Client, gw: GatewayProcess) -> None:
    created = create(api, tenant="revoker")
    resp = api.delete(f"/v1/admin/keys/{created['id']}")
    assert resp.status_code == 200
    assert resp.json() == {"object": "api_key.revoked", "id": created["id"], "revoked": True}
    got = api.get(f"/v1/admin/keys/{created['id']}").json()
    assert got["status"] == "revoked" and got["revoked_at"] >= got["created_at"]
    [(revoked_at,)] = db_rows(gw, "SELECT revoked_at FROM api_keys WHERE id = ?", created["id"])
    assert revoked_at == got["revoked_at"]
    # Revoking again is harmless and keeps the first time.
    assert api.delete(f"/v1/admin/keys/{created['id']}").status_code == 200
    assert api.get(f"/v1/admin/keys/{created['id']}").json()["revoked_at"] == revoked_at
    assert (
        assert_error(api.delete("/v1/admin/keys/zzzzzzzzzzzz"), 404, "not_found")["param"]
        == "key_id"
    )


@pytest.mark.parametrize(
    "key_id", ["zzzzzzzzzzzz", "' OR '1'='1", "x" * 5000, "ABCDEFGHIJKL", "%00", "é" * 12]
)
def test_unknown_or_malformed_key_ids_are_404(api: httpx.Client, key_id: str) -> None:
    for resp in (api.get(f"/v1/admin/keys/{key_id}"), api.delete(f"/v1/admin/keys/{key_id}")):
        error = assert_error(resp, 404, "not_found")
        assert error["message"].startswith("No API key with id") and error["param"] == "key_id"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "k", "extra": 1}, "extra"),
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": "-leading"}, "name"),
        ({"name": "k\n"}, "name"),
        ({"name": "k", "tenant": "t'; DROP TABLE api_keys; --"}, "tenant"),
        ({"name": "k", "tenant": "ténant"}, "tenant"),
        ({"name": "k", "scopes": ["superuser"]}, "scopes.0"),
        ({"name": "k", "scopes": []}, "scopes"),
        ({"name": "k", "scopes": "admin"}, "scopes"),
        ({"name": "k", "models": [""]}, "models.0"),
        ({"name": "k", "requests_per_minute": 0}, "requests_per_minute"),
        ({"name": "k", "requests_per_minute": "5"}, "requests_per_minute"),
        ({"name": "k", "requests_per_minute": True}, "requests_per_minute"),
        ({"name": "k", "requests_per_minute": 1.5}, "requests_per_minute"),
        ({"name": "k", "tokens_per_minute": 10**12}, "tokens_per_minute"),
        ({"name": "k", "concurrent": -1}, "concurrent"),
        ({"name": "k", "daily_budget_usd": -0.01}, "daily_budget_usd"),
        ({"name": "k", "monthly_budget_usd": "10"}, "monthly_budget_usd"),
        ({"name": "k", "max_tokens": 0}, "max_tokens"),
        ({"name": "k", "expires_in_s": 0}, "expires_in_s"),
        ({"name": "k", "expires_at": 1.0}, "expires_at"),
        ({"name": "k", "expires_in_s": 60, "expires_at": 2e9}, None),
        ({"name": "k", "secret_hash": "00"}, "secret_hash"),
        ({"name": "k", "id": "aaaaaaaaaaaa"}, "id"),
    ],
)
def test_create_rejects_invalid_bodies(
    api: httpx.Client, body: dict[str, Any], param: str | None
) -> None:
    before = len(api.get("/v1/admin/keys").json()["data"])
    error = assert_error(api.post("/v1/admin/keys", json=body), 400)
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param, error
    assert len(api.get("/v1/admin/keys").json()["data"]) == before


def test_create_rejects_bodies_that_are_not_json_objects(api: httpx.Client) -> None:
    as_json = {"content-type": "application/json"}
    assert_error(api.post("/v1/admin/keys", content=b""), 400)
    assert_error(api.post("/v1/admin/keys", content=b"", headers=as_json), 400)
    assert_error(
        api.post("/v1/admin/keys", content=b"{not json", headers=as_json), 400, "invalid_json"
    )
    assert_error(api.post("/v1/admin/keys", json=["name"]), 400, "invalid_json")


def test_tenants_lifecycle(api: httpx.Client) -> None:
    resp = api.post(
        "/v1/admin/tenants",
        json={"name": "tenant-x", "requests_per_minute": 100, "daily_budget_usd": 5},
    )
    assert resp.status_code == 200, resp.text
    first = resp.json()
    assert first["object"] == "tenant" and first["requests_per_minute"] == 100
    assert first["daily_budget_usd"] == 5.0 and first["tokens_per_minute"] is None
    # Upsert replaces the limits and keeps created_at.
    again = api.post("/v1/admin/tenants", json={"name": "tenant-x", "concurrent": 2}).json()
    assert again["created_at"] == first["created_at"]
    assert again["concurrent"] == 2 and again["requests_per_minute"] is None
    assert api.get("/v1/admin/tenants/tenant-x").json() == again
    names = [t["name"] for t in api.get("/v1/admin/tenants").json()["data"]]
    assert "tenant-x" in names and names == sorted(names)

    key = create(api, tenant="tenant-x")
    assert_error(api.delete("/v1/admin/tenants/tenant-x"), 409, "tenant_has_keys")
    assert api.get(f"/v1/admin/keys/{key['id']}").json()["status"] == "active"
    api.delete(f"/v1/admin/keys/{key['id']}")
    resp = api.delete("/v1/admin/tenants/tenant-x")
    assert resp.status_code == 200
    assert resp.json() == {"object": "tenant.deleted", "name": "tenant-x", "deleted": True}
    assert_error(api.get("/v1/admin/tenants/tenant-x"), 404, "not_found")
    assert_error(api.delete("/v1/admin/tenants/tenant-x"), 404, "not_found")
    assert_error(api.get(f"/v1/admin/keys/{key['id']}"), 404)  # revoked keys went with it


def test_tenant_validation(api: httpx.Client) -> None:
    assert_error(api.post("/v1/admin/tenants", json={"name": "bad name"}), 400)
    assert_error(api.post("/v1/admin/tenants", json={"name": "t", "rpm": 1}), 400)
    assert_error(api.post("/v1/admin/tenants", json={"name": "t", "concurrent": 0}), 400)
    assert_error(api.post("/v1/admin/tenants", json={"name": "t", "daily_budget_usd": -1}), 400)
    assert_error(api.get("/v1/admin/tenants/bad%20name"), 400)
    assert_error(api.delete("/v1/admin/tenants/" + "x" * 65), 400)
    assert assert_error(api.get("/v1/admin/tenants/nobody"), 404, "not_found")["param"] == "name"


def test_keys_and_tenants_survive_a_restart(gw: GatewayProcess, tmp_path: Path) -> None:
    with httpx.Client(base_url=gw.url, timeout=10) as api:
        created = create(api, tenant="durable")
    # A second gateway on the same store sees them.
    second = start_gateway(gw.config_path.read_text(), tmp_path)
    try:
        got = httpx.get(f"{second.url}/v1/admin/keys/{created['id']}", timeout=10)
        assert got.status_code == 200 and got.json()["tenant"] == "durable"
    finally:
        second.stop()


@pytest.mark.parametrize(
    ("path", "allow"), [("/v1/admin/keys", "GET, POST"), ("/v1/admin/keys/abc", "GET, DELETE")]
)
def test_405_allow_lists_every_method_of_the_path(api: httpx.Client, path: str, allow: str) -> None:
    # Found by schemathesis: Allow named only the methods of the first route for the path.
    # (The other paths are in tests/e2e/test_errors.py, on a gateway whose admin is closed.)
    resp = api.request("PATCH", path)
    assert_error(resp, 405)
    assert resp.headers["allow"] == allow
