"""The cache backend contract, the same for every backend (the ``harness`` fixture).

Redis runs on the real server the session starts (``redis_server``); each test gets its own
namespace, so no state leaks between tests. Time passes on a fake clock for the memory backend
and for real (a few tenths of a second) for Redis, which expires keys itself.

Vectors are built with known cosines: ``at_cosine(c, axis)`` is ``c * e0 + sqrt(1 - c²) *
e_axis``, so its similarity to ``e0`` is ``c`` and two of them on different axes have cosine
``c1 * c2``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from groundgate.cache.backend import (
    CacheBackend,
    CachedEntry,
    CacheStats,
    CacheUnavailable,
    Scope,
    Vector,
)
from groundgate.cache.factory import build_cache_backend
from groundgate.cache.memory import MemoryCache, entry_size
from groundgate.cache.redis_cache import RedisCache
from groundgate.cache.vector_index import VectorIndex
from groundgate.errors import ConfigError
from tests.gateway.redis_server import RedisServer
from tests.servers import free_port

BACKENDS = ["memory", "redis"]
DIM = 16
SHORT_TTL_S = 0.2  # Redis expires keys with millisecond precision; the sleep leaves a margin
_namespaces = itertools.count()

ACME = Scope("acme", "handbook", "p1")


def _namespace() -> str:
    return f"c{next(_namespaces)}-{uuid.uuid4().hex[:8]}"


def basis(axis: int, dim: int = DIM) -> Vector:
    vector = np.zeros(dim, dtype=np.float32)
    vector[axis] = 1.0
    return vector


def at_cosine(c: float, axis: int, dim: int = DIM) -> Vector:
    """A unit vector whose cosine with ``basis(0)`` is ``c``."""
    vector = np.zeros(dim, dtype=np.float32)
    vector[0] = c
    vector[axis] = math.sqrt(1.0 - c * c)
    return vector


def entry(key: str, vector: Vector | None = None, question: str | None = None) -> CachedEntry:
    return CachedEntry(key, question or f"question {key}?", f"answer {key}".encode(), vector)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """Makes backends of one kind. For Redis, every backend made by one harness shares its
    namespace: they are replicas of one gateway."""

    def __init__(self, kind: str, redis_url: str | None) -> None:
        self.kind = kind
        self.redis_url = redis_url
        self.namespace = _namespace()
        self.clock = FakeClock()
        self.made: list[CacheBackend] = []

    def make(self, **options: Any) -> CacheBackend:
        backend: CacheBackend
        if self.kind == "memory":
            backend = MemoryCache(clock=self.clock, **options)
        else:
            assert self.redis_url is not None
            # Tests check what a lookup finds, not how long it waits for a new mirror (those
            # that do pass load_wait_s themselves).
            options.setdefault("load_wait_s", None)
            backend = RedisCache(self.redis_url, namespace=self.namespace, **options)
        self.made.append(backend)
        return backend

    async def pass_time(self, seconds: float) -> None:
        if self.kind == "memory":
            self.clock.now += seconds
        else:
            await asyncio.sleep(seconds)


@pytest.fixture(params=BACKENDS)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    url = None
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url
    made = Harness(request.param, url)
    try:
        yield made
    finally:
        for backend in made.made:
            await backend.aclose()


@pytest.fixture
def cache(harness: Harness) -> CacheBackend:
    return harness.make()


async def keys_nearest(cache: CacheBackend, scope: Scope, vector: Vector, k: int = 3) -> list[str]:
    return [n.entry.key for n in await cache.nearest(scope, vector, k)]


# -- exact entries ---------------------------------------------------------------------------


async def test_put_get_round_trip(cache: CacheBackend) -> None:
    vector = at_cosine(0.8, 3)
    stored = CachedEntry("k1", "Wie lange gilt der Urlaub? ☀", b"\x00\xffpayload", vector)
    await cache.put(ACME, stored, 30)
    got = await cache.get(ACME, "k1")
    assert got is not None
    assert (got.key, got.question, got.payload) == (stored.key, stored.question, stored.payload)
    assert got.vector is not None and got.vector.dtype == np.float32
    assert np.array_equal(got.vector, vector)
    await cache.put(ACME, entry("plain"), 30)  # no vector: an exact-only entry
    plain = await cache.get(ACME, "plain")
    assert plain is not None and plain.vector is None and plain.payload == b"answer plain"


async def test_misses(cache: CacheBackend) -> None:
    assert await cache.get(ACME, "never") is None
    await cache.put(ACME, entry("k1"), 30)
    assert await cache.get(Scope("acme", "handbook", "p2"), "k1") is None
    assert await cache.get(Scope("other", "handbook", "p1"), "k1") is None
    assert await cache.get(Scope("acme", "other", "p1"), "k1") is None
    assert await cache.get(ACME, "k1") is not None


async def test_entries_expire(harness: Harness, cache: CacheBackend) -> None:
    await cache.put(ACME, entry("short", at_cosine(0.99, 1)), SHORT_TTL_S)
    await cache.put(ACME, entry("long", at_cosine(0.9, 2)), 30)
    assert await keys_nearest(cache, ACME, basis(0)) == ["short", "long"]
    await harness.pass_time(SHORT_TTL_S + 0.15)
    assert await cache.get(ACME, "short") is None
    assert await cache.get(ACME, "long") is not None
    assert await keys_nearest(cache, ACME, basis(0)) == ["long"]
    await cache.put(ACME, entry("gone", at_cosine(0.99, 3)), 0)  # already expired: not stored
    assert await cache.get(ACME, "gone") is None
    assert await keys_nearest(cache, ACME, basis(0)) == ["long"]


async def test_dead_neighbours_do_not_hide_live_ones(harness: Harness, cache: CacheBackend) -> None:
    for i in range(20):
        await cache.put(ACME, entry(f"short{i}", at_cosine(0.99, 1 + i % 15)), SHORT_TTL_S)
    for i in range(3):
        await cache.put(ACME, entry(f"long{i}", at_cosine(0.5 - i / 10, 1 + i)), 30)
    await harness.pass_time(SHORT_TTL_S + 0.15)
    assert await keys_nearest(cache, ACME, basis(0), 3) == ["long0", "long1", "long2"]


async def test_put_replaces(cache: CacheBackend) -> None:
    await cache.put(ACME, entry("k", at_cosine(0.99, 1), question="first"), 30)
    assert await keys_nearest(cache, ACME, basis(0)) == ["k"]
    await cache.put(ACME, entry("k", at_cosine(0.2, 2), question="second"), 30)
    got = await cache.get(ACME, "k")
    assert got is not None and got.question == "second"
    neighbours = await cache.nearest(ACME, basis(0), 3)
    assert len(neighbours) == 1  # the old vector is gone, not a second neighbour
    assert neighbours[0].entry.question == "second"
    assert neighbours[0].similarity == pytest.approx(0.2, abs=1e-6)
    # Replacing with a ttl of 0 removes it.
    await cache.put(ACME, entry("k", at_cosine(0.5, 3)), 0)
    assert await cache.get(ACME, "k") is None
    assert await cache.nearest(ACME, basis(0)) == []


# -- nearest ---------------------------------------------------------------------------------


async def test_nearest_is_best_first_with_exact_similarity(cache: CacheBackend) -> None:
    cosines = {"c50": 0.5, "c99": 0.99, "c10": 0.1, "c95": 0.95, "c90": 0.9}
    for axis, (key, c) in enumerate(cosines.items(), start=1):
        await cache.put(ACME, entry(key, at_cosine(c, axis)), 30)
    neighbours = await cache.nearest(ACME, basis(0), 3)
    assert [n.entry.key for n in neighbours] == ["c99", "c95", "c90"]
    assert [n.similarity for n in neighbours] == pytest.approx([0.99, 0.95, 0.9], abs=1e-6)
    assert neighbours[0].entry.payload == b"answer c99"
    every = await cache.nearest(ACME, basis(0), 10)
    assert [n.entry.key for n in every] == ["c99", "c95", "c90", "c50", "c10"]
    # The query need not be an axis: cosine of two such vectors is c1 * c2.
    off_axis = await cache.nearest(ACME, at_cosine(0.5, 9), 1)
    assert off_axis[0].entry.key == "c99"
    assert off_axis[0].similarity == pytest.approx(0.99 * 0.5, abs=1e-6)
    assert await cache.nearest(ACME, basis(0), 0) == []
    assert await cache.nearest(Scope("acme", "handbook", "empty"), basis(0)) == []


async def test_nearest_without_refresh_searches_as_of_the_last_refresh(harness: Harness) -> None:
    """A lookup refreshes while it embeds, then searches with ``refresh=False``: that search
    sees every put before the refresh, still refreshes a partition never refreshed, and still
    returns only live entries."""
    writer = harness.make()
    reader = writer if harness.kind == "memory" else harness.make()  # Redis: another replica
    await writer.put(ACME, entry("early", at_cosine(0.9, 1)), 30)
    found = await reader.nearest(ACME, basis(0), refresh=False)  # never refreshed before
    assert [n.entry.key for n in found] == ["early"]
    await writer.put(ACME, entry("late", at_cosine(0.95, 2)), 30)
    await reader.refresh(ACME)
    found = await reader.nearest(ACME, basis(0), refresh=False)
    assert [n.entry.key for n in found] == ["late", "early"]
    await writer.clear("acme", "handbook")
    assert await reader.nearest(ACME, basis(0), refresh=False) == []
    await reader.refresh(Scope("acme", "handbook", "nothing-here"))  # an empty partition


async def test_nearest_leaves_out_what_is_below_min_similarity(harness: Harness) -> None:
    """Both regimes of the index (brute force and int8 HNSW): with ``min_similarity`` only
    neighbours at or above it come back, with exact similarities."""
    for threshold in (10_000, 64):
        cache = harness.make(ann_threshold=threshold)
        scope = Scope("acme", "handbook", f"min-{threshold}")
        fillers = np.random.default_rng(3).standard_normal((100, 64)).astype(np.float32)
        fillers[:, 0] = 0.0  # orthogonal to the query
        fillers /= np.linalg.norm(fillers, axis=1, keepdims=True)
        for i, filler in enumerate(fillers):
            await cache.put(scope, entry(f"far{i}", filler), 30)
        for axis, (key, c) in enumerate({"c995": 0.995, "c985": 0.985, "c97": 0.97}.items()):
            await cache.put(scope, entry(key, at_cosine(c, 50 + axis, dim=64)), 30)
        query = basis(0, dim=64)
        got = await cache.nearest(scope, query, 3, min_similarity=0.98)
        assert [n.entry.key for n in got] == ["c995", "c985"], threshold
        assert [n.similarity for n in got] == pytest.approx([0.995, 0.985], abs=1e-6)
        assert await cache.nearest(scope, query, 3, min_similarity=0.999) == []
        every = await keys_nearest(cache, scope, query, 3)
        assert every == ["c995", "c985", "c97"]


async def test_nearest_never_crosses_scopes(cache: CacheBackend) -> None:
    same = at_cosine(0.99, 1)
    scopes = [
        ACME,
        Scope("acme", "handbook", "p2"),  # another partition
        Scope("other", "handbook", "p1"),  # another tenant
        Scope("acme", "other-app", "p1"),  # another target
    ]
    for i, scope in enumerate(scopes):
        await cache.put(scope, entry(f"k{i}", same), 30)
    for i, scope in enumerate(scopes):
        assert await keys_nearest(cache, scope, basis(0), 10) == [f"k{i}"]


async def test_dimensions_are_per_partition(cache: CacheBackend) -> None:
    await cache.put(ACME, entry("k16", at_cosine(0.9, 1)), 30)
    with pytest.raises(ValueError):
        await cache.put(ACME, entry("k8", at_cosine(0.9, 1, dim=8)), 30)
    with pytest.raises(ValueError):
        await cache.put(ACME, entry("k16", at_cosine(0.9, 1, dim=8)), 30)
    with pytest.raises(ValueError):
        await cache.nearest(ACME, basis(0, dim=8))
    got = await cache.get(ACME, "k16")  # the failed replacement changed nothing
    assert got is not None and got.vector is not None and len(got.vector) == DIM
    other = Scope("acme", "handbook", "p8")
    await cache.put(other, entry("k8", at_cosine(0.9, 1, dim=8)), 30)
    assert await keys_nearest(cache, other, basis(0, dim=8)) == ["k8"]


async def test_nearest_through_the_ann_index(harness: Harness) -> None:
    """Past the threshold the candidates come from an int8 HNSW index: similarities must still
    be exact, and removed entries must still never be returned."""
    cache = harness.make(ann_threshold=64)
    rng = np.random.default_rng(7)
    dim = 64
    vectors = rng.standard_normal((300, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i, vector in enumerate(vectors):
        ttl = SHORT_TTL_S if i % 3 == 0 else 30
        await cache.put(ACME, entry(f"v{i}", vector), ttl)
    for i in (1, 2, 4, 5, 299):
        noisy = vectors[i] + 0.05 * rng.standard_normal(dim).astype(np.float32)
        noisy /= np.linalg.norm(noisy)
        neighbours = await cache.nearest(ACME, noisy, 3)
        assert neighbours[0].entry.key == f"v{i}"
        exact = [float(np.dot(vectors[int(n.entry.key[1:])], noisy)) for n in neighbours]
        assert [n.similarity for n in neighbours] == pytest.approx(exact, abs=1e-6)
        assert exact == sorted(exact, reverse=True)
    await harness.pass_time(SHORT_TTL_S + 0.15)
    for i in range(0, 300, 3):
        # Each query's own vector expired: whatever comes back is alive.
        keys = await keys_nearest(cache, ACME, vectors[i], 5)
        assert len(keys) == 5 and all(int(key[1:]) % 3 for key in keys)


# -- clear -----------------------------------------------------------------------------------


async def test_clear_by_tenant_and_target(cache: CacheBackend) -> None:
    app_a = Scope("acme", "app-a", "pa")
    app_b = Scope("acme", "app-b", "pb")
    other = Scope("globex", "app-a", "pg")
    for scope, count in ((app_a, 3), (app_b, 2), (other, 2)):
        for i in range(count):
            await cache.put(scope, entry(f"{scope.partition}{i}", at_cosine(0.9, i + 1)), 30)
    assert await cache.clear("acme", "app-a") == 3
    assert await cache.get(app_a, "pa0") is None
    assert await cache.nearest(app_a, basis(0)) == []
    assert await cache.get(app_b, "pb0") is not None
    assert len(await cache.nearest(app_b, basis(0))) == 2
    assert await cache.clear("acme", "app-a") == 0
    assert await cache.clear("acme") == 2
    assert await cache.get(app_b, "pb1") is None
    assert await cache.nearest(app_b, basis(0)) == []
    assert len(await cache.nearest(other, basis(0))) == 2  # another tenant's target of that name
    assert await cache.clear("nobody") == 0
    assert await cache.clear("globex", "app-b") == 0
    # Cleared partitions fill up again as usual.
    await cache.put(app_a, entry("again", at_cosine(0.9, 1)), 30)
    assert await keys_nearest(cache, app_a, basis(0)) == ["again"]


async def test_clear_names_are_not_patterns(cache: CacheBackend) -> None:
    names = ["a", "a*", "a?", "[a]", "a\\", "a:b"]
    for name in names:
        await cache.put(Scope(name, name, "p"), entry(f"k-{name}", at_cosine(0.9, 1)), 30)
    assert await cache.clear("a*") == 1
    assert await cache.clear("[a]", "*") == 0
    assert await cache.clear("[a]", "[a]") == 1
    for name in names:
        present = await cache.get(Scope(name, name, "p"), f"k-{name}") is not None
        assert present == (name not in ("a*", "[a]")), name


# -- stats -----------------------------------------------------------------------------------


async def test_stats_follow_puts_and_clears(cache: CacheBackend) -> None:
    assert cache.stats().entries == 0 and cache.stats().bytes == 0
    for i in range(3):
        await cache.put(ACME, entry(f"k{i}", at_cosine(0.9, i + 1)), 30)
    three = cache.stats()
    assert three.entries == 3 and three.bytes > 0
    await cache.put(ACME, entry("k0", at_cosine(0.5, 4)), 30)  # a replacement
    assert cache.stats().entries == 3
    await cache.put(Scope("globex", "x", "p"), entry("g", at_cosine(0.9, 1)), 30)
    assert cache.stats().entries == 4 and cache.stats().bytes > three.bytes
    await cache.clear("acme")
    after = cache.stats()
    assert after.entries == 1 and 0 < after.bytes < three.bytes
    await cache.clear("globex")
    assert cache.stats().entries == 0 and cache.stats().bytes == 0
    assert cache.stats().evictions == 0


# -- memory backend --------------------------------------------------------------------------


async def test_memory_evicts_least_recently_used_by_count() -> None:
    cache = MemoryCache(max_entries=3, clock=FakeClock())
    for key in ("a", "b", "c"):
        await cache.put(ACME, entry(key, at_cosine(0.9, 1 + ord(key) - ord("a"))), 30)
    assert await cache.get(ACME, "a") is not None  # a is now the most recently used
    await cache.put(ACME, entry("d", at_cosine(0.9, 4)), 30)
    assert await cache.get(ACME, "b") is None
    assert sorted(await keys_nearest(cache, ACME, basis(0), 10)) == ["a", "c", "d"]
    stats = cache.stats()
    assert (stats.entries, stats.evictions) == (3, 1)
    await cache.put(ACME, entry("c", at_cosine(0.5, 3)), 30)  # a replacement makes no room
    assert cache.stats().evictions == 1
    await cache.put(ACME, entry("e", at_cosine(0.9, 5)), 30)
    assert await cache.get(ACME, "a") is None and cache.stats().evictions == 2


async def test_memory_evicts_by_bytes() -> None:
    big = [CachedEntry(f"big{i}", "q", b"x" * 10_000, at_cosine(0.9, i + 1)) for i in range(3)]
    size = entry_size(big[0])
    cache = MemoryCache(max_bytes=2 * size + 100, clock=FakeClock())
    await cache.put(ACME, big[0], 30)
    await cache.put(ACME, big[1], 30)
    assert cache.stats().bytes == 2 * size
    await cache.put(ACME, big[2], 30)
    assert await cache.get(ACME, "big0") is None
    assert sorted(await keys_nearest(cache, ACME, basis(0), 10)) == ["big1", "big2"]
    assert cache.stats() == CacheStats(2, 2 * size, 1)
    # An entry that can never fit is not stored, and evicts nothing.
    huge = CachedEntry("huge", "q", b"x" * (3 * size), None)
    await cache.put(ACME, huge, 30)
    assert await cache.get(ACME, "huge") is None
    assert cache.stats().entries == 2 and cache.stats().evictions == 1


async def test_memory_drops_expired_entries_before_evicting() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=2, clock=clock)
    await cache.put(ACME, entry("short", at_cosine(0.9, 1)), 1)
    await cache.put(ACME, entry("long", at_cosine(0.9, 2)), 60)
    clock.now += 2
    await cache.put(ACME, entry("new", at_cosine(0.9, 3)), 60)
    assert await cache.get(ACME, "long") is not None
    sizes = [entry_size(entry(key, basis(0))) for key in ("long", "new")]
    assert cache.stats() == CacheStats(2, sum(sizes), 0)
    clock.now += 60
    assert cache.stats().entries == 0  # expired entries are not counted


# -- the vector index ------------------------------------------------------------------------


def test_vector_index_keeps_a_vector_re_added_meanwhile() -> None:
    """The Redis backend removes dead candidates after awaiting a fetch: by the id they had,
    so a vector stored again under the key in between stays."""
    index = VectorIndex()
    first = index.add("k", at_cosine(0.9, 1))
    second = index.add("k", at_cosine(0.8, 2))
    assert not index.remove("k", first)
    assert index.candidates(basis(0), 8) == [("k", second)]
    assert index.remove("k", second) and "k" not in index and index.dim is None


def test_vector_index_switches_to_ann_without_losing_vectors() -> None:
    index = VectorIndex(ann_threshold=32)
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((100, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i, vector in enumerate(vectors):
        index.add(f"v{i}", vector)
        if i % 5 == 0:
            assert index.remove(f"v{i // 2}")  # removals while the HNSW index is built
        for j in (i, i // 2 + 1):
            if f"v{j}" in index:
                assert index.candidates(vectors[j], 1)[0][0] == f"v{j}"
    assert len(index) == 80
    assert index.pop_oldest() == "v1"  # v0 was removed first


# -- redis backend ---------------------------------------------------------------------------


@pytest.fixture
async def redis_harness(redis_server: RedisServer) -> AsyncIterator[Harness]:
    made = Harness("redis", redis_server.url)
    try:
        yield made
    finally:
        for backend in made.made:
            await backend.aclose()


async def test_redis_replicas_share_entries(redis_harness: Harness) -> None:
    one, two = redis_harness.make(), redis_harness.make()
    await one.put(ACME, entry("from-one", at_cosine(0.9, 1)), 30)
    assert await two.get(ACME, "from-one") is not None
    assert await keys_nearest(two, ACME, basis(0)) == ["from-one"]
    await two.put(ACME, entry("from-two", at_cosine(0.95, 2)), 30)
    assert await keys_nearest(one, ACME, basis(0)) == ["from-two", "from-one"]
    # A replacement on one replica is what the other one's nearest reports.
    await one.put(ACME, entry("from-two", at_cosine(0.3, 3)), 30)
    neighbours = await two.nearest(ACME, basis(0))
    assert [n.entry.key for n in neighbours] == ["from-one", "from-two"]
    assert neighbours[1].similarity == pytest.approx(0.3, abs=1e-6)
    # A clear on one: the other's mirror still holds the vectors, but never returns them.
    assert await one.clear("acme", "handbook") == 2
    assert await two.nearest(ACME, basis(0)) == []
    assert await two.get(ACME, "from-one") is None
    # A replica that starts afterwards does not even mirror them (the stream was emptied).
    three = redis_harness.make()
    assert await three.nearest(ACME, basis(0)) == []
    assert three.stats().entries == 0
    await two.put(ACME, entry("later", at_cosine(0.9, 4)), 30)
    assert await keys_nearest(one, ACME, basis(0)) == ["later"]
    assert await keys_nearest(three, ACME, basis(0)) == ["later"]


async def test_redis_search_without_refresh_misses_only_what_came_after(
    redis_harness: Harness,
) -> None:
    one, two = redis_harness.make(), redis_harness.make()
    await one.put(ACME, entry("before", at_cosine(0.9, 1)), 30)
    await two.refresh(ACME)
    await one.put(ACME, entry("after", at_cosine(0.95, 2)), 30)
    # As of two's refresh: the later put is not seen yet (less recall, never a wrong answer)...
    assert [n.entry.key for n in await two.nearest(ACME, basis(0), refresh=False)] == ["before"]
    # ...until the next refresh, which a plain nearest does itself.
    assert await keys_nearest(two, ACME, basis(0)) == ["after", "before"]


async def test_redis_a_replica_applies_its_own_puts_once(redis_harness: Harness) -> None:
    """A replica's put goes into its own mirror at once; reading the stream record back must
    not add the vector a second time (on a large HNSW index that costs milliseconds), while
    another replica's later put of the same key still replaces it."""
    one, two = redis_harness.make(), redis_harness.make()
    await one.put(ACME, entry("seed", at_cosine(0.5, 1)), 30)
    assert await keys_nearest(one, ACME, basis(0)) == ["seed"]  # the mirror is read
    await one.put(ACME, entry("mine", at_cosine(0.9, 2)), 30)
    index = one._mirrors[one._stream_key(ACME)].index
    first_id = index.id_of("mine")
    assert await keys_nearest(one, ACME, basis(0)) == ["mine", "seed"]
    assert index.id_of("mine") == first_id  # not added again by the sync
    await two.put(ACME, entry("mine", at_cosine(0.2, 3)), 30)  # a later put elsewhere
    neighbours = await one.nearest(ACME, basis(0))
    assert [n.entry.key for n in neighbours] == ["seed", "mine"]
    assert index.id_of("mine") != first_id  # the other replica's vector replaced ours


