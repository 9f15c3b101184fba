"""One conformance suite for every EvalRunStore backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses

from groundgate.evals.history import history_table, record_from_report
from groundgate.evals.report import CaseRecord, EvalReport
from groundgate.store.base import Store
from groundgate.store.eval_runs import EvalRunRecord


def record(
    created_at: float, f1: float, *, app: str = "docs", tenant: str = "default"
) -> EvalRunRecord:
    report = EvalReport(
        dataset="golden.jsonl",
        app=app,
        created_at="2025-01-01T00:00:00+00:00",
        cases=1,
        metrics={"f1": f1, "mrr": None},
        coverage={"f1": 1, "mrr": 0},
        per_case=[CaseRecord(id="c1", question="Why \x00?", scores={"f1": f1})],
        dataset_hash="abc",
        config_digest="cfg",
        prompt_versions={"answer": "grounded-answer@1"},
        model_versions={"local": ["local:extractive"]},
    )
    run = record_from_report(report, tenant=tenant)
    return dataclasses.replace(run, created_at=created_at)


async def test_runs_round_trip_and_list_newest_first_by_app(store: Store) -> None:
    old, new = record(100.0, 0.5), record(200.0, 0.75)
    other_app, other_tenant = record(300.0, 0.1, app="bot"), record(400.0, 0.2, tenant="acme")
    for run in (old, new, other_app, other_tenant):
        await store.eval_runs.add_eval_run(run)

    got = await store.eval_runs.get_eval_run("default", new.id)
    assert got is not None
    assert got.metrics == {"f1": 0.75, "mrr": None} and got.coverage == {"f1": 1, "mrr": 0}
    assert got.prompt_versions == {"answer": "grounded-answer@1"}
    assert got.model_versions == {"local": ["local:extractive"]}
    assert (got.dataset, got.dataset_hash, got.config_digest) == ("golden.jsonl", "abc", "cfg")
    assert EvalReport.model_validate(got.report).per_case[0].scores == {"f1": 0.75}
    assert await store.eval_runs.get_eval_run("acme", new.id) is None

    listed = await store.eval_runs.list_eval_runs("default", app="docs")
    assert [r.id for r in listed] == [new.id, old.id]
    assert all(r.report == {} for r in listed)  # a listing leaves the reports out
    everything = await store.eval_runs.list_eval_runs("default", limit=2, with_report=True)
    assert [r.id for r in everything] == [other_app.id, new.id] and everything[0].report
    assert [r.id for r in await store.eval_runs.list_eval_runs("acme")] == [other_tenant.id]


def test_history_table_shows_each_metric_with_its_change() -> None:
    from io import StringIO

    from rich.console import Console

    buffer = StringIO()
    Console(file=buffer, width=200, color_system=None).print(
        history_table([record(100.0, 0.5), record(200.0, 0.75)], ["f1"])
    )
    text = buffer.getvalue()
    assert "0.500" in text and "0.750 +0.250" in text and "▁█" in text
