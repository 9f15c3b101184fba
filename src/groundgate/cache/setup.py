"""The cache as configured: building it from Settings, and which policy a request gets."""

from __future__ import annotations

import os
from collections.abc import Mapping

from groundgate.cache.factory import build_cache_backend
from groundgate.cache.response import ResponseCache
from groundgate.config import AppConfig, Settings
from groundgate.config_cache import CachePolicy
from groundgate.errors import ConfigError
from groundgate.observe.cost import PriceTable
from groundgate.observe.metrics import Metrics
from groundgate.retrieval.embedding import EmbeddingService
from groundgate.store.knowledge import KnowledgeStore


def build_response_cache(
    settings: Settings,
    knowledge: KnowledgeStore,
    embeddings: Mapping[str, EmbeddingService],
    prices: PriceTable,
    metrics: Metrics,
) -> ResponseCache | None:
    """The response cache of ``settings.cache``, or None when it is disabled."""
    config = settings.cache
    if not config.enabled:
        return None
    redis_url = os.environ.get(config.redis_url_env)
    if config.backend == "redis" and not redis_url:
        raise ConfigError(
            [f"cache.backend is 'redis' but {config.redis_url_env} is not set"],
            source="environment",
        )
    backend = build_cache_backend(
        config.backend,
        redis_url,
        max_entries=config.max_entries,
        max_bytes=int(config.max_mb * 1024 * 1024),
    )
    return ResponseCache(backend, knowledge, embeddings.get(config.embedder), prices, metrics)


def cache_policy(settings: Settings, app: AppConfig | None, model_name: str) -> CachePolicy | None:
    """The app's policy for grounded requests, the model's for plain ones."""
    if app is not None:
        return app.cache
    model = settings.models.get(model_name)
    return model.cache if model is not None else None


def caches(policy: CachePolicy | None) -> bool:
    return policy is not None and (policy.exact or policy.semantic)


def targets_of(settings: Settings, kb: str) -> list[str]:
    """Every cache target whose answers come from knowledge base ``kb``: the apps on it and
    ad-hoc questions to it (``POST /v1/ask`` with ``kb``)."""
    apps = [name for name, app in settings.apps.items() if app.knowledge_base == kb]
    return [*apps, f"kb:{kb}"]