async def test_redis_a_clear_empties_the_streams(redis_harness: Harness) -> None:
    """Cleared vectors closer to a query than every live one must not crowd the live ones out
    of a replica that starts later (it would replay them all from the stream)."""
    writer = redis_harness.make()
    for i in range(40):
        await writer.put(ACME, entry(f"old{i}", at_cosine(0.99, 1 + i % 15)), 30)
    assert await writer.clear("acme") == 40
    for i in range(3):
        await writer.put(ACME, entry(f"new{i}", at_cosine(0.5 - i / 10, 1 + i)), 30)
    later = redis_harness.make()
    assert await keys_nearest(later, ACME, basis(0)) == ["new0", "new1", "new2"]
    assert later.stats().entries == 3


async def test_redis_mirrors_are_bounded(redis_harness: Harness) -> None:
    writer = redis_harness.make()
    reader = redis_harness.make(max_entries=5)
    other = Scope("acme", "handbook", "p2")
    await writer.put(other, entry("o", at_cosine(0.9, 1)), 30)
    assert await keys_nearest(reader, other, basis(0)) == ["o"]
    for i in range(8):
        await writer.put(ACME, entry(f"k{i}", at_cosine(0.5 + i / 20, i + 1)), 30)
    neighbours = await reader.nearest(ACME, basis(0), 3)
    # Over the bound: the other partition was dropped first, then the oldest vectors.
    assert reader.stats().entries == 5 and reader.stats().evictions == 4
    assert [n.entry.key for n in neighbours] == ["k7", "k6", "k5"]
    # A dropped partition is rebuilt from its stream when next searched.
    assert await keys_nearest(reader, other, basis(0)) == ["o"]
    assert reader.stats().entries <= 5


