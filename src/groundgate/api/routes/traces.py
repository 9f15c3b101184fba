"""GET /v1/traces/{id}: one request's trace, with the feedback given on it (``feedback``:
every source's, oldest first; see ``feedback.py``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from groundgate.api.routes.feedback import feedback_view
from groundgate.container import Container
from groundgate.errors import NotFound

router = APIRouter(tags=["observability"])


@router.get("/v1/traces/{trace_id}")
async def get_trace(trace_id: str, request: Request) -> dict[str, Any]:
    tenant = getattr(request.state, "tenant", "default")
    runtime: Container = request.app.state.runtime
    trace = None
    if len(trace_id) <= 64:
        trace = await runtime.get_trace(tenant, trace_id)
    if trace is None:
        raise NotFound(f"No trace with id '{trace_id[:64]}'.", param="trace_id")
    given = await runtime.feedback.of_trace(tenant, trace_id)
    return {**trace, "feedback": [feedback_view(record) for record in given]}
