"""The arithmetic of drift: running sums over a window and a baseline, and the distance
between them. O(1) memory per signal whatever the traffic: a count and a sum (a vector sum for
embeddings), never the samples.

A window fills until it holds ``window_requests`` samples, or until ``window_s`` has passed
with at least ``min_samples`` in it; then it closes. The first ``baseline_windows`` closed
windows are pooled into the baseline. Each one after that becomes the *current* window: its
distance from the baseline is the drift; with ``baseline_decay`` the baseline then moves that
fraction of the way towards it (an exponentially slow baseline), else it stays as learned.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, Self, TypeVar

import numpy as np
from numpy.typing import NDArray


class Sums(Protocol):
    """A running sum of samples of one kind."""

    count: int

    def merge(self, other: Self) -> None: ...

    def blend(self, other: Self, weight: float) -> None:
        """Move this mean ``weight`` of the way towards ``other``'s (keeping the count)."""
        ...

    def distance(self, other: Self) -> float: ...


class ScalarSums:
    """Numbers (a score, 0/1 for a rate): the distance is the difference of the means."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def merge(self, other: ScalarSums) -> None:
        self.count += other.count
        self.total += other.total

    def blend(self, other: ScalarSums, weight: float) -> None:
        self.total = ((1 - weight) * self.mean() + weight * other.mean()) * self.count

    def distance(self, other: ScalarSums) -> float:
        return abs(self.mean() - other.mean())


class VectorSums:
    """Embeddings: the distance is the cosine distance between the two windows' mean
    directions, with the sampling noise taken out.

    The plain cosine between two centroids of n questions each is biased low by noise that
    grows with how spread the questions are and shrinks with n (measured with the default
    embedder on Quora questions: 0.065 between two windows of 200 from the same mix, 0.026 at
    500), so a bound would hold for one window size only. Here each centroid's squared length
    is estimated without bias, (|sum|^2 - sum of |x|^2) / (n (n - 1)), and the cosine is the
    centroids' dot product (already unbiased: the windows are independent) over the two:
    same-mix windows then sit near 0 at every size (at most 0.02 at 200, 0.002 at 500), and a
    shift reads about the same whatever the window (bench/drift.py, README "Drift")."""

    __slots__ = ("count", "squares", "total")

    def __init__(self, dims: int) -> None:
        self.count = 0
        self.total: NDArray[np.float64] = np.zeros(dims, dtype=np.float64)
        self.squares = 0.0  # the sum of the vectors' squared lengths (n for unit vectors)

    def add(self, vector: NDArray[np.floating[Any]]) -> None:
        self.count += 1
        self.total += vector  # in place: no allocation per request
        self.squares += float(np.dot(vector, vector))

    def merge(self, other: VectorSums) -> None:
        self.count += other.count
        self.total += other.total
        self.squares += other.squares

    def blend(self, other: VectorSums, weight: float) -> None:
        # The moved baseline is taken as n samples of the blended mixture (approximately).
        n, m = max(self.count, 1), max(other.count, 1)
        self.total = ((1 - weight) * self.total / n + weight * other.total / m) * self.count
        self.squares = ((1 - weight) * self.squares / n + weight * other.squares / m) * self.count

    def squared_length(self) -> float:
        """An unbiased estimate of the squared length of the mean the samples were drawn
        around (0 or less: no direction can be told from the noise)."""
        n = self.count
        if n < 2:
            return 0.0
        return (float(np.dot(self.total, self.total)) - self.squares) / (n * (n - 1))

    def distance(self, other: VectorSums) -> float:
        ours, theirs = self.squared_length(), other.squared_length()
        if ours <= 0.0 or theirs <= 0.0:
            return 1.0  # as if orthogonal: no direction to compare can be told from the noise
        dot = float(np.dot(self.total, other.total)) / (self.count * other.count)
        return min(2.0, max(0.0, 1.0 - dot / math.sqrt(ours * theirs)))


S = TypeVar("S", bound=Sums)


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    window_requests: int
    window_s: float
    min_samples: int
    baseline_windows: int
    baseline_decay: float = 0.0


@dataclass(frozen=True, slots=True)
class Comparison(Generic[S]):
    """A closed window and the baseline it was compared with."""

    drift: float
    current: S
    baseline: S


class DriftWindows(Generic[S]):
    """One signal of one target: the window filling now, the baseline, and the last
    comparison. Per request: a sample added to ``open``, then ``added``; the rest happens once
    per window."""

    __slots__ = ("_new", "baseline", "baseline_windows", "last", "open", "opened", "policy")

    def __init__(self, policy: WindowPolicy, new: Callable[[], S]) -> None:
        self.policy = policy
        self._new = new
        self.open: S = new()
        self.opened: float | None = None  # when the open window got its first sample
        self.baseline: S = new()
        self.baseline_windows = 0  # closed windows pooled into the baseline so far
        self.last: Comparison[S] | None = None

    @property
    def ready(self) -> bool:
        """The baseline is complete: closed windows are compared with it."""
        return self.baseline_windows >= self.policy.baseline_windows

    def added(self, now: float) -> Comparison[S] | None:
        """A sample went into ``open`` at ``now``: close the window if it is due. Returns the
        comparison when a window closed against a complete baseline."""
        if self.opened is None:
            self.opened = now
        count = self.open.count
        policy = self.policy
        if count >= policy.window_requests or (
            count >= policy.min_samples and now - self.opened >= policy.window_s
        ):
            return self.close()
        return None

    def close(self) -> Comparison[S] | None:
        """Close the open window: into the baseline while that is being learned, else compared
        with it (the comparison is returned and kept as ``last``)."""
        closed, self.open, self.opened = self.open, self._new(), None
        if not self.ready:
            self.baseline.merge(closed)
            self.baseline_windows += 1
            return None
        comparison = Comparison(closed.distance(self.baseline), closed, self.baseline)
        if self.policy.baseline_decay > 0:
            # The comparison keeps the baseline it was made with; the next sees the moved one.
            moved = self._new()
            moved.merge(self.baseline)
            moved.blend(closed, self.policy.baseline_decay)
            self.baseline = moved
        self.last = comparison
        return comparison
