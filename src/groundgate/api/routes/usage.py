"""GET /v1/usage: requests, tokens and spend per model and key, for the caller's own scope,
with the cost ledger's breakdown (observe/ledger.py): spend per day, key, app, model and tier,
cache hits and what they saved, and what routing saved against the top tier.

A plain key sees only its own usage; a tenant admin sees its tenant (optionally one key);
the bootstrap admin may name any tenant.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Request

from groundgate.api.gate import principal_of
from groundgate.container import Container
from groundgate.errors import InvalidRequest
from groundgate.gateway.principal import PermissionDenied
from groundgate.observe.ledger import breakdown, daily_ledger, grouped, totals

router = APIRouter(tags=["gateway"])
# The fields of one ``data`` row, per model and key (as before the ledger).
_USAGE_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "cost_usd", "errors")


def _day(value: str | None, default: date, name: str) -> date:
    if value is None:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be a date like 2026-11-01.", param=name) from None


@router.get("/v1/usage")
async def usage(
    request: Request,
    start_date: str | None = None,
    end_date: str | None = None,
    tenant: str | None = None,
    key_id: str | None = None,
) -> dict[str, Any]:
    principal = principal_of(request)
    today = datetime.now(UTC).date()
    start = _day(start_date, today.replace(day=1), "start_date")
    end = _day(end_date, today, "end_date")
    if end < start:
        raise InvalidRequest("'end_date' is before 'start_date'.", param="end_date")
    scope_tenant = principal.tenant
    if tenant is not None and tenant != principal.tenant:
        if not ("admin" in principal.scopes and principal.key_id is None):
            raise PermissionDenied("Only the bootstrap admin may read another tenant's usage.")
        scope_tenant = tenant
    if "admin" not in principal.scopes:
        if key_id is not None and key_id != principal.key_id:
            raise PermissionDenied("A key may only read its own usage.")
        key_id = principal.key_id
    since = datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()
    # End of the end day, in seconds: a datetime one day after 9999-12-31 would overflow.
    until = datetime(end.year, end.month, end.day, tzinfo=UTC).timestamp() + 86400
    runtime: Container = request.app.state.runtime
    # One read of the ledger gives every figure, so the totals and the breakdown agree.
    ledger = await runtime.store.ledger.rows(scope_tenant, since, until, key_id)
    per_model_key = [
        {"model": model, "key_id": key, **{k: total.as_dict()[k] for k in _USAGE_FIELDS}}
        for (model, key), total in grouped(ledger, ("model", "key_id"))
    ]
    return {
        "object": "usage",
        "tenant": scope_tenant,
        "key_id": key_id,
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "data": per_model_key,
        "totals": totals(ledger).as_dict(),
        "breakdown": breakdown(ledger, ("day", "key_id", "app", "model", "tier")),
        "ledger": daily_ledger(ledger),
    }
