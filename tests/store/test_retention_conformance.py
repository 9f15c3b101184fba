"""Retention, the same for every Store backend (the ``store`` fixture): what a pruning run
deletes from traces, the embedding cache, the cached question vectors, feedback, agent runs,
reviews and eval runs, and what it keeps."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from groundgate.config_retention import RetentionConfig, RetentionLimit
from groundgate.observe.metrics import Metrics
from groundgate.store.base import Store
from groundgate.store.knowledge import Vector
from groundgate.store.pruner import Pruner
from groundgate.store.retention import RETAINED_KINDS
from tests.store.test_trace_conformance import make_trace

DAY = 86400.0
OFF = RetentionLimit(max_age_days=0, max_rows=0)


def config(**limits: RetentionLimit) -> RetentionConfig:
    """Every limit off except those given; small batches, so a run takes several."""
    kinds = dict.fromkeys(RETAINED_KINDS, OFF)
    return RetentionConfig(batch_size=2, **(kinds | limits))


def only(**deleted: int) -> dict[str, int]:
    """A run's result: the rows given deleted, none of any other kind."""
    return dict.fromkeys(RETAINED_KINDS, 0) | deleted


def vector(seed: int) -> Vector:
    v = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return v / np.linalg.norm(v)


def metric_samples(text: str) -> dict[str, float]:
    """Prometheus exposition text as {'name{label="value"}': value}."""
    return {
        sample.name + "".join(f'{{{k}="{v}"}}' for k, v in sample.labels.items()): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def trace_ids(store: Store, candidates: dict[str, str]) -> set[str]:
    """Which of ``candidates`` (trace id -> tenant) are still stored."""
    return {i for i, tenant in candidates.items() if await store.get_trace(tenant, i)}


async def test_traces_past_the_age_go_and_newer_ones_stay(store: Store) -> None:
    now = time.time()
    ages = {"ancient": 90, "old": 31, "other-tenant-old": 40, "recent": 29, "new": 0}
    tenants = {i: "other" if i.startswith("other") else "default" for i in ages}
    await store.write_traces(
        [make_trace(i, tenant=tenants[i], created_at=now - d * DAY) for i, d in ages.items()]
    )
    metrics = Metrics(lambda _: True)
    pruner = Pruner(
        store.retention,
        config(traces=RetentionLimit(max_age_days=30, max_rows=0)),
        metrics,
        clock=lambda: now,
    )
    deleted = await pruner.run_once()
    assert deleted == only(traces=3)
    assert await trace_ids(store, tenants) == {"recent", "new"}
    # Usage of the pruned rows is gone with them; the kept rows still count.
    usage = await store.usage("default", 0, now + 1)
    assert sum(row["requests"] for row in usage) == 2
    samples = metric_samples(metrics.render().decode())
    assert samples['groundgate_retention_pruned_rows_total{kind="traces"}'] == 3
    assert samples['groundgate_retention_pruned_rows_total{kind="embeddings"}'] == 0
    assert samples["groundgate_retention_last_run_timestamp_seconds"] == now
    # A second run finds nothing more to do.
    assert await pruner.run_once() == only()


async def test_the_row_cap_keeps_the_newest(store: Store) -> None:
    now = time.time()
    # Two pairs share a timestamp: the cap is still exact (the key breaks the tie).
    times = {"t1": 1.0, "t2": 2.0, "t3a": 3.0, "t3b": 3.0, "t4": 4.0, "t5a": 5.0, "t5b": 5.0}
    tenants = dict.fromkeys(times, "default") | {"t4": "other"}
    await store.write_traces(
        [make_trace(i, tenant=tenants[i], created_at=now - 100 + t) for i, t in times.items()]
    )
    pruner = Pruner(
        store.retention, config(traces=RetentionLimit(max_age_days=0, max_rows=4)), clock=time.time
    )
    assert (await pruner.run_once())["traces"] == 3
    kept = await trace_ids(store, tenants)
    assert len(kept) == 4 and {"t4", "t5a", "t5b"} <= kept
    assert kept & {"t3a", "t3b"} and not kept & {"t1", "t2"}


async def test_age_and_cap_together_cut_at_the_stricter(store: Store) -> None:
    now = time.time()
    ages = {"a": 10, "b": 5, "c": 3, "d": 2, "e": 1}
    await store.write_traces([make_trace(i, created_at=now - d * DAY) for i, d in ages.items()])
    tenants = dict.fromkeys(ages, "default")
    # The age would keep c, d, e; the cap keeps only two.
    limit = RetentionLimit(max_age_days=4, max_rows=2)
    await Pruner(store.retention, config(traces=limit), clock=lambda: now).run_once()
    assert await trace_ids(store, tenants) == {"d", "e"}
    # The cap would keep everything left; the age removes d.
    limit = RetentionLimit(max_age_days=1.5, max_rows=10)
    await Pruner(store.retention, config(traces=limit), clock=lambda: now).run_once()
    assert await trace_ids(store, tenants) == {"e"}


async def test_question_vectors_and_document_vectors_are_kept_apart(store: Store) -> None:
    ks = store.knowledge
    await ks.put_embeddings("m", {"doc-old": vector(1)})
    await ks.put_embeddings("m", {"q-old": vector(2)}, questions=True)
    await asyncio.sleep(0.02)
    cut = time.time()
    await asyncio.sleep(0.02)
    await ks.put_embeddings("m", {"doc-new": vector(3)})
    await ks.put_embeddings("m", {"q-new": vector(4)}, questions=True)
    hashes = ["doc-old", "q-old", "doc-new", "q-new"]

    # One day past the cut, questions kept for a day lose the older one; documents stay.
    day = RetentionLimit(max_age_days=1, max_rows=0)
    pruner = Pruner(store.retention, config(question_vectors=day), clock=lambda: cut + DAY)
    assert await pruner.run_once() == only(question_vectors=1)
    assert set(await ks.get_embeddings("m", hashes)) == {"doc-old", "doc-new", "q-new"}

    # The same limit on documents removes the older document only.
    pruner = Pruner(store.retention, config(embeddings=day), clock=lambda: cut + DAY)
    assert await pruner.run_once() == only(embeddings=1)
    got = await ks.get_embeddings("m", hashes)
    assert set(got) == {"doc-new", "q-new"}
    assert np.array_equal(got["q-new"], vector(4))


async def test_vector_cap_is_exact_within_one_batch_write(store: Store) -> None:
    # One put stamps every vector with the same time: the cap still keeps exactly N.
    hashes = [f"h{i:02d}" for i in range(9)]
    await store.knowledge.put_embeddings("m", {h: vector(i) for i, h in enumerate(hashes)})
    await asyncio.sleep(0.01)
    await store.knowledge.put_embeddings("other", {"y": vector(98)})  # the newest document
    await store.knowledge.put_embeddings("other", {"x": vector(99)}, questions=True)
    cap = RetentionLimit(max_age_days=0, max_rows=4)
    pruner = Pruner(store.retention, config(embeddings=cap), clock=time.time)
    assert (await pruner.run_once())["embeddings"] == 6  # the cap counts every model's
    left = await store.knowledge.get_embeddings("m", hashes)
    assert set(left) == set(hashes[-3:])  # ties go in key order
    assert set(await store.knowledge.get_embeddings("other", ["x", "y"])) == {"x", "y"}


async def test_nothing_to_prune_deletes_nothing(store: Store) -> None:
    await store.write_traces([make_trace("kept")])
    await store.knowledge.put_embeddings("m", {"h": vector(1)}, questions=True)
    deleted = await Pruner(store.retention, RetentionConfig()).run_once()
    assert deleted == only()
    assert await store.get_trace("default", "kept") is not None
    assert await store.knowledge.get_embeddings("m", ["h"])
