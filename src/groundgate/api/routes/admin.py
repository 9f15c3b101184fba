"""Admin API: API keys and tenants.

Every route first checks that the caller holds the ``admin`` scope; what an admin key that is
not the bootstrap admin may touch (its own tenant, no more than it holds) is decided in
:mod:`groundgate.gateway.grants`. A key's secret is returned once, by the call that creates it;
its hash never leaves the store.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from groundgate.api.body import read_json_object, validate
from groundgate.api.gate import principal_of
from groundgate.errors import InvalidRequest, NotFound
from groundgate.gateway.grants import (
    check_grant,
    expiry_within,
    principal_for,
    require_bootstrap,
    tenant_scope,
)
from groundgate.gateway.keys import generate_key, is_key_id
from groundgate.gateway.principal import SCOPES, Principal
from groundgate.store.keys import ApiKeyRecord, KeyStore, TenantRecord

router = APIRouter(tags=["admin"])

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DEFAULT_SCOPES = ["chat", "embeddings"]
MAX_EXPIRY_S = 10 * 366 * 86400.0
NAME_RULE = "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def _body(model: str) -> dict[str, Any]:
    """OpenAPI for a body parsed by hand (its schema is added in ``api.app``)."""
    ref = {"$ref": f"#/components/schemas/{model}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def _name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError(NAME_RULE)
    return value


def _scope(value: str) -> str:
    if value not in SCOPES:
        raise ValueError(f"must be one of {sorted(SCOPES)}")
    return value


Name = Annotated[str, AfterValidator(_name)]
Scope = Annotated[str, AfterValidator(_scope)]
ModelName = Annotated[str, Field(min_length=1, max_length=200)]
Count = Annotated[int, Field(ge=1, le=1_000_000_000)]
Usd = Annotated[float, Field(ge=0, le=1_000_000_000, allow_inf_nan=False)]


class LimitFields(BaseModel):
    # Strict: JSON true is not the number 1, "5" is not 5.
    model_config = ConfigDict(extra="forbid", strict=True)

    requests_per_minute: Count | None = None
    tokens_per_minute: Count | None = None
    concurrent: Count | None = None
    daily_budget_usd: Usd | None = None
    monthly_budget_usd: Usd | None = None


class CreateKey(LimitFields):
    name: Name
    tenant: Name | None = None  # None: the caller's own tenant
    scopes: list[Scope] = Field(default_factory=lambda: list(DEFAULT_SCOPES), min_length=1)
    models: list[ModelName] | None = Field(None, max_length=1000)  # None: all
    expires_in_s: float | None = Field(None, gt=0, le=MAX_EXPIRY_S, allow_inf_nan=False)
    expires_at: float | None = Field(None, gt=0, allow_inf_nan=False)  # Unix time
    max_tokens: Count | None = None

    @model_validator(mode="after")
    def _one_expiry(self) -> CreateKey:
        if self.expires_in_s is not None and self.expires_at is not None:
            raise ValueError("give expires_in_s or expires_at, not both")
        return self


class TenantBody(LimitFields):
    name: Name


def admin_principal(request: Request) -> Principal:
    """The caller, who must hold the ``admin`` scope. The auth layer puts the principal on the
    request; one that did not pass through it is refused (deny by default)."""
    principal = principal_of(request)
    principal.require("admin")
    return principal


def new_key(
    body: CreateKey, tenant: str, now: float, creator: Principal | None = None
) -> tuple[str, ApiKeyRecord]:
    """A fresh key for ``body``: the full key (to show once) and the record to store. Made by
    ``creator`` (None: the operator's CLI), it expires no later than ``creator`` does."""
    full_key, key_id, secret_hash = generate_key()
    expires_at = body.expires_at
    if body.expires_in_s is not None:
        expires_at = now + body.expires_in_s
    if creator is not None:
        expires_at = expiry_within(creator, expires_at)
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest("'expires_at' is in the past.", param="expires_at")
    record = ApiKeyRecord(
        id=key_id,
        tenant=tenant,
        name=body.name,
        secret_hash=secret_hash,
        scopes=sorted(set(body.scopes)),
        models=None if body.models is None else sorted(set(body.models)),
        created_at=now,
        expires_at=expires_at,
        requests_per_minute=body.requests_per_minute,
        tokens_per_minute=body.tokens_per_minute,
        concurrent=body.concurrent,
        daily_budget_usd=body.daily_budget_usd,
        monthly_budget_usd=body.monthly_budget_usd,
        max_tokens=body.max_tokens,
    )
    return full_key, record


def key_view(key: ApiKeyRecord, now: float) -> dict[str, Any]:
    """A key as the API shows it: everything but its secret and the secret's hash."""
    return {
        "object": "api_key",
        "id": key.id,
        "tenant": key.tenant,
        "name": key.name,
        "status": key.status(now),
        "scopes": key.scopes,
        "models": key.models,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "requests_per_minute": key.requests_per_minute,
        "tokens_per_minute": key.tokens_per_minute,
        "concurrent": key.concurrent,
        "daily_budget_usd": key.daily_budget_usd,
        "monthly_budget_usd": key.monthly_budget_usd,
        "max_tokens": key.max_tokens,
    }


def tenant_view(tenant: TenantRecord) -> dict[str, Any]:
    return {
        "object": "tenant",
        "name": tenant.name,
        "created_at": tenant.created_at,
        "requests_per_minute": tenant.requests_per_minute,
        "tokens_per_minute": tenant.tokens_per_minute,
        "concurrent": tenant.concurrent,
        "daily_budget_usd": tenant.daily_budget_usd,
        "monthly_budget_usd": tenant.monthly_budget_usd,
    }


def tenant_record(body: TenantBody, now: float) -> TenantRecord:
    return TenantRecord(
        name=body.name,
        created_at=now,
        requests_per_minute=body.requests_per_minute,
        tokens_per_minute=body.tokens_per_minute,
        concurrent=body.concurrent,
        daily_budget_usd=body.daily_budget_usd,
        monthly_budget_usd=body.monthly_budget_usd,
    )


def _keys(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.runtime.store.keys
    return keys


def _check_name(value: str, param: str) -> str:
    if not NAME.fullmatch(value):
        raise InvalidRequest(f"'{param}' {NAME_RULE}.", param=param)
    return value


# -- keys ------------------------------------------------------------------------------------


@router.post("/v1/admin/keys", status_code=201, openapi_extra=_body("CreateKey"))
async def create_key(request: Request) -> dict[str, Any]:
    """Create a key; the response holds the full key, which is never shown again."""
    principal = admin_principal(request)
    body = validate(CreateKey, await read_json_object(request))
    now = time.time()
    full_key, record = new_key(body, body.tenant or principal.tenant, now, principal)
    check_grant(principal, principal_for(record, None))
    await _keys(request).create_key(record)
    authenticator = getattr(request.app.state, "authenticator", None)
    if authenticator is not None:
        authenticator.keys_exist()  # in auto mode, keys are required from now on
    return {"key": full_key, **key_view(record, now)}


@router.get("/v1/admin/keys")
async def list_keys(request: Request, tenant: str | None = None) -> dict[str, Any]:
    principal = admin_principal(request)
    if tenant is not None:
        _check_name(tenant, "tenant")
    keys = await _keys(request).list_keys(tenant_scope(principal, tenant))
    now = time.time()
    return {"object": "list", "data": [key_view(k, now) for k in keys]}


@router.get("/v1/admin/keys/{key_id}")
async def get_key(key_id: str, request: Request) -> dict[str, Any]:
    principal = admin_principal(request)
    scope = tenant_scope(principal, None)
    key = await _keys(request).get_key(key_id) if is_key_id(key_id) else None
    if key is None or (scope is not None and key.tenant != scope):
        raise NotFound(f"No API key with id '{key_id[:64]}'.", param="key_id")
    return key_view(key, time.time())


@router.delete("/v1/admin/keys/{key_id}")
async def revoke_key(key_id: str, request: Request) -> dict[str, Any]:
    """Revoke a key: the next request that presents it is refused."""
    principal = admin_principal(request)
    scope = tenant_scope(principal, None)
    if not is_key_id(key_id) or not await _keys(request).revoke_key(key_id, scope):
        raise NotFound(f"No API key with id '{key_id[:64]}'.", param="key_id")
    return {"object": "api_key.revoked", "id": key_id, "revoked": True}


# -- tenants ---------------------------------------------------------------------------------


@router.post("/v1/admin/tenants", openapi_extra=_body("TenantBody"))
async def upsert_tenant(request: Request) -> dict[str, Any]:
    """Create a tenant or replace its limits and budgets (omitted fields: no limit)."""
    principal = admin_principal(request)
    require_bootstrap(principal)
    body = validate(TenantBody, await read_json_object(request))
    stored = await _keys(request).upsert_tenant(tenant_record(body, time.time()))
    authenticator = getattr(request.app.state, "authenticator", None)
    if authenticator is not None:
        authenticator.forget_tenant(stored.name)  # new limits apply at once on this replica
    return tenant_view(stored)


@router.get("/v1/admin/tenants")
async def list_tenants(request: Request) -> dict[str, Any]:
    principal = admin_principal(request)
    scope = tenant_scope(principal, None)
    keys = _keys(request)
    if scope is None:
        tenants = await keys.list_tenants()
    else:
        own = await keys.get_tenant(scope)
        tenants = [own] if own is not None else []
    return {"object": "list", "data": [tenant_view(t) for t in tenants]}


@router.get("/v1/admin/tenants/{name}")
async def get_tenant(name: str, request: Request) -> dict[str, Any]:
    principal = admin_principal(request)
    tenant_scope(principal, _check_name(name, "name"))
    tenant = await _keys(request).get_tenant(name)
    if tenant is None:
        raise NotFound(f"No tenant named '{name}'.", param="name")
    return tenant_view(tenant)


@router.delete(
    "/v1/admin/tenants/{name}", responses={409: {"description": "The tenant has active keys"}}
)
async def delete_tenant(name: str, request: Request) -> dict[str, Any]:
    """Delete a tenant that has no active keys (revoke them first); its revoked keys go too."""
    principal = admin_principal(request)
    require_bootstrap(principal)
    if not await _keys(request).delete_tenant(_check_name(name, "name")):
        raise NotFound(f"No tenant named '{name}'.", param="name")
    return {"object": "tenant.deleted", "name": name, "deleted": True}
