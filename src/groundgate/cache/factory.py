"""The cache backend named in the configuration (``cache.backend``): "memory" | "redis"."""

from __future__ import annotations

from collections.abc import Callable

from groundgate.cache.backend import CacheBackend
from groundgate.errors import ConfigError


def _memory(url: str | None, max_entries: int, max_bytes: int, namespace: str) -> CacheBackend:
    from groundgate.cache.memory import MemoryCache

    return MemoryCache(max_entries=max_entries, max_bytes=max_bytes)


def _redis(url: str | None, max_entries: int, max_bytes: int, namespace: str) -> CacheBackend:
    if not url:
        raise ConfigError(["cache backend 'redis' needs a url (e.g. redis://127.0.0.1:6379/0)"])
    # Imported here, as the rate limiter does: the memory backend needs no Redis client.
    from groundgate.cache.redis_cache import RedisCache

    # For Redis the bounds apply to this replica's vector mirrors; Redis bounds the entries
    # themselves (maxmemory) and expires them by their TTL.
    return RedisCache(url, namespace, max_entries=max_entries, max_bytes=max_bytes)


BACKENDS: dict[str, Callable[[str | None, int, int, str], CacheBackend]] = {
    "memory": _memory,
    "redis": _redis,
}


def build_cache_backend(
    kind: str, url: str | None, *, max_entries: int, max_bytes: int, namespace: str = "gg"
) -> CacheBackend:
    """The cache backend named ``kind`` ("memory" | "redis")."""
    try:
        factory = BACKENDS[kind]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError([f"unknown cache backend {kind!r} (known: {known})"]) from None
    return factory(url, max_entries, max_bytes, namespace)
