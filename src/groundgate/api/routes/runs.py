"""Agent runs over HTTP: ``/v1/runs``.

Listing and deciding need a key with the ``approve`` scope, and see only its own tenant's runs.
The key that started a run may read that one run by id without the scope (to poll it after a
202); any other run is "not found", whether or not it exists. Approving runs the pending calls
(with the reviewer's edited arguments, if any) and the loop on to its next stop within this
request: the answer is the run as it then stands (its final answer, or the next pause).
Rejecting tells the model the calls were refused and lets it go on likewise.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from groundgate.agents.service import Agents
from groundgate.agents.views import run_view
from groundgate.api.body import body_schema, read_json_object, validate
from groundgate.api.gate import principal_of, principal_with
from groundgate.api.pages import list_page
from groundgate.container import Container
from groundgate.errors import InvalidRequest, NotFound
from groundgate.store.runs import ApprovalDecision

router = APIRouter(tags=["runs"])

SCOPE = "approve"
MAX_PAGE = 100


class RunDecisionBody(BaseModel):
    """An approval (optionally with edited arguments per pending call id) or a rejection."""

    model_config = ConfigDict(extra="forbid", strict=True)

    arguments: dict[str, dict[str, Any]] | None = None
    note: str | None = Field(None, max_length=10_000)


_DECIDE_SCHEMA = body_schema(RunDecisionBody, required=False)
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The run is not waiting for approval (decided, expired or ended)"}
}


def _agents(request: Request) -> Agents:
    runtime: Container = request.app.state.runtime
    return runtime.agents


@router.get("/v1/runs")
async def list_runs(
    request: Request,
    status: Literal["running", "pending_approval", "completed", "stopped", "failed", "expired"]
    | None = None,
    app: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    after: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """The tenant's runs, newest first; ``after``: the last id of the previous page."""
    principal = principal_with(request, SCOPE)
    agents = _agents(request)
    before = None
    if after is not None:
        last = await agents.runs.get_run(principal.tenant, after)
        if last is None:
            # A bad cursor is a bad parameter (400), as for /v1/reviews: the run asked for
            # is ``after``'s page, not the run itself.
            raise InvalidRequest(f"No run with id '{after[:64]}' to list after.", param="after")
        before = (last.created_at, last.id)
    runs = await agents.list(
        principal.tenant, status=status, app=app, before=before, limit=limit + 1
    )
    return list_page([run_view(r) for r in runs[:limit]], has_more=len(runs) > limit)


@router.get("/v1/runs/{run_id}")
async def get_run(run_id: str, request: Request) -> dict[str, Any]:
    """One run. Without the ``approve`` scope, only one the calling key started."""
    principal = principal_of(request)
    run = await _agents(request).get(principal.tenant, run_id)
    if run is None or not (SCOPE in principal.scopes or principal.made(run.key_id)):
        raise NotFound(f"No run with id '{run_id[:64]}'.", param="run_id")
    return run_view(run, detail=True)


@router.post("/v1/runs/{run_id}/approve", openapi_extra=_DECIDE_SCHEMA, responses=_CONFLICT)
async def approve_run(run_id: str, request: Request) -> dict[str, Any]:
    """Approve the pending calls (as proposed, or as edited) and go on to the next stop."""
    return await _decide(request, run_id, approve=True)


@router.post("/v1/runs/{run_id}/reject", openapi_extra=_DECIDE_SCHEMA, responses=_CONFLICT)
async def reject_run(run_id: str, request: Request) -> dict[str, Any]:
    """Refuse the pending calls: the model is told, and goes on to the next stop."""
    return await _decide(request, run_id, approve=False)


async def _decide(request: Request, run_id: str, *, approve: bool) -> dict[str, Any]:
    principal = principal_with(request, SCOPE)
    body = validate(RunDecisionBody, await read_json_object(request, optional=True))
    decision = ApprovalDecision(
        approve=approve,
        decided_by=principal.key_id or "admin",
        arguments=body.arguments if approve else None,
        note=body.note,
    )
    run = await _agents(request).decide(principal.tenant, run_id, decision)
    return run_view(run, detail=True)
