"""Retention policy: which rows go, and a background task that prunes every few minutes.

For each kind (``[retention.traces]``, ``.embeddings``, ``.question_vectors``, ``.feedback``,
``.agent_runs``, ``.reviews``, ``.eval_runs``) a run finds the newest row that must go, under
the age limit or beyond the row cap, whichever cuts more, and deletes it and everything older
in batches of ``retention.batch_size``, pausing between batches so that other writers (this
process's and other workers') take the lock in turn.
Then the store gives the freed space back where it needs telling (SQLite).

``groundgate serve`` runs it in the background (``Container.start``); ``groundgate prune`` runs
one pass by hand. A failed run is logged and tried again at the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from groundgate.config_retention import RetentionConfig, RetentionLimit
from groundgate.store.retention import RETAINED_KINDS, Position, RetainedKind, RetentionStore

log = logging.getLogger("groundgate.retention")

# Between two deletion batches: enough for a writer waiting on the lock (another worker's
# busy handler polls it) to get in first.
BATCH_PAUSE_S = 0.01
_DAY_S = 86400.0


class PruneObserver(Protocol):
    def pruned(self, kind: str, rows: int) -> None: ...

    def pruning_ran(self, at: float) -> None: ...


class Pruner:
    def __init__(
        self,
        store: RetentionStore,
        config: RetentionConfig,
        observer: PruneObserver | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._config = config
        self._observer = observer
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def limit(self, kind: RetainedKind) -> RetentionLimit:
        limit: RetentionLimit = getattr(self._config, kind)
        return limit

    async def run_once(self) -> dict[RetainedKind, int]:
        """One pass over every kind; returns the rows deleted per kind."""
        now = self._clock()
        deleted: dict[RetainedKind, int] = {}
        for kind in RETAINED_KINDS:
            upto = await self._cutoff(kind, now)
            deleted[kind] = 0 if upto is None else await self._delete(kind, upto)
            if self._observer is not None:
                self._observer.pruned(kind, deleted[kind])
        if any(deleted.values()):
            await self._store.reclaim()
        if self._observer is not None:
            self._observer.pruning_ran(self._clock())
        if any(deleted.values()):
            log.info("pruned %s", ", ".join(f"{n} {kind}" for kind, n in deleted.items() if n))
        return deleted

    async def _cutoff(self, kind: RetainedKind, now: float) -> Position | None:
        """The newest row that must go: under the age limit or beyond the cap, the later."""
        limit = self.limit(kind)
        cuts: list[Position] = []
        if limit.max_age_days > 0:
            by_age = await self._store.newest(kind, before=now - limit.max_age_days * _DAY_S)
            cuts += [by_age] if by_age is not None else []
        if limit.max_rows > 0:
            by_count = await self._store.newest(kind, skip=limit.max_rows)
            cuts += [by_count] if by_count is not None else []
        return max(cuts, default=None)

    async def _delete(self, kind: RetainedKind, upto: Position) -> int:
        batch, total = self._config.batch_size, 0
        while True:
            deleted = await self._store.delete_upto(kind, upto, batch)
            total += deleted
            if deleted < batch:
                return total
            await asyncio.sleep(BATCH_PAUSE_S)

    # -- in the background ----------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="groundgate-pruner")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._config.interval_s)
            try:
                await self.run_once()
            except Exception:
                log.exception("pruning failed; trying again in %.0f s", self._config.interval_s)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
