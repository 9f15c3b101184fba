"""One partition's vectors, searched for candidates of :meth:`CacheBackend.nearest`.

Both backends keep one :class:`VectorIndex` per partition: ``memory`` as its semantic index,
``redis`` as each replica's local mirror of a partition's stream. The index only *proposes*
candidates; callers recompute every reported similarity exactly from the entry's own float32
vector and drop candidates whose entry is gone, so an approximate candidate list costs recall
at worst, never a wrong similarity or a dead entry.

Two regimes, chosen by size (measured on 384-dim unit vectors, 2 cores):

* small partitions (most of them: one per tenant x target x prompt/KB version x sampling
  parameters) are a float32 matrix searched by brute force: ~50 µs at 2,000 rows, exact, a few
  KiB for a handful of vectors. An HNSW index costs ~48 KiB of memory even when it holds one
  vector, which would dominate thousands of tiny partitions.
* large ones go to a usearch HNSW index with int8 storage (a quarter of float32): ~80 µs at
  10,000 vectors where brute force takes ~180 µs, and brute force grows linearly beyond.

Adding 2,000 vectors to an HNSW index takes 100-200 ms, too long to block the event loop in
one put. So a growing partition's index is built gradually: from half the threshold on, each
add also moves a couple of older vectors into it, and by the threshold it holds them all; only
then is the matrix dropped and searches switch over. A whole index known at once (a Redis
replica's new mirror) is built by :meth:`VectorIndex.build` in one batch instead.

Recall: on 100,000 384-dim vectors of low intrinsic dimension (as sentence embeddings are),
usearch's default search depth found every near-duplicate among 12 candidates; on isotropic
random vectors, HNSW's worst case, 84-88%.

Every add gets a fresh integer id (usearch keys are integers). :meth:`remove` can be told the
id a candidate had, so a caller that awaited in between (Redis) never removes a newer vector
stored under the same key meanwhile.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from groundgate.cache.backend import Vector

if TYPE_CHECKING:
    from usearch.index import Index

# Partitions with at least this many vectors are searched with the HNSW index.
ANN_THRESHOLD = 2048
# Older vectors moved into the HNSW index per add while it is being built.
_MIGRATE_PER_ADD = 2
# Approximate bookkeeping per vector beyond its components: two dict entries, the key string,
# and (in HNSW) the neighbour lists of its graph node.
_PER_VECTOR_OVERHEAD = 200
# Candidate rounds per nearest call: a round only repeats when dead candidates (expired,
# cleared) took the place of live ones, and each round removes the dead it met.
MAX_ROUNDS = 3
# How far an int8 HNSW score may fall below the exact cosine (unit vectors: each component is
# rounded to 1/127, a cosine error of a few thousandths; this leaves room to spare).
APPROXIMATION_MARGIN = 0.02


def _hnsw(dim: int) -> Index:
    # Imported with the first large partition: the library costs ~14 MB resident, which a
    # gateway whose partitions stay small (or that caches nothing) need not carry.
    from usearch.index import Index

    # usearch's default graph and search depth. (Doubling the search depth to 128 cost
    # ~0.25 ms per search at 100,000 vectors and did not find the 1-2 of ~560 true neighbours
    # that a mirror built in one batch misses: that is the graph, not the search.)
    return Index(ndim=dim, metric="cos", dtype="i8")


def candidate_count(k: int) -> int:
    """How many candidates to ask an index for when ``k`` neighbours are wanted: more than k,
    since some may be dead and the index's ranking is approximate."""
    return max(8, 4 * k)


def as_query(vector: Vector | npt.ArrayLike, dim: int | None) -> Vector:
    """``vector`` as a contiguous 1-D float32 array of ``dim`` components (any when None)."""
    array = np.ascontiguousarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.shape[0] == 0:
        raise ValueError(f"a vector must be 1-D and non-empty, got shape {array.shape}")
    if dim is not None and array.shape[0] != dim:
        raise ValueError(f"vector has {array.shape[0]} dimensions, this partition has {dim}")
    return array


