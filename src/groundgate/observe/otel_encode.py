"""The OTLP span encoding, written straight to the protobuf wire format, and the official
OTLP exporters that use it.

``opentelemetry-exporter-otlp-proto-common``'s ``encode_spans`` builds every span, attribute and
value as a separate protobuf message and then passes them to their parents' constructors, which
copy them: each span is copied four times on its way into the request. For a gateway that
exports four spans per request that was ~100 us of CPU per request, the whole of the hot-path
budget. :func:`encode_spans_bytes` here writes the same ``ExportTraceServiceRequest`` (equal,
field for field: ``tests/observe/test_otel_encode.py`` checks it against the official encoder)
as bytes, keeping the encoded form of attributes that repeat (model, provider, operation, ...).

The exporters below are the official ones (OTLP/HTTP and OTLP/gRPC: their transport, retries,
TLS, headers and compression) with only the encoding step swapped. Where an exporter's
internals are not what this module expects (another release), the official path runs instead.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as OfficialGrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as OfficialHttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind

_HAS_IS_REMOTE = 0x100  # SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


def encode_spans(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """The OTLP request for ``spans`` as a message (what the gRPC exporter sends)."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_spans_bytes(spans))
    return request


def encode_spans_bytes(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized OTLP ``ExportTraceServiceRequest`` for ``spans``: grouped by resource,
    then instrumentation scope, in the order first seen, as the official encoder groups them."""
    resources: dict[Any, dict[Any, list[bytes]]] = {}
    last: tuple[Any, Any, list[bytes] | None] = (None, None, None)
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope or None
        cached = last[2]
        if resource is last[0] and scope is last[1] and cached is not None:
            target = cached
        else:
            scopes = resources.get(resource)
            if scopes is None:
                scopes = resources[resource] = {}
            found = scopes.get(scope)
            if found is None:
                found = scopes[scope] = []
            target = found
            last = (resource, scope, target)
        target.append(_span(span))
    out = []
    for resource, scopes in resources.items():
        body = [_field(0x0A, _attributes_field(0x0A, resource.attributes))]
        for scope, encoded in scopes.items():
            scope_body = [_field(0x0A, _scope(scope))]
            scope_body.extend(_field(0x12, span) for span in encoded)
            if scope is not None and scope.schema_url:
                scope_body.append(_field(0x1A, scope.schema_url.encode()))
            body.append(_field(0x12, b"".join(scope_body)))
        if resource.schema_url:
            body.append(_field(0x1A, resource.schema_url.encode()))
        out.append(_field(0x0A, b"".join(body)))
    return b"".join(out)


# -- the protobuf wire format (field numbers and types from opentelemetry-proto) ---------------

_SMALL = [bytes([n]) for n in range(128)]
_KIND = {
    SpanKind.INTERNAL: b"\x30\x01",
    SpanKind.SERVER: b"\x30\x02",
    SpanKind.CLIENT: b"\x30\x03",
    SpanKind.PRODUCER: b"\x30\x04",
    SpanKind.CONSUMER: b"\x30\x05",
}
_FLAGS_LOCAL = b"\x85\x01" + (_HAS_IS_REMOTE).to_bytes(4, "little")  # Span.flags, fixed32
_FLAGS_REMOTE = b"\x85\x01" + (_HAS_IS_REMOTE | _IS_REMOTE).to_bytes(4, "little")
_pack_fixed64 = struct.Struct("<Q").pack
_pack_double = struct.Struct("<d").pack
# Encoded attribute fields by (field, key, type, value): most repeat on every request.
_PAIRS: dict[tuple[int, str, type, Any], bytes] = {}
_PAIRS_CAP = 16_384


def _varint(n: int) -> bytes:
    if 0 <= n < 128:
        return _SMALL[n]
    if n < 0:
        n += 1 << 64  # int64: two's complement, ten bytes
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (``tag`` is the one-byte key: field number << 3 | 2)."""
    return _SMALL[tag] + _varint(len(payload)) + payload


def _span(span: ReadableSpan) -> bytes:
    context = span.get_span_context()
    assert context is not None
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
    ]
    if context.trace_state:
        state = ",".join(f"{k}={v}" for k, v in context.trace_state.items())
        parts.append(_field(0x1A, state.encode()))
    parent = span.parent
    if parent:
        parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    parts.append(_field(0x2A, span.name.encode()))
    parts.append(_KIND[span.kind])
    if span.start_time:
        parts.append(b"\x39" + _pack_fixed64(span.start_time))
    if span.end_time:
        parts.append(b"\x41" + _pack_fixed64(span.end_time))
    attributes = span.attributes
    if attributes:
        parts.append(_attributes_field(0x4A, attributes))
    events, links = span.events, span.links
    for event in events:
        body = b"\x09" + _pack_fixed64(event.timestamp) + _field(0x12, event.name.encode())
        if event.attributes:
            body += _attributes_field(0x1A, event.attributes)
        if event.dropped_attributes:
            body += b"\x20" + _varint(event.dropped_attributes)
        parts.append(_field(0x5A, body))
    for link in links:
        body = b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big")
        body += b"\x12\x08" + link.context.span_id.to_bytes(8, "big")
        if link.attributes:
            body += _attributes_field(0x22, link.attributes)
        if link.dropped_attributes:
            body += b"\x28" + _varint(link.dropped_attributes)
        flags = _HAS_IS_REMOTE | (_IS_REMOTE if link.context.is_remote else 0)
        body += b"\x35" + flags.to_bytes(4, "little")
        parts.append(_field(0x6A, body))
    # Plain containers (what the gateway builds) drop nothing; the SDK's bounded ones may
    # have (their isinstance checks are ABC checks: skipped when they cannot apply).
    if type(attributes) is not dict and span.dropped_attributes:
        parts.append(b"\x50" + _varint(span.dropped_attributes))
    if type(events) is not tuple and span.dropped_events:
        parts.append(b"\x60" + _varint(span.dropped_events))
    if type(links) is not tuple and span.dropped_links:
        parts.append(b"\x70" + _varint(span.dropped_links))
    status = span.status
    if status is not None:
        body = b""
        if status.description:
            body += _field(0x12, status.description.encode())
        if status.status_code.value:
            body += b"\x18" + _varint(status.status_code.value)
        parts.append(_field(0x7A, body))
    parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
    return b"".join(parts)


