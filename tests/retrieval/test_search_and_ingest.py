"""Retrieval and ingestion over a real SQLite store and the real local embedder (or the fake
upstream as an embeddings API, to make it fail on cue)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from groundgate.config import KnowledgeBaseConfig, load_settings
from groundgate.config_retention import RetentionConfig, RetentionLimit
from groundgate.container import Container
from groundgate.errors import ProviderError
from groundgate.observe.trace import Trace, new_trace_id
from groundgate.retrieval.documents import SourceDocument
from groundgate.retrieval.embedding import content_hash
from groundgate.store.pruner import Pruner
from groundgate.testing.fake_upstream import Behavior, FakeUpstream

DOCS = [
    SourceDocument(
        id="manual.md",
        format="markdown",
        title="Admin manual",
        source="manual.md",
        text="# Admin manual\n\n## Installation\n\n### From source\n\nClone the "
        "repository and run the build script.\n\n## Billing\n\nInvoices are "
        "sent monthly. The repository of invoices is kept for ten years.\n",
    ),
    SourceDocument(
        id="faq.md",
        title="FAQ",
        source="faq.md",
        metadata={"lang": "en"},
        text="The cafeteria serves lunch from noon until two. Parking is free "
        "for visitors on weekends.",
    ),
    SourceDocument(
        id="weather.txt",
        title="Weather",
        source="weather.txt",
        metadata={"lang": "de"},
        text="Heavy rain and strong winds are expected in the mountains tomorrow.",
    ),
]


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Container]:
    path = tmp_path / "g.toml"
    path.write_text(f'[store]\npath = "{tmp_path}/kb.db"\n')
    rt = Container(load_settings(path))
    await rt.start()
    yield rt
    await rt.stop()


def config(**overrides: object) -> KnowledgeBaseConfig:
    return KnowledgeBaseConfig(**overrides)  # type: ignore[arg-type]


async def search_ids(rt: Container, query: str, **overrides: object) -> list[str]:
    result = await rt.retriever.search("t", "kb", query, config=config(**overrides), top_k=3)
    return [p.chunk.doc_id for p in result.passages]


async def test_modes_find_the_right_document(runtime: Container) -> None:
    results = await runtime.ingestor("kb").ingest("t", "kb", DOCS)
    assert [r.status for r in results] == ["added", "added", "added"]
    for mode in ("keyword", "dense", "hybrid"):
        ids = await search_ids(runtime, "when is lunch served in the cafeteria?", mode=mode)
        assert ids[0] == "faq.md", mode
    # Dense retrieval matches meaning without shared words.
    assert (await search_ids(runtime, "storm forecast", mode="dense"))[0] == "weather.txt"
    weighted = await search_ids(runtime, "storm forecast", mode="hybrid", fusion="weighted")
    assert weighted[0] == "weather.txt"


async def test_vectorless_routes_by_headings(runtime: Container) -> None:
    await runtime.ingestor("kb").ingest("t", "kb", DOCS)
    result = await runtime.retriever.search(
        "t",
        "kb",
        "repository from source",
        config=config(mode="vectorless", embedder=None),
        top_k=3,
    )
    top = result.passages[0].chunk
    assert top.heading_path[-1] == "From source"
    assert "dense" not in result.counts  # no embeddings involved


async def test_sentence_rerank_keeps_the_answer_on_top(runtime: Container) -> None:
    await runtime.ingestor("kb").ingest("t", "kb", DOCS)
    ids = await search_ids(runtime, "when is lunch served?", mode="hybrid", rerank="sentence")
    assert ids[0] == "faq.md"


async def test_filters_apply_to_every_mode(runtime: Container) -> None:
    await runtime.ingestor("kb").ingest("t", "kb", DOCS)
    for mode in ("keyword", "dense", "hybrid"):
        result = await runtime.retriever.search(
            "t",
            "kb",
            "lunch rain parking",
            config=config(mode=mode),
            top_k=5,
            filters={"lang": "de"},
        )
        assert {p.chunk.doc_id for p in result.passages} == {"weather.txt"}, mode


async def test_reingest_never_reembeds(runtime: Container) -> None:
    ingestor = runtime.ingestor("kb")
    await ingestor.ingest("t", "kb", DOCS)
    db = runtime.store.db  # type: ignore[attr-defined]
    count = await db.read(lambda c: c.execute("SELECT count(*) FROM embedding_cache").fetchone())
    results = await ingestor.ingest("t", "kb", DOCS)
    assert {r.status for r in results} == {"unchanged"}
    # A changed document re-embeds only its new text; the old chunks' vectors stay cached.
    edited = SourceDocument(
        id="faq.md",
        title="FAQ",
        source="faq.md",
        metadata={"lang": "en"},
        text=DOCS[1].text + " Coffee is free.",
    )
    assert (await ingestor.ingest("t", "kb", [edited]))[0].status == "updated"
    after = await db.read(lambda c: c.execute("SELECT count(*) FROM embedding_cache").fetchone())
    assert after[0] == count[0] + 1


async def test_a_query_vector_is_cached_in_the_background(runtime: Container) -> None:
    service = runtime.embeddings["all-minilm-l6-v2"]
    question = "How long do llamas sleep at night?"
    digest = content_hash(question)
    vector = await service.embed_one(question)
    await service.drain()  # the request did not wait for this write; shutdown does
    stored = await runtime.store.knowledge.get_embeddings(service.model_key, [digest])
    np.testing.assert_array_equal(stored[digest], vector)
    np.testing.assert_array_equal(await service.embed_one(question), vector)


async def test_question_vectors_age_out_before_document_vectors(runtime: Container) -> None:
    # Retention keeps question vectors for less time than ingested text's: each is saved as
    # what it is, so a week-long limit on questions leaves the knowledge base's cache alone.
    service = runtime.embeddings["all-minilm-l6-v2"]
    await runtime.ingestor("kb").ingest("t", "kb", DOCS[1:2])
    question = "Where do llamas park on weekends?"
    await service.embed_one(question)
    await service.drain()
    config = RetentionConfig(
        question_vectors=RetentionLimit(max_age_days=7, max_rows=0),
        embeddings=RetentionLimit(max_age_days=0, max_rows=0),
    )
    in_eight_days = time.time() + 8 * 86400
    deleted = await Pruner(runtime.store.retention, config, clock=lambda: in_eight_days).run_once()
    assert deleted["question_vectors"] == 1 and deleted["embeddings"] == 0
    digest = content_hash(question)
    assert await runtime.store.knowledge.get_embeddings(service.model_key, [digest]) == {}
    db = runtime.store.db  # type: ignore[attr-defined]
    count = await db.read(lambda c: c.execute("SELECT count(*) FROM embedding_cache").fetchone())
    assert count[0] > 0  # the chunk vectors of the ingested document


async def test_query_vectors_are_saved_together_and_found_before_they_are(
    runtime: Container,
) -> None:
    service = runtime.embeddings["all-minilm-l6-v2"]
    knowledge = runtime.store.knowledge
    questions = [f"How far can a llama walk in {n} days?" for n in range(5)]
    vectors = [await service.embed_one(q) for q in questions]
    digests = [content_hash(q) for q in questions]
    # Not in the store yet (they are saved a moment later, together)...
    assert await knowledge.get_embeddings(service.model_key, digests) == {}
    # ...but found all the same: asked again, no question goes to the model.
    trace = Trace(id=new_trace_id(), tenant="t", endpoint="embeddings", model="m")
    again = await service.embed([questions[0], questions[3]], trace=trace)
    assert trace.attempts == []
    np.testing.assert_array_equal(again, np.vstack([vectors[0], vectors[3]]))
    await service.drain()
    stored = await knowledge.get_embeddings(service.model_key, digests)
    assert sorted(stored) == sorted(digests)
    for digest, vector in zip(digests, vectors, strict=True):
        np.testing.assert_array_equal(stored[digest], vector)


async def test_query_vectors_that_cannot_be_saved_are_only_logged(
    runtime: Container, caplog: pytest.LogCaptureFixture
) -> None:
    service = runtime.embeddings["all-minilm-l6-v2"]
    knowledge = runtime.store.knowledge
    db = runtime.store.db  # type: ignore[attr-defined]
    await db.write(lambda c: c.execute("PRAGMA query_only = ON"))  # every write now fails
    try:
        vector = await service.embed_one("Do llamas like snow?")
        await service.drain()
    finally:
        await db.write(lambda c: c.execute("PRAGMA query_only = OFF"))
    assert vector.shape == (384,)
    assert "1 query embeddings not cached: OperationalError" in caplog.text
    # Nothing is left waiting: the next question is saved normally.
    await service.embed_one("Do llamas like rain?")
    await service.drain()
    digest = content_hash("Do llamas like rain?")
    assert digest in await knowledge.get_embeddings(service.model_key, [digest])


async def test_failed_embedding_leaves_no_half_indexed_document(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "g.toml"
    path.write_text(f"""
