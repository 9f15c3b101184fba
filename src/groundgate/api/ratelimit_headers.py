"""OpenAI-style ``x-ratelimit-*`` response headers from what admission left a request."""

from __future__ import annotations

from collections.abc import Iterable

from groundgate.gateway.admission import Headroom


def ratelimit_headers(headroom: Iterable[Headroom]) -> dict[str, str]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` for each limit that applies
    (none when the caller has no rate limits)."""
    headers: dict[str, str] = {}
    for room in headroom:
        headers[f"x-ratelimit-limit-{room.kind}"] = str(room.limit)
        headers[f"x-ratelimit-remaining-{room.kind}"] = str(room.remaining)
        headers[f"x-ratelimit-reset-{room.kind}"] = f"{room.reset_s:.3f}s"
    return headers
