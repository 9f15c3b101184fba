"""The rate of ``POST /v1/feedback``: a bucket per key (per tenant for the admin key and open
mode) on the gateway's limiter, so replicas sharing Redis share it too. It is apart from the
key's own limits, which meter calls to models: giving feedback never uses up a key's requests
per minute, and a flood of feedback is turned away on its own.
"""

from __future__ import annotations

from groundgate.errors import RateLimited
from groundgate.gateway.principal import Principal
from groundgate.gateway.ratelimit import LimiterUnavailable, RateLimit, RateLimiter


class FeedbackRate:
    def __init__(self, limiter: RateLimiter, per_minute: int, *, fail_open: bool) -> None:
        self.limiter = limiter
        self.per_minute = per_minute
        self.fail_open = fail_open

    async def admit(self, principal: Principal) -> None:
        """Take one from the caller's bucket, or raise :class:`RateLimited`."""
        who = (
            f"key:{principal.key_id}"
            if principal.key_id is not None
            else f"tenant:{principal.tenant}"
        )
        limit = RateLimit(f"feedback:{who}", self.per_minute)
        try:
            decision = await self.limiter.acquire([limit], [1])
        except LimiterUnavailable:
            if self.fail_open:
                return
            raise
        if not decision.allowed:
            raise RateLimited(
                f"Feedback rate limit exceeded ({self.per_minute} per minute); retry in "
                f"{decision.retry_after_s:.1f}s.",
                retry_after=decision.retry_after_s,
            )