[store]
path = "{tmp_path}/kb.db"
[providers.api]
type = "openai"
base_url = "{fake_upstream.openai_base_url}"
timeout_s = 2
[embedders.api-embed]
deployments = ["api:text-embedding-3-small"]
[retrieval]
embedder = "api-embed"
""")
    rt = Container(load_settings(path))
    await rt.start()
    try:
        ingestor = rt.ingestor("kb")
        docs = [
            SourceDocument(id=f"d{i}", text=f"Document number {i} talks about topic {i}.")
            for i in range(100)
        ]
        # The first group of documents embeds; every later call fails.
        fake_upstream.script(*([Behavior()] * 4))
        fake_upstream.set_default(Behavior(status=400))
        with pytest.raises(ProviderError):
            await ingestor.ingest("t", "kb", docs)
        kb = await rt.store.knowledge.get_kb("t", "kb")
        assert kb is not None and 0 < kb.documents < 100
        stored = await rt.store.knowledge.list_documents("t", "kb", limit=200)
        for doc in stored:
            assert doc.chunk_count >= 1
            chunks = await rt.store.knowledge.get_chunks("t", "kb", [f"{doc.id}#0"])
            assert len(chunks) == 1
        # Recovery: the same ingest again finishes the job and skips what already landed.
        fake_upstream.set_default(Behavior())
        results = await ingestor.ingest("t", "kb", docs)
        statuses = [r.status for r in results]
        assert statuses.count("unchanged") == kb.documents
        assert statuses.count("added") == 100 - kb.documents
    finally:
        await rt.stop()
