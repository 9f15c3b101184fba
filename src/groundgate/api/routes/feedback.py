"""``POST /v1/feedback``: a score, thumbs, a label, a comment or a corrected answer on one of
the tenant's answers, named by its trace id (an answer's ``groundgate.trace_id``, or its
``id``: ``chatcmpl-<trace id>``).

A key with the ``feedback``, ``chat`` or ``review`` scope may give it, on its own tenant's
traces only: another tenant's trace is "not found", as a trace that does not exist is. There
is one feedback per (trace, ``source``), the source being whoever gives it as the client
names it (default: the key); giving it again replaces it (201 the first time, then 200), so a
retry never counts twice. ``"review"`` is the source of reviewers' decisions
(``/v1/reviews``) and is not the client's to use. Each key has a rate of its own
(``feedback.requests_per_minute``).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from groundgate.api.body import read_json_object, validate
from groundgate.api.gate import principal_of
from groundgate.container import Container
from groundgate.errors import InvalidRequest, NotFound
from groundgate.gateway.principal import PermissionDenied, Principal
from groundgate.observe.feedback import REVIEW_SOURCE, Feedback
from groundgate.store.feedback import SCORE_MAX, SCORE_MIN, FeedbackRecord

router = APIRouter(tags=["observability"])

SCOPES = frozenset({"feedback", "chat", "review"})
THUMBS = {"up": SCORE_MAX, "down": SCORE_MIN}
# How an answer's ``id`` names its trace (api/routes/chat.py).
_COMPLETION_PREFIX = "chatcmpl-"
_MAX_TRACE_ID = 64


class FeedbackBody(BaseModel):
    """Feedback on one answer: at least one of score (or thumbs), label, comment and
    corrected_answer."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # The answer's trace: its ``groundgate.trace_id``, or the answer's ``id``.
    trace_id: str = Field(min_length=1, max_length=_MAX_TRACE_ID + len(_COMPLETION_PREFIX))
    # In [0, 1], higher is better, 0.5 neutral (map a 1-5 rating as (r - 1) / 4).
    score: float | None = Field(None, ge=SCORE_MIN, le=SCORE_MAX, allow_inf_nan=False)
    # Thumbs up is a score of 1, down 0; give one of score and thumbs.
    thumbs: Literal["up", "down"] | None = None
    label: str | None = Field(None, min_length=1, max_length=100)
    comment: str | None = Field(None, min_length=1, max_length=10_000)
    # What the answer should have been: an eval export's expected answer.
    corrected_answer: str | None = Field(None, min_length=1, max_length=100_000)
    # Who gives it ("end-user:123"); one feedback per source and trace. Default: the key.
    source: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _something_said(self) -> FeedbackBody:
        if self.score is not None and self.thumbs is not None:
            raise ValueError("give either score or thumbs, not both")
        if not any((self.score is not None, self.thumbs, self.label, self.comment)) and not (
            self.corrected_answer
        ):
            raise ValueError(
                "give at least one of score, thumbs, label, comment and corrected_answer"
            )
        return self

    def feedback(self) -> Feedback:
        score = THUMBS[self.thumbs] if self.thumbs is not None else self.score
        return Feedback(score, self.label, self.comment, self.corrected_answer)


_BODY_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": FeedbackBody.model_json_schema()}},
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The source's earlier feedback on this trace, replaced (or repeated)"},
    201: {"description": "Feedback recorded"},
    404: {"description": "No such trace in the key's tenant"},
    429: {"description": "Feedback rate limit exceeded"},
}


def feedback_view(record: FeedbackRecord) -> dict[str, Any]:
    return {
        "object": "feedback",
        "trace_id": record.trace_id,
        "source": record.source,
        "target": record.target,
        "score": record.score,
        "label": record.label,
        "comment": record.comment,
        "corrected_answer": record.corrected_answer,
        "key_id": record.key_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def trace_id_of(value: str) -> str:
    """The trace id an answer's id or trace id names."""
    return value.removeprefix(_COMPLETION_PREFIX)


def _giver(request: Request) -> Principal:
    principal = principal_of(request)
    if not principal.scopes & SCOPES:
        raise PermissionDenied("This API key lacks the 'feedback' scope.")
    return principal


@router.post("/v1/feedback", openapi_extra=_BODY_SCHEMA, responses=_RESPONSES, status_code=201)
async def give_feedback(request: Request, response: Response) -> dict[str, Any]:
    """Record (or replace) feedback on an answer, for its source."""
    principal = _giver(request)
    runtime: Container = request.app.state.runtime
    await runtime.feedback_rate.admit(principal)
    body = validate(FeedbackBody, await read_json_object(request))
    source = body.source or (f"key:{principal.key_id}" if principal.key_id else "admin")
    if source == REVIEW_SOURCE:
        raise InvalidRequest(
            f"The source '{REVIEW_SOURCE}' is kept for reviewers' decisions (/v1/reviews).",
            param="source",
        )
    trace_id = trace_id_of(body.trace_id)
    trace = None
    if len(trace_id) <= _MAX_TRACE_ID:
        trace = await runtime.get_trace(principal.tenant, trace_id)
    if trace is None:
        raise NotFound(f"No trace with id '{trace_id[:64]}'.", param="trace_id")
    app = (trace.get("attrs") or {}).get("app")
    target = app if isinstance(app, str) else str(trace.get("model", ""))
    stored, outcome = await runtime.feedback.give(
        tenant=principal.tenant,
        trace_id=trace_id,
        target=target,
        source=source,
        key_id=principal.key_id,
        feedback=body.feedback(),
    )
    response.status_code = 201 if outcome == "created" else 200
    return feedback_view(stored)
