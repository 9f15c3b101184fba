"""The human review queue as a service: answers queued by the review stage (held or audited),
listed, decided once, and exported as labelled eval cases. The HTTP routes and the CLI call
this; the store keeps it (``store/reviews.py``), tenant by tenant.

What is stored is scrubbed of credentials first, as traces are (``observe.redact``): the
request may hold one that no guard was set to redact.

A decision is also feedback on the trace (``observe/feedback.py``, source ``"review"``):
approved scores 1, rejected 0, with the correction and the note, so reviewers' verdicts join
end users' in the one store that reports and eval exports read.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from groundgate.errors import InvalidRequest, NotFound, ReviewDecided
from groundgate.observe.feedback import REVIEW_SOURCE, Feedback, FeedbackRecorder
from groundgate.observe.redact import redact
from groundgate.store.reviews import (
    Decision,
    ReviewMode,
    ReviewRecord,
    ReviewStatus,
    ReviewStore,
)

log = logging.getLogger("groundgate.review")
_ID = re.compile(r"rev_[0-9a-f]{24}")
MAX_PAGE = 100


def new_review_id() -> str:
    return "rev_" + secrets.token_hex(12)


def is_review_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class ReviewPage:
    reviews: list[ReviewRecord]
    has_more: bool


class ReviewQueue:
    def __init__(
        self,
        store: ReviewStore,
        clock: Callable[[], float] = time.time,
        feedback: FeedbackRecorder | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.feedback = feedback

    async def submit(
        self,
        *,
        tenant: str,
        target: str,
        trace_id: str,
        key_id: str | None,
        mode: ReviewMode,
        reasons: list[str],
        messages: list[dict[str, Any]],
        answer: list[dict[str, Any]],
        guards: dict[str, Any],
    ) -> ReviewRecord:
        """Queue an answer for review (pending); returns it as stored."""
        review = ReviewRecord(
            id=new_review_id(),
            tenant=tenant,
            target=target,
            trace_id=trace_id,
            key_id=key_id,
            created_at=self.clock(),
            mode=mode,
            reasons=list(reasons),
            messages=_scrubbed(messages),
            answer=_scrubbed(answer),
            guards=guards,
        )
        await self.store.add_review(review)
        return review

    async def get(self, tenant: str, review_id: str) -> ReviewRecord | None:
        if not is_review_id(review_id):
            return None
        return await self.store.get_review(tenant, review_id)

    async def page(
        self,
        tenant: str,
        *,
        status: ReviewStatus | None = None,
        target: str | None = None,
        limit: int = 20,
        after: str | None = None,
    ) -> ReviewPage:
        """A page of reviews, newest first; ``after`` is the last id of the previous page."""
        before: tuple[float, str] | None = None
        if after is not None:
            last = await self.get(tenant, after)
            if last is None:
                raise InvalidRequest(
                    f"No review with id '{after[:64]}' to list after.", param="after"
                )
            before = (last.created_at, last.id)
        limit = max(1, min(limit, MAX_PAGE))
        found = await self.store.list_reviews(
            tenant, status=status, target=target, before=before, limit=limit + 1
        )
        return ReviewPage(found[:limit], len(found) > limit)

    async def decide(
        self,
        tenant: str,
        review_id: str,
        *,
        approve: bool,
        by: str | None,
        corrected_answer: str | None = None,
        note: str | None = None,
    ) -> ReviewRecord:
        """Approve or reject a pending review (once). ``NotFound`` when the tenant has no such
        review; ``ReviewDecided`` when it was decided already."""
        decision = Decision(
            "approved" if approve else "rejected", self.clock(), by, corrected_answer, note
        )
        if is_review_id(review_id) and await self.store.decide_review(tenant, review_id, decision):
            decided = await self.store.get_review(tenant, review_id)
            assert decided is not None
            await self._as_feedback(decided)
            return decided
        existing = await self.get(tenant, review_id)
        if existing is None:
            raise NotFound(f"No review with id '{review_id[:64]}'.", param="review_id")
        raise ReviewDecided(
            f"Review '{review_id}' was already {existing.status}; a decision is final."
        )

    async def _as_feedback(self, review: ReviewRecord) -> None:
        """The decision as the reviewers' feedback on the trace. The decision stands whatever
        happens here (it is final and already stored): a failure is logged, not raised."""
        if self.feedback is None:
            return
        by = review.decided_by
        verdict = Feedback(
            score=1.0 if review.status == "approved" else 0.0,
            label=review.status,
            comment=review.note,
            corrected_answer=review.corrected_answer,
        )
        try:
            await self.feedback.give(
                tenant=review.tenant,
                trace_id=review.trace_id,
                target=review.target,
                source=REVIEW_SOURCE,
                key_id=None if by in (None, "admin", "cli") else by,
                feedback=verdict,
            )
        except Exception:
            log.exception("review %s: recording the decision as feedback failed", review.id)

    async def decided(self, tenant: str, target: str | None = None) -> list[ReviewRecord]:
        """Every decided review of ``tenant`` (of ``target``), newest first."""
        out: list[ReviewRecord] = []
        for status in ("approved", "rejected"):
            before: tuple[float, str] | None = None
            while True:
                page = await self.store.list_reviews(
                    tenant, status=status, target=target, before=before, limit=500
                )
                out.extend(page)
                if len(page) < 500:
                    break
                before = (page[-1].created_at, page[-1].id)
        out.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return out


def _scrubbed(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    scrubbed: list[dict[str, Any]] = orjson.loads(redact(orjson.dumps(value).decode()))
    return scrubbed
