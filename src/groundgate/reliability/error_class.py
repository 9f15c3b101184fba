"""Why an upstream try failed, as a small fixed vocabulary: the ``error`` label of
``groundgate_upstream_errors_total`` and the dashboards' and alerts' grouping. An error's
message is free text (upstream bodies, URLs) and may never be a label."""

from __future__ import annotations

from groundgate.errors import (
    ContentFiltered,
    ContextWindowExceeded,
    DeadlineExceeded,
    ProviderError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

BREAKER_OPEN = "breaker_open"
DEADLINE = "deadline"
OVERLOADED = "overloaded"  # shed by this gateway's own bulkhead, nothing was sent

# Most specific first: the first class the error is an instance of names it.
_CLASSES: tuple[tuple[type[ProviderError], str], ...] = (
    (DeadlineExceeded, DEADLINE),
    (UpstreamTimeout, "timeout"),
    (UpstreamRateLimited, "rate_limited"),
    (UpstreamUnavailable, "unavailable"),
    (ContextWindowExceeded, "context_window"),
    (ContentFiltered, "content_filter"),
    (UpstreamRejected, "rejected"),
)


def error_class(error: ProviderError) -> str:
    for cls, name in _CLASSES:
        if isinstance(error, cls):
            return name
    # A plain ProviderError: what the upstream answered, if it answered at all.
    status = error.upstream_status
    if status is None:
        return "connection"  # refused, reset, cut off: no HTTP answer to go by
    if status in (401, 403):
        return "auth"  # the gateway's own credentials for the provider
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server_error"
    return "upstream_error"
