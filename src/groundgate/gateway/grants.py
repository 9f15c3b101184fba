"""What an admin may grant, and what a stored key stands for.

The rule against privilege escalation through key creation (a known CVE class in gateways):
a key may only hand out what it holds. The bootstrap admin (``key_id`` None: the configured
admin key, or open mode) may do anything. Any other admin key may only

- create keys for its own tenant,
- with scopes it holds itself,
- restricted to models it may call itself (when it is restricted at all),
- restricted to agent tools it may call itself (likewise; ``mcp:SERVER`` covers the server's
  ``SERVER__TOOL`` names; what a key may call is its own tools within its tenant's),
- and with limits, budgets and a ``max_tokens`` cap no looser than its own: where the creator
  has a ceiling, the new key needs one too, at most as high.

Whoever creates it, a key names no tool its tenant may not use, and it never outlives its
maker: an expiring key's keys expire no later than it does (a later or missing expiry is
clamped, see :func:`expiry_within`).

It may read and revoke only its own tenant's keys, read only its own tenant, and never change
or delete tenants (their limits bind it).
"""

from __future__ import annotations

from groundgate.config_tools import tool_permitted
from groundgate.gateway.principal import Budgets, Limits, PermissionDenied, Principal
from groundgate.store.keys import ApiKeyRecord, TenantRecord


def is_bootstrap(principal: Principal) -> bool:
    return principal.key_id is None


def require_bootstrap(principal: Principal) -> None:
    if not is_bootstrap(principal):
        raise PermissionDenied("Only the bootstrap admin key may change or delete tenants.")


def tenant_scope(principal: Principal, requested: str | None) -> str | None:
    """The tenant an admin request may act on: the bootstrap admin gets what it asks for (None
    meaning every tenant); any other admin key only its own tenant."""
    if is_bootstrap(principal):
        return requested
    if requested is not None and requested != principal.tenant:
        raise PermissionDenied("This API key may only manage its own tenant.")
    return principal.tenant


def check_grant(creator: Principal, granted: Principal) -> None:
    """Raise PermissionDenied unless ``creator`` may create a key that grants ``granted``
    (its tenant, scopes, models, tools, key limits, key budgets and max_tokens). ``granted``
    carries its tenant's tool permissions (``principal_for`` with the stored tenant)."""
    check_tenant_tools(granted)
    if is_bootstrap(creator):
        return
    if granted.tenant != creator.tenant:
        raise PermissionDenied("This API key may only create keys for its own tenant.")
    extra = granted.scopes - creator.scopes
    if extra:
        raise PermissionDenied(f"Cannot grant scopes this key lacks: {sorted(extra)}.")
    if creator.models is not None and (
        granted.models is None or not granted.models <= creator.models
    ):
        raise PermissionDenied("Cannot grant models this key may not call.")
    # What each may call in the end: its own tools within the tenant's.
    allowed, wanted = creator.allowed_tools, granted.allowed_tools
    if allowed is not None:
        if wanted is None:
            raise PermissionDenied("Cannot grant every tool: this key may call only some.")
        extra_tools = sorted(t for t in wanted if not tool_permitted(t, allowed))
        if extra_tools:
            raise PermissionDenied(f"Cannot grant tools this key may not call: {extra_tools}.")
    have, want = creator, granted
    ceilings = {
        "requests_per_minute": (
            have.key_limits.requests_per_minute,
            want.key_limits.requests_per_minute,
        ),
        "tokens_per_minute": (have.key_limits.tokens_per_minute, want.key_limits.tokens_per_minute),
        "concurrent": (have.key_limits.concurrent, want.key_limits.concurrent),
        "daily_budget_usd": (have.key_budgets.daily_usd, want.key_budgets.daily_usd),
        "monthly_budget_usd": (have.key_budgets.monthly_usd, want.key_budgets.monthly_usd),
        "max_tokens": (have.max_tokens, want.max_tokens),
    }
    for name, (ceiling, value) in ceilings.items():
        if ceiling is not None and (value is None or value > ceiling):
            raise PermissionDenied(f"'{name}' must be set and at most {ceiling} (this key's own).")


def check_tenant_tools(granted: Principal) -> None:
    """Raise PermissionDenied if a key names tools its tenant may not use (whoever creates it:
    they would never be callable; a tenant limited later limits its keys at once, through
    ``Principal.allowed_tools``)."""
    if granted.tools is None or granted.tenant_tools is None:
        return
    extra = sorted(t for t in granted.tools if not tool_permitted(t, granted.tenant_tools))
    if extra:
        raise PermissionDenied(
            f"Cannot grant tools that tenant '{granted.tenant}' may not use: {extra}."
        )


def expiry_within(creator: Principal, requested: float | None) -> float | None:
    """The expiry a key created by ``creator`` gets: ``requested``, but never after the
    creator's own (so a missing one becomes the creator's). The bootstrap admin never
    expires."""
    if creator.expires_at is None:
        return requested
    return creator.expires_at if requested is None else min(requested, creator.expires_at)


def principal_for(key: ApiKeyRecord, tenant: TenantRecord | None) -> Principal:
    """The principal a stored key stands for (``tenant`` None: the tenant has no limits)."""
    t = tenant or TenantRecord(name=key.tenant, created_at=0.0)
    return Principal(
        tenant=key.tenant,
        key_id=key.id,
        scopes=frozenset(key.scopes),
        models=None if key.models is None else frozenset(key.models),
        key_limits=Limits(key.requests_per_minute, key.tokens_per_minute, key.concurrent),
        key_budgets=Budgets(key.daily_budget_usd, key.monthly_budget_usd),
        tenant_limits=Limits(t.requests_per_minute, t.tokens_per_minute, t.concurrent),
        tenant_budgets=Budgets(t.daily_budget_usd, t.monthly_budget_usd),
        max_tokens=key.max_tokens,
        expires_at=key.expires_at,
        tools=None if key.tools is None else frozenset(key.tools),
        tenant_tools=None if t.tools is None else frozenset(t.tools),
    )
