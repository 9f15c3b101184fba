"""Authentication as a gateway service: a credential string in, a principal or a typed
refusal out, with no HTTP in between (api/auth.py only reads headers and writes answers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from groundgate.config import Settings, load_settings
from groundgate.errors import AuthenticationFailed
from groundgate.gateway.auth import Authenticator
from groundgate.gateway.keys import generate_key
from groundgate.gateway.principal import Budgets, Limits, PermissionDenied
from groundgate.store import Store, open_store
from groundgate.store.keys import ApiKeyRecord, TenantRecord


def settings(tmp_path: Path, mode: str, key_cache_s: float | None = None) -> Settings:
    config = tmp_path / "g.toml"
    cache = "" if key_cache_s is None else f"key_cache_s = {key_cache_s}\n"
    config.write_text(
        f'[store]\npath = "{tmp_path / "keys.db"}"\n\n[auth]\nmode = "{mode}"\n{cache}'
    )
    return load_settings(config)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(settings(tmp_path, "required").store)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def create_key(store: Store, *, revoked: bool = False) -> str:
    full, key_id, secret_hash = generate_key()
    await store.keys.create_key(
        ApiKeyRecord(
            id=key_id,
            tenant="acme",
            name="test",
            secret_hash=secret_hash,
            scopes=["chat"],
            models=["m1"],
            created_at=time.time(),
            revoked_at=time.time() if revoked else None,
            requests_per_minute=7,
            daily_budget_usd=1.5,
        )
    )
    return full


async def test_a_valid_key_becomes_its_principal_with_key_and_tenant_limits(
    store: Store, tmp_path: Path
) -> None:
    await store.keys.upsert_tenant(TenantRecord("acme", time.time(), concurrent=3))
    auth = Authenticator(settings(tmp_path, "required"), store)
    key = await create_key(store)
    principal = await auth.authenticate(key)
    assert principal.tenant == "acme"
    assert principal.key_id == key.split("_")[1]
    assert principal.scopes == frozenset({"chat"}) and principal.models == frozenset({"m1"})
    assert principal.key_limits == Limits(requests_per_minute=7)
    assert principal.key_budgets == Budgets(daily_usd=1.5)
    assert principal.tenant_limits == Limits(concurrent=3)
    auth.authorize(principal, "chat")
    with pytest.raises(PermissionDenied, match="lacks the 'admin' scope"):
        auth.authorize(principal, "admin")


async def test_missing_malformed_and_revoked_keys_are_refused(store: Store, tmp_path: Path) -> None:
    auth = Authenticator(settings(tmp_path, "required"), store)
    revoked = await create_key(store, revoked=True)
    with pytest.raises(AuthenticationFailed, match="Missing API key"):
        await auth.authenticate(None)
    for credential in ("", "gg_not-a-key", revoked):
        with pytest.raises(AuthenticationFailed, match="Invalid API key"):
            await auth.authenticate(credential)
    assert await auth.identify(revoked) is None


async def test_open_mode_serves_the_local_caller_but_not_the_admin_routes(
    store: Store, tmp_path: Path
) -> None:
    auth = Authenticator(settings(tmp_path, "open"), store)
    await auth.decide_mode()
    principal = await auth.authenticate(None)
    assert principal is auth.open_principal and principal.tenant == "default"
    auth.authorize(principal, "chat")
    with pytest.raises(PermissionDenied, match="closed while the gateway runs without API keys"):
        auth.authorize(principal, "admin")


class CountingKeys:
    """The store's real key table, counting the key reads that reach it."""

    def __init__(self, store: Store) -> None:
        self.inner = store.keys
        self.reads = 0

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        self.reads += 1
        return await self.inner.get_key(key_id)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_a_verified_key_is_not_read_from_the_store_on_every_request(
    store: Store, tmp_path: Path
) -> None:
    counting = CountingKeys(store)
    store.keys = counting  # type: ignore[misc]
    auth = Authenticator(settings(tmp_path, "required"), store)  # key_cache_s: 1 s
    key = await create_key(store)
    # Concurrent first requests share one read; later ones find the key cached.
    first = await asyncio.gather(*(auth.authenticate(key) for _ in range(20)))
    for _ in range(50):
        assert await auth.authenticate(key) is first[0]
    assert counting.reads == 1
    # A wrong secret for a known id is refused without another read.
    key_id = key.split("_")[1]
    _, _, other_hash = generate_key()
    with pytest.raises(AuthenticationFailed, match="Invalid API key"):
        await auth.authenticate(f"gg_{key_id}_{'A' * 43}")
    assert counting.reads == 1 and other_hash


async def test_a_key_revoked_elsewhere_is_refused_within_key_cache_s(
    store: Store, tmp_path: Path
) -> None:
    auth = Authenticator(settings(tmp_path, "required", key_cache_s=0.2), store)
    key = await create_key(store)
    await auth.authenticate(key)
    # Revoked straight in the store, as the CLI or another replica does.
    assert await store.keys.revoke_key(key.split("_")[1])
    await asyncio.sleep(0.25)
    with pytest.raises(AuthenticationFailed, match="Invalid API key"):
        await auth.authenticate(key)


async def test_a_key_revoked_through_this_process_is_refused_at_once(
    store: Store, tmp_path: Path
) -> None:
    auth = Authenticator(settings(tmp_path, "required", key_cache_s=30), store)
    key = await create_key(store)
    key_id = key.split("_")[1]
    await auth.authenticate(key)
    assert await store.keys.revoke_key(key_id)
    auth.forget_key(key_id)  # what the admin API's revoke does
    with pytest.raises(AuthenticationFailed, match="Invalid API key"):
        await auth.authenticate(key)


async def test_with_key_cache_s_0_every_request_reads_the_store(
    store: Store, tmp_path: Path
) -> None:
    auth = Authenticator(settings(tmp_path, "required", key_cache_s=0), store)
    key = await create_key(store)
    await auth.authenticate(key)
    assert await store.keys.revoke_key(key.split("_")[1])
    with pytest.raises(AuthenticationFailed, match="Invalid API key"):
        await auth.authenticate(key)
