"""The Redis cache backend: entries shared by every replica.

Why not RediSearch or pgvector for the semantic index: Debian's ``redis-server`` has no vector
search module, and a network round trip per similarity search is slower than searching in
process. So Redis stays the single source of truth for *entries*, and every replica keeps a
local mirror of each partition's *vectors* (a :class:`VectorIndex`, sub-millisecond to search),
fed by a per-partition Redis stream. A mirror only proposes candidates: they are then fetched
from Redis, and only entries that still exist there (and still belong to the partition) are
returned, with the similarity computed exactly from the fetched vector. So an expired,
replaced or cleared entry is never returned, by any replica, however stale its mirror.

Keys (the ``{namespace}`` hash tag keeps one namespace in one Redis Cluster slot, so the put
script stays valid on a cluster; tenant, target and partition names are hashed, so glob
characters in them cannot disturb ``SCAN MATCH``, and keys have a bounded length):

* ``{ns}:c:<tenant#>:<target#>:e:<key>``: one entry, a packed string (see ``_pack``) set with
  ``PX`` = its TTL, so Redis expires it;
* ``{ns}:c:<tenant#>:<target#>:s:<partition#>``: the partition's stream, one record (key,
  vector) per put, trimmed to about ``stream_maxlen`` records and expiring with the
  longest-lived entry it describes.

A put is one script call (entry, stream record, stream expiry). A ``nearest`` costs two round
trips: ``XRANGE`` from the last record this replica has seen (nothing new: an empty reply),
then one ``MGET`` of the candidates; those found gone are removed from the mirror. The first
may be taken early by ``refresh`` (a lookup reads the stream while it embeds the question). A new
mirror reads its whole stream and, when large, builds its index in a worker thread (about a
second for 10,000 vectors, ten for 100,000), so the event loop is not blocked meanwhile; a
``nearest`` waits for that at most ``load_wait_s`` and otherwise searches only what this
replica put itself meanwhile (mostly a miss: the request goes upstream) until the build is
done. ``warm`` waits for it however long it takes.
``clear`` unlinks the entries it finds with ``SCAN MATCH`` and empties (``XTRIM MAXLEN 0``)
the streams, keeping their last id so record ids never go back. A replica that falls more
than ``stream_maxlen`` puts behind on a partition misses the trimmed records: less recall,
never a wrong answer.
Needs Redis >= 6.2 (exclusive ``XRANGE`` starts).

Mirrors hold at most ``max_entries`` vectors and ``max_bytes`` in all; the least recently
used partitions are dropped first (and rebuilt from their stream when next searched).
``stats`` describes this replica's mirrors: Redis-side counts would need a round trip.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import struct
from collections import OrderedDict
from collections.abc import Awaitable
from typing import TypeVar, cast

import numpy as np
from redis.exceptions import RedisError

from groundgate.cache.backend import (
    CachedEntry,
    CacheStats,
    CacheUnavailable,
    Neighbour,
    Scope,
    Vector,
)
from groundgate.cache.redis_mirror import SYNC_BATCH, Mirror, Records, stream_id
from groundgate.cache.vector_index import ANN_THRESHOLD, MAX_ROUNDS, as_query, candidate_count
from groundgate.redis_client import redis_client

log = logging.getLogger("groundgate.cache")
T = TypeVar("T")

# An entry's value: format version, then the lengths of partition (bytes), question (bytes)
# and vector (float32 components, 0 for none), then those, then the payload.
_HEADER = struct.Struct("<BHIH")
_FORMAT = 1
_DIGEST_HEX = 16  # 64-bit digests of tenant, target and partition names
# How long a lookup waits for a new mirror: a small partition loads in a round trip or two
# (well within this, even on a busy machine); a large one takes seconds, which no request
# should wait for.
_LOAD_WAIT_S = 0.5

# A put, atomically: the entry and, with a vector, its stream record. The stream lives as long
# as the longest-lived entry it describes (PTTL is -1 on a stream XADD just created). A script
# rather than PEXPIRE NX/GT, which need Redis 7. KEYS: the entry[, the stream]. ARGV: value,
# ttl (ms)[, key, vector, stream maxlen].
_PUT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if #KEYS == 1 then return 0 end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'k', ARGV[3], 'v', ARGV[4])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return id
"""