async def test_redis_late_replica_builds_a_large_mirror(redis_harness: Harness) -> None:
    writer = redis_harness.make(ann_threshold=64)
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((1200, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i, vector in enumerate(vectors):
        await writer.put(ACME, entry(f"v{i % 1000}", vector), 30)  # 200 replaced
    late = redis_harness.make(ann_threshold=64)  # waits for the build (the harness default)
    for i in (200, 500, 999, 1000, 1199):
        neighbours = await late.nearest(ACME, vectors[i], 1)
        assert neighbours[0].entry.key == f"v{i % 1000}"
        assert neighbours[0].similarity == pytest.approx(1.0, abs=1e-6)
    assert late.stats().entries == 1000
    # v5 was replaced (by vector 1005): its first vector is found nowhere any more.
    assert (await late.nearest(ACME, vectors[5], 1))[0].similarity < 0.9


async def test_redis_a_lookup_does_not_wait_for_a_large_mirror(redis_harness: Harness) -> None:
    """A new replica's first lookup in a large partition is a miss while its mirror is built
    in the background (seconds at 100,000 vectors), not a request held up that long."""
    writer = redis_harness.make(ann_threshold=64)
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((600, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i, vector in enumerate(vectors):
        await writer.put(ACME, entry(f"v{i}", vector), 30)
    late = redis_harness.make(ann_threshold=64, load_wait_s=0)
    assert isinstance(late, RedisCache)
    assert await late.nearest(ACME, vectors[7], 1) == []  # still building: a miss
    await late.warm(ACME)
    assert late.stats().entries == 600
    assert (await late.nearest(ACME, vectors[7], 1))[0].entry.key == "v7"
    # Puts made after the build are read incrementally, with no wait.
    await writer.put(ACME, entry("after", at_cosine(0.0, 1, dim=32)), 30)
    assert (await late.nearest(ACME, at_cosine(0.0, 1, dim=32), 1))[0].entry.key == "after"


async def test_redis_streams_expire_with_their_longest_lived_entry(
    redis_harness: Harness,
) -> None:
    cache = redis_harness.make()
    client = aioredis.Redis.from_url(redis_harness.redis_url or "")
    try:
        await cache.put(ACME, entry("long", at_cosine(0.9, 1)), 30)
        await cache.put(ACME, entry("short", at_cosine(0.9, 2)), SHORT_TTL_S)
        streams = await client.keys(f"{{{redis_harness.namespace}}}:*:s:*")
        assert len(streams) == 1
        assert 20_000 < await client.pttl(streams[0]) <= 30_000
        await cache.put(Scope("x", "y", "z"), entry("brief", at_cosine(0.9, 1)), SHORT_TTL_S)
        await asyncio.sleep(SHORT_TTL_S + 0.15)
        names = await client.keys(f"{{{redis_harness.namespace}}}:*")
        assert len(names) == 2  # "long" and its stream; nothing of scope x is left
    finally:
        await client.aclose()
        await cache.aclose()


async def test_redis_namespaces_are_isolated(redis_server: RedisServer) -> None:
    base = _namespace()
    # Namespaces are escaped in SCAN patterns: "[*]" would not even match itself.
    first = RedisCache(redis_server.url, namespace=f"{base}[*]")
    second = RedisCache(redis_server.url, namespace=f"{base}-other")
    try:
        await first.put(ACME, entry("k", at_cosine(0.9, 1)), 30)
        assert await second.get(ACME, "k") is None
        assert await second.nearest(ACME, basis(0)) == []
        assert await second.clear("acme") == 0
        assert await first.get(ACME, "k") is not None
        await second.put(ACME, entry("k", at_cosine(0.9, 1)), 30)
        assert await first.clear("acme") == 1
        assert await second.get(ACME, "k") is not None
        assert await keys_nearest(second, ACME, basis(0)) == ["k"]
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_down_raises_cache_unavailable() -> None:
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    began = time.monotonic()
    try:
        with pytest.raises(CacheUnavailable) as caught:
            await cache.get(ACME, "k")
        assert caught.value.status_code == 503
        with pytest.raises(CacheUnavailable):
            await cache.put(ACME, entry("k", at_cosine(0.9, 1)), 30)
        with pytest.raises(CacheUnavailable):
            await cache.nearest(ACME, basis(0))
        with pytest.raises(CacheUnavailable):
            await cache.clear("acme")
    finally:
        await cache.aclose()
    assert time.monotonic() - began < 5.0


# -- factory ---------------------------------------------------------------------------------


async def test_build_cache_backend(redis_server: RedisServer) -> None:
    memory = build_cache_backend("memory", None, max_entries=10, max_bytes=10_000)
    assert isinstance(memory, MemoryCache)
    await memory.aclose()
    shared = build_cache_backend(
        "redis", redis_server.url, max_entries=10, max_bytes=10_000, namespace=_namespace()
    )
    assert isinstance(shared, RedisCache)
    try:
        await shared.put(ACME, entry("k"), 30)
        assert await shared.get(ACME, "k") is not None
    finally:
        await shared.aclose()
    with pytest.raises(ConfigError):
        build_cache_backend("redis", None, max_entries=10, max_bytes=10_000)
    with pytest.raises(ConfigError):
        build_cache_backend("memcached", "memcached://x", max_entries=10, max_bytes=10_000)
