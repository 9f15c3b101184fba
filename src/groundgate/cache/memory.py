"""The in-process cache backend: the embedded default, one process's own entries.

Entries live in one ``OrderedDict`` in least-recently-used order (a ``get`` hit moves an entry
to the end), bounded by entry count and by approximate bytes; when a put goes over either
bound, expired entries are dropped first and then the least recently used ones (counted as
evictions). Expiry is lazy: an expired entry is a miss the moment its TTL passes, and is
dropped when it is next looked at or when a min-heap of expiry times says it is due (checked
on every put and by ``stats``), so no timer task is needed.

Every method runs to completion without awaiting, so each call is atomic on the event loop; a
lock makes it safe from other threads too (a CLI or a sync test may share the instance).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from groundgate.cache.backend import CachedEntry, CacheStats, Neighbour, Scope, Vector
from groundgate.cache.vector_index import (
    ANN_THRESHOLD,
    MAX_ROUNDS,
    VectorIndex,
    as_query,
    candidate_count,
)

# What an entry costs beyond its payload, question and vector: the dataclasses, the dict and
# OrderedDict slots, the key string, its heap item and its vector's index bookkeeping.
ENTRY_OVERHEAD_BYTES = 512


def entry_size(entry: CachedEntry) -> int:
    vector_bytes = entry.vector.nbytes if entry.vector is not None else 0
    return (
        len(entry.payload)
        + len(entry.question.encode("utf-8", "surrogatepass"))
        + len(entry.key)
        + vector_bytes
        + ENTRY_OVERHEAD_BYTES
    )


@dataclass(slots=True)
class _Stored:
    scope: Scope
    entry: CachedEntry
    expires_at: float
    size: int
    seq: int  # which put stored it: a heap item of an earlier put of the key is stale


class MemoryCache:
    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 256 * 2**20,
        clock: Callable[[], float] = time.monotonic,
        ann_threshold: int = ANN_THRESHOLD,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be >= 1")
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._ann_threshold = ann_threshold
        self._entries: OrderedDict[str, _Stored] = OrderedDict()  # oldest used first
        self._indexes: dict[Scope, VectorIndex] = {}
        self._owners: dict[str, dict[str, set[str]]] = {}  # tenant -> target -> keys
        self._expiry: list[tuple[float, int, str]] = []  # (expires_at, seq, key), a min-heap
        self._seq = 0
        self._bytes = 0
        self._evictions = 0
        self._lock = threading.Lock()

    async def get(self, scope: Scope, key: str) -> CachedEntry | None:
        with self._lock:
            stored = self._entries.get(key)
            if stored is None or stored.scope != scope:
                return None
            if stored.expires_at <= self._clock():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return stored.entry

    async def put(self, scope: Scope, entry: CachedEntry, ttl_s: float) -> None:
        if entry.vector is not None:
            vector = as_query(entry.vector, None)
            if vector is not entry.vector:
                entry = replace(entry, vector=vector)
        size = entry_size(entry)
        with self._lock:
            index = self._indexes.get(scope)
            if entry.vector is not None and index is not None and index.dim is not None:
                as_query(entry.vector, index.dim)  # a mismatch raises before anything changes
            now = self._clock()
            self._sweep(now)
            self._drop(entry.key)
            # An entry that is already expired, or could never fit, is simply not stored.
            if not ttl_s > 0 or size > self._max_bytes:
                return
            self._seq += 1
            stored = _Stored(scope, entry, now + ttl_s, size, self._seq)
            self._entries[entry.key] = stored
            self._bytes += size
            self._owners.setdefault(scope.tenant, {}).setdefault(scope.target, set()).add(entry.key)
            if entry.vector is not None:
                # Looked up again: dropping the replaced entry may have emptied the index.
                index = self._indexes.get(scope)
                if index is None:
                    index = self._indexes[scope] = VectorIndex(ann_threshold=self._ann_threshold)
                index.add(entry.key, entry.vector)
            heapq.heappush(self._expiry, (stored.expires_at, stored.seq, entry.key))
            self._make_room()

    async def refresh(self, scope: Scope) -> None:
        """Nothing to do: every put is in the index as soon as it returns."""

    async def nearest(
        self,
        scope: Scope,
        vector: Vector,
        k: int = 3,
        min_similarity: float | None = None,
        *,
        refresh: bool = True,
    ) -> list[Neighbour]:
        with self._lock:
            index = self._indexes.get(scope)
            if index is None or k <= 0:
                return []
            query = as_query(vector, index.dim)
            now = self._clock()
            found: dict[str, Neighbour] = {}
            for _ in range(MAX_ROUNDS):
                count = candidate_count(k)
                candidates = index.candidates(query, count, min_similarity)
                dead = 0
                for key, _ident in candidates:
                    stored = self._entries[key]  # the index only holds stored entries
                    if stored.expires_at <= now:
                        self._drop(key)
                        dead += 1
                    elif key not in found:
                        assert stored.entry.vector is not None
                        similarity = float(np.dot(stored.entry.vector, query))
                        if min_similarity is None or similarity >= min_similarity:
                            found[key] = Neighbour(similarity, stored.entry)
                # Another round only if the dead may have hidden live neighbours.
                if not dead or len(found) >= k or len(candidates) < count:
                    break
            best = sorted(found.values(), key=lambda n: n.similarity, reverse=True)
            return best[:k]

    async def clear(self, tenant: str, target: str | None = None) -> int:
        with self._lock:
            targets = self._owners.get(tenant, {})
            names = list(targets) if target is None else [target] if target in targets else []
            keys = [key for name in names for key in targets[name]]
            for key in keys:
                self._drop(key)
            return len(keys)

    def stats(self) -> CacheStats:
        with self._lock:
            self._sweep(self._clock())
            return CacheStats(len(self._entries), self._bytes, self._evictions)

    async def aclose(self) -> None:
        with self._lock:
            self._entries.clear()
            self._indexes.clear()
            self._owners.clear()
            self._expiry.clear()
            self._bytes = 0

    # -- internals (called with the lock held) ----------------------------------------------

    def _drop(self, key: str) -> _Stored | None:
        """Remove ``key`` everywhere it is referenced (its heap item goes stale)."""
        stored = self._entries.pop(key, None)
        if stored is None:
            return None
        self._bytes -= stored.size
        scope = stored.scope
        targets = self._owners[scope.tenant]
        keys = targets[scope.target]
        keys.discard(key)
        if not keys:
            del targets[scope.target]
            if not targets:
                del self._owners[scope.tenant]
        index = self._indexes.get(scope)
        if index is not None and index.remove(key) and not len(index):
            del self._indexes[scope]  # a partition's next vector may have another dimension
        return stored

    def _sweep(self, now: float) -> None:
        """Drop every entry whose TTL has passed."""
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            stored = self._entries.get(key)
            if stored is not None and stored.seq == seq:
                self._drop(key)
        # Replaced, evicted and cleared entries leave stale items behind until their time
        # comes; rebuild before they outnumber the live ones.
        if len(heap) > 2 * len(self._entries) + 1024:
            self._expiry = [(s.expires_at, s.seq, k) for k, s in self._entries.items()]
            heapq.heapify(self._expiry)

    def _make_room(self) -> None:
        # put swept the expired first: they are not evictions
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))
            self._evictions += 1
