"""Where cached answers live: one interface, two backends.

``memory`` (``cache/memory.py``) keeps entries in the process: the embedded default, bounded by
entry count and bytes with LRU eviction and per-entry TTL. ``redis`` (``cache/redis_cache.py``)
keeps them in Redis, shared by every replica. Both pass the same conformance suite
(``tests/cache/test_backend_conformance.py``).

An entry is an opaque payload (the serialised answer) plus the original question (the false-hit
guard reads it) and, for the semantic cache, the unit-length vector of the normalised question.
Entries are grouped by their :class:`Scope`:

* ``tenant`` and ``target`` (an app or model name) say whose entries they are, so an operator
  can clear one tenant's, or one app's, answers;
* ``partition`` is a digest of everything that determines an answer except the question itself
  (tenant, target, prompt version, knowledge-base version, sampling parameters, ...): the
  semantic index is per partition, so a nearest neighbour is only ever searched among answers
  given under identical conditions. Exact keys already include the partition.

Similarity is the cosine of two unit vectors. ``nearest`` may find candidates approximately
(an ANN index), but the similarity it reports is computed exactly from the stored vector, so a
threshold like 0.99 means what it says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from groundgate.errors import GroundgateError

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Scope:
    tenant: str
    target: str
    partition: str


@dataclass(frozen=True, slots=True)
class CachedEntry:
    key: str  # the exact key (a hex digest), unique across all scopes
    question: str  # the question as the client wrote it
    payload: bytes  # the serialised answer; backends never look inside
    vector: Vector | None = None  # unit-length float32, set for semantically indexed entries


@dataclass(frozen=True, slots=True)
class Neighbour:
    similarity: float
    entry: CachedEntry


@dataclass(frozen=True, slots=True)
class CacheStats:
    entries: int  # live entries this backend holds (Redis: as far as this replica knows)
    bytes: int  # approximate memory used by them
    evictions: int  # entries dropped for room (not for TTL or clearing) since start


class CacheBackend(Protocol):
    async def get(self, scope: Scope, key: str) -> CachedEntry | None:
        """The live entry stored under ``key`` in ``scope``, or None (never stored, expired,
        evicted or cleared). A hit refreshes the entry's LRU position, not its TTL."""
        ...

    async def put(self, scope: Scope, entry: CachedEntry, ttl_s: float) -> None:
        """Store ``entry`` for ``ttl_s`` seconds, replacing one with the same key. With a vector,
        it is also indexed for :meth:`nearest` in ``scope.partition``."""
        ...

    async def refresh(self, scope: Scope) -> None:
        """Bring what :meth:`nearest` searches for ``scope.partition`` up to date with what
        every replica has put (Redis: a round trip; in process: nothing to do). A lookup
        does this while the question is being embedded, then calls ``nearest`` with
        ``refresh=False``, so the round trip costs the request no time."""
        ...

    async def nearest(
        self,
        scope: Scope,
        vector: Vector,
        k: int = 3,
        min_similarity: float | None = None,
        *,
        refresh: bool = True,
    ) -> list[Neighbour]:
        """Up to ``k`` live, vector-carrying entries of ``scope.partition`` nearest to
        ``vector`` (unit length), best first, with exact cosine similarities, none below
        ``min_similarity`` when given (a lookup asks only for what could be a hit, and a
        backend then fetches nothing for a query without near neighbours). Entries of other
        partitions, tenants or targets are never returned. ``refresh=False``: search as of
        the last :meth:`refresh` of this partition (it still refreshes one never refreshed);
        entries are still checked live, so this costs recall of the very latest puts at most,
        never a dead or foreign entry."""
        ...

    async def clear(self, tenant: str, target: str | None = None) -> int:
        """Drop every entry of ``tenant`` (only those of ``target`` if given) and return how
        many were dropped. Afterwards neither ``get`` nor ``nearest`` returns them, on any
        replica."""
        ...

    def stats(self) -> CacheStats: ...

    async def aclose(self) -> None: ...


class CacheUnavailable(GroundgateError):
    """The cache's backend (Redis) cannot be reached; the caller treats it as a miss or fails."""

    status_code = 503
    error_type = "server_error"
    code = "cache_unavailable"
