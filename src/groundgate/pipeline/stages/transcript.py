"""Transcript: what a trace keeps of the request's text, so that feedback on it can become an
eval case (``groundgate datasets export --feedback``): the answer as the client got it
(``attrs.answer``) and, for a plain model, the question (``attrs.question``; an app's trace
keeps its search query anyway, ``attrs.query``).

``feedback.keep_text`` decides: apps only (the default), every target, or none; for a target
it leaves out, the stage declines (no cost at all). Only an answer given in full is kept, cut
at ``feedback.max_text_chars``. It runs inside the record stage, so its exit writes the trace
before the trace is finished; the trace is scrubbed of secrets when written, as always, and the
guards' redaction already applied to what is kept here.
"""

from __future__ import annotations

from groundgate.config import Settings
from groundgate.guards.messages import last_user_text
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Outcome, Stage


class Transcript(Stage):
    name = "transcript"

    def __init__(self, max_chars: int, *, question: bool) -> None:
        self.max_chars = max_chars
        self.question = question

    async def exit(self, ctx: RequestContext, outcome: Outcome) -> None:
        if not outcome.ok or ctx.delivered is None or not ctx.delivered.complete:
            return
        attrs = ctx.trace.attrs
        answer = ctx.delivered.text
        if answer:
            attrs["answer"] = answer[: self.max_chars]
        if self.question:
            question = last_user_text(ctx.call.messages)
            if question:
                attrs["question"] = question[: self.max_chars]


def keeps_text(settings: Settings, *, grounded: bool) -> bool:
    keep = settings.feedback.keep_text
    return keep == "all" or (keep == "grounded" and grounded)


def transcript_stage(services: Services, target: Target) -> Stage | None:
    grounded = target.app is not None
    if not keeps_text(services.settings, grounded=grounded):
        return None
    return Transcript(services.settings.feedback.max_text_chars, question=not grounded)
