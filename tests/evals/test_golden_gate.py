"""The project's own CI gate (``make eval-gate``): the golden set for the bundled docs app,
on the sample knowledge base and the local model, passes against the committed baseline."""

from __future__ import annotations

from pathlib import Path

from groundgate.cli.grounding import sample_docs_path
from groundgate.config import load_settings
from groundgate.container import Container
from groundgate.evals.app_answerer import AppAnswerer
from groundgate.evals.compare import compare_runs
from groundgate.evals.dataset import load_dataset
from groundgate.evals.report import load_report
from groundgate.evals.runner import run_eval
from groundgate.retrieval.loaders import load_path

GOLDEN = Path(__file__).parents[2] / "evals" / "golden"


async def test_the_golden_set_passes_the_gate_on_the_committed_baseline(tmp_path: Path) -> None:
    settings = load_settings(None)
    settings = settings.model_copy(
        update={"store": settings.store.model_copy(update={"path": str(tmp_path / "g.db")})}
    )
    runtime = Container(settings)
    await runtime.start()
    try:
        docs, failures = load_path(sample_docs_path())
        assert not failures
        kb = settings.apps["docs"].knowledge_base
        await runtime.ingestor(kb).ingest("default", kb, docs)
        cases = load_dataset(GOLDEN / "docs.jsonl")
        assert 20 <= len(cases) <= 40
        report = await run_eval(cases, AppAnswerer(runtime, "docs"), progress=False, app="docs")
    finally:
        await runtime.stop()
    baseline = load_report(GOLDEN / "docs-baseline.json")
    gate = compare_runs(baseline, report)
    assert gate.passed, [m.to_dict() for m in gate.failures]
    # Deterministic: the same answers, so not one case moved.
    assert gate.matched == len(cases) and gate.flips == []
