"""LLM-as-judge with any configured model: rubric scoring and pairwise comparison.

The judge calls its model in-process through the Container (``model_call.chat_once``: the
chat path of ``/v1/chat/completions``), so the model's prices in config give its cost. Its
prompts are versioned files of the prompt registry (``prompts/builtin/judge-rubric.toml``,
``judge-pairwise.toml``), rendered with ``PromptVersion.render_messages``; every verdict names
the prompt version (``name@version``) that produced it.

Rubric
    The judge scores an answer from 1 to 5 against a rubric (the case's ``rubric``, else the
    run's); the score is reported as ``(n - 1) / 4`` in [0, 1]. Its reply is read as JSON
    (a code fence or text around the object is tolerated); a reply without a usable score is
    *unparseable*: no score, and counted.
Pairwise
    Two answers to the same question are judged in both orders, (A, B) and (B, A), which
    cancels the judge's position bias: an answer wins only when it is preferred in both; a tie
    in either order, or a preference that flips with the order, is a tie.

With an :class:`~groundgate.evals.scoring.EvalCache`, a verdict already paid for (same judge
model, prompt version and rendered messages: the case, the answer, the rubric, the contexts)
is read back and makes no upstream call. Unparseable replies and failed calls are not kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from groundgate.container import Container
from groundgate.errors import GroundgateError
from groundgate.evals.answer_rules import strip_fence
from groundgate.evals.dataset import EvalCase
from groundgate.evals.model_call import chat_once
from groundgate.evals.report import EvalReport
from groundgate.evals.runner import AnswerResult
from groundgate.evals.scoring import EvalCache, ScoreOutcome
from groundgate.prompts.files import PromptTable, load_prompt_files
from groundgate.prompts.format import PromptVersion

RUBRIC_PROMPT = "judge-rubric"
PAIRWISE_PROMPT = "judge-pairwise"
DEFAULT_RUBRIC = (
    "The answer is correct, answers the question asked, and everything it states is "
    "supported by the sources or the reference answers."
)
# What is read of a reply: its first characters, and the first JSON objects in them.
MAX_REPLY_CHARS = 20_000
MAX_OBJECTS_TRIED = 32
MAX_REASON_CHARS = 300
# Contexts and references given to the rubric judge (each cut to this many characters).
MAX_CONTEXTS = 8
MAX_CONTEXT_CHARS = 2_000

Preference = Literal["a", "b", "tie"]
# The judge's "A"/"B" as answer a or b: with a shown first, and with b shown first.
_SHOWN_FIRST: dict[str, Preference] = {"A": "a", "B": "b", "tie": "tie"}
_SHOWN_SECOND: dict[str, Preference] = {"A": "b", "B": "a", "tie": "tie"}


def parse_json_reply(text: str) -> dict[str, Any] | None:
    """The JSON object in a judge's reply: the whole reply, else inside a code fence, else the
    first object found in the text; None when there is none."""
    text = text[:MAX_REPLY_CHARS]
    for candidate in (text, strip_fence(text)):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    start = text.find("{")
    tried = 0
    while start != -1 and tried < MAX_OBJECTS_TRIED:
        tried += 1
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def rubric_score(reply: Mapping[str, Any]) -> int | None:
    """The 1..5 score of a parsed rubric reply (an integer, an integral float or a digit
    string), or None."""
    value = reply.get("score")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
        return value
    return None


def pairwise_choice(reply: Mapping[str, Any]) -> Literal["A", "B", "tie"] | None:
    """ "A", "B" or "tie" from a parsed pairwise reply, or None."""
    value = reply.get("winner")
    if not isinstance(value, str):
        return None
    word = value.strip().lower().removeprefix("answer").strip(" .'\"")
    if word == "a":
        return "A"
    if word == "b":
        return "B"
    if word in ("tie", "draw", "equal", "neither", "both"):
        return "tie"
    return None


def combine_orders(first: Literal["A", "B", "tie"], second: Literal["A", "B", "tie"]) -> Preference:
    """The verdict on answers a and b from the judge's choice with a shown first (``first``)
    and with b shown first (``second``): a consistent preference wins, anything else ties."""
    in_first, in_second = _SHOWN_FIRST[first], _SHOWN_SECOND[second]
    return in_first if in_first == in_second else "tie"


@dataclass(slots=True)
class _Asked:
    key: str  # the eval cache's key of this question (_keep puts a usable reply under it)
    reply: dict[str, Any] | None  # the parsed reply (None: unparseable or failed)
    cost_usd: float = 0.0
    upstream_calls: int = 0
    cached: bool = False
    error: str | None = None


@dataclass(slots=True)
class RubricVerdict:
    prompt: str  # the prompt version, "judge-rubric@1"
    raw: int | None  # 1..5, or None when the reply was unusable
    reason: str = ""
    cost_usd: float = 0.0
    upstream_calls: int = 0
    cached: bool = False
    error: str | None = None  # the call failed (the gateway's error)

    @property
    def score(self) -> float | None:
        return None if self.raw is None else (self.raw - 1) / 4


@dataclass(slots=True)
class PairwiseVerdict:
    prompt: str
    winner: Preference | None  # None: a reply was unusable or a call failed
    orders: tuple[str | None, str | None]  # the judge's choice in (a, b) and in (b, a) order
    cost_usd: float = 0.0
    upstream_calls: int = 0
    cached: bool = False
    error: str | None = None


@dataclass(slots=True)
class JudgeTally:
    """What a judge has done so far (all its calls)."""

    verdicts: int = 0
    unparseable: int = 0
    failed: int = 0
    cached: int = 0
    upstream_calls: int = 0
    cost_usd: float = 0.0


def latest(table: PromptTable, name: str) -> PromptVersion:
    versions = table.get(name)
    if not versions:
        raise GroundgateError(f"no prompt named {name!r} in the registry")
    return versions[max(versions)]


class Judge:
    """A judge: one configured model of a started Container, and its two prompt versions
    (the newest of each by default)."""

    def __init__(
        self,
        runtime: Container,
        model: str,
        *,
        cache: EvalCache | None = None,
        prompts: PromptTable | None = None,
        rubric_prompt: PromptVersion | None = None,
        pairwise_prompt: PromptVersion | None = None,
        max_tokens: int = 300,
    ) -> None:
        table = prompts if prompts is not None else load_prompt_files([])
        self.runtime = runtime
        self.model = model
        self.cache = cache
        self.rubric_prompt = rubric_prompt or latest(table, RUBRIC_PROMPT)
        self.pairwise_prompt = pairwise_prompt or latest(table, PAIRWISE_PROMPT)
        self.max_tokens = max_tokens
        self.tally = JudgeTally()

    def _key(self, prompt: PromptVersion, messages: list[dict[str, str]]) -> str:
        payload = orjson.dumps(
            {"judge": self.model, "prompt": prompt.ref, "digest": prompt.digest, "m": messages},
            option=orjson.OPT_SORT_KEYS,
        )
        return "judge:" + hashlib.sha256(payload).hexdigest()

    async def _ask(self, prompt: PromptVersion, values: Mapping[str, Any]) -> _Asked:
        messages = prompt.render_messages(values)
        key = self._key(prompt, messages)
        if self.cache is not None:
            kept = self.cache.get(key)
            if kept is not None and isinstance(kept.get("reply"), dict):
                self.tally.cached += 1
                return _Asked(key, kept["reply"], cached=True)
        try:
            answer = await chat_once(self.runtime, self.model, messages, max_tokens=self.max_tokens)
        except GroundgateError as exc:
            self.tally.failed += 1
            return _Asked(key, None, error=f"{type(exc).__name__}: {exc.message}")
        self.tally.upstream_calls += answer.upstream_calls
        self.tally.cost_usd += answer.cost_usd
        return _Asked(key, parse_json_reply(answer.text), answer.cost_usd, answer.upstream_calls)

    def _keep(self, asked: _Asked) -> None:
        """Keep a usable reply just asked for, so a re-run costs nothing."""
        if self.cache is not None and asked.reply is not None and not asked.cached:
            self.cache.put(asked.key, {"reply": asked.reply})

    async def rubric(
        self,
        question: str,
        answer: str,
        *,
        rubric: str = DEFAULT_RUBRIC,
        contexts: Sequence[str] = (),
        references: Sequence[str] = (),
    ) -> RubricVerdict:
        """The judge's 1..5 score of ``answer`` (see the module docstring)."""
        prompt = self.rubric_prompt
        values: dict[str, Any] = {"rubric": rubric, "question": question, "answer": answer}
        if contexts:
            values["context"] = "\n\n".join(
                f"[{n}] {text[:MAX_CONTEXT_CHARS]}"
                for n, text in enumerate(contexts[:MAX_CONTEXTS], start=1)
            )
        if references:
            values["reference"] = "\n".join(f"- {r}" for r in references)
        asked = await self._ask(prompt, values)
        raw = rubric_score(asked.reply) if asked.reply is not None else None
        self._count(raw is None, asked)
        if raw is not None:
            self._keep(asked)
        reason = asked.reply.get("reason") if asked.reply is not None else None
        return RubricVerdict(
            prompt.ref,
            raw,
            reason[:MAX_REASON_CHARS] if isinstance(reason, str) else "",
            asked.cost_usd,
            asked.upstream_calls,
            asked.cached,
            asked.error,
        )

    async def pairwise(
        self, question: str, answer_a: str, answer_b: str, *, rubric: str | None = None
    ) -> PairwiseVerdict:
        """Which of ``answer_a`` and ``answer_b`` is better, asked in both orders."""
        prompt = self.pairwise_prompt
        base: dict[str, Any] = {"question": question}
        if rubric is not None:
            base["rubric"] = rubric
        forward = {**base, "answer_a": answer_a, "answer_b": answer_b}
        backward = {**base, "answer_a": answer_b, "answer_b": answer_a}
        asked = await asyncio.gather(self._ask(prompt, forward), self._ask(prompt, backward))
        choices = [pairwise_choice(a.reply) if a.reply is not None else None for a in asked]
        for one, choice in zip(asked, choices, strict=True):
            self._count(choice is None, one)
            if choice is not None:
                self._keep(one)
        first, second = choices
        winner = combine_orders(first, second) if first and second else None
        return PairwiseVerdict(
            prompt.ref,
            winner,
            (first, second),
            sum(a.cost_usd for a in asked),
            sum(a.upstream_calls for a in asked),
            all(a.cached for a in asked),
            next((a.error for a in asked if a.error), None),
        )

    def _count(self, unusable: bool, asked: _Asked) -> None:
        if asked.error is not None:
            return  # counted as failed
        if unusable:
            self.tally.unparseable += 1
        else:
            self.tally.verdicts += 1


