"""One conformance suite for every KeyStore backend."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from groundgate.gateway.keys import generate_key, parse_key, verify
from groundgate.store.base import Store
from groundgate.store.keys import ApiKeyRecord, TenantHasKeys, TenantRecord


def key(
    tenant: str = "acme", name: str = "ci", created_at: float = 1000.0, **kw: object
) -> ApiKeyRecord:
    _, key_id, secret_hash = generate_key()
    fields: dict[str, object] = {
        "id": key_id,
        "tenant": tenant,
        "name": name,
        "secret_hash": secret_hash,
        "scopes": ["chat", "embeddings"],
        "models": None,
        "created_at": created_at,
        **kw,
    }
    return ApiKeyRecord(**fields)  # type: ignore[arg-type]


async def test_create_and_get_round_trips_every_field(store: Store) -> None:
    full, key_id, secret_hash = generate_key()
    record = ApiKeyRecord(
        id=key_id,
        tenant="acme",
        name="billing-service",
        secret_hash=secret_hash,
        scopes=["admin", "chat"],
        models=["gpt-4o", "support-bot"],
        created_at=1_700_000_000.25,
        expires_at=1_800_000_000.5,
        requests_per_minute=60,
        tokens_per_minute=100_000,
        concurrent=4,
        daily_budget_usd=2.5,
        monthly_budget_usd=50.0,
        max_tokens=4096,
        tools=["calc", "files__read", "mcp:search"],
    )
    await store.keys.create_key(record)
    assert await store.keys.get_key(key_id) == record
    parsed = parse_key(full)
    assert parsed is not None
    stored = await store.keys.get_key(parsed[0])
    assert stored is not None and verify(parsed[1], stored.secret_hash)
    assert await store.keys.get_key("zzzzzzzzzzzz") is None


async def test_nullable_fields_stay_null(store: Store) -> None:
    record = key(models=None)
    await store.keys.create_key(record)
    got = await store.keys.get_key(record.id)
    assert got == record
    assert got is not None and got.models is None and got.max_tokens is None
    assert got.expires_at is None and got.revoked_at is None
    empty = key(models=[])  # no model at all is not the same as every model
    await store.keys.create_key(empty)
    got = await store.keys.get_key(empty.id)
    assert got is not None and got.models == []
    no_tools = key(tools=[])  # no tool at all is not the same as every tool
    await store.keys.create_key(no_tools)
    got = await store.keys.get_key(no_tools.id)
    assert got is not None and got.tools == [] and record.tools is None


async def test_creating_a_key_creates_its_tenant_with_no_limits(store: Store) -> None:
    assert await store.keys.get_tenant("acme") is None
    await store.keys.create_key(key("acme", created_at=123.0))
    tenant = await store.keys.get_tenant("acme")
    assert tenant == TenantRecord(name="acme", created_at=123.0)
    # A second key leaves the tenant (and its limits) alone.
    await store.keys.upsert_tenant(TenantRecord("acme", 999.0, requests_per_minute=5))
    await store.keys.create_key(key("acme", created_at=456.0))
    again = await store.keys.get_tenant("acme")
    assert again == TenantRecord("acme", 123.0, requests_per_minute=5)


async def test_list_keys_newest_first_and_per_tenant(store: Store) -> None:
    a1 = key("a", "first", created_at=1.0)
    b1 = key("b", "other", created_at=2.0)
    a2 = key("a", "second", created_at=3.0)
    for record in (a1, b1, a2):
        await store.keys.create_key(record)
    assert [k.id for k in await store.keys.list_keys("a")] == [a2.id, a1.id]
    assert [k.id for k in await store.keys.list_keys("b")] == [b1.id]
    assert [k.id for k in await store.keys.list_keys()] == [a2.id, b1.id, a1.id]
    assert await store.keys.list_keys("nobody") == []


async def test_revoke_is_tenant_scoped_and_idempotent(store: Store) -> None:
    record = key("acme")
    await store.keys.create_key(record)
    assert await store.keys.revoke_key(record.id, "other") is False
    got = await store.keys.get_key(record.id)
    assert got is not None and got.revoked_at is None
    before = time.time()
    assert await store.keys.revoke_key(record.id, "acme") is True
    got = await store.keys.get_key(record.id)
    assert got is not None and got.revoked_at is not None and got.revoked_at >= before
    assert got.status(time.time()) == "revoked"
    first = got.revoked_at
    await asyncio.sleep(0.01)
    assert await store.keys.revoke_key(record.id) is True  # untargeted: the bootstrap admin
    got = await store.keys.get_key(record.id)
    assert got is not None and got.revoked_at == first
    assert await store.keys.revoke_key("zzzzzzzzzzzz") is False
    # Revoked keys are still listed (and still name their tenant).
    assert [k.id for k in await store.keys.list_keys("acme")] == [record.id]


def test_status() -> None:
    now = time.time()
    assert key().status(now) == "active"
    assert key(expires_at=now + 60).status(now) == "active"
    assert key(expires_at=now).status(now) == "expired"
    assert key(expires_at=now + 60, revoked_at=now - 1).status(now) == "revoked"


async def test_tenant_upsert_keeps_created_at_and_replaces_limits(store: Store) -> None:
    first = await store.keys.upsert_tenant(
        TenantRecord("acme", 10.0, 60, 1000, 2, daily_budget_usd=1.5, monthly_budget_usd=20.0)
    )
    assert first == TenantRecord("acme", 10.0, 60, 1000, 2, 1.5, 20.0)
    second = await store.keys.upsert_tenant(TenantRecord("acme", 99.0, requests_per_minute=5))
    assert second == TenantRecord("acme", 10.0, requests_per_minute=5)
    assert await store.keys.get_tenant("acme") == second


async def test_tenant_tools_round_trip_and_are_replaced(store: Store) -> None:
    limited = await store.keys.upsert_tenant(
        TenantRecord("acme", 1.0, tools=["calc", "files__read", "mcp:search"])
    )
    assert limited.tools == ["calc", "files__read", "mcp:search"]
    assert await store.keys.get_tenant("acme") == limited
    none = await store.keys.upsert_tenant(TenantRecord("acme", 2.0, tools=[]))
    assert none.tools == []  # no tool at all is not the same as every tool
    every = await store.keys.upsert_tenant(TenantRecord("acme", 3.0))
    assert every.tools is None
    await store.keys.upsert_tenant(TenantRecord("other", 1.0, tools=["calc"]))
    listed = {t.name: t.tools for t in await store.keys.list_tenants()}
    assert listed == {"acme": None, "other": ["calc"]}


async def test_list_tenants_by_name(store: Store) -> None:
    for name in ("b", "A", "a", "c-1"):
        await store.keys.upsert_tenant(TenantRecord(name, 1.0))
    assert [t.name for t in await store.keys.list_tenants()] == ["A", "a", "b", "c-1"]


async def test_delete_tenant_only_without_active_keys(store: Store) -> None:
    record = key("acme")
    await store.keys.create_key(record)
    with pytest.raises(TenantHasKeys) as info:
        await store.keys.delete_tenant("acme")
    assert info.value.status_code == 409 and "revoke" in info.value.message
    assert await store.keys.get_tenant("acme") is not None
    assert await store.keys.get_key(record.id) is not None
    await store.keys.revoke_key(record.id)
    assert await store.keys.delete_tenant("acme") is True
    assert await store.keys.get_tenant("acme") is None
    assert await store.keys.get_key(record.id) is None  # revoked keys go with the tenant
    assert await store.keys.delete_tenant("acme") is False
    # The name can be used again, from scratch.
    await store.keys.create_key(key("acme", created_at=5.0))
    assert await store.keys.get_tenant("acme") == TenantRecord("acme", 5.0)


async def test_delete_tenant_leaves_other_tenants_alone(store: Store) -> None:
    kept = key("kept")
    gone = key("gone")
    await store.keys.create_key(kept)
    await store.keys.create_key(gone)
    await store.keys.revoke_key(gone.id)
    assert await store.keys.delete_tenant("gone") is True
    assert await store.keys.get_key(kept.id) == kept
    assert [t.name for t in await store.keys.list_tenants()] == ["kept"]


async def test_hostile_strings_are_data(store: Store) -> None:
    hostile = "x'; DROP TABLE api_keys; --"
    assert await store.keys.get_key(hostile) is None
    assert await store.keys.list_keys(hostile) == []
    assert await store.keys.revoke_key(hostile, hostile) is False
    assert await store.keys.get_tenant(hostile) is None
    assert await store.keys.delete_tenant(hostile) is False
    record = key(tenant="t'\"; --", name="n'); DELETE FROM tenants; --")
    await store.keys.create_key(record)
    assert await store.keys.get_key(record.id) == record
    assert [t.name for t in await store.keys.list_tenants()] == [record.tenant]


async def test_concurrent_key_creation_in_one_new_tenant(store: Store) -> None:
    records = [key("fresh", f"k{i}", created_at=float(i)) for i in range(20)]
    await asyncio.gather(*(store.keys.create_key(r) for r in records))
    listed = await store.keys.list_keys("fresh")
    assert [k.id for k in listed] == [r.id for r in reversed(records)]
    assert [t.name for t in await store.keys.list_tenants()] == ["fresh"]


async def test_delete_tenant_racing_key_creation_never_fails_a_creation(store: Store) -> None:
    for round_ in range(8):
        await store.keys.upsert_tenant(TenantRecord("race", 1.0))
        for old in await store.keys.list_keys("race"):
            await store.keys.revoke_key(old.id)
        creations = [store.keys.create_key(key("race", f"r{round_}-{i}")) for i in range(3)]
        creations.insert(round_ % 4, store.keys.delete_tenant("race"))  # type: ignore[arg-type]
        results = await asyncio.gather(*creations, return_exceptions=True)
        for result in results:
            assert result is None or isinstance(result, (bool, TenantHasKeys)), result
        # Every creation landed, and a key's tenant always exists.
        active = [k for k in await store.keys.list_keys("race") if k.revoked_at is None]
        assert len(active) == 3
        assert await store.keys.get_tenant("race") is not None


async def test_duplicate_key_id_is_refused(store: Store) -> None:
    record = key()
    await store.keys.create_key(record)
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own integrity error
        await store.keys.create_key(dataclasses.replace(record, name="impostor"))
    got = await store.keys.get_key(record.id)
    assert got is not None and got.name == "ci"
