"""Admission says how much room is left; api/ alone turns that into OpenAI's header names."""

from __future__ import annotations

from groundgate.api.ratelimit_headers import ratelimit_headers
from groundgate.gateway.admission import Headroom


def test_each_limit_kind_becomes_three_openai_style_headers() -> None:
    headers = ratelimit_headers(
        [Headroom("requests", 60, 59, 1.0), Headroom("tokens", 10_000, 9_600, 2.4)]
    )
    assert headers == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1.000s",
        "x-ratelimit-limit-tokens": "10000",
        "x-ratelimit-remaining-tokens": "9600",
        "x-ratelimit-reset-tokens": "2.400s",
    }


def test_no_limits_no_headers() -> None:
    assert ratelimit_headers([]) == {}