class JudgeScorer:
    """The ``judge`` metric: the rubric judge's score of each case's answer, in [0, 1]. The
    case's ``rubric`` wins over the run's. A failed answer scores 0 without asking; an
    unusable reply gives no score (the case's details say why)."""

    name = "judge"

    def __init__(self, judge: Judge, rubric: str | None = None) -> None:
        self.judge = judge
        self.rubric = rubric or DEFAULT_RUBRIC

    async def score(self, case: EvalCase, result: AnswerResult) -> ScoreOutcome:
        if result.error is not None:
            return ScoreOutcome({"judge": 0.0})
        verdict = await self.judge.rubric(
            case.question,
            result.answer,
            rubric=case.rubric or self.rubric,
            contexts=result.contexts,
            references=case.answers,
        )
        detail: dict[str, Any] = {"prompt": verdict.prompt, "model": self.judge.model}
        if verdict.cached:
            detail["cached"] = True
        if verdict.score is None:
            detail["error" if verdict.error else "unparseable"] = verdict.error or True
            return ScoreOutcome(
                {}, verdict.cost_usd, verdict.upstream_calls, details={"judge": detail}
            )
        detail.update(score=verdict.raw, reason=verdict.reason)
        return ScoreOutcome(
            {"judge": verdict.score},
            verdict.cost_usd,
            verdict.upstream_calls,
            details={"judge": detail},
        )


