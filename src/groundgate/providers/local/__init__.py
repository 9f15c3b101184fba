"""The embedded ``local`` provider: a grounded extractive answerer and MiniLM embeddings,
CPU only, with no network and no API keys."""

from groundgate.providers.local.answerer import Answer, Citation, ExtractiveAnswerer
from groundgate.providers.local.embedder import EmbedderUnavailable, MiniLMEmbedder
from groundgate.providers.local.models import (
    CHAT_MODEL,
    LocalModels,
    deployed_models,
    process_models,
)
from groundgate.providers.local.provider import EMBEDDING_MODEL, LocalProvider

__all__ = [
    "CHAT_MODEL",
    "EMBEDDING_MODEL",
    "Answer",
    "Citation",
    "EmbedderUnavailable",
    "ExtractiveAnswerer",
    "LocalModels",
    "LocalProvider",
    "MiniLMEmbedder",
    "deployed_models",
    "process_models",
]
