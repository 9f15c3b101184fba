"""Embedding with a persistent cache keyed by (model, content hash): re-ingesting a document,
or asking the same question twice, never embeds the same text again.

A query's vector (``embed_one``) is saved to the cache in the background: the request that
needed it does not wait for the database write. Batches (ingestion) wait, so that a slow
store slows the ingest down instead of piling up writes."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

import numpy as np

from groundgate.errors import ProviderError
from groundgate.observe.trace import Trace, new_trace_id
from groundgate.reliability.fallback import FallbackChain
from groundgate.routing.catalog import CatalogEntry
from groundgate.store.knowledge import KnowledgeStore, Vector

log = logging.getLogger("groundgate.embedding")

# Background writes in flight per service; beyond this a query waits for its own write, so a
# store that cannot keep up pushes back instead of growing a queue.
_MAX_PENDING_WRITES = 256


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class EmbeddingService:
    def __init__(
        self,
        entry: CatalogEntry,
        knowledge: KnowledgeStore,
        chain: FallbackChain,
        *,
        max_batch: int = 32,
        parallel: int = 2,
        timeout_s: float = 120.0,
    ) -> None:
        self.entry = entry
        self.chain = chain
        self.knowledge = knowledge
        self.max_batch = max_batch
        self.parallel = parallel
        self.timeout_s = timeout_s
        # Vectors from different deployments live in different spaces: the cache key names
        # the primary deployment, and a fallback embedder must be the same model.
        self.model_key = f"{entry.name}:{entry.deployments[0].id}"
        self._pending: set[asyncio.Task[None]] = set()

    async def embed(
        self, texts: list[str], *, trace: Trace | None = None, store_later: bool = False
    ) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in order. ``store_later``: new
        vectors are saved in the background (see the module docstring)."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        hashes = [content_hash(t) for t in texts]
        cached = await self.knowledge.get_embeddings(self.model_key, list(dict.fromkeys(hashes)))
        missing: dict[str, str] = {}
        for digest, text in zip(hashes, texts, strict=True):
            if digest not in cached:
                missing.setdefault(digest, text)
        if missing:
            fresh = await self._embed_uncached(list(missing.values()), trace)
            new = dict(zip(missing, fresh, strict=True))
            if store_later and len(self._pending) < _MAX_PENDING_WRITES:
                task = asyncio.create_task(self._store(new))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            else:
                await self.knowledge.put_embeddings(self.model_key, new)
            cached.update(new)
        return np.vstack([cached[h] for h in hashes]).astype(np.float32, copy=False)

    async def embed_one(self, text: str, *, trace: Trace | None = None) -> Vector:
        """A query's vector; a new one is saved to the cache after it is returned."""
        vector: Vector = (await self.embed([text], trace=trace, store_later=True))[0]
        return vector

    async def drain(self) -> None:
        """Wait for the background writes (before the store closes)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _store(self, vectors: dict[str, Vector]) -> None:
        try:
            await self.knowledge.put_embeddings(self.model_key, vectors)
        except Exception as exc:  # the cache only saves work: the query already has its vector
            log.warning("query embeddings not cached: %s: %s", type(exc).__name__, exc)

    async def _embed_uncached(self, texts: list[str], trace: Trace | None) -> list[Vector]:
        trace = trace or Trace(
            id=new_trace_id(), tenant="system", endpoint="embeddings", model=self.entry.name
        )
        batches = [texts[i : i + self.max_batch] for i in range(0, len(texts), self.max_batch)]
        # A few batches in flight at once: the local model runs one per CPU thread, a remote
        # API answers several concurrently.
        gate = asyncio.Semaphore(self.parallel)

        async def one(batch: list[str]) -> np.ndarray:
            async with gate:
                deadline = time.monotonic() + self.timeout_s
                _, result = await self.chain.embed(self.entry, batch, deadline, trace)
            if len(result.vectors) != len(batch):
                raise ProviderError(
                    f"embedder {self.entry.name} returned "
                    f"{len(result.vectors)} vectors for {len(batch)} texts",
                    transient=True,
                )
            matrix = np.asarray(result.vectors, dtype=np.float32)
            unit: np.ndarray = matrix / np.maximum(
                np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12
            )
            return unit

        matrices = await asyncio.gather(*(one(b) for b in batches))
        return [row for matrix in matrices for row in matrix]
