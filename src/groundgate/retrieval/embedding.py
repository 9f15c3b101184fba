"""Embedding with a persistent cache keyed by (model, content hash): re-ingesting a document,
or asking the same question twice, never embeds the same text again.

A query's vector (``embed_one``) is saved to the cache in the background: the request that
needed it does not wait for the database write. Query vectors are saved together, a moment
after the first of them (``_SAVE_DELAY_S``): one store transaction per burst of questions, not
one each, and mostly after the requests that made them have answered. Until then they are
found in memory. Batches (ingestion) wait for their write, so that a slow store slows the
ingest down instead of piling up writes."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

import numpy as np

from groundgate.errors import ProviderError
from groundgate.observe.trace import Trace, new_trace_id
from groundgate.providers.catalog import CatalogEntry
from groundgate.reliability.fallback import FallbackChain
from groundgate.store.knowledge import KnowledgeStore, Vector

log = logging.getLogger("groundgate.embedding")

# How long the first unsaved query vector waits for others to be saved with it.
_SAVE_DELAY_S = 0.05
# Query vectors waiting to be saved, at most; beyond this a query waits for its own write, so
# a store that cannot keep up pushes back instead of growing a queue.
_MAX_UNSAVED = 256


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
        self._unsaved: dict[str, Vector] = {}  # query vectors not yet handed to the store
        self._saving: dict[str, Vector] = {}  # those being written now
        self._saver: asyncio.Task[None] | None = None

    async def embed(
        self, texts: list[str], *, trace: Trace | None = None, store_later: bool = False
    ) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in order. ``store_later``: new
        vectors are saved in the background (see the module docstring)."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        hashes = [content_hash(t) for t in texts]
        cached = {h: v for h in hashes if (v := self._held(h)) is not None}
        wanted = [h for h in dict.fromkeys(hashes) if h not in cached]
        if wanted:
            cached.update(await self.knowledge.get_embeddings(self.model_key, wanted))
        missing: dict[str, str] = {}
        for digest, text in zip(hashes, texts, strict=True):
            if digest not in cached:
                missing.setdefault(digest, text)
        if missing:
            fresh = await self._embed_uncached(list(missing.values()), trace)
            new = dict(zip(missing, fresh, strict=True))
            await self._keep(new, later=store_later)
            cached.update(new)
        return np.vstack([cached[h] for h in hashes]).astype(np.float32, copy=False)

    async def warm(self) -> None:
        """Have the primary deployment load its model now (see ``ManagedProvider.warm``)."""
        primary = self.entry.deployments[0]
        await primary.provider.warm(primary.upstream_model)

    async def embed_one(self, text: str, *, trace: Trace | None = None) -> Vector:
        """A query's vector; a new one is saved to the cache after it is returned."""
        vector: Vector = (await self.embed([text], trace=trace, store_later=True))[0]
        return vector

    async def embed_query(
        self,
        text: str,
        *,
        trace: Trace | None = None,
        shared: dict[tuple[str, str], Vector] | None = None,
    ) -> Vector:
        """``embed_one``, once per request: ``shared`` (the request's ``vectors``) keeps the
        vector for the next stage that wants the same text from the same model (the guards
        and the semantic cache embed the same question)."""
        if shared is None:
            return await self.embed_one(text, trace=trace)
        key = (self.model_key, text)
        vector = shared.get(key)
        if vector is None:
            vector = shared[key] = await self.embed_one(text, trace=trace)
        return vector

    def _held(self, digest: str) -> Vector | None:
        vector = self._unsaved.get(digest)
        return self._saving.get(digest) if vector is None else vector

    async def _keep(self, vectors: dict[str, Vector], *, later: bool) -> None:
        if later and len(self._unsaved) + len(vectors) <= _MAX_UNSAVED:
            self._unsaved.update(vectors)
            if self._saver is None:
                self._saver = asyncio.create_task(self._save_unsaved())
        else:
            # Saved "later" means a query's vector: retention keeps those for less time.
            await self.knowledge.put_embeddings(self.model_key, vectors, questions=later)

    async def drain(self) -> None:
        """Wait for the background writes (before the store closes)."""
        while self._saver is not None:
            await asyncio.gather(self._saver, return_exceptions=True)

    async def _save_unsaved(self) -> None:
        try:
            while self._unsaved:
                await asyncio.sleep(_SAVE_DELAY_S)
                self._saving, self._unsaved = self._unsaved, {}
                try:
                    await self.knowledge.put_embeddings(
                        self.model_key, self._saving, questions=True
                    )
                except Exception as exc:  # the cache only saves work: the queries had theirs
                    log.warning(
                        "%d query embeddings not cached: %s: %s",
                        len(self._saving),
                        type(exc).__name__,
                        exc,
                    )
                finally:
                    self._saving = {}
        finally:
            self._saver = None

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
