"""Second-stage rankers: reorder the fused candidates with a closer look at each.

- ``SentenceReranker`` (no extra model): a passage is as relevant as its best sentence. Each
  candidate's sentences are embedded (through the cache, so ingest can pre-warm it) and the
  best sentence's cosine to the query is mixed with the first-stage rank.
- ``CrossEncoderReranker``: an ONNX cross-encoder the operator supplies (a folder with
  ``model.onnx`` and ``tokenizer.json``); none ships in any PyPI package.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from groundgate.providers.local.sentences import split_sentences
from groundgate.retrieval.embedding import EmbeddingService
from groundgate.store.knowledge import StoredChunk, Vector


@dataclass(slots=True)
class Candidate:
    chunk: StoredChunk
    score: float  # first-stage (fused) score; higher is better
    rank: int  # 1-based first-stage rank


class Reranker(Protocol):
    async def rerank(
        self, query: str, query_vector: Vector | None, candidates: list[Candidate]
    ) -> list[Candidate]: ...


class SentenceReranker:
    def __init__(
        self, embeddings: EmbeddingService, *, weight: float = 0.5, max_sentences: int = 24
    ) -> None:
        self.embeddings = embeddings
        self.weight = weight
        self.max_sentences = max_sentences

    async def rerank(
        self, query: str, query_vector: Vector | None, candidates: list[Candidate]
    ) -> list[Candidate]:
        if not candidates:
            return candidates
        if query_vector is None:
            query_vector = await self.embeddings.embed_one(query)
        per_chunk = [passage_sentences(c.chunk)[: self.max_sentences] for c in candidates]
        flat = [s for sentences in per_chunk for s in sentences]
        matrix = await self.embeddings.embed(flat)
        sims = matrix @ query_vector
        best, offset = [], 0
        for sentences in per_chunk:
            best.append(float(sims[offset : offset + len(sentences)].max()) if sentences else 0.0)
            offset += len(sentences)
        # Mix as ranks, not raw scores: first-stage scores are not on a cosine scale.
        order = np.argsort(-np.asarray(best), kind="stable")
        sentence_rank = {int(i): r for r, i in enumerate(order, start=1)}
        mixed = [
            (self.weight / (60 + sentence_rank[i]) + (1 - self.weight) / (60 + c.rank), i)
            for i, c in enumerate(candidates)
        ]
        mixed.sort(key=lambda item: -item[0])
        return [
            Candidate(candidates[i].chunk, score, r) for r, (score, i) in enumerate(mixed, start=1)
        ]


def passage_sentences(chunk: StoredChunk) -> list[str]:
    """The sentences a passage is judged by (the title counts as one)."""
    sentences = split_sentences(chunk.text)
    return [chunk.title, *sentences] if chunk.title else sentences


class CrossEncoderReranker:
    def __init__(self, folder: str, *, max_length: int = 512, batch_size: int = 16) -> None:
        self.folder = Path(folder)
        self.max_length = max_length
        self.batch_size = batch_size
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        if self._session is not None:
            return
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model, vocab = self.folder / "model.onnx", self.folder / "tokenizer.json"
        for path in (model, vocab):
            if not path.is_file():
                raise FileNotFoundError(f"cross-encoder file missing: {path}")
        tokenizer = Tokenizer.from_file(str(vocab))
        tokenizer.enable_truncation(max_length=self.max_length)
        tokenizer.enable_padding()
        self._tokenizer = tokenizer
        self._session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def _score(self, query: str, texts: list[str]) -> list[float]:
        self._load()
        names = {i.name for i in self._session.get_inputs()}
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer.encode_batch(
                [(query, t) for t in texts[start : start + self.batch_size]]
            )
            feed = {
                "input_ids": np.array([e.ids for e in batch], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in batch], dtype=np.int64),
            }
            if "token_type_ids" in names:
                feed["token_type_ids"] = np.array([e.type_ids for e in batch], dtype=np.int64)
            logits = np.asarray(self._session.run(None, feed)[0], dtype=np.float32)
            scores.extend(logits.reshape(len(batch), -1)[:, -1].tolist())
        return scores

    async def rerank(
        self, query: str, query_vector: Vector | None, candidates: list[Candidate]
    ) -> list[Candidate]:
        texts = [
            f"{c.chunk.title}\n{c.chunk.text}" if c.chunk.title else c.chunk.text
            for c in candidates
        ]
        scores = await asyncio.to_thread(self._score, query, texts)
        order = sorted(range(len(candidates)), key=lambda i: -scores[i])
        return [Candidate(candidates[i].chunk, scores[i], r) for r, i in enumerate(order, 1)]
