"""Retry policy for one deployment: how many tries, and how long to wait between them.

Backoff uses *full* jitter (a uniform draw between zero and the exponential cap) rather than
"cap ± a little": when many requests fail together (an upstream blip), full jitter spreads their
retries over the whole interval instead of sending them back in one synchronized wave.

The policy is pure arithmetic; the caller does the sleeping, so it can cut the wait to the
request deadline and record the attempt in the trace.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# 2**62 * any sane base delay is far above any max_delay_s; clamping the exponent keeps
# `base * 2**(attempt-1)` from overflowing a float for absurd attempt numbers.
_MAX_EXPONENT = 62

_default_rng = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # total tries of one deployment, the first included
    base_delay_s: float = 0.05
    max_delay_s: float = 2.0
    # A Retry-After longer than this is not waited for: the caller gives up on this deployment
    # (and falls back to the next) instead of holding the request.
    max_retry_after_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for name in ("base_delay_s", "max_delay_s", "max_retry_after_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def backoff_cap(self, attempt: int) -> float:
        """The upper bound of the jittered wait after try number ``attempt`` failed."""
        if attempt < 1:
            raise ValueError("attempt counts from 1")
        exponent = min(attempt - 1, _MAX_EXPONENT)
        return min(self.max_delay_s, self.base_delay_s * float(2**exponent))

    def delay(
        self, attempt: int, retry_after: float | None, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait before try number ``attempt + 1``; ``attempt`` (from 1) is the try
        that just failed.

        Exponential backoff with full jitter: ``uniform(0, min(max_delay, base * 2**(attempt-1)))``.
        A ``retry_after`` (from a 429/503 Retry-After) is honoured: the wait is
        ``max(retry_after, jittered)``, unless it exceeds ``max_retry_after_s``, in which case
        this returns None (do not retry this deployment). Also None once ``attempt`` reaches
        ``max_attempts``.
        """
        cap = self.backoff_cap(attempt)  # validates attempt
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None and retry_after > self.max_retry_after_s:
            return None
        jittered = (rng if rng is not None else _default_rng).uniform(0.0, cap)
        if retry_after is None:
            return jittered
        # A negative or zero Retry-After means "now"; the jitter still applies.
        return max(retry_after, jittered)

    def fits(self, delay: float, remaining_s: float, min_attempt_s: float) -> bool:
        """Whether to start a retry: after waiting ``delay``, at least ``min_attempt_s`` of the
        request deadline (``remaining_s`` from now) must be left for the attempt itself."""
        return remaining_s - delay >= min_attempt_s
