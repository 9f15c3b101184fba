"""The embedder the guards read questions with: the one the shipped injection classifier was
trained on, which is also the semantic cache's default (so one embedding serves both)."""

from __future__ import annotations

from collections.abc import Mapping

from groundgate.errors import ConfigError
from groundgate.retrieval.embedding import EmbeddingService


def guard_embedder(
    embeddings: Mapping[str, EmbeddingService], model: str, preferred: str, where: str
) -> EmbeddingService:
    """The service whose primary deployment runs ``model`` (an upstream model id such as
    ``all-MiniLM-L6-v2-int8``), ``preferred`` (the cache's embedder) first. Raises
    :class:`ConfigError` naming ``where`` when no embedder runs it."""
    ordered = sorted(embeddings.items(), key=lambda item: item[0] != preferred)
    for _, service in ordered:
        if service.entry.deployments[0].upstream_model == model:
            return service
    raise ConfigError(
        [
            f"{where}: the guards need an embedder running {model!r} (as [embedders] declares "
            "all-minilm-l6-v2-int8 by default); none does"
        ]
    )
