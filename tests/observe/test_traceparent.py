"""W3C traceparent parsing: valid headers continue the client's trace, anything else is ignored."""

from __future__ import annotations

import pytest

from groundgate.observe.traceparent import RemoteParent, parse_traceparent

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def test_a_valid_header_gives_the_clients_trace_and_span() -> None:
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-01") == RemoteParent(
        int(TRACE, 16), int(SPAN, 16), True
    )
    assert parse_traceparent(f" 00-{TRACE}-{SPAN}-00 ") == RemoteParent(
        int(TRACE, 16), int(SPAN, 16), False
    )


def test_a_later_version_is_read_by_its_first_fields() -> None:
    parsed = parse_traceparent(f"01-{TRACE}-{SPAN}-03-extra")
    assert parsed is not None and parsed.sampled


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE}-{SPAN}",
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"ff-{TRACE}-{SPAN}-01",  # forbidden version
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"00-{TRACE.upper()}-{SPAN}-01",  # upper case is invalid
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-1",
        f"0x-{TRACE}-{SPAN}-01",
    ],
)
def test_anything_malformed_is_ignored(header: str | None) -> None:
    assert parse_traceparent(header) is None
