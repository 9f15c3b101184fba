"""The human review queue over HTTP: ``/v1/reviews``.

Listing and deciding need a key with the ``review`` scope, and see only its own tenant's
reviews. The key that made a held request may read that one review by id without the scope
(to poll for the answer: 202 told it where); it sees where the review stands and, once
approved, the answer (``guards/review_views.py``). Any other review is "not found", whether or
not it exists.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from groundgate.api.body import body_schema, read_json_object, validate
from groundgate.api.gate import principal_of, principal_with
from groundgate.api.pages import list_page
from groundgate.container import Container
from groundgate.errors import NotFound
from groundgate.guards.review_queue import MAX_PAGE, ReviewQueue
from groundgate.guards.review_views import review_view

router = APIRouter(tags=["reviews"])

SCOPE = "review"


class ReviewDecisionBody(BaseModel):
    """An approval or rejection; both fields optional (the body too)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # What the answer should have been: the client of a held request gets it when approved,
    # and an export makes it the expected answer (approved or rejected).
    corrected_answer: str | None = Field(None, min_length=1, max_length=100_000)
    note: str | None = Field(None, max_length=10_000)


_DECIDE_SCHEMA = body_schema(ReviewDecisionBody, required=False)
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The review was already decided (a decision is final)"}
}


def _queue(request: Request) -> ReviewQueue:
    runtime: Container = request.app.state.runtime
    return runtime.reviews


def _not_found(review_id: str) -> NotFound:
    return NotFound(f"No review with id '{review_id[:64]}'.", param="review_id")


@router.get("/v1/reviews")
async def list_reviews(
    request: Request,
    status: Literal["pending", "approved", "rejected"] | None = None,
    target: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    after: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """The tenant's reviews, newest first; ``after``: the last id of the previous page."""
    principal = principal_with(request, SCOPE)
    page = await _queue(request).page(
        principal.tenant, status=status, target=target, limit=limit, after=after
    )
    return list_page([review_view(r, reviewer=True) for r in page.reviews], has_more=page.has_more)


@router.get("/v1/reviews/{review_id}")
async def get_review(review_id: str, request: Request) -> dict[str, Any]:
    """One review. Without the ``review`` scope, only one that the calling key's own request
    was held for (its answer once approved)."""
    principal = principal_of(request)
    review = await _queue(request).get(principal.tenant, review_id)
    reviewer = SCOPE in principal.scopes
    if review is None or not (reviewer or principal.made(review.key_id)):
        raise _not_found(review_id)
    return review_view(review, reviewer=reviewer)


@router.post("/v1/reviews/{review_id}/approve", openapi_extra=_DECIDE_SCHEMA, responses=_CONFLICT)
async def approve_review(review_id: str, request: Request) -> dict[str, Any]:
    """Approve: a held answer (or the corrected one) becomes the client's answer."""
    return await _decide(request, review_id, approve=True)


@router.post("/v1/reviews/{review_id}/reject", openapi_extra=_DECIDE_SCHEMA, responses=_CONFLICT)
async def reject_review(review_id: str, request: Request) -> dict[str, Any]:
    """Reject: a held answer is never given out; a correction still labels the example."""
    return await _decide(request, review_id, approve=False)


async def _decide(request: Request, review_id: str, *, approve: bool) -> dict[str, Any]:
    principal = principal_with(request, SCOPE)
    body = validate(ReviewDecisionBody, await read_json_object(request, optional=True))
    review = await _queue(request).decide(
        principal.tenant,
        review_id,
        approve=approve,
        by=principal.key_id or "admin",
        corrected_answer=body.corrected_answer,
        note=body.note,
    )
    return review_view(review, reviewer=True)
