"""Bounded label sets: a metric's series are capped, whatever its labels are fed.

Each label set of a metric is a series the process keeps for its whole life (and a scrape
returns every one): a label fed by client input — a model name, a tenant, a path — grows
memory and scrape size without end (LiteLLM leaked memory through per-request labels).
Label values come from configuration or code wherever the gateway records them, and
:class:`BoundedChildren` is the net under that: past ``limit`` label sets a metric counts
every new one under a single overflow set whose values all read ``other``, so its series
stay at ``limit + 1`` and totals stay right.
"""

from __future__ import annotations

from typing import Any, Protocol

OVERFLOW = "other"
# Label sets per metric. Configured names (models x endpoints x statuses x sources ...) stay
# far below this on a real deployment; it is a safety net, not a budget.
MAX_LABEL_SETS = 1000


class Labelled(Protocol):
    def labels(self, *labelvalues: str) -> Any: ...


class BoundedChildren:
    def __init__(self, limit: int = MAX_LABEL_SETS) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        # Remembered children: ``labels`` takes a lock and builds its key on every call, and
        # every request makes several.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._sets: dict[int, int] = {}  # label sets per metric (by id)
        self.overflowed: set[int] = set()  # metrics (by id) that have folded a label set

    def get(self, metric: Labelled, labels: tuple[str, ...]) -> Any:
        """``metric.labels(*labels)``, or the overflow child once the metric is full."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is not None:
            return child
        metric_id = id(metric)
        count = self._sets.get(metric_id, 0)
        if count >= self.limit:
            self.overflowed.add(metric_id)
            overflow = (metric_id, (OVERFLOW,) * len(labels))
            child = self._children.get(overflow)
            if child is None:
                child = self._children[overflow] = metric.labels(*overflow[1])
            return child
        self._sets[metric_id] = count + 1
        child = self._children[key] = metric.labels(*labels)
        return child