class VectorIndex:
    """Vectors of one partition under string keys; one vector per key (adding replaces).

    Not thread-safe: callers serialise access (the memory backend holds its lock, the Redis
    backend only touches it from the event loop without awaiting in between)."""

    def __init__(self, *, ann_threshold: int = ANN_THRESHOLD) -> None:
        if ann_threshold < 2:
            raise ValueError("ann_threshold must be >= 2")
        self._threshold = ann_threshold
        self.dim: int | None = None  # set by the first vector; reset when the index empties
        self._next_id = 0
        self._id_of: dict[str, int] = {}
        # Ids only grow, so this dict's insertion order is oldest first (see pop_oldest).
        self._key_of: dict[int, str] = {}
        # Brute-force store: row r holds the vector of id _row_ids[r] (-1 for a free row).
        self._matrix: npt.NDArray[np.float32] | None = None
        self._row_ids = np.empty(0, dtype=np.int64)
        self._row_of: dict[int, int] = {}
        self._free_rows: list[int] = []
        self._rows_used = 0
        # HNSW index, and ids still only in the matrix while it is being built.
        self._ann: Index | None = None
        self._pending: set[int] = set()

    def __len__(self) -> int:
        return len(self._id_of)

    def __contains__(self, key: object) -> bool:
        return key in self._id_of

    @property
    def nbytes(self) -> int:
        """Approximate memory held: the matrix, the int8 HNSW vectors and the bookkeeping."""
        size = len(self._id_of) * _PER_VECTOR_OVERHEAD
        if self._matrix is not None:
            size += self._matrix.nbytes + self._row_ids.nbytes
        if self._ann is not None and self.dim is not None:
            size += len(self._ann) * self.dim  # one byte per component
        return size

    def id_of(self, key: str) -> int | None:
        return self._id_of.get(key)

    def add(self, key: str, vector: Vector) -> int:
        """Store ``vector`` (unit length) under ``key``, replacing its previous vector; returns
        the id it got. Raises ValueError, changing nothing, on a dimension mismatch."""
        array = as_query(vector, self.dim)
        self.remove(key)
        if self.dim is None:
            self.dim = array.shape[0]
        ident = self._next_id
        self._next_id += 1
        self._id_of[key] = ident
        self._key_of[ident] = key
        if self._ann is None or self._matrix is not None:
            self._store_row(ident, array)
        if self._ann is not None:
            self._ann.add(ident, array)
        self._grow_ann()
        return ident

    def remove(self, key: str, ident: int | None = None) -> bool:
        """Forget ``key`` (only if its id is still ``ident``, when given); whether it was held."""
        current = self._id_of.get(key)
        if current is None or (ident is not None and ident != current):
            return False
        del self._id_of[key]
        del self._key_of[current]
        row = self._row_of.pop(current, None)
        if row is not None:
            self._row_ids[row] = -1
            self._free_rows.append(row)
        if self._ann is not None and current not in self._pending:
            self._ann.remove(current)
        self._pending.discard(current)
        if not self._id_of:
            self._reset()
        return True

    @classmethod
    def build(
        cls, items: Iterable[tuple[str, Vector]], *, ann_threshold: int = ANN_THRESHOLD
    ) -> VectorIndex:
        """A new index of ``items`` (the last vector of a key wins; vectors whose dimension
        differs from the first are skipped). Large ones get their HNSW index in one batch,
        on every core; usearch releases the GIL, so this may run in a worker thread."""
        latest: dict[str, Vector] = {}
        for key, vector in items:
            latest.pop(key, None)  # keep the order of the last put of each key
            latest[key] = vector
        index = cls(ann_threshold=ann_threshold)
        if len(latest) < ann_threshold:
            for key, vector in latest.items():
                with contextlib.suppress(ValueError):
                    index.add(key, vector)
            return index
        dim = len(next(iter(latest.values())))
        kept = [(key, v) for key, v in latest.items() if v.ndim == 1 and len(v) == dim]
        index.dim = dim
        index._ann = _hnsw(dim)
        ids = np.arange(len(kept), dtype=np.uint64)
        index._ann.add(ids, np.stack([as_query(v, dim) for _, v in kept]), threads=0)
        index._id_of = {key: i for i, (key, _) in enumerate(kept)}
        index._key_of = {i: key for i, (key, _) in enumerate(kept)}
        index._next_id = len(kept)
        return index

    def pop_oldest(self) -> str | None:
        """Remove the vector added longest ago (replacing counts as adding); its key."""
        if not self._key_of:
            return None
        key = self._key_of[next(iter(self._key_of))]
        self.remove(key)
        return key

    def candidates(
        self, query: Vector, count: int, min_similarity: float | None = None
    ) -> list[tuple[str, int]]:
        """Up to ``count`` (key, id) pairs whose vectors are likely nearest to ``query``, best
        first (by the index's own, possibly quantised, scores). With ``min_similarity``, those
        whose score is clearly below it (by more than the int8 quantisation error) are left
        out, so a caller fetches nothing for a query with no near neighbour."""
        if count <= 0 or not self._id_of:
            return []
        q = as_query(query, self.dim)
        floor = -np.inf if min_similarity is None else min_similarity - APPROXIMATION_MARGIN
        if self._matrix is not None:
            return self._brute_force(q, count, floor)
        assert self._ann is not None
        matches = self._ann.search(q, count)
        found = [
            (self._key_of.get(int(ident)), int(ident))
            for ident, distance in zip(matches.keys, matches.distances, strict=True)
            if 1.0 - float(distance) >= floor  # usearch's "cos" distance is 1 - cosine
        ]
        return [(key, ident) for key, ident in found if key]

    def _brute_force(self, q: Vector, count: int, floor: float) -> list[tuple[str, int]]:
        assert self._matrix is not None
        used = self._rows_used
        scores = self._matrix[:used] @ q
        ids = self._row_ids[:used]
        scores[ids < 0] = -np.inf
        count = min(count, len(self._id_of))
        rows = np.argpartition(-scores, count - 1)[:count] if count < used else np.arange(used)
        rows = rows[np.argsort(-scores[rows], kind="stable")]
        return [
            (self._key_of[int(ids[r])], int(ids[r]))
            for r in rows
            if ids[r] >= 0 and scores[r] >= floor
        ]

    def _store_row(self, ident: int, array: Vector) -> None:
        if self._free_rows:
            row = self._free_rows.pop()
        else:
            if self._matrix is None or self._rows_used == self._matrix.shape[0]:
                self._grow_matrix(len(array))
            row = self._rows_used
            self._rows_used += 1
        assert self._matrix is not None
        self._matrix[row] = array
        self._row_ids[row] = ident
        self._row_of[ident] = row

    def _grow_matrix(self, dim: int) -> None:
        rows = 16 if self._matrix is None else 2 * self._matrix.shape[0]
        matrix = np.zeros((rows, dim), dtype=np.float32)
        row_ids = np.full(rows, -1, dtype=np.int64)
        if self._matrix is not None:
            matrix[: self._rows_used] = self._matrix[: self._rows_used]
            row_ids[: self._rows_used] = self._row_ids[: self._rows_used]
        self._matrix, self._row_ids = matrix, row_ids

    def _grow_ann(self) -> None:
        """Start, continue or finish building the HNSW index (see the module docstring)."""
        if self._matrix is None:
            return  # no index yet needed, or already switched over
        count = len(self._id_of)
        if self._ann is None:
            if count < self._threshold // 2:
                return
            assert self.dim is not None
            self._ann = _hnsw(self.dim)
            self._pending = set(self._row_of)
        moves = len(self._pending) if count >= self._threshold else _MIGRATE_PER_ADD
        for _ in range(min(moves, len(self._pending))):
            ident = self._pending.pop()
            self._ann.add(ident, self._matrix[self._row_of[ident]])
        if count >= self._threshold:
            self._matrix = None
            self._row_ids = np.empty(0, dtype=np.int64)
            self._row_of.clear()
            self._free_rows.clear()
            self._rows_used = 0

    def _reset(self) -> None:
        self.dim = None
        self._matrix = None
        self._row_ids = np.empty(0, dtype=np.int64)
        self._row_of.clear()
        self._free_rows.clear()
        self._rows_used = 0
        self._ann = None
        self._pending.clear()
