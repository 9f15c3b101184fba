"""The in-place OTLP encoding equals the official encoder's, field for field and byte for byte,
on spans of every shape the SDK allows (not only those the gateway builds)."""

from __future__ import annotations

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as official
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from groundgate.observe.otel_encode import encode_spans, encode_spans_bytes
from groundgate.observe.otel_spans import process_resource

SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def context(trace_id: int, span_id: int, remote: bool = False, **kw: object) -> SpanContext:
    return SpanContext(trace_id, span_id, remote, SAMPLED, **kw)  # type: ignore[arg-type]


def batch() -> list[ReadableSpan]:
    frozen = process_resource("svc", "1.0")
    other = Resource.create({"service.name": "other", "k": [1, 2]}, "https://schema/x")
    scope = InstrumentationScope("groundgate", "0.1", "https://opentelemetry.io/schemas/1.41.0")
    bare_scope = InstrumentationScope("bare")
    remote_parent = context(0xABC, 0x77, remote=True)
    bounded = BoundedAttributes(maxlen=2, attributes={"a": 1, "b": 2, "c": 3})
    values = {
        "s": "text",
        "i": 42,
        "f": 0.25,
        "b": True,
        "none": None,
        "bytes": b"\x00\x01",
        "list": ["x", 1, 2.5, False],
        "tuple": ("y",),
        "empty": [],
        "map": {"inner": "v", "n": [1, {"deep": True}]},
    }
    return [
        ReadableSpan(
            "root",
            context(0xABC, 1),
            remote_parent,
            frozen,
            values,
            kind=SpanKind.SERVER,
            status=Status(StatusCode.ERROR, "broke"),
            start_time=10,
            end_time=20,
            instrumentation_scope=scope,
        ),
        ReadableSpan(
            "child",
            context(0xABC, 2, trace_state=TraceState([("vendor", "v1"), ("x", "y")])),
            context(0xABC, 1),
            frozen,
            bounded,
            events=[Event("ev", {"k": "v"}, timestamp=15), Event("bare", timestamp=16)],
            links=[Link(context(0xDEF, 9, remote=True), {"l": 1}), Link(context(0x1, 0x2))],
            kind=SpanKind.CLIENT,
            status=Status(StatusCode.OK),
            start_time=11,
            end_time=19,
            instrumentation_scope=scope,
        ),
        ReadableSpan("no-scope", context(0x5, 3), None, other, None, kind=SpanKind.INTERNAL),
        ReadableSpan(
            "bare-scope", context(0x5, 4), None, other, {}, instrumentation_scope=bare_scope
        ),
        ReadableSpan(
            "back-to-first",
            context(0xABC, 5),
            None,
            frozen,
            {"x": 1},
            kind=SpanKind.PRODUCER,
            instrumentation_scope=scope,
        ),
    ]


def test_in_place_encoding_equals_the_official_encoder() -> None:
    spans = batch()
    ours, theirs = encode_spans(spans), official(spans)
    assert ours == theirs
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )
    # Grouped as the official encoder groups: two resources, the first with two scopes' worth
    # of spans gathered in first-seen order.
    assert [len(r.scope_spans) for r in ours.resource_spans] == [1, 2]
    assert [s.name for s in ours.resource_spans[0].scope_spans[0].spans] == [
        "root",
        "child",
        "back-to-first",
    ]


def test_an_empty_batch_is_an_empty_request() -> None:
    assert encode_spans([]) == official([])


def test_repeated_attributes_encode_alike_from_the_cache() -> None:
    """The second encoding of a batch reuses cached attribute fields: still equal, and an
    attribute seen in one field (a span's) is not reused in another (an event's)."""
    spans = batch()
    first = encode_spans_bytes(spans)
    assert encode_spans_bytes(spans) == first
    assert encode_spans(spans) == official(spans)
