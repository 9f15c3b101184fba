"""Runs a stopped gateway left behind, settled when a gateway starts.

A run is stored ``running`` when it starts and saved again when it stops or pauses. A gateway
that crashed or was killed in between leaves it ``running`` for good: listed as in flight,
and out of retention's reach (it never prunes a run that may still go on). At start, each run
still ``running`` whose last write is older than its app's deadline, with room to spare, can
be going on nowhere (no replica runs one longer), so it is saved ``failed``, with
``stop_reason`` "error" and a note saying why. The save is conditional
(``save_run(expected="running")``): a run that finished meanwhile keeps what it wrote.

Runs waiting for approval past their app's ``approval_timeout_s`` are saved ``expired`` here
too, as reading them would (``Agents.get``), so that retention can prune them in time.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping

from groundgate.agents.service import app_limits, expired
from groundgate.config import AppConfig
from groundgate.store.runs import RunCursor, RunRecord, RunStatus, RunStore

log = logging.getLogger("groundgate.agents")

ABANDONED_NOTE = "the gateway stopped while the run was in flight"
# Beyond its deadline a run still makes its last save (a slow tool's cancellation, the store):
# a run is taken for abandoned only this long after its deadline.
DEADLINE_GRACE_S = 300.0
# A run of an app this gateway no longer configures (another replica may, with any deadline).
UNKNOWN_APP_AFTER_S = 24 * 3600.0
_PAGE = 200


class RunReaper:
    def __init__(
        self,
        runs: RunStore,
        apps: Mapping[str, AppConfig],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runs = runs
        self.apps = apps
        self.clock = clock

    def running_for_too_long(self, app: str) -> float:
        """How long after its last write a ``running`` run of ``app`` cannot still be going."""
        config = self.apps.get(app)
        if config is None:
            return UNKNOWN_APP_AFTER_S
        return config.agent.deadline_s + DEADLINE_GRACE_S

    def waited_for_too_long(self, app: str) -> float:
        """How long a run of ``app`` may wait for approval (as when the run is read)."""
        return app_limits(self.apps, app).approval_timeout_s

    async def settle(self) -> dict[str, int]:
        """Fail the abandoned runs and expire the overdue approvals; return how many of each."""
        failed = await self._settle("running", self.running_for_too_long, _failed)
        overdue = await self._settle("pending_approval", self.waited_for_too_long, expired)
        if failed or overdue:
            log.warning(
                "agent runs left behind: %d failed (in flight when a gateway stopped),"
                " %d expired (waited for approval past the timeout)",
                failed,
                overdue,
            )
        return {"failed": failed, "expired": overdue}

    async def _settle(
        self,
        status: RunStatus,
        allowed: Callable[[str], float],
        settled: Callable[[RunRecord, float], RunRecord],
    ) -> int:
        now = self.clock()
        # Every run older than the shortest bound (an unconfigured app's, "", included) is
        # read; each is then held to its own app's.
        shortest = min([allowed(app) for app in self.apps] + [allowed("")])
        count, after = 0, None
        while True:
            page = await self.runs.idle_runs(
                status, updated_before=now - shortest, after=after, limit=_PAGE
            )
            for run in page:
                if now - run.updated_at <= allowed(run.app):
                    continue  # its own app gives it longer
                count += await self.runs.save_run(settled(run, now), expected=status)
            if len(page) < _PAGE:
                return count
            after = RunCursor.after(page[-1])


def _failed(run: RunRecord, now: float) -> RunRecord:
    return dataclasses.replace(
        run, status="failed", stop_reason="error", note=ABANDONED_NOTE, updated_at=now
    )
