"""Every evaluation run, stored (:mod:`groundgate.store.eval_runs`), and its trends: the
record made from a report, a stored run read back as a report (``eval compare`` takes a
report file or a stored run's id), and the history table of ``groundgate eval history``."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import PurePath

from rich.markup import escape
from rich.table import Table

from groundgate.evals.report import EvalReport, ReportError, format_metric
from groundgate.store.eval_runs import EvalRunRecord, EvalRunStore

TENANT = "default"
DEFAULT_METRICS = ("exact", "f1", "rules_pass", "abstention_accuracy", "mrr")
_SPARKS = "▁▂▃▄▅▆▇█"


def new_run_id() -> str:
    return "eval_" + secrets.token_hex(8)


def record_from_report(
    report: EvalReport, *, tenant: str = TENANT, run_id: str | None = None
) -> EvalRunRecord:
    try:
        created = datetime.fromisoformat(report.created_at).timestamp()
    except ValueError:
        created = datetime.now(UTC).timestamp()
    cost = report.metrics.get("cost_usd_total")
    return EvalRunRecord(
        id=run_id or new_run_id(),
        tenant=tenant,
        created_at=created,
        app=report.app or "",
        dataset=report.dataset or "",
        dataset_hash=report.dataset_hash,
        config_digest=report.config_digest,
        prompt_versions=dict(report.prompt_versions),
        model_versions={m: list(d) for m, d in report.model_versions.items()},
        variant=report.variant,
        cases=report.cases,
        metrics=dict(report.metrics),
        coverage=dict(report.coverage),
        cost_usd=float(cost or 0.0),
        rerun_cost_usd=report.rerun_cost_usd,
        report=report.to_dict(),
    )


async def store_run(store: EvalRunStore, report: EvalReport, *, tenant: str = TENANT) -> str:
    """Store ``report`` as a run; returns its id."""
    record = record_from_report(report, tenant=tenant)
    await store.add_eval_run(record)
    return record.id


async def stored_report(store: EvalRunStore, run_id: str, *, tenant: str = TENANT) -> EvalReport:
    record = await store.get_eval_run(tenant, run_id)
    if record is None:
        raise ReportError(f"no report file or stored eval run named {run_id!r}")
    return EvalReport.model_validate(record.report)


def sparkline(values: Sequence[float | None]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = high - low
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            level = 0 if span == 0 else round((v - low) / span * (len(_SPARKS) - 1))
            out.append(_SPARKS[level])
    return "".join(out)


def shown_metrics(runs: Sequence[EvalRunRecord], wanted: Sequence[str] | None) -> list[str]:
    """The metrics asked for, else the default ones that some run has a value for."""
    if wanted:
        return list(wanted)
    return [m for m in DEFAULT_METRICS if any(r.metrics.get(m) is not None for r in runs)]


def history_table(runs: Sequence[EvalRunRecord], metrics: Sequence[str]) -> Table:
    """``runs`` oldest first; each metric's value and its change from the previous run."""
    table = Table(title=f"Eval history: {len(runs)} runs, oldest first")
    for column in ("run", "when", "app", "dataset", "cases", "config", "prompt"):
        table.add_column(column, justify="right" if column == "cases" else "left")
    for name in metrics:
        table.add_column(escape(name), justify="right")
    table.add_column("cost", justify="right")
    previous: EvalRunRecord | None = None
    for run in runs:
        cells = [
            escape(run.id),
            datetime.fromtimestamp(run.created_at, UTC).strftime("%m-%d %H:%M"),
            escape(run.app + (f" ({run.variant})" if run.variant else "")),
            escape(PurePath(run.dataset).name),
            str(run.cases),
            (run.config_digest or "")[:6],
            escape(", ".join(sorted(set(run.prompt_versions.values())))),
        ]
        for name in metrics:
            cells.append(_with_delta(name, run, previous))
        cells.append(format_metric("cost_usd_total", run.cost_usd))
        table.add_row(*cells)
        previous = run
    if len(runs) > 1:
        trend = ["trend", "", "", "", "", "", ""]
        trend += [sparkline([_value(r, name) for r in runs]) for name in metrics]
        table.add_row(*trend, "")
    return table


def _value(run: EvalRunRecord, name: str) -> float | None:
    value = run.metrics.get(name)
    return None if value is None else float(value)


def _with_delta(name: str, run: EvalRunRecord, previous: EvalRunRecord | None) -> str:
    now = _value(run, name)
    text = (
        format_metric(name, now)
        if name.endswith("_ms")
        else f"{now:.3f}"
        if now is not None
        else "-"
    )
    before = None if previous is None else _value(previous, name)
    if now is None or before is None:
        return text
    delta = now - before
    if abs(delta) < 1e-12:
        return text
    lower_is_better = name.endswith("_ms") or name.startswith("cost_usd") or name == "errors"
    better = delta < 0 if lower_is_better else delta > 0
    style = "green" if better else "red"
    return f"{text} [{style}]{delta:+.3f}[/]"
