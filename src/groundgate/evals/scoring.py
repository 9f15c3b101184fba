"""Scorers beyond the built-in ones of ``runner.score_case``: each scores one answered case and
says what scoring it cost (an LLM judge calls a model; a local scorer costs nothing).

The runner calls every configured scorer on every case after the answer is in; a scorer that
does not apply to a case (no context to check faithfulness against, no schema) returns no
scores for it, so the metric's coverage counts only the cases it applies to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from groundgate.evals.dataset import EvalCase
    from groundgate.evals.runner import AnswerResult


@dataclass(slots=True)
class ScoreOutcome:
    scores: dict[str, float]  # metric name -> value in [0, 1] (higher is better)
    cost_usd: float = 0.0  # what scoring this case cost (a judge's model calls)
    upstream_calls: int = 0  # model calls made (0 when answered from the eval cache)
    details: dict[str, Any] = field(default_factory=dict)  # kept on the case in the report


class CaseScorer(Protocol):
    name: str  # e.g. "faithfulness", "judge"

    async def score(self, case: EvalCase, result: AnswerResult) -> ScoreOutcome: ...


class EvalCache(Protocol):
    """Results already paid for, by a key that names everything they depend on (the case, the
    app's config digest and prompt versions, the judge model and its prompt version): a re-run
    of unchanged cases makes no upstream call."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...
