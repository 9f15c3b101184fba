"""The rule against privilege escalation through key creation, and tenant scoping."""

from __future__ import annotations

import dataclasses

import pytest

from groundgate.gateway.grants import (
    check_grant,
    principal_for,
    require_bootstrap,
    tenant_scope,
)
from groundgate.gateway.principal import (
    OPEN_MODE,
    SCOPES,
    Budgets,
    Limits,
    PermissionDenied,
    Principal,
)
from groundgate.store.keys import ApiKeyRecord, TenantRecord

BOOTSTRAP = Principal(tenant="default", key_id=None, scopes=SCOPES)

# A tenant admin with every ceiling set.
ADMIN = Principal(
    tenant="acme",
    key_id="aaaaaaaaaaaa",
    scopes=frozenset({"chat", "admin"}),
    models=frozenset({"gpt", "bot"}),
    key_limits=Limits(requests_per_minute=100, tokens_per_minute=10_000, concurrent=5),
    key_budgets=Budgets(daily_usd=10.0, monthly_usd=100.0),
    max_tokens=1000,
)

# What ADMIN may grant at most: everything it holds, exactly.
SAME = Principal(
    tenant="acme",
    key_id=None,
    scopes=ADMIN.scopes,
    models=ADMIN.models,
    key_limits=ADMIN.key_limits,
    key_budgets=ADMIN.key_budgets,
    max_tokens=ADMIN.max_tokens,
)


def test_bootstrap_and_open_mode_may_grant_anything() -> None:
    anything = Principal(tenant="other", key_id=None, scopes=SCOPES)
    check_grant(BOOTSTRAP, anything)
    check_grant(OPEN_MODE, anything)
    check_grant(BOOTSTRAP, SAME)


def test_a_tenant_admin_may_grant_what_it_holds_or_less() -> None:
    check_grant(ADMIN, SAME)
    less = Principal(
        tenant="acme",
        key_id=None,
        scopes=frozenset({"chat"}),
        models=frozenset({"gpt"}),
        key_limits=Limits(1, 1, 1),
        key_budgets=Budgets(0.0, 0.0),
        max_tokens=1,
    )
    check_grant(ADMIN, less)


@pytest.mark.parametrize(
    "change",
    [
        {"tenant": "other"},
        {"scopes": frozenset({"chat", "admin", "ingest"})},
        {"scopes": frozenset({"embeddings"})},
        {"models": None},  # all models, from a key limited to two
        {"models": frozenset({"gpt", "flagship"})},
        {"key_limits": Limits(101, 10_000, 5)},
        {"key_limits": Limits(None, 10_000, 5)},
        {"key_limits": Limits(100, 10_001, 5)},
        {"key_limits": Limits(100, None, 5)},
        {"key_limits": Limits(100, 10_000, 6)},
        {"key_limits": Limits(100, 10_000, None)},
        {"key_budgets": Budgets(10.01, 100.0)},
        {"key_budgets": Budgets(None, 100.0)},
        {"key_budgets": Budgets(10.0, 100.5)},
        {"key_budgets": Budgets(10.0, None)},
        {"max_tokens": 1001},
        {"max_tokens": None},
    ],
)
def test_a_tenant_admin_cannot_grant_more_than_it_holds(change: dict[str, object]) -> None:
    with pytest.raises(PermissionDenied):
        check_grant(ADMIN, dataclasses.replace(SAME, **change))  # type: ignore[arg-type]


def test_an_unlimited_tenant_admin_may_grant_any_limits_in_its_tenant() -> None:
    unlimited = Principal(tenant="acme", key_id="bbbbbbbbbbbb", scopes=SCOPES)
    check_grant(unlimited, Principal(tenant="acme", key_id=None, scopes=SCOPES))
    with pytest.raises(PermissionDenied):
        check_grant(unlimited, Principal(tenant="default", key_id=None, scopes=SCOPES))


def test_tenant_limits_are_not_the_creators_to_grant_or_check() -> None:
    # Tenant limits bind every key of the tenant anyway; only key ceilings are compared.
    creator = dataclasses.replace(ADMIN, tenant_limits=Limits(1, 1, 1))
    check_grant(creator, dataclasses.replace(SAME, tenant_limits=Limits(9, 9, 9)))


def test_tenant_scope() -> None:
    assert tenant_scope(BOOTSTRAP, None) is None
    assert tenant_scope(BOOTSTRAP, "acme") == "acme"
    assert tenant_scope(OPEN_MODE, "x") == "x"
    assert tenant_scope(ADMIN, None) == "acme"
    assert tenant_scope(ADMIN, "acme") == "acme"
    with pytest.raises(PermissionDenied):
        tenant_scope(ADMIN, "default")


def test_only_the_bootstrap_admin_manages_tenants() -> None:
    require_bootstrap(BOOTSTRAP)
    require_bootstrap(OPEN_MODE)
    with pytest.raises(PermissionDenied):
        require_bootstrap(ADMIN)


def test_principal_for_a_stored_key() -> None:
    key = ApiKeyRecord(
        id="cccccccccccc",
        tenant="acme",
        name="ci",
        secret_hash="00" * 32,
        scopes=["chat", "ingest"],
        models=["gpt"],
        created_at=1.0,
        requests_per_minute=1,
        tokens_per_minute=2,
        concurrent=3,
        daily_budget_usd=4.0,
        monthly_budget_usd=5.0,
        max_tokens=6,
    )
    tenant = TenantRecord("acme", 1.0, 10, 20, 30, 40.0, 50.0)
    p = principal_for(key, tenant)
    assert (p.tenant, p.key_id, p.scopes) == ("acme", "cccccccccccc", frozenset({"chat", "ingest"}))
    assert p.models == frozenset({"gpt"}) and p.max_tokens == 6
    assert p.key_limits == Limits(1, 2, 3) and p.key_budgets == Budgets(4.0, 5.0)
    assert p.tenant_limits == Limits(10, 20, 30) and p.tenant_budgets == Budgets(40.0, 50.0)
    bare = principal_for(dataclasses.replace(key, models=None), None)
    assert bare.models is None
    assert bare.tenant_limits == Limits() and bare.tenant_budgets == Budgets()
    with pytest.raises(PermissionDenied):
        bare.require("admin")
