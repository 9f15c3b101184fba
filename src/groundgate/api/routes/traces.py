"""GET /v1/traces/{id}: one request's trace."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from groundgate.errors import NotFound

router = APIRouter(tags=["observability"])


@router.get("/v1/traces/{trace_id}")
async def get_trace(trace_id: str, request: Request) -> dict[str, Any]:
    tenant = getattr(request.state, "tenant", "default")
    trace = None
    if len(trace_id) <= 64:
        trace = await request.app.state.runtime.get_trace(tenant, trace_id)
    if trace is None:
        raise NotFound(f"No trace with id '{trace_id[:64]}'.", param="trace_id")
    result: dict[str, Any] = trace
    return result
