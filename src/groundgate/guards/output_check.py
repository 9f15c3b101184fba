"""One answer through the output guards: leak (PII and secrets), policy (deny patterns) and,
for grounded requests, groundedness (with phantom ``[n]`` markers removed).

:class:`AnswerCheck` holds what one request's check needs (its config, its sources and
passages, the placeholders of the client's own redacted input) and records what it decided in
the request's :class:`GuardReport`. ``whole`` checks and rewrites a whole answer (or a held
stream); a stream that is not held is rewritten on the way by ``rewrite`` over the spans
``find`` gives (``stream_text.py``) and judged at its end by ``judge_stream``.

Order on a whole answer: phantom markers out; groundedness scored (unsupported sentences
removed, or the answer turned into an abstention); then leak and policy on what is left
(redacted, or the answer withheld). Unsupported sentences are reported with any PII or secret
in them replaced, whatever the leak guard's action: they go to the trace.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from groundgate.config_guards import GuardsConfig
from groundgate.guards import grounding
from groundgate.guards.decision import GuardDecision, GuardReport
from groundgate.guards.detect import find_sensitive
from groundgate.guards.groundedness_check import Verdict, score_answer
from groundgate.guards.output import (
    ABSTENTION,
    Placeholders,
    citation_spans,
    compile_deny,
    find_denied,
    find_leaks,
    withheld_notice,
    without_sentences,
)
from groundgate.guards.spans import Span
from groundgate.providers.local.models import ModelLoadFailed

log = logging.getLogger("groundgate.guards")

# Actions that need the whole answer before any of it goes out.
_WHOLE_ACTIONS = ("block", "review")


@dataclass(frozen=True, slots=True)
class Grounding:
    """What a grounded answer is checked against."""

    sources: Sequence[str]  # the prompt's numbered sources, [1] first: what [n] may cite
    evidence: Sequence[str]  # every passage retrieved (the sources first)
    question: str  # words the answer may repeat without inventing anything


@dataclass(slots=True)
class Rewritten:
    """A whole answer after the check: each choice's text and any finish reason to set."""

    texts: dict[int, str]
    finish: dict[int, str] = field(default_factory=dict)
    abstained: bool = False


def holds(config: GuardsConfig, grounded: bool) -> bool:
    """Whether a streamed answer must be held whole (an action decided on all of it)."""
    return (
        config.leak.action in _WHOLE_ACTIONS
        or config.policy.action in _WHOLE_ACTIONS
        or (grounded and config.groundedness.action not in ("off", "flag"))
    )


