"""Evaluation runs as stored (``groundgate eval`` writes one per run unless ``--no-store``):
what was evaluated (app, dataset and its hash, config digest, prompt and model versions),
the aggregate metrics with their coverage, the cost, and the whole report, so any two stored
runs compare case by case (``groundgate eval compare RUN_A RUN_B``), ``groundgate eval
history`` shows trends, and the gateway exports the latest scores as gauges.

A run belongs to one tenant and every query names it. Listing is newest first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class EvalRunRecord:
    id: str
    tenant: str
    created_at: float
    app: str  # the app evaluated ("" when the answerer was not an app)
    dataset: str  # the dataset's path as given
    dataset_hash: str | None
    config_digest: str | None
    prompt_versions: dict[str, str] = field(default_factory=dict)
    model_versions: dict[str, list[str]] = field(default_factory=dict)
    variant: str | None = None
    cases: int = 0
    metrics: dict[str, float | int | None] = field(default_factory=dict)
    coverage: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0  # recorded cost of every case's answer (cached ones included)
    rerun_cost_usd: float = 0.0  # what the run itself spent
    report: dict[str, Any] = field(default_factory=dict)  # the EvalReport as JSON


class EvalRunStore(Protocol):
    async def add_eval_run(self, run: EvalRunRecord) -> None: ...

    async def get_eval_run(self, tenant: str, run_id: str) -> EvalRunRecord | None: ...

    async def list_eval_runs(
        self,
        tenant: str,
        *,
        app: str | None = None,
        dataset: str | None = None,
        limit: int = 20,
        with_report: bool = False,
    ) -> list[EvalRunRecord]:
        """Newest first (``created_at``, ``id`` descending). Without ``with_report`` the
        records' ``report`` is empty (a listing need not carry every case)."""
        ...


EVAL_RUN_COLUMNS = "tenant, id, created_at, app, dataset, dataset_hash, config_digest, data"
EVAL_RUN_COLUMN_COUNT = 8
_IN_COLUMNS = ("tenant", "id", "created_at", "app", "dataset", "dataset_hash", "config_digest")


def eval_run_row(run: EvalRunRecord, json_value: Callable[[Any], Any]) -> tuple[Any, ...]:
    """The run as a row in ``EVAL_RUN_COLUMNS`` order, then the report's JSON value."""
    data = asdict(run)
    for name in (*_IN_COLUMNS, "report"):
        data.pop(name)
    return (
        run.tenant,
        run.id,
        run.created_at,
        run.app,
        run.dataset,
        run.dataset_hash,
        run.config_digest,
        json_value(data),
        json_value(run.report),
    )


def eval_run_from_row(
    row: Sequence[Any], json_value: Callable[[Any], Any], report: Any = None
) -> EvalRunRecord:
    data = json_value(row[7])
    return EvalRunRecord(
        tenant=row[0],
        id=row[1],
        created_at=row[2],
        app=row[3],
        dataset=row[4],
        dataset_hash=row[5],
        config_digest=row[6],
        report={} if report is None else json_value(report),
        **data,
    )
