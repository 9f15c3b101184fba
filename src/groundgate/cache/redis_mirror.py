"""A Redis replica's local copy of one partition's vectors (see ``cache/redis_cache.py``).

Each partition has a Redis stream with one record (key, vector) per put. A replica mirrors it
into a :class:`VectorIndex`: a new mirror reads the whole stream once (:meth:`Mirror.load`),
then only the records after the last one it has seen (:meth:`Mirror.apply`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator

import numpy as np

from groundgate.cache.backend import Vector
from groundgate.cache.vector_index import VectorIndex

# Replies are bytes: the client is made without decode_responses.
Records = list[tuple[bytes, dict[bytes, bytes]]]
StreamId = tuple[int, int]
# Reads a stream's records from an exclusive or inclusive start ("(1-0", "-"), a page at most.
ReadPage = Callable[[str, str], Awaitable[Records]]

SYNC_BATCH = 500  # stream records per XRANGE; more at once are added off the loop


def stream_id(raw: bytes | str) -> StreamId:
    """A stream record id ("<ms>-<seq>") in a form that compares in stream order."""
    ms, _, seq = (raw.decode() if isinstance(raw, bytes) else raw).partition("-")
    return int(ms), int(seq or 0)


def vectors_of(records: Records) -> Iterator[tuple[StreamId, str, Vector]]:
    for record_id, fields in records:
        key, vector = fields.get(b"k"), fields.get(b"v")
        if key is not None and vector is not None and len(vector) % 4 == 0:
            key_text = key.decode("utf-8", "surrogatepass")
            yield stream_id(record_id), key_text, np.frombuffer(vector, dtype="<f4")


class Mirror:
    """This replica's copy of one partition's vectors and how far it has read the stream."""

    def __init__(self, stream: str, owner: str, ann_threshold: int) -> None:
        self.stream = stream
        self.owner = owner  # "<tenant#>:<target#>:", for clear
        self.ann_threshold = ann_threshold
        self.index = VectorIndex(ann_threshold=ann_threshold)
        self.last_id: str | None = None  # None: not loaded yet
        self.loading: asyncio.Task[None] | None = None  # the first, whole-stream read
        self.lock = asyncio.Lock()  # one incremental XRANGE in flight per mirror
        self.counted = (0, 0)  # (vectors, bytes) included in the cache's totals
        # Keys this replica put and already applied, with their stream record's id: reading
        # that record back (or an older one for the key) must not add the vector again.
        self.own: dict[str, StreamId] = {}

    @property
    def loaded(self) -> bool:
        return self.last_id is not None

    async def load(self, read: ReadPage) -> None:
        """Fill the mirror from its whole stream. Adding thousands of vectors one by one to an
        HNSW index takes seconds, so a large mirror is built at once, in a worker thread, and
        the event loop keeps serving meanwhile."""
        records: Records = []
        while True:
            start = f"({records[-1][0].decode()}" if records else "-"
            batch = await read(self.stream, start)
            records += batch
            if len(batch) < SYNC_BATCH:
                break
        if not records:
            self.last_id = "0-0"  # an empty stream: every record to come is new
            return
        items = [(key, vector) for _, key, vector in vectors_of(records)]
        build = functools.partial(VectorIndex.build, items, ann_threshold=self.ann_threshold)
        # Whatever our own puts added meanwhile is in the stream after these records.
        self.index = await asyncio.to_thread(build) if len(items) > SYNC_BATCH else build()
        self.own.clear()  # the rebuilt index holds exactly what the stream held
        self.last_id = records[-1][0].decode()

    def apply(self, records: Records) -> None:
        """Add the vectors of ``records`` (in stream order, after ``last_id``), skipping what
        this replica's own puts already applied."""
        for record_id, key, vector in vectors_of(records):
            own = self.own.get(key)
            if own is not None:
                if record_id <= own:  # our own put, or one it replaced
                    if record_id == own:
                        del self.own[key]
                    continue
                del self.own[key]  # another replica's later put replaces ours
            with contextlib.suppress(ValueError):  # another dimension: skipped
                self.index.add(key, vector)
        # Own records at or before the last one read were trimmed from the stream.
        last = stream_id(records[-1][0])
        self.own = {key: at for key, at in self.own.items() if at > last}
        self.last_id = records[-1][0].decode()

    def close(self) -> None:
        if self.loading is not None:
            self.loading.cancel()
