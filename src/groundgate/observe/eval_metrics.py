"""The latest stored evaluation run's scores as Prometheus gauges, on the gateway's registry
(``observe/metrics.py``), so eval results sit on the same dashboards as the traffic:

* ``groundgate_eval_score{app,dataset,metric}``: each quality metric of the newest run per
  app and dataset (shares in [0, 1], higher is better);
* ``groundgate_eval_cost_usd{app,dataset}``: that run's recorded cost;
* ``groundgate_eval_run_timestamp_seconds{app,dataset}``: when it ran.

The gauges are refreshed from the store when the gateway starts and every
:data:`REFRESH_EVERY_S` after (never on a scrape: a scrape must not query the store). Labels
are bounded by the stored runs (apps and datasets someone evaluated), not by traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CollectorRegistry, Gauge

from groundgate.store.eval_runs import EvalRunRecord, EvalRunStore

REFRESH_EVERY_S = 60.0
TENANT = "default"
# Runs read per refresh: the newest per app and dataset is among them unless hundreds of
# other runs came after it.
SCAN = 500
_NOT_SCORES = ("errors",)

log = logging.getLogger(__name__)


def is_score(name: str) -> bool:
    return not (name.endswith("_ms") or name.startswith("cost_usd") or name in _NOT_SCORES)


def latest_per_target(runs: list[EvalRunRecord]) -> dict[tuple[str, str], EvalRunRecord]:
    """The newest run per (app, dataset) of ``runs`` (given newest first)."""
    latest: dict[tuple[str, str], EvalRunRecord] = {}
    for run in runs:
        latest.setdefault((run.app, run.dataset), run)
    return latest


class EvalMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.score = Gauge(
            "groundgate_eval_score",
            "A quality metric of the latest stored eval run of an app on a dataset.",
            ["app", "dataset", "metric"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.cost = Gauge(
            "groundgate_eval_cost_usd",
            "The recorded cost of the latest stored eval run of an app on a dataset.",
            ["app", "dataset"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.when = Gauge(
            "groundgate_eval_run_timestamp_seconds",
            "When the latest stored eval run of an app on a dataset ran (Unix time).",
            ["app", "dataset"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )

    def show(self, latest: dict[tuple[str, str], EvalRunRecord]) -> None:
        for gauge in (self.score, self.cost, self.when):
            gauge.clear()  # a metric a newer run no longer has must not linger
        for (app, dataset), run in latest.items():
            for name, value in run.metrics.items():
                if value is not None and is_score(name):
                    self.score.labels(app, dataset, name).set(float(value))
            self.cost.labels(app, dataset).set(run.cost_usd)
            self.when.labels(app, dataset).set(run.created_at)


class EvalMetricsRefresher:
    """Keeps :class:`EvalMetrics` at the store's latest runs."""

    def __init__(
        self, runs: EvalRunStore, metrics: EvalMetrics, every_s: float = REFRESH_EVERY_S
    ) -> None:
        self.runs = runs
        self.metrics = metrics
        self.every_s = every_s
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        runs = await self.runs.list_eval_runs(TENANT, limit=SCAN)
        self.metrics.show(latest_per_target(runs))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._forever())

    async def _forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a store hiccup must not end the refreshing
                log.warning("eval metrics: reading the stored runs failed", exc_info=True)
            await asyncio.sleep(self.every_s)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
