"""A real OTLP receiver for tests and benchmarks, built on the official OTLP protobuf
definitions (``opentelemetry-proto``): what an OpenTelemetry Collector would accept, recorded.

* OTLP/HTTP (protobuf): ``POST /v1/traces`` and ``POST /v1/metrics`` (gzip or not);
* OTLP/gRPC: the ``TraceService`` and ``MetricsService`` ``Export`` calls (grpcio).

Every export request is decoded and kept; :meth:`OtlpReceiver.spans` and
:meth:`OtlpReceiver.metric_points` flatten them for assertions. :class:`StalledCollector` is the
other kind of collector: it accepts TCP connections and never reads or answers a byte.

    python -m groundgate.testing.otlp_receiver [--http-port N] [--grpc-port N]
"""

from __future__ import annotations

import argparse
import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_PROTOBUF = "application/x-protobuf"


@dataclass
class ReceivedSpan:
    """One span as received, its ids as hex (as W3C and the gateway write them)."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root without a remote parent
    kind: int  # the OTLP enum: 1 internal, 2 server, 3 client
    start_ns: int
    end_ns: int
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    schema_url: str
    transport: str  # http | grpc


@dataclass
class MetricPoint:
    name: str
    unit: str
    kind: str  # histogram | sum | gauge
    attributes: dict[str, Any]
    count: int = 0  # histograms
    sum: float = 0.0  # histograms; the value of a sum or gauge
    bucket_counts: list[int] = field(default_factory=list)
    explicit_bounds: list[float] = field(default_factory=list)
    schema_url: str = ""


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {pair.key: value_of(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


class OtlpReceiver:
    """Records what OTLP exporters send it over HTTP and gRPC (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traces: list[tuple[str, trace_service_pb2.ExportTraceServiceRequest]] = []
        self._metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.bad_requests = 0
        self._http: ThreadingHTTPServer | None = None
        self._grpc: grpc.Server | None = None
        self.http_url = ""
        self.grpc_url = ""

    # -- serving ------------------------------------------------------------------------

    def start_http(self, port: int = 0) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path == "/v1/traces":
                    reply = receiver._take_traces(body, "http")
                elif self.path == "/v1/metrics":
                    reply = receiver._take_metrics(body)
                else:
                    self._answer(404, b"")
                    return
                if reply is None:
                    self._answer(400, b"")
                else:
                    self._answer(200, reply)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", _PROTOBUF)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: tests read what was received, not an access log

        self._http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._http.daemon_threads = True
        threading.Thread(
            target=self._http.serve_forever, name="otlp-receiver-http", daemon=True
        ).start()
        self.http_url = f"http://127.0.0.1:{self._http.server_address[1]}"
        return self.http_url

    def start_grpc(self, port: int = 0) -> str:
        receiver = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(
                self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
            ) -> trace_service_pb2.ExportTraceServiceResponse:
                receiver._keep_traces(request, "grpc")
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(
                self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: Any
            ) -> metrics_service_pb2.ExportMetricsServiceResponse:
                with receiver._lock:
                    receiver._metrics.append(request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        # The generated registration functions carry no annotations.
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            Traces(), server
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            Metrics(), server
        )
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        self._grpc = server
        self.grpc_url = f"http://127.0.0.1:{bound}"
        return self.grpc_url

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(grace=None)
            self._grpc = None

    def __enter__(self) -> OtlpReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take_traces(self, body: bytes, transport: str) -> bytes | None:
        request = trace_service_pb2.ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError:
            self.bad_requests += 1
            return None
        self._keep_traces(request, transport)
        reply: bytes = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return reply

    def _keep_traces(
        self, request: trace_service_pb2.ExportTraceServiceRequest, transport: str
    ) -> None:
        with self._lock:
            self._traces.append((transport, request))

    def _take_metrics(self, body: bytes) -> bytes | None:
        request = metrics_service_pb2.ExportMetricsServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError:
            self.bad_requests += 1
            return None
        with self._lock:
            self._metrics.append(request)
        reply: bytes = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
        return reply

    # -- reading ------------------------------------------------------------------------

    def clear(self) -> None:
        with self._lock:
            self._traces.clear()
            self._metrics.clear()

    @property
    def span_count(self) -> int:
        with self._lock:
            requests = list(self._traces)
        return sum(
            len(scope.spans)
            for _, request in requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
        )

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            requests = list(self._traces)
        return [span for transport, request in requests for span in _spans(request, transport)]

    def metric_points(self, name: str | None = None) -> list[MetricPoint]:
        """Every data point received, the latest export last (cumulative temporality: the
        last point of a series holds its totals)."""
        with self._lock:
            requests = list(self._metrics)
        return [
            point
            for request in requests
            for point in _points(request)
            if name in (None, point.name)
        ]

    def wait_for(self, condition: Callable[[OtlpReceiver], bool], timeout_s: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition(self):
                return True
            time.sleep(0.05)
        return condition(self)


def _spans(
    request: trace_service_pb2.ExportTraceServiceRequest, transport: str
) -> Iterator[ReceivedSpan]:
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield ReceivedSpan(
                    name=span.name,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    kind=span.kind,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    status_code=span.status.code,
                    status_message=span.status.message,
                    attributes=attributes_of(span.attributes),
                    resource=resource,
                    scope=scope_spans.scope.name,
                    schema_url=scope_spans.schema_url,
                    transport=transport,
                )


def _points(request: metrics_service_pb2.ExportMetricsServiceRequest) -> Iterator[MetricPoint]:
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind == "histogram":
                    for hp in metric.histogram.data_points:
                        yield MetricPoint(
                            metric.name,
                            metric.unit,
                            "histogram",
                            attributes_of(hp.attributes),
                            count=hp.count,
                            sum=hp.sum,
                            bucket_counts=list(hp.bucket_counts),
                            explicit_bounds=list(hp.explicit_bounds),
                            schema_url=scope_metrics.schema_url,
                        )
                elif kind in ("sum", "gauge"):
                    for np in getattr(metric, kind).data_points:
                        number = np.as_double if np.HasField("as_double") else np.as_int
                        yield MetricPoint(
                            metric.name,
                            metric.unit,
                            kind,
                            attributes_of(np.attributes),
                            sum=float(number),
                            schema_url=scope_metrics.schema_url,
                        )


class StalledCollector:
    """A collector that takes TCP connections and never reads or answers: an exporter's
    request to it hangs until the exporter's own timeout."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(1024)
        self._held: list[socket.socket] = []
        self._closed = False
        self.accepted = 0
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        threading.Thread(target=self._accept, name="stalled-collector", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            self._held.append(conn)  # held open, never read
            self.accepted += 1

    def close(self) -> None:
        self._closed = True
        self._socket.close()
        for conn in self._held:
            conn.close()

    def __enter__(self) -> StalledCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="An OTLP receiver that prints what it gets.")
    parser.add_argument("--http-port", type=int, default=4318)
    parser.add_argument("--grpc-port", type=int, default=4317)
    args = parser.parse_args()
    receiver = OtlpReceiver()
    print(f"listening on {receiver.start_http(args.http_port)}", flush=True)
    print(f"grpc on {receiver.start_grpc(args.grpc_port)}", flush=True)
    seen = 0
    try:
        while True:
            time.sleep(1.0)
            spans = receiver.spans()
            for span in spans[seen:]:
                print(f"{span.trace_id} {span.span_id} <- {span.parent_span_id} {span.name}")
            seen = len(spans)
    except KeyboardInterrupt:
        receiver.stop()


if __name__ == "__main__":
    main()
