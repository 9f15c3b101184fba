"""DELETE /v1/cache: drop cached answers, for operators (keys with the ``admin`` scope).

A tenant admin clears its own tenant's answers (all, or one app's or model's with ``?app=``);
the bootstrap admin may name any tenant with ``?tenant=``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from groundgate.api.gate import principal_of
from groundgate.container import Container
from groundgate.gateway.grants import tenant_scope

router = APIRouter(tags=["gateway"])


@router.delete("/v1/cache")
async def clear_cache(
    request: Request, app: str | None = None, tenant: str | None = None
) -> dict[str, Any]:
    principal = principal_of(request)
    principal.require("admin")
    scope = tenant_scope(principal, tenant) or principal.tenant
    runtime: Container = request.app.state.runtime
    deleted = await runtime.clear_cache(scope, app)
    return {"object": "cache.cleared", "tenant": scope, "app": app, "deleted": deleted}