class AnswerCheck:
    def __init__(
        self,
        config: GuardsConfig,
        report: GuardReport,
        grounding_: Grounding | None,
        reserved: Collection[str] = (),
    ) -> None:
        self.config = config
        self.report = report
        # None: not a grounded request, or the groundedness guard is off.
        self.grounding = grounding_ if config.groundedness.action != "off" else None
        self.reserved = reserved
        self.placeholders = Placeholders(reserved)
        self.deny = compile_deny(config.policy.deny) if config.policy.action != "off" else ()
        threshold = config.groundedness.threshold
        self.threshold = grounding.THRESHOLD if threshold is None else threshold

    # -- streamed, not held ------------------------------------------------------------------

    def find(self, text: str) -> list[Span]:
        """What a stream's text loses on the way: phantom markers, redacted spans."""
        spans: list[Span] = []
        if self.grounding is not None:
            spans += citation_spans(text, self.grounding.sources)
        if self.config.leak.action == "redact":
            spans += find_leaks(text, self.config.leak.types, self.reserved)
        if self.config.policy.action == "redact":
            spans += find_denied(text, self.deny, self.reserved)
        return spans

    @property
    def rewrites_stream(self) -> bool:
        return (
            self.grounding is not None
            or self.config.leak.action == "redact"
            or self.config.policy.action == "redact"
        )

    def rewrite(self, text: str, spans: list[Span]) -> str:
        return self.placeholders.rewrite(text, spans)

    async def judge_stream(self, raw: dict[int, str], deadline: float) -> None:
        """A stream that went out as it came (its rewriting done on the way): record what the
        guards found in the text as the upstream sent it."""
        for text in raw.values():
            if self.grounding is not None:
                text = self._without_phantoms(text)
                await self._verdict(text, deadline)
            self._found_leaks(text)
            self._found_denied(text)

    # -- whole ---------------------------------------------------------------------------------

    async def whole(self, texts: dict[int, str], deadline: float) -> Rewritten:
        """Check and rewrite each choice's text (``deadline``: ``time.monotonic()`` by which
        the request must be answered)."""
        out = Rewritten(dict(texts))
        for index, text in texts.items():
            if self.grounding is not None:
                text = self._without_phantoms(text)
                verdict = await self._verdict(text, deadline)
                if verdict is not None and verdict.unsupported:
                    text = self._grounded(text, verdict)
                    out.abstained = out.abstained or text == ABSTENTION
            leaks = self._found_leaks(text)
            denied = self._found_denied(text)
            redact = [
                *(leaks if self.config.leak.action == "redact" else ()),
                *(denied if self.config.policy.action == "redact" else ()),
            ]
            if redact:
                text = self.placeholders.rewrite(text, redact)
            blocked = self._blocked(leaks, denied)
            if blocked is not None:
                text = withheld_notice(blocked)
                out.finish[index] = "content_filter"
            out.texts[index] = text
        return out

    def _grounded(self, text: str, verdict: Verdict) -> str:
        action = self.config.groundedness.action
        if action == "abstain":
            return ABSTENTION
        if action == "remove":
            return without_sentences(text, verdict.unsupported) or ABSTENTION
        return text

    def _blocked(self, leaks: list[Span], denied: list[Span]) -> str | None:
        if leaks and self.config.leak.action == "block":
            return "leak"
        if denied and self.config.policy.action == "block":
            return "policy"
        return None

    # -- the guards, each recording what it found ----------------------------------------------

    def _without_phantoms(self, text: str) -> str:
        assert self.grounding is not None
        phantoms = citation_spans(text, self.grounding.sources)
        if not phantoms:
            return text
        self.report.add(GuardDecision("citations", "remove", detail={"phantom": len(phantoms)}))
        return self.placeholders.rewrite(text, phantoms)

    async def _verdict(self, text: str, deadline: float) -> Verdict | None:
        assert self.grounding is not None
        action = self.config.groundedness.action
        started = time.perf_counter()
        try:
            verdict = await score_answer(
                self.grounding.evidence,
                text,
                self.grounding.question,
                self.threshold,
                deadline - time.monotonic(),
            )
        except (TimeoutError, ModelLoadFailed) as exc:
            # The answer goes out unchecked, and says so (trace, header, groundgate object).
            reason = "deadline" if isinstance(exc, TimeoutError) else "model"
            log.warning("groundedness not scored (%s): %s", reason, type(exc).__name__)
            self.report.add(GuardDecision("groundedness", "unchecked", detail={"reason": reason}))
            return None
        ms = (time.perf_counter() - started) * 1000
        report = self.report
        report.timed("groundedness", ms)
        # Several choices: the weakest answer's score.
        previous = report.groundedness
        report.groundedness = verdict.score if previous is None else min(previous, verdict.score)
        report.unsupported += [self._reported(s) for s in verdict.unsupported]
        if verdict.unsupported:
            detail = {"unsupported": len(verdict.unsupported), "sentences": verdict.sentences}
            report.add(GuardDecision("groundedness", action, verdict.score, ms, detail))
        return verdict

    def _reported(self, sentence: str) -> str:
        # Unsupported sentences go to the trace: never with a secret or PII in them.
        return self.placeholders.rewrite(sentence, find_sensitive(sentence))

    def _found_leaks(self, text: str) -> list[Span]:
        leak = self.config.leak
        if leak.action == "off":
            return []
        started = time.perf_counter()
        spans = find_leaks(text, leak.types, self.reserved)
        ms = (time.perf_counter() - started) * 1000
        self.report.timed("leak", ms)
        if spans:
            types = dict(Counter(s.type for s in spans))
            self.report.add(GuardDecision("leak", leak.action, None, ms, {"types": types}))
        return spans

    def _found_denied(self, text: str) -> list[Span]:
        policy = self.config.policy
        if policy.action == "off":
            return []
        started = time.perf_counter()
        spans = find_denied(text, self.deny, self.reserved)
        ms = (time.perf_counter() - started) * 1000
        self.report.timed("policy", ms)
        if spans:
            detail = {"matches": len(spans)}
            self.report.add(GuardDecision("policy", policy.action, None, ms, detail))
        return spans
