"""Admin API: API keys and tenants.

Every route first checks that the caller holds the ``admin`` scope; what an admin key that is
not the bootstrap admin may touch (its own tenant, no more than it holds) is decided in
:mod:`groundgate.gateway.grants`; what a key or tenant request holds and how it is shown, in
:mod:`groundgate.gateway.key_admin` (shared with ``groundgate keys``). A key's secret is
returned once, by the call that creates it; its hash never leaves the store.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from groundgate.api.body import read_json_object, validate
from groundgate.api.gate import principal_of
from groundgate.errors import NotFound
from groundgate.gateway.grants import (
    check_grant,
    principal_for,
    require_bootstrap,
    tenant_scope,
)
from groundgate.gateway.key_admin import (
    CreateKey,
    TenantBody,
    check_name,
    key_view,
    new_key,
    tenant_record,
    tenant_view,
)
from groundgate.gateway.keys import is_key_id
from groundgate.gateway.principal import Principal
from groundgate.store.keys import KeyStore

router = APIRouter(tags=["admin"])


def _body(model: str) -> dict[str, Any]:
    """OpenAPI for a body parsed by hand (its schema is added in ``api.app``)."""
    ref = {"$ref": f"#/components/schemas/{model}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def admin_principal(request: Request) -> Principal:
    """The caller, who must hold the ``admin`` scope. The auth layer puts the principal on the
    request; one that did not pass through it is refused (deny by default)."""
    principal = principal_of(request)
    principal.require("admin")
    return principal


def _keys(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.runtime.store.keys
    return keys


# -- keys ------------------------------------------------------------------------------------


@router.post("/v1/admin/keys", status_code=201, openapi_extra=_body("CreateKey"))
async def create_key(request: Request) -> dict[str, Any]:
    """Create a key; the response holds the full key, which is never shown again."""
    principal = admin_principal(request)
    body = validate(CreateKey, await read_json_object(request))
    now = time.time()
    full_key, record = new_key(body, body.tenant or principal.tenant, now, principal)
    keys = _keys(request)
    check_grant(principal, principal_for(record, await keys.get_tenant(record.tenant)))
    await keys.create_key(record)
    authenticator = getattr(request.app.state, "authenticator", None)
    if authenticator is not None:
        authenticator.keys_exist()  # in auto mode, keys are required from now on
    return {"key": full_key, **key_view(record, now)}


@router.get("/v1/admin/keys")
async def list_keys(request: Request, tenant: str | None = None) -> dict[str, Any]:
    principal = admin_principal(request)
    if tenant is not None:
        check_name(tenant, "tenant")
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
    authenticator = getattr(request.app.state, "authenticator", None)
    if authenticator is not None:
        authenticator.forget_key(key_id)  # refused on the next request on this replica
    return {"object": "api_key.revoked", "id": key_id, "revoked": True}


# -- tenants ---------------------------------------------------------------------------------


@router.post("/v1/admin/tenants", openapi_extra=_body("TenantBody"))
async def upsert_tenant(request: Request) -> dict[str, Any]:
    """Create a tenant or replace its limits, budgets and tools (omitted fields: no limit)."""
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
    tenant_scope(principal, check_name(name, "name"))
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
    if not await _keys(request).delete_tenant(check_name(name, "name")):
        raise NotFound(f"No tenant named '{name}'.", param="name")
    return {"object": "tenant.deleted", "name": name, "deleted": True}
