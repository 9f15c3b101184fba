"""One conformance suite for every KnowledgeStore backend."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from groundgate.errors import InvalidRequest
from groundgate.store.base import Store
from groundgate.store.knowledge import ChunkRecord, DocumentRecord

DIM = 8


def unit(seed: int) -> np.ndarray:
    vec = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vec / np.linalg.norm(vec)


def doc(doc_id: str, digest: str = "h1", **metadata: object) -> DocumentRecord:
    return DocumentRecord(
        id=doc_id,
        content_hash=digest,
        source=f"{doc_id}.md",
        title=f"Title {doc_id}",
        metadata=dict(metadata),
    )


def chunks(doc_id: str, texts: list[str], seed: int = 0) -> list[ChunkRecord]:
    return [
        ChunkRecord(
            id=f"{doc_id}#{i}",
            position=i,
            text=t,
            heading_path=["H", str(i)],
            token_count=len(t.split()),
            embedding=unit(seed + i),
        )
        for i, t in enumerate(texts)
    ]


async def test_kb_lifecycle(store: Store) -> None:
    ks = store.knowledge
    kb = await ks.ensure_kb("t1", "docs", {"mode": "hybrid"})
    assert (kb.name, kb.version, kb.documents, kb.settings) == ("docs", 0, 0, {"mode": "hybrid"})
    again = await ks.ensure_kb("t1", "docs", {"mode": "other"})
    assert again.created_at == kb.created_at and again.settings == {"mode": "hybrid"}
    await ks.ensure_kb("t1", "notes")
    assert [k.name for k in await ks.list_kbs("t1")] == ["docs", "notes"]
    assert await ks.list_kbs("t2") == []
    assert await ks.get_kb("t2", "docs") is None
    assert await ks.delete_kb("t1", "notes") is True
    assert await ks.delete_kb("t1", "notes") is False
    assert [k.name for k in await ks.list_kbs("t1")] == ["docs"]


async def test_replace_is_atomic_and_bumps_version(store: Store) -> None:
    ks = store.knowledge
    await ks.ensure_kb("t", "kb")
    v1 = await ks.replace_document("t", "kb", doc("a"), chunks("a", ["alpha one", "alpha two"]))
    v2 = await ks.replace_document("t", "kb", doc("a", "h2"), chunks("a", ["beta only"]))
    assert v2 == v1 + 1
    record = await ks.get_document("t", "kb", "a")
    assert record is not None and record.content_hash == "h2" and record.chunk_count == 1
    assert await ks.keyword_search("t", "kb", "alpha", limit=10) == []
    hits = await ks.keyword_search("t", "kb", "beta", limit=10)
    assert [h.chunk_id for h in hits] == ["a#0"]
    kb = await ks.get_kb("t", "kb")
    assert kb is not None and (kb.documents, kb.chunks, kb.version) == (1, 1, v2)


async def test_kb_version_changes_with_every_change_and_never_repeats(store: Store) -> None:
    ks = store.knowledge
    assert await ks.kb_version("t", "kb") is None
    await ks.ensure_kb("t", "kb")
    seen = [await ks.kb_version("t", "kb")]
    await ks.replace_document("t", "kb", doc("a"), chunks("a", ["alpha"]))
    seen.append(await ks.kb_version("t", "kb"))
    await ks.replace_document("t", "kb", doc("a", "h2"), chunks("a", ["beta"]))
    seen.append(await ks.kb_version("t", "kb"))
    await ks.delete_document("t", "kb", "a")
    seen.append(await ks.kb_version("t", "kb"))
    await ks.delete_kb("t", "kb")
    assert await ks.kb_version("t", "kb") is None
    await ks.ensure_kb("t", "kb")  # created again: back to version 0, but a new token
    seen.append(await ks.kb_version("t", "kb"))
    assert None not in seen and len(set(seen)) == len(seen), seen
    assert await ks.kb_version("other-tenant", "kb") is None


async def test_delete_document_removes_it_from_every_index(store: Store) -> None:
    ks = store.knowledge
    await ks.ensure_kb("t", "kb")
    await ks.replace_document("t", "kb", doc("a"), chunks("a", ["gamma ray burst"], seed=1))
    await ks.replace_document("t", "kb", doc("b"), chunks("b", ["delta wing"], seed=2))
    assert await ks.delete_document("t", "kb", "a") is True
    assert await ks.delete_document("t", "kb", "a") is False
    assert await ks.get_document("t", "kb", "a") is None
    assert await ks.keyword_search("t", "kb", "gamma", limit=5) == []
    dense = await ks.dense_search("t", "kb", unit(1), limit=5)
    assert [h.chunk_id for h in dense] == ["b#0"]
    assert await ks.get_chunks("t", "kb", ["a#0"]) == []


async def test_keyword_search_ranks_and_stems(store: Store) -> None:
    ks = store.knowledge
    await ks.ensure_kb("t", "kb")
    await ks.replace_document(
        "t",
        "kb",
        doc("run"),
        chunks(
            "run", ["Runners were running the marathon race quickly", "A quiet library with books"]
        ),
    )
    await ks.replace_document("t", "kb", doc("cook"), chunks("cook", ["Cooking pasta at home"]))
    hits = await ks.keyword_search("t", "kb", "how do I run a race?", limit=5)
    assert hits and hits[0].chunk_id == "run#0"
    assert all(h.score > 0 for h in hits)
    assert await ks.keyword_search("t", "kb", "zebra quokka", limit=5) == []
    # A query of stopwords only is searched as it is rather than dropped whole.
    assert [h.chunk_id for h in await ks.keyword_search("t", "kb", "the", limit=5)] == ["run#0"]
    # Operators and quotes in user text are data, not query syntax.
    assert await ks.keyword_search("t", "kb", 'pasta" OR "x AND NOT (', limit=5)


async def test_dense_search_orders_by_cosine(store: Store) -> None:
    ks = store.knowledge
    await ks.ensure_kb("t", "kb")
    await ks.replace_document("t", "kb", doc("a"), chunks("a", ["x", "y", "z"], seed=10))
    hits = await ks.dense_search("t", "kb", unit(11), limit=3)
    assert hits[0].chunk_id == "a#1" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(await ks.dense_search("t", "kb", unit(11), limit=2)) == 2


async def test_tenants_and_kbs_are_isolated(store: Store) -> None:
    ks = store.knowledge
    for tenant in ("t1", "t2"):
        await ks.ensure_kb(tenant, "kb")
    await ks.ensure_kb("t1", "other")
    await ks.replace_document("t1", "kb", doc("secret"), chunks("secret", ["zebra stripes"], 5))
    for tenant, kb in (("t2", "kb"), ("t1", "other")):
        assert await ks.keyword_search(tenant, kb, "zebra", limit=5) == []
        assert await ks.dense_search(tenant, kb, unit(5), limit=5) == []
        assert await ks.get_chunks(tenant, kb, ["secret#0"]) == []
        assert await ks.get_document(tenant, kb, "secret") is None
    assert await ks.delete_document("t2", "kb", "secret") is False
    assert await ks.get_document("t1", "kb", "secret") is not None


async def test_filters(store: Store) -> None:
    ks = store.knowledge
    await ks.ensure_kb("t", "kb")
    await ks.replace_document(
        "t",
        "kb",
        doc("a", lang="en", year=2020, public=True),
        chunks("a", ["solar panel guide"], seed=20),
    )
    await ks.replace_document(
        "t",
        "kb",
        doc("b", lang="de", year=2021, public=False),
        chunks("b", ["solar panel anleitung"], seed=21),
    )
    search = ks.keyword_search
    assert [
        h.chunk_id for h in await search("t", "kb", "solar", limit=5, filters={"lang": "de"})
    ] == ["b#0"]
    assert {
        h.chunk_id
        for h in await search("t", "kb", "solar", limit=5, filters={"year": {"$in": [2020, 2021]}})
    } == {"a#0", "b#0"}
    assert [
        h.chunk_id for h in await search("t", "kb", "solar", limit=5, filters={"public": True})
    ] == ["a#0"]
    assert [
        h.chunk_id for h in await search("t", "kb", "solar", limit=5, filters={"doc_id": "b"})
    ] == ["b#0"]
    dense = await ks.dense_search("t", "kb", unit(20), limit=5, filters={"lang": "de"})
    assert [h.chunk_id for h in dense] == ["b#0"]
    for bad in ({"la'ng": "x"}, {"lang": {"$gt": 1}}, {"lang": ["en"]}):
        with pytest.raises(InvalidRequest):
            await search("t", "kb", "solar", limit=5, filters=bad)


async def test_chunks_carry_citation_fields(store: Store) -> None:
    ks = store.knowledge
    await ks.ensure_kb("t", "kb")
    await ks.replace_document("t", "kb", doc("a", team="x"), chunks("a", ["one", "two"]))
    got = await ks.get_chunks("t", "kb", ["a#1", "missing", "a#0"])
    assert [c.id for c in got] == ["a#1", "a#0"]
    first = got[0]
    assert (first.doc_id, first.position, first.text, first.title, first.source) == (
        "a",
        1,
        "two",
        "Title a",
        "a.md",
    )
    assert first.heading_path == ["H", "1"] and first.metadata == {"team": "x"}


async def test_documents_listing_and_hashes(store: Store) -> None:
    ks = store.knowledge
    await ks.ensure_kb("t", "kb")
    for name in ("c", "a", "b"):
        await ks.replace_document("t", "kb", doc(name, f"hash-{name}"), chunks(name, [name]))
    assert [d.id for d in await ks.list_documents("t", "kb")] == ["a", "b", "c"]
    assert [d.id for d in await ks.list_documents("t", "kb", limit=1, offset=1)] == ["b"]
    assert await ks.document_hashes("t", "kb", ["a", "zz", "c"]) == {"a": "hash-a", "c": "hash-c"}


async def test_embedding_cache(store: Store) -> None:
    ks = store.knowledge
    await ks.put_embeddings("m1", {"h1": unit(1), "h2": unit(2)})
    await ks.put_embeddings("m1", {"h1": unit(3)})  # first write wins: same content, same vector
    got = await ks.get_embeddings("m1", ["h1", "h2", "h3"])
    assert set(got) == {"h1", "h2"}
    assert np.allclose(got["h1"], unit(1))
    assert await ks.get_embeddings("m2", ["h1"]) == {}


async def test_concurrent_replacements_keep_one_consistent_copy(store: Store) -> None:
    ks = store.knowledge
    await ks.ensure_kb("t", "kb")
    await asyncio.gather(
        *(
            ks.replace_document("t", "kb", doc("a", f"h{i}"), chunks("a", [f"version{i} text"] * 3))
            for i in range(8)
        )
    )
    record = await ks.get_document("t", "kb", "a")
    assert record is not None and record.chunk_count == 3
    kb = await ks.get_kb("t", "kb")
    assert kb is not None and kb.chunks == 3 and kb.version == 8
    winner = record.content_hash.removeprefix("h")
    hits = await ks.keyword_search("t", "kb", f"version{winner}", limit=10)
    assert len(hits) == 3


async def test_writing_to_a_missing_kb_fails_cleanly(store: Store) -> None:
    with pytest.raises(LookupError):
        await store.knowledge.replace_document("t", "nope", doc("a"), chunks("a", ["x"]))
    assert await store.knowledge.get_document("t", "nope", "a") is None
