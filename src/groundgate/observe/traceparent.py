"""W3C Trace Context: the client's ``traceparent`` header, read so that the request's exported
trace continues the client's (https://www.w3.org/TR/trace-context/#traceparent-header).

Only version ``00``'s layout is read (a later version's first four fields are the same, as the
spec asks readers to assume); anything malformed is ignored, as the spec says: the request then
starts a trace of its own. ``tracestate`` is not kept (nothing here reads vendor state).
"""

from __future__ import annotations

from typing import NamedTuple

_HEX = frozenset("0123456789abcdef")


class RemoteParent(NamedTuple):
    trace_id: int  # 128 bits, never 0
    span_id: int  # 64 bits, never 0: the client's span, the parent of the request's root span
    sampled: bool  # the client's sampled flag: False asks for no spans (metrics still count)


def parse_traceparent(header: str | None) -> RemoteParent | None:
    if not header:
        return None
    value = header.strip()
    parts = value.split("-")
    if len(parts) < 4:
        return None
    version, trace_hex, span_hex, flags_hex = parts[:4]
    if (
        len(version) != 2
        or version == "ff"
        or (version == "00" and len(parts) != 4)
        or len(trace_hex) != 32
        or len(span_hex) != 16
        or len(flags_hex) != 2
        or not _HEX.issuperset(version + trace_hex + span_hex + flags_hex)
    ):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return RemoteParent(trace_id, span_id, bool(int(flags_hex, 16) & 0x01))