# -- two reports, case by case ---------------------------------------------------------------


@dataclass(slots=True)
class CaseComparison:
    id: str
    winner: Preference | None  # "a": report A's answer is better; None: not judged
    orders: tuple[str | None, str | None] = (None, None)
    note: str = ""  # why it was not judged


@dataclass(slots=True)
class PairwiseSummary:
    prompt: str
    model: str
    wins: int = 0  # cases where report A's answer won
    losses: int = 0  # ... where report B's won
    ties: int = 0
    unjudged: int = 0  # a failed answer, an unusable reply, or a case in one report only
    cases: list[CaseComparison] = field(default_factory=list)
    cost_usd: float = 0.0
    upstream_calls: int = 0


async def compare_reports(
    judge: Judge,
    report_a: EvalReport,
    report_b: EvalReport,
    *,
    rubric: str | None = None,
    concurrency: int = 4,
) -> PairwiseSummary:
    """Judge report A's answer against report B's, case by case (matched by id, in A's order
    then B's extra cases), each in both orders."""
    by_id_b = {r.id: r for r in report_b.per_case}
    ids_a = {r.id for r in report_a.per_case}
    summary = PairwiseSummary(judge.pairwise_prompt.ref, judge.model)
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(record_a: Any) -> CaseComparison:
        record_b = by_id_b.get(record_a.id)
        if record_b is None:
            return CaseComparison(record_a.id, None, note="only in report A")
        if record_a.error is not None or record_b.error is not None:
            return CaseComparison(record_a.id, None, note="an answer failed")
        async with semaphore:
            verdict = await judge.pairwise(
                record_a.question, record_a.answer, record_b.answer, rubric=rubric
            )
        summary.cost_usd += verdict.cost_usd
        summary.upstream_calls += verdict.upstream_calls
        note = "" if verdict.winner else (verdict.error or "unusable judge reply")
        return CaseComparison(record_a.id, verdict.winner, verdict.orders, note)

    compared = list(await asyncio.gather(*(one(r) for r in report_a.per_case)))
    compared += [
        CaseComparison(r.id, None, note="only in report B")
        for r in report_b.per_case
        if r.id not in ids_a
    ]
    for case in compared:
        if case.winner == "a":
            summary.wins += 1
        elif case.winner == "b":
            summary.losses += 1
        elif case.winner == "tie":
            summary.ties += 1
        else:
            summary.unjudged += 1
    summary.cases = compared
    return summary
