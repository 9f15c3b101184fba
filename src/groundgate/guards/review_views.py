"""How a review is shown (the HTTP routes and the CLI) and exported (an eval case).

A reviewer (a key with the ``review`` scope) sees everything: the request, the answer under
review, why it was queued. The key that made a held request sees only where its review stands
and, once approved, the answer it may use, as the ``chat.completion`` it would have had: the
reviewer's corrected answer where one was given. A rejected review has no answer.
"""

from __future__ import annotations

from typing import Any

from groundgate.store.reviews import ReviewRecord


def review_view(review: ReviewRecord, *, reviewer: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "object": "review",
        "id": review.id,
        "status": review.status,
        "mode": review.mode,
        "target": review.target,
        "trace_id": review.trace_id,
        "created_at": review.created_at,
        "decided_at": review.decided_at,
        "note": review.note,
        "answer": approved_completion(review),
    }
    if reviewer:
        view.update(
            key_id=review.key_id,
            reasons=review.reasons,
            messages=review.messages,
            choices=review.answer,  # the answer under review, as queued
            guards=review.guards,
            decided_by=review.decided_by,
            corrected_answer=review.corrected_answer,
        )
    return view


def approved_completion(review: ReviewRecord) -> dict[str, Any] | None:
    """The approved answer as an OpenAI ``chat.completion`` (None until approved)."""
    if review.status != "approved":
        return None
    if review.corrected_answer is not None:
        choices: list[dict[str, Any]] = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": review.corrected_answer},
                "finish_reason": "stop",
            }
        ]
    else:
        choices = review.answer
    return {
        "id": f"chatcmpl-{review.trace_id}",
        "object": "chat.completion",
        "created": int(review.decided_at or review.created_at),
        "model": review.target,
        "choices": choices,
        "groundgate": {"trace_id": review.trace_id, "review": {"id": review.id}},
    }


def answer_text(choices: list[dict[str, Any]]) -> str | None:
    """The first choice's text (None: no text, e.g. a tool call)."""
    message = (choices[0].get("message") or {}) if choices else {}
    content = message.get("content")
    return content if isinstance(content, str) and content.strip() else None


def eval_case(review: ReviewRecord, *, grounded: bool) -> dict[str, Any] | None:
    """A decided review as one line of an eval dataset (``evals/dataset.py``): the client's
    last question, the turns before it, and the answer a reviewer stands behind (the
    correction, else an approved answer as it was). None when there is none: a rejected
    review without a correction, a request without a question in text.

    A grounded app's system message is the prompt the gateway built around the retrieved
    passages, not the client's: it is left out, and the eval retrieves afresh."""
    expected = review.corrected_answer
    if expected is None and review.status == "approved":
        expected = answer_text(review.answer)
    if not expected or not expected.strip() or review.status == "pending":
        return None
    turns: list[dict[str, str]] = []
    for message in review.messages:
        role = message.get("role")
        role = "system" if role == "developer" else role
        if role not in ("system", "user", "assistant") or (grounded and role == "system"):
            continue
        text = _text(message.get("content"))
        if text:
            turns.append({"role": str(role), "content": text})
    last_user = max((i for i, t in enumerate(turns) if t["role"] == "user"), default=None)
    if last_user is None:
        return None
    return {
        "id": review.id,
        "question": turns[last_user]["content"],
        "history": turns[:last_user],
        "answers": [expected],
        "label": review.status,
    }


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):  # content parts: the text ones
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return " ".join(p for p in parts if isinstance(p, str)).strip()
    return ""
