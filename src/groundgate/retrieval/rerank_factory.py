"""Rerankers by name, built once from config."""

from __future__ import annotations

from groundgate.config import Settings
from groundgate.retrieval.embedding import EmbeddingService
from groundgate.retrieval.rerank import CrossEncoderReranker, Reranker, SentenceReranker


def build_rerankers(
    settings: Settings, embeddings: dict[str, EmbeddingService]
) -> dict[str, Reranker]:
    rerankers: dict[str, Reranker] = {}
    configs = [settings.retrieval, *settings.knowledge_bases.values()]
    embedder = next((c.embedder for c in configs if c.embedder in embeddings), None)
    if embedder is not None:
        rerankers["sentence"] = SentenceReranker(embeddings[embedder])
    paths = {c.cross_encoder_path for c in configs if c.cross_encoder_path}
    if paths:
        # One cross-encoder per process; the first configured path wins (others: config error).
        rerankers["cross-encoder"] = CrossEncoderReranker(sorted(paths)[0])
    return rerankers