def _scope(scope: Any) -> bytes:
    if scope is None:
        return b""
    body = _field(0x0A, scope.name.encode())
    if scope.version:
        body += _field(0x12, scope.version.encode())
    if scope.attributes:
        body += _attributes_field(0x1A, scope.attributes)
    return body


def _attributes_field(tag: int, attributes: Mapping[str, Any] | None) -> bytes:
    """Every attribute as a repeated KeyValue field numbered by ``tag``."""
    if not attributes:
        return b""
    pairs = _PAIRS
    out = []
    for key, value in attributes.items():
        kind = type(value)
        if kind is str or kind is int or kind is bool:
            cached = pairs.get((tag, key, kind, value))
            if cached is None:
                cached = _field(tag, _pair(key, value))
                if len(pairs) >= _PAIRS_CAP:
                    pairs.clear()  # bounded: unique values (ids) must not grow it for ever
                pairs[(tag, key, kind, value)] = cached
            out.append(cached)
        else:
            out.append(_field(tag, _pair(key, value)))
    return b"".join(out)


def _pair(key: str, value: Any) -> bytes:
    return _field(0x0A, key.encode()) + _field(0x12, _value(value))


def _value(value: Any) -> bytes:
    """An AnyValue's payload, by the official encoder's type order."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _field(0x0A, value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _field(0x3A, value)
    if isinstance(value, Sequence):
        return _field(0x2A, b"".join(_field(0x0A, _value(v)) for v in value))
    if isinstance(value, Mapping):
        return _field(0x32, b"".join(_field(0x0A, _pair(str(k), v)) for k, v in value.items()))
    raise TypeError(f"Invalid type {type(value)} of value {value}")


class HttpSpanExporter(OfficialHttpSpanExporter):
    """The official OTLP/HTTP span exporter, encoding with :func:`encode_spans`."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        client = getattr(self, "_client", None)
        if client is None or getattr(self, "_shutdown", True) or not hasattr(client, "export"):
            return super().export(spans)
        data = encode_spans_bytes(spans)
        outcome = client.export(data)
        return SpanExportResult.SUCCESS if outcome.success else SpanExportResult.FAILURE


class GrpcSpanExporter(OfficialGrpcSpanExporter):
    """The official OTLP/gRPC span exporter, encoding with :func:`encode_spans` (the
    exporter's own hook for turning a batch into its request)."""

    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        return encode_spans(data)
