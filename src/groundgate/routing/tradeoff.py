"""Cost and quality of a routing policy over labelled prompts: the curve of (share of calls
sent to the strong model, cost relative to sending everything to it, accuracy) as a score
threshold moves, and the cheapest point keeping a share of the strong model's accuracy.

Used by the trainer (to choose the shipped thresholds) and by ``bench/routing.py``.

A *router* sends a prompt to the strong model when its score (the probability that the weak
model is right) is below the threshold, to the weak one otherwise; a *cascade* always pays
the weak call first and escalates when the score of the weak answer is below the threshold.
Rows with equal scores move together: the curve has one point per distinct threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
QUALITY_TARGET = 0.95  # share of the strong model's accuracy a good router keeps


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens."""

    strong_input: float = 10.0  # gpt-4-1106-preview
    strong_output: float = 30.0
    weak_input: float = 0.6  # Mixtral-8x7B-Instruct
    weak_output: float = 0.6

    def strong(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.strong_input + output_tokens * self.strong_output) / 1e6

    def weak(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.weak_input + output_tokens * self.weak_output) / 1e6


@dataclass(frozen=True, slots=True)
class Point:
    strong_share: float
    cost_ratio: float
    accuracy: float
    threshold: float  # route / escalate when score < threshold

    def triple(self, digits: int = 4) -> list[float]:
        return [
            round(self.strong_share, digits),
            round(self.cost_ratio, digits),
            round(self.accuracy, digits),
        ]


@dataclass(frozen=True)
class Outcomes:
    """Per prompt: was each model right, and what each call costs (USD)."""

    weak_correct: Bools
    strong_correct: Bools
    weak_cost: Floats
    strong_cost: Floats

    @property
    def strong_accuracy(self) -> float:
        return float(self.strong_correct.mean())

    @property
    def weak_accuracy(self) -> float:
        return float(self.weak_correct.mean())


def threshold_curve(outcomes: Outcomes, scores: Floats, *, cascade: bool = False) -> list[Point]:
    """One point per distinct threshold, from everything weak (threshold at or below the
    lowest score) to everything strong (above the highest), strong share rising."""
    n = scores.size
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # Going strong instead of weak at each rank, cumulated: accuracy and cost change.
    gain = np.concatenate(
        [
            [0.0],
            np.cumsum(outcomes.strong_correct[order].astype(float) - outcomes.weak_correct[order]),
        ]
    )
    extra = np.concatenate(
        [
            [0.0],
            np.cumsum(
                outcomes.strong_cost[order] - (0.0 if cascade else outcomes.weak_cost[order])
            ),
        ]
    )
    total_strong = float(outcomes.strong_cost.sum())
    base_cost = float(outcomes.weak_cost.sum())
    base_correct = float(outcomes.weak_correct.sum())
    # Cut points: k rows strong, where the k-th and (k+1)-th scores differ (or the ends).
    cuts = [0] + [k for k in range(1, n) if sorted_scores[k] != sorted_scores[k - 1]] + [n]
    points = []
    for k in cuts:
        threshold = (
            float(sorted_scores[k]) if k < n else float(np.nextafter(sorted_scores[-1], np.inf))
        )
        points.append(
            Point(
                k / n,
                (base_cost + extra[k]) / total_strong,
                (base_correct + gain[k]) / n,
                threshold,
            )
        )
    return points


def random_curve(outcomes: Outcomes, steps: int = 20) -> list[Point]:
    """The expected curve of sending a random share of the prompts to the strong model."""
    total_strong = float(outcomes.strong_cost.sum())
    weak_cost = float(outcomes.weak_cost.sum())
    points = []
    for i in range(steps + 1):
        s = i / steps
        points.append(
            Point(
                s,
                ((1 - s) * weak_cost + s * total_strong) / total_strong,
                (1 - s) * outcomes.weak_accuracy + s * outcomes.strong_accuracy,
                float("nan"),
            )
        )
    return points


def oracle_scores(outcomes: Outcomes) -> Floats:
    """Scores that rank first the prompts only the strong model gets right (cheapest extra
    cost first), then those both or neither get right, last those only the weak one does:
    the best any router could do."""
    gain = outcomes.strong_correct.astype(int) - outcomes.weak_correct.astype(int)
    extra = outcomes.strong_cost - outcomes.weak_cost
    rank = np.argsort(np.argsort(extra, kind="stable"), kind="stable") / max(extra.size, 1)
    result: Floats = (1 - gain) + rank * 0.5
    return result


def cheapest_reaching(points: list[Point], accuracy: float) -> Point | None:
    """The lowest-cost point with at least ``accuracy`` (None if none reaches it)."""
    reaching = [p for p in points if p.accuracy >= accuracy - 1e-12]
    return min(reaching, key=lambda p: (p.cost_ratio, p.strong_share)) if reaching else None


def thin(points: list[Point], keep: int = 101, must: Point | None = None) -> list[Point]:
    """At most about ``keep`` points, evenly spread over the strong share, both ends and
    ``must`` kept: enough to draw the curve without one point per prompt."""
    if len(points) <= keep:
        chosen = list(points)
    else:
        shares = np.array([p.strong_share for p in points])
        picks = {int(np.abs(shares - t).argmin()) for t in np.linspace(0, 1, keep)}
        picks |= {0, len(points) - 1}
        chosen = [points[i] for i in sorted(picks)]
    if must is not None and must not in chosen:
        chosen = sorted([*chosen, must], key=lambda p: (p.strong_share, p.cost_ratio))
    return chosen


def random_reaching(outcomes: Outcomes, accuracy: float) -> Point | None:
    """The (expected) point of random routing that just reaches ``accuracy``."""
    weak, strong = outcomes.weak_accuracy, outcomes.strong_accuracy
    if accuracy <= weak:
        share = 0.0
    elif strong <= weak or accuracy > strong:
        return None
    else:
        share = (accuracy - weak) / (strong - weak)
    total_strong = float(outcomes.strong_cost.sum())
    cost = ((1 - share) * float(outcomes.weak_cost.sum()) + share * total_strong) / total_strong
    return Point(share, cost, max(accuracy, weak), float("nan"))
