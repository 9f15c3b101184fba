"""Ingestion: documents in, chunks with vectors out, one atomic replacement per document.

A document whose content (and indexing settings) hash is unchanged is skipped, so re-running
an ingest costs one lookup per document. Documents are processed in small groups so that
embedding runs in efficient batches, but each document is written in its own transaction:
an ingest stopped midway leaves every acknowledged document complete and none half-indexed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import orjson

from groundgate.config import KnowledgeBaseConfig
from groundgate.retrieval.chunking import chunk_document
from groundgate.retrieval.documents import ChunkDraft, ChunkingConfig, SourceDocument
from groundgate.retrieval.embedding import EmbeddingService
from groundgate.retrieval.rerank import passage_sentences
from groundgate.store.knowledge import (
    ChunkRecord,
    DocumentRecord,
    KnowledgeStore,
    StoredChunk,
    Vector,
)

GROUP_SIZE = 64
MAX_DOC_ID = 512
# Chunking a group of texts longer than this together runs in a worker thread, so a large
# document never stalls the event loop; shorter ones are chunked in place (a thread hop
# would cost more than the work).
OFFLOAD_CHARS = 16_384


@dataclass(slots=True)
class IngestResult:
    doc_id: str
    status: str  # added | updated | unchanged | failed
    chunks: int = 0
    error: str | None = None


Progress = Callable[[IngestResult], None]
A = TypeVar("A")
R = TypeVar("R")


def chunking_of(config: KnowledgeBaseConfig) -> ChunkingConfig:
    return ChunkingConfig(
        target_tokens=config.chunk_target_tokens,
        max_tokens=config.chunk_max_tokens,
        overlap_tokens=config.chunk_overlap_tokens,
    )


def document_hash(doc: SourceDocument, config: KnowledgeBaseConfig, embedder_key: str) -> str:
    """Everything that changes what gets indexed: content, and how it is chunked and embedded."""
    payload = orjson.dumps(
        [
            doc.text,
            doc.title,
            doc.source,
            doc.metadata,
            doc.format,
            config.chunk_target_tokens,
            config.chunk_max_tokens,
            config.chunk_overlap_tokens,
            embedder_key,
            config.rerank == "sentence",
        ],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(payload).hexdigest()


def embedding_text(title: str, chunk: ChunkDraft) -> str:
    # The title and headings situate a chunk; they are part of what it is about.
    head = " > ".join(p for p in (title, *chunk.heading_path) if p)
    return f"{head}\n{chunk.text}" if head else chunk.text


class Ingestor:
    def __init__(
        self,
        knowledge: KnowledgeStore,
        embeddings: EmbeddingService | None,
        config: KnowledgeBaseConfig,
        count_tokens: Callable[[str], int] | None = None,
    ) -> None:
        self.knowledge = knowledge
        self.embeddings = embeddings
        self.config = config
        self.chunking = chunking_of(config)
        self.count_tokens = count_tokens
        self.embedder_key = embeddings.model_key if embeddings else "none"

    async def ingest(
        self, tenant: str, kb: str, docs: list[SourceDocument], *, progress: Progress | None = None
    ) -> list[IngestResult]:
        await self.knowledge.ensure_kb(tenant, kb)
        unique, repeated = _first_of_each_id(docs)
        # A later document with an id already in this ingest would silently replace the first
        # (two uploaded files whose records share an id): it is reported, not written.
        error = "duplicate id: an earlier document in this ingest has it"
        refused = [IngestResult(doc.id, "failed", error=error) for doc in repeated]
        results: list[IngestResult] = []

        def record(done: list[IngestResult]) -> None:
            results.extend(done)
            if progress is not None:
                for result in done:
                    progress(result)

        for start in range(0, len(unique), GROUP_SIZE):
            record(await self._group(tenant, kb, unique[start : start + GROUP_SIZE]))
        record(refused)
        return results

    async def _group(self, tenant: str, kb: str, docs: list[SourceDocument]) -> list[IngestResult]:
        hashes = {d.id: document_hash(d, self.config, self.embedder_key) for d in docs}
        stored = await self.knowledge.document_hashes(tenant, kb, list(hashes))
        results: dict[str, IngestResult] = {}
        changed: list[SourceDocument] = []
        for doc in docs:
            if not doc.id or len(doc.id) > MAX_DOC_ID:
                results[doc.id] = IngestResult(doc.id, "failed", error="invalid document id")
            elif stored.get(doc.id) == hashes[doc.id]:
                results[doc.id] = IngestResult(doc.id, "unchanged")
            else:
                changed.append(doc)
        todo: list[tuple[SourceDocument, list[ChunkDraft]]] = []
        for doc, drafts in await _offloaded(self._chunk_all, changed, changed):
            if drafts:
                todo.append((doc, drafts))
            else:
                results[doc.id] = IngestResult(doc.id, "failed", error="no text to index")
        vectors = iter(await self._embed(todo))
        for doc, drafts in todo:
            records = [
                ChunkRecord(
                    id=f"{doc.id}#{d.position}",
                    position=d.position,
                    text=d.text,
                    heading_path=list(d.heading_path),
                    token_count=d.token_count,
                    embedding=next(vectors, None),
                )
                for d in drafts
            ]
            record = DocumentRecord(
                id=doc.id,
                content_hash=hashes[doc.id],
                source=doc.source,
                title=doc.title,
                metadata=dict(doc.metadata),
            )
            await self.knowledge.replace_document(tenant, kb, record, records)
            status = "updated" if doc.id in stored else "added"
            results[doc.id] = IngestResult(doc.id, status, chunks=len(records))
        return [results[d.id] for d in docs]

    def _chunk_all(
        self, docs: list[SourceDocument]
    ) -> list[tuple[SourceDocument, list[ChunkDraft]]]:
        return [(doc, chunk_document(doc, self.chunking, self.count_tokens)) for doc in docs]

    async def _embed(self, todo: list[tuple[SourceDocument, list[ChunkDraft]]]) -> list[Vector]:
        if self.embeddings is None or self.config.mode in ("keyword", "vectorless"):
            return []
        texts = [embedding_text(doc.title, d) for doc, drafts in todo for d in drafts]
        matrix = await self.embeddings.embed(texts)
        if self.config.rerank == "sentence":
            # Pre-warm the sentence cache the second stage reads at query time.
            docs = [doc for doc, _ in todo]
            sentences = await _offloaded(_sentences_of, docs, todo)
            await self.embeddings.embed(sentences)
        return list(matrix)


def _sentences_of(todo: list[tuple[SourceDocument, list[ChunkDraft]]]) -> list[str]:
    return [
        s for doc, drafts in todo for d in drafts for s in passage_sentences(_as_stored(doc, d))
    ]


async def _offloaded(work: Callable[[A], R], docs: list[SourceDocument], arg: A) -> R:
    """``work(arg)``, in a worker thread when ``docs`` hold more than ``OFFLOAD_CHARS``."""
    if sum(len(doc.text) for doc in docs) > OFFLOAD_CHARS:
        return await asyncio.to_thread(work, arg)
    return work(arg)


def _first_of_each_id(
    docs: list[SourceDocument],
) -> tuple[list[SourceDocument], list[SourceDocument]]:
    """(the first document of each id, in order; the later ones)."""
    seen: set[str] = set()
    unique: list[SourceDocument] = []
    repeated: list[SourceDocument] = []
    for doc in docs:
        (repeated if doc.id in seen else unique).append(doc)
        seen.add(doc.id)
    return unique, repeated


def _as_stored(doc: SourceDocument, draft: ChunkDraft) -> StoredChunk:
    return StoredChunk(
        id="",
        doc_id=doc.id,
        position=draft.position,
        text=draft.text,
        title=doc.title,
        source=doc.source,
        heading_path=draft.heading_path,
        metadata=doc.metadata,
    )
