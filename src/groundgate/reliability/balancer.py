"""The order in which a model's deployments are tried.

The first deployment in the order takes the request; the rest are its fallback chain. Every
strategy returns every deployment exactly once, so balancing never shortens the chain.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")

# Weight of the newest sample in the latency EWMA. 0.2 means roughly the last ~10 calls matter
# (a sample's weight halves every ~3 calls): quick to notice a slow deployment, not so jumpy
# that one slow outlier reorders everything.
EWMA_ALPHA = 0.2


class Strategy(StrEnum):
    ORDERED = "ordered"
    WEIGHTED = "weighted"
    LEAST_IN_FLIGHT = "least_in_flight"
    LATENCY = "latency"


@dataclass
class DeploymentStats:
    """Live numbers for one deployment, shared by all requests (one event loop: no locks)."""

    in_flight: int = 0
    ewma_latency_ms: float | None = None

    def started(self) -> None:
        self.in_flight += 1

    def finished(self, latency_ms: float | None) -> None:
        """A call ended. ``latency_ms`` is None for failures: a fast error must not make a
        broken deployment look like the quickest one."""
        self.in_flight = max(0, self.in_flight - 1)
        if latency_ms is None:
            return
        if self.ewma_latency_ms is None:
            self.ewma_latency_ms = latency_ms
        else:
            self.ewma_latency_ms = EWMA_ALPHA * latency_ms + (1 - EWMA_ALPHA) * self.ewma_latency_ms


class Balancer:
    def __init__(
        self,
        strategy: Strategy,
        weights: Sequence[float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if weights is not None:
            for w in weights:
                if not (w >= 0 and math.isfinite(w)):
                    raise ValueError(f"weights must be finite numbers >= 0, got {w!r}")
        self.strategy = Strategy(strategy)
        # None means equal weights (WEIGHTED then spreads load evenly).
        self.weights = list(weights) if weights is not None else None
        self._rng = rng if rng is not None else random.Random()

    def order(self, deployments: Sequence[T], stats: Sequence[DeploymentStats]) -> list[T]:
        """ORDERED: as given. WEIGHTED: weighted random sampling without replacement; zero-weight
        deployments last, in config order. LEAST_IN_FLIGHT: ascending ``in_flight``, ties in
        config order. LATENCY: deployments with no measurement yet first (config order, so new
        ones get measured), then ascending EWMA latency, ties in config order."""
        n = len(deployments)
        if len(stats) != n:
            raise ValueError(f"{n} deployments but {len(stats)} stats")
        indices = list(range(n))
        if self.strategy is Strategy.WEIGHTED:
            indices = self._weighted(n)
        elif self.strategy is Strategy.LEAST_IN_FLIGHT:
            indices.sort(key=lambda i: stats[i].in_flight)  # sort is stable: ties keep order
        elif self.strategy is Strategy.LATENCY:
            unknown = [i for i in indices if stats[i].ewma_latency_ms is None]
            known = [i for i in indices if stats[i].ewma_latency_ms is not None]
            known.sort(key=lambda i: stats[i].ewma_latency_ms or 0.0)
            indices = unknown + known
        return [deployments[i] for i in indices]

    def _weighted(self, n: int) -> list[int]:
        weights = self.weights if self.weights is not None else [1.0] * n
        if len(weights) != n:
            raise ValueError(f"{n} deployments but {len(weights)} weights")
        pool = [i for i in range(n) if weights[i] > 0]
        zero = [i for i in range(n) if weights[i] <= 0]
        picked: list[int] = []
        # Draw one at a time in proportion to the weights left: O(n^2), n is a handful.
        while pool:
            total = sum(weights[i] for i in pool)
            target = self._rng.random() * total
            chosen = len(pool) - 1  # if float rounding walks past the end, take the last one
            for pos, i in enumerate(pool):
                target -= weights[i]
                if target < 0:
                    chosen = pos
                    break
            picked.append(pool.pop(chosen))
        return picked + zero