def _digest(name: str) -> str:
    data = name.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=_DIGEST_HEX // 2).hexdigest()


_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


def _glob_escape(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def _pack(partition: str, entry: CachedEntry, vector: Vector | None) -> bytes:
    part = partition.encode("utf-8", "surrogatepass")
    question = entry.question.encode("utf-8", "surrogatepass")
    dims = 0 if vector is None else len(vector)
    vector_bytes = b"" if vector is None else vector.astype("<f4").tobytes()
    header = _HEADER.pack(_FORMAT, len(part), len(question), dims)
    return b"".join((header, part, question, vector_bytes, entry.payload))


def _unpack(key: str, data: bytes, partition: str) -> CachedEntry | None:
    """The entry in ``data``, or None when it belongs to another partition (or is not ours)."""
    try:
        version, part_len, question_len, dims = _HEADER.unpack_from(data)
        if version != _FORMAT:
            return None
        at = _HEADER.size
        if data[at : at + part_len].decode("utf-8", "surrogatepass") != partition:
            return None
        at += part_len
        question = data[at : at + question_len].decode("utf-8", "surrogatepass")
        at += question_len
        vector = None
        if dims:
            vector = np.frombuffer(data, dtype="<f4", count=dims, offset=at).astype(np.float32)
            at += 4 * dims
    except (struct.error, ValueError):
        return None
    return CachedEntry(key, question, data[at:], vector)


class RedisCache:
    def __init__(
        self,
        url: str,
        namespace: str = "gg",
        *,
        max_entries: int = 10_000,
        max_bytes: int = 256 * 2**20,
        stream_maxlen: int | None = None,
        timeout_s: float = 1.0,
        max_connections: int = 64,
        ann_threshold: int = ANN_THRESHOLD,
        load_wait_s: float | None = _LOAD_WAIT_S,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be >= 1")
        self._client = redis_client(url, timeout_s=timeout_s, max_connections=max_connections)
        self._put_script = self._client.register_script(_PUT)  # EVALSHA, loaded on NOSCRIPT
        self._prefix = f"{{{namespace}}}:c:"
        self._pattern_prefix = _glob_escape(self._prefix)
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._stream_maxlen = stream_maxlen or max_entries
        self._ann_threshold = ann_threshold
        self._load_wait_s = load_wait_s
        self._mirrors: OrderedDict[str, Mirror] = OrderedDict()  # least recently used first
        self._mirrored = 0  # vectors in all mirrors
        self._mirrored_bytes = 0
        self._evictions = 0

    # -- keys ---------------------------------------------------------------------------------

    def _owner(self, scope: Scope) -> str:
        return f"{_digest(scope.tenant)}:{_digest(scope.target)}:"

    def _entry_key(self, scope: Scope, key: str) -> str:
        return f"{self._prefix}{self._owner(scope)}e:{key}"

    def _stream_key(self, scope: Scope) -> str:
        return f"{self._prefix}{self._owner(scope)}s:{_digest(scope.partition)}"

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            message = f"cache backend unavailable: {type(exc).__name__}: {exc}"
            raise CacheUnavailable(message) from exc

    # -- the protocol -------------------------------------------------------------------------

    async def get(self, scope: Scope, key: str) -> CachedEntry | None:
        # Redis tracks recency itself (maxmemory-policy allkeys-lru, if configured).
        data = await self._call(self._client.get(self._entry_key(scope, key)))
        return None if data is None else _unpack(key, cast(bytes, data), scope.partition)

    async def put(self, scope: Scope, entry: CachedEntry, ttl_s: float) -> None:
        vector = None if entry.vector is None else as_query(entry.vector, None)
        stream = self._stream_key(scope)
        mirror = self._mirrors.get(stream)
        if vector is not None and mirror is not None:
            as_query(vector, mirror.index.dim)  # a known dimension mismatch raises first
        entry_key = self._entry_key(scope, entry.key)
        if not ttl_s > 0:  # already expired: what it replaces goes, nothing is stored
            await self._call(self._client.unlink(entry_key))
            return
        keys = [entry_key]
        args: list[bytes | str | int] = [
            _pack(scope.partition, entry, vector),
            max(1, math.ceil(ttl_s * 1000)),
        ]
        if vector is not None:
            keys.append(stream)
            args += [entry.key, vector.astype("<f4").tobytes(), self._stream_maxlen]
        record_id = await self._call(self._put_script(keys=keys, args=args))
        if vector is not None:
            # Our own mirror learns of it now; reading its stream record back skips it.
            mirror = self._mirror(scope, stream)
            mirror.index.add(entry.key, vector)
            if mirror.loaded:  # else the first full read rebuilds the index anyway
                mirror.own[entry.key] = stream_id(record_id)
            self._recount(mirror)

    async def refresh(self, scope: Scope) -> None:
        await self._sync(scope, self._load_wait_s)

    async def nearest(
        self,
        scope: Scope,
        vector: Vector,
        k: int = 3,
        min_similarity: float | None = None,
        *,
        refresh: bool = True,
    ) -> list[Neighbour]:
        if k <= 0:
            return []
        stream = self._stream_key(scope)
        if refresh or stream not in self._mirrors:
            mirror = await self._sync(scope, self._load_wait_s)
        else:
            mirror = self._mirror(scope, stream)
        if not len(mirror.index):
            return []
        query = as_query(vector, mirror.index.dim)
        found: dict[str, Neighbour] = {}
        for _ in range(MAX_ROUNDS):
            count = candidate_count(k)
            candidates = mirror.index.candidates(query, count, min_similarity)
            fresh = [(key, ident) for key, ident in candidates if key not in found]
            if not fresh:
                break
            keys = [self._entry_key(scope, key) for key, _ in fresh]
            values = cast(list[bytes | None], await self._call(self._client.mget(keys)))
            dead: list[tuple[str, int]] = []
            for (key, ident), data in zip(fresh, values, strict=True):
                entry = None if data is None else _unpack(key, data, scope.partition)
                if entry is None or entry.vector is None or entry.vector.shape != query.shape:
                    dead.append((key, ident))
                else:
                    similarity = float(np.dot(entry.vector, query))
                    if min_similarity is None or similarity >= min_similarity:
                        found[key] = Neighbour(similarity, entry)
            # The id check keeps a vector another coroutine re-added meanwhile.
            for key, ident in dead:
                mirror.index.remove(key, ident)
            self._recount(mirror)
            if not dead or len(found) >= k or len(candidates) < count:
                break
        best = sorted(found.values(), key=lambda n: n.similarity, reverse=True)
        return best[:k]

    async def clear(self, tenant: str, target: str | None = None) -> int:
        owner = f"{_digest(tenant)}:" + (f"{_digest(target)}:" if target is not None else "")
        pattern = f"{self._pattern_prefix}{owner}*"
        kind_at = len(self._prefix.encode()) + 2 * (_DIGEST_HEX + 1)  # where "e:"/"s:" starts
        cleared = 0
        cursor: int = 0
        while True:
            cursor, names = await self._call(
                self._client.scan(cursor=cursor, match=pattern, count=1000)
            )
            entries = [n for n in names if n[kind_at : kind_at + 2] == b"e:"]
            streams = [n for n in names if n[kind_at : kind_at + 2] == b"s:"]
            pipe = self._client.pipeline(transaction=False)
            if entries:
                pipe.unlink(*entries)
            for stream in streams:
                pipe.xtrim(stream, maxlen=0)
            if entries or streams:
                replies = await self._call(pipe.execute())
                cleared += int(replies[0]) if entries else 0
            if cursor == 0:
                break
        for name in [n for n, m in self._mirrors.items() if m.owner.startswith(owner)]:
            self._drop_mirror(name)
        return cleared

    def stats(self) -> CacheStats:
        return CacheStats(self._mirrored, self._mirrored_bytes, self._evictions)

    async def warm(self, scope: Scope) -> None:
        """Bring this replica's mirror of ``scope``'s partition up to date, waiting for a new
        one to be built however long that takes (a replica may warm its partitions first)."""
        await self._sync(scope, None)

    async def aclose(self) -> None:
        for name in list(self._mirrors):
            self._drop_mirror(name)
        await self._client.aclose(close_connection_pool=True)

    # -- mirrors ------------------------------------------------------------------------------

    def _mirror(self, scope: Scope, stream: str) -> Mirror:
        mirror = self._mirrors.get(stream)
        if mirror is None:
            mirror = Mirror(stream, self._owner(scope), self._ann_threshold)
            self._mirrors[stream] = mirror
            self._make_room(mirror)  # empty mirrors count too: at most max_entries of them
        self._mirrors.move_to_end(stream)
        return mirror

    async def _sync(self, scope: Scope, load_wait_s: float | None) -> Mirror:
        """The partition's mirror, with every stream record written so far applied; when it
        is new and still being built after ``load_wait_s`` seconds (None: wait for it), as it
        is: holding only this replica's own puts since."""
        stream = self._stream_key(scope)
        mirror = self._mirror(scope, stream)
        if not mirror.loaded:
            if mirror.loading is None:
                mirror.loading = asyncio.create_task(self._load(mirror))
                # Its error is logged by _load and raised to whoever waits; none may wait.
                mirror.loading.add_done_callback(lambda t: t.cancelled() or t.exception())
            loading = mirror.loading
            # asyncio.wait never cancels: a lookup that gives up leaves the build running.
            done, _ = await asyncio.wait({loading}, timeout=load_wait_s)
            if not done:
                return mirror
            error = None if loading.cancelled() else loading.exception()
            if error is not None:
                raise error
        async with mirror.lock:
            while mirror.loaded:
                records = await self._read(stream, f"({mirror.last_id}")
                if records:
                    mirror.apply(records)
                    self._recount(mirror)
                if len(records) < SYNC_BATCH:
                    break
        return mirror

    async def _load(self, mirror: Mirror) -> None:
        try:
            await mirror.load(self._read)
        except CacheUnavailable as exc:
            log.warning("semantic cache mirror not loaded: %s", exc)
            raise
        finally:
            mirror.loading = None  # loaded, or failed: the next lookup tries again
        self._recount(mirror)

    async def _read(self, stream: str, start: str) -> Records:
        reply = await self._call(self._client.xrange(stream, min=start, max="+", count=SYNC_BATCH))
        return cast(Records, reply)

    def _recount(self, mirror: Mirror) -> None:
        """Bring the totals up to date after ``mirror`` changed, and make room if needed."""
        if self._mirrors.get(mirror.stream) is not mirror:
            return  # dropped while we awaited: its vectors no longer count
        now = (len(mirror.index), mirror.index.nbytes)
        self._mirrored += now[0] - mirror.counted[0]
        self._mirrored_bytes += now[1] - mirror.counted[1]
        mirror.counted = now
        self._make_room(mirror)

    def _make_room(self, current: Mirror) -> None:
        # Whole partitions, least recently used first; then the oldest vectors of the
        # partition in use, when it alone is over the bounds.
        while (
            self._mirrored > self._max_entries
            or self._mirrored_bytes > self._max_bytes
            or len(self._mirrors) > self._max_entries
        ):
            victim = next((name for name in self._mirrors if name != current.stream), None)
            if victim is not None:
                self._evictions += len(self._mirrors[victim].index)
                self._drop_mirror(victim)
                continue
            if current.index.pop_oldest() is None:
                break
            self._evictions += 1
            self._mirrored -= 1
            before = current.counted[1]
            current.counted = (current.counted[0] - 1, current.index.nbytes)
            self._mirrored_bytes += current.counted[1] - before

    def _drop_mirror(self, stream: str) -> None:
        mirror = self._mirrors.pop(stream)
        mirror.close()
        self._mirrored -= mirror.counted[0]
        self._mirrored_bytes -= mirror.counted[1]
