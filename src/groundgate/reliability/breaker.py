"""A circuit breaker per deployment.

CLOSED: calls go through; failures are counted. It opens after ``failure_threshold``
consecutive failures, or when the failure rate over a sliding window reaches ``failure_rate``
(only once the window holds ``min_calls`` calls, so three failures out of four at 3 a.m. do
not trip it). OPEN: calls are refused until ``cooldown_s`` has passed; then it is HALF_OPEN and
lets up to ``half_open_probes`` trial calls through at once. ``success_to_close`` successful
probes close it; a failed probe re-opens it and restarts the cooldown.

The OPEN -> HALF_OPEN move happens lazily, whenever the state is looked at: no timers, so a
breaker costs nothing while nobody calls the deployment.

Callers record only transient/upstream failures (timeouts, 5xx, connection errors, 429):
a request the upstream rejected as invalid says nothing about the deployment's health.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# The rate window is split into this many buckets of counters (1 s each for a 30 s window),
# so memory stays bounded whatever the call rate. The window is thus exact to one bucket.
_BUCKETS = 30


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5  # consecutive failures that open it
    failure_rate: float = 0.5  # ...or this failure rate over the window
    window_s: float = 30.0  # sliding window for the rate
    min_calls: int = 20  # the rate only counts with at least this many calls in the window
    cooldown_s: float = 10.0  # open -> half-open after this
    half_open_probes: int = 1  # concurrent trial calls allowed while half-open
    success_to_close: int = 1  # successful probes that close it

    def __post_init__(self) -> None:
        problems = []
        if self.failure_threshold < 1:
            problems.append("failure_threshold must be >= 1")
        if not 0.0 < self.failure_rate <= 1.0:
            problems.append("failure_rate must be in (0, 1]")
        if not (self.window_s > 0 and math.isfinite(self.window_s)):
            problems.append("window_s must be a finite number > 0")
        if self.min_calls < 1:
            problems.append("min_calls must be >= 1")
        if not (self.cooldown_s >= 0 and math.isfinite(self.cooldown_s)):
            problems.append("cooldown_s must be a finite number >= 0")
        if self.half_open_probes < 1:
            problems.append("half_open_probes must be >= 1")
        if self.success_to_close < 1:
            problems.append("success_to_close must be >= 1")
        if problems:
            raise ValueError("; ".join(problems))


class _Window:
    """Call and failure counts over the last ``window_s`` seconds, in fixed-width buckets."""

    def __init__(self, window_s: float) -> None:
        self._width = window_s / _BUCKETS
        self._buckets: deque[list[int]] = deque()  # [bucket index, calls, failures], oldest first

    def add(self, now: float, failed: bool) -> None:
        index = math.floor(now / self._width)
        self._expire(index)
        if not self._buckets or self._buckets[-1][0] != index:
            self._buckets.append([index, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += int(failed)

    def counts(self, now: float) -> tuple[int, int]:
        self._expire(math.floor(now / self._width))
        return sum(b[1] for b in self._buckets), sum(b[2] for b in self._buckets)

    def clear(self) -> None:
        self._buckets.clear()

    def _expire(self, index: int) -> None:
        while self._buckets and self._buckets[0][0] <= index - _BUCKETS:
            self._buckets.popleft()


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        config: BreakerConfig = BreakerConfig(),
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._window = _Window(config.window_s)
        self._opened_at: float | None = None  # on ``clock``'s time scale
        self._probes_in_flight = 0
        self._probe_successes = 0

    @property
    def state(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._opened_at is not None
            and self._clock() - self._opened_at >= self.config.cooldown_s
        ):
            self._probes_in_flight = 0
            self._probe_successes = 0
            self._transition(BreakerState.HALF_OPEN)
        return self._state

    def allow(self) -> bool:
        """Whether a call may go now. In HALF_OPEN this reserves one of the probe slots: the
        caller must then call ``record_success``, ``record_failure`` or ``release``."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if (
            state is BreakerState.HALF_OPEN
            and self._probes_in_flight < self.config.half_open_probes
        ):
            self._probes_in_flight += 1
            return True
        return False

    def record_success(self) -> None:
        now = self._clock()
        state = self.state
        if state is BreakerState.HALF_OPEN:
            # A result arriving with no probe out is a straggler allowed before the breaker
            # opened; it says little about the upstream now, so it does not close the breaker.
            if self._probes_in_flight == 0:
                return
            self._probes_in_flight -= 1
            self._probe_successes += 1
            if self._probe_successes >= self.config.success_to_close:
                self._close()
            return
        if state is BreakerState.CLOSED:
            self._consecutive_failures = 0
            self._window.add(now, failed=False)
        # OPEN: a straggler's success; the cooldown still runs its course.

    def record_failure(self) -> None:
        now = self._clock()
        state = self.state
        if state is BreakerState.HALF_OPEN:
            if self._probes_in_flight == 0:
                return  # a straggler (see record_success)
            self._open(now)
            return
        if state is BreakerState.OPEN:
            return  # a straggler: already open; it must not extend the cooldown
        self._consecutive_failures += 1
        self._window.add(now, failed=True)
        calls, failures = self._window.counts(now)
        if self._consecutive_failures >= self.config.failure_threshold or (
            calls >= self.config.min_calls and failures >= self.config.failure_rate * calls
        ):
            self._open(now)

    def release(self) -> None:
        """An allowed call ended with nothing recorded (e.g. the client went away): free its
        probe slot, so a cancelled probe does not leave the breaker half-open forever."""
        if self._state is BreakerState.HALF_OPEN and self._probes_in_flight > 0:
            self._probes_in_flight -= 1

    def snapshot(self) -> dict[str, Any]:
        state = self.state
        now = self._clock()
        calls, failures = self._window.counts(now)
        retry_in = 0.0
        if state is BreakerState.OPEN and self._opened_at is not None:
            retry_in = max(0.0, self._opened_at + self.config.cooldown_s - now)
        return {
            "name": self.name,
            "state": state.value,
            "consecutive_failures": self._consecutive_failures,
            "window_calls": calls,
            "window_failures": failures,
            "opened_at": self._opened_at,
            "retry_in_s": retry_in,
        }

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._transition(BreakerState.OPEN)

    def _close(self) -> None:
        # A fresh start: failures from before the outage must not re-open it at the next blip.
        self._consecutive_failures = 0
        self._window.clear()
        self._opened_at = None
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._transition(BreakerState.CLOSED)

    def _transition(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        # Called after the state is fully updated, so a hook that reads the breaker sees it.
        if self._on_change is not None and old is not new:
            self._on_change(self.name, old, new)
