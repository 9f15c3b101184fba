"""The eval cache on a real Container against the fake upstream: a re-run of unchanged cases
makes no upstream call, a config change misses; stored runs become the gateway's gauges."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from groundgate.config import Settings, load_settings
from groundgate.container import Container
from groundgate.evals.app_answerer import AppAnswerer
from groundgate.evals.cache import SQLiteEvalCache
from groundgate.evals.dataset import EvalCase
from groundgate.evals.history import store_run
from groundgate.evals.runner import run_eval
from groundgate.retrieval.documents import SourceDocument
from groundgate.testing.fake_upstream import FakeUpstream

CONFIG = """
[store]
path = "{tmp}/g.db"
[cache]
enabled = false
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.upm]
deployments = ["up:m"]
[prices."up:m"]
input_per_mtok = 1000.0
output_per_mtok = 1000.0
[apps.bot]
knowledge_base = "kb"
model = "upm"
"""

CASES = [
    EvalCase(id=f"c{i}", question=q)
    for i, q in enumerate(("Where are traces kept?", "Which port?", "What is cached?"))
]


async def started(settings: Settings) -> Container:
    runtime = Container(settings)
    await runtime.start()
    return runtime


@pytest.fixture
async def settings(tmp_path: Path, fake_upstream: FakeUpstream) -> AsyncIterator[Settings]:
    path = tmp_path / "g.toml"
    path.write_text(CONFIG.format(tmp=tmp_path, fake=fake_upstream.url))
    settings = load_settings(path)
    runtime = await started(settings)
    try:
        text = "Traces are kept in SQLite. The server listens on port 8080. Answers are cached."
        doc = SourceDocument(id="notes.md", text=text, title="Notes", source="notes.md")
        await runtime.ingestor("kb").ingest("default", "kb", [doc])
    finally:
        await runtime.stop()
    yield settings


async def test_a_rerun_of_unchanged_cases_makes_no_upstream_call(
    settings: Settings, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    cache = SQLiteEvalCache(tmp_path / "cache.sqlite")
    runtime = await started(settings)
    try:
        first = await run_eval(CASES, AppAnswerer(runtime, "bot"), cache=cache, progress=False)
        calls = fake_upstream.stats()["received"]
        assert calls >= len(CASES) and first.metrics["errors"] == 0
        assert first.cached_cases == 0 and first.answerer_calls == len(CASES)
        assert first.rerun_cost_usd > 0 and first.config_digest is not None
        assert first.model_versions == {"upm": ["up:m"]}

        again = await run_eval(
            CASES, AppAnswerer(runtime, "bot"), cache=cache, progress=False, app="bot", dataset="g"
        )
        assert fake_upstream.stats()["received"] == calls  # not one request upstream
        assert again.cached_cases == len(CASES) and again.answerer_calls == 0
        assert all(r.cached for r in again.per_case)
        assert again.rerun_cost_usd == 0
        # The recorded cost and answers stay: the report is the same evaluation.
        assert again.metrics["cost_usd_total"] == first.metrics["cost_usd_total"]
        assert [r.answer for r in again.per_case] == [r.answer for r in first.per_case]

        # The latest stored run is exported as gauges (refreshed from the store, not per scrape).
        await store_run(runtime.store.eval_runs, again)
        await runtime.eval_metrics.refresh()
        text = runtime.render_metrics().decode()
        assert (
            'groundgate_eval_score{app="bot",dataset="g",metric="abstention_accuracy"} 1.0' in text
        )
        assert 'groundgate_eval_cost_usd{app="bot",dataset="g"}' in text
    finally:
        await runtime.stop()

    # Any change to what the answers depend on misses: here the app retrieves fewer passages.
    apps = {**settings.apps, "bot": settings.apps["bot"].model_copy(update={"top_k": 2})}
    changed = await started(settings.model_copy(update={"apps": apps}))
    try:
        miss = await run_eval(CASES, AppAnswerer(changed, "bot"), cache=cache, progress=False)
        assert miss.cached_cases == 0 and fake_upstream.stats()["received"] >= calls + len(CASES)
        assert miss.config_digest != first.config_digest
    finally:
        await changed.stop()
        cache.close()
