"""A call's hold on one deployment: its bulkhead slot, its place in the in-flight count, and the
circuit-breaker verdict it owes.

A plain call gives all three back when its response has arrived. A stream occupies the
deployment, and can still fail, until its last chunk has been read, it broke, or its reader
went away, so it carries its lease and ends it then (see ``held_stream``).
"""

from __future__ import annotations

import time
from enum import Enum

from groundgate.errors import DeadlineExceeded, ProviderError, UpstreamRejected
from groundgate.observe.trace import Attempt
from groundgate.reliability.balancer import DeploymentStats
from groundgate.reliability.breaker import CircuitBreaker
from groundgate.reliability.bulkhead import Bulkhead
from groundgate.reliability.error_class import error_class


class Verdict(Enum):
    SUCCESS = "success"  # the breaker counts a success; the latency joins the EWMA
    FAILURE = "failure"  # the breaker counts a failure
    NONE = "none"  # no verdict: the request's own fault, its deadline, or its client gone


def verdict_for(error: BaseException) -> Verdict:
    """What a call that ended with ``error`` says about the deployment's health."""
    if isinstance(error, (UpstreamRejected, DeadlineExceeded)):
        return Verdict.NONE  # the request was invalid, or its own deadline ran out
    if isinstance(error, ProviderError):
        return Verdict.FAILURE
    return Verdict.NONE  # cancelled (the client went away), our own queue, or a bug


class Lease:
    """Taken with :meth:`take` once the breaker allowed the call; ended exactly once with
    :meth:`end` (later calls do nothing), which frees the slot and settles the breaker."""

    __slots__ = (
        "_breaker",
        "_bulkhead",
        "_stats",
        "ended",
        "kept",
        "latency_ms",
        "record",
        "started",
    )

    def __init__(self, bulkhead: Bulkhead, stats: DeploymentStats, breaker: CircuitBreaker) -> None:
        self._bulkhead = bulkhead
        self._stats = stats
        self._breaker = breaker
        self.started = time.perf_counter()
        self.ended = False
        # Kept: the call's result (a stream) holds the lease past the call and ends it.
        self.kept = False
        # The latency the balancer learns on success: time to the first content for a
        # stream (its length says how long the answer is, not how fast the deployment is).
        self.latency_ms: float | None = None
        # The trace's record of this try, brought up to date when a kept lease ends.
        self.record: Attempt | None = None

    @classmethod
    async def take(
        cls,
        bulkhead: Bulkhead,
        stats: DeploymentStats,
        breaker: CircuitBreaker,
        timeout_s: float,
    ) -> Lease:
        await bulkhead.acquire(timeout_s)  # Overloaded when the deployment's queue is full
        stats.started()
        return cls(bulkhead, stats, breaker)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def keep(self) -> None:
        """The call returned something that goes on using the deployment (a stream)."""
        self.kept = True
        self.latency_ms = self.elapsed_ms()

    def end(self, verdict: Verdict, error: ProviderError | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        elapsed = self.elapsed_ms()
        success = verdict is Verdict.SUCCESS
        self._stats.finished((self.latency_ms or elapsed) if success else None)
        self._bulkhead.release()
        if success:
            self._breaker.record_success()
        elif verdict is Verdict.FAILURE:
            self._breaker.record_failure()
        else:
            self._breaker.release()
        record = self.record
        if record is not None:
            record.duration_ms = elapsed
            if error is not None:
                record.status, record.error = "error", error.message
                record.upstream_status, record.transient = error.upstream_status, error.transient
                record.error_class = error_class(error)
