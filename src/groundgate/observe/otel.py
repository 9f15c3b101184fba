"""OpenTelemetry export: every finished request's trace as OTel spans, and the GenAI client
metrics, over OTLP (HTTP/protobuf or gRPC), off by default (``[otel]``, ``config_otel.py``).

The response path pays one call, :meth:`OtelExport.submit`, from the record stage's exit: the
spans are built from the finished trace (``otel_spans.py``) and appended to the batch span
processor's queue; the metrics are recorded in memory. Everything that talks to the collector
runs on the SDK's own threads: the batch span processor's worker and the periodic metric
reader. A collector that is slow, stalled or absent therefore costs requests nothing; what
cannot wait is dropped and counted: a request's spans are refused whole when the queue already
holds ``queue_size`` spans (``dropped``), and a batch the collector did not take is ``failed``.
Both show in ``/readyz`` and as ``groundgate_otel_spans_total{outcome=...}``.

The OpenTelemetry packages are an extra (``pip install groundgate[otel]``): this module imports
them only when export is on, so the gateway runs without them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from prometheus_client import CollectorRegistry, Counter

from groundgate.config import Settings
from groundgate.config_otel import OtelConfig
from groundgate.errors import ConfigError
from groundgate.observe.trace import Trace

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from groundgate.observe.otel_metrics import GenAIMetrics
    from groundgate.observe.otel_spans import SpanBuilder, Upstream

log = logging.getLogger("groundgate.otel")
_SHUTDOWN_WAIT_S = 5.0  # the longest a gateway's stop waits for a last export


class OtelExport:
    """What the record stage hands finished traces to (one per process)."""

    def __init__(
        self,
        config: OtelConfig,
        builder: SpanBuilder | None,
        processor: BatchSpanProcessor | None,
        exporter: CountingExporter | None,
        metrics: GenAIMetrics | None,
        meter_provider: MeterProvider | None,
        spans_total: Counter,
        protocol: str,
    ) -> None:
        self.dropped_traces = 0  # requests whose spans were refused whole
        self.config = config
        self.protocol = protocol
        self._builder = builder
        self._processor = processor
        self._exporter = exporter
        self._metrics = metrics
        self._meter_provider = meter_provider
        self._capture = frozenset(config.capture_content)
        self._queue_size = config.queue_size
        self._dropped_total = spans_total.labels("dropped")
        self.emitted = 0  # spans handed to the processor (the event loop's count)
        self.dropped = 0  # spans refused because the queue was full

    def wants_content(self, target: str | None) -> bool:
        """Whether this app (or model) opted in to exporting prompt and answer text."""
        return target is not None and target in self._capture

    def submit(self, trace: Trace) -> None:
        """On the response path: never blocks, never raises for the collector's sake."""
        if self._metrics is not None:
            self._metrics.record(trace)
        builder, processor, exporter = self._builder, self._processor, self._exporter
        if builder is None or processor is None or exporter is None:
            return
        count = 1 + len(trace.spans) + len(trace.attempts)
        if self.emitted - exporter.taken + count > self._queue_size:
            # Refused whole, before any work: a trace with holes is worse than none.
            self.dropped += count
            self.dropped_traces += 1  # for groundgate_traces_dropped_total{sink="otlp"}
            self._dropped_total.inc(count)
            if self.dropped == count or self.dropped // 10_000 != (self.dropped - count) // 10_000:
                log.warning(
                    "OpenTelemetry span queue full (collector slow or down): %d spans dropped",
                    self.dropped,
                )
            return
        spans = builder.spans(trace)
        self.emitted += len(spans)
        for span in spans:
            processor.on_end(span)

    def stats(self) -> dict[str, Any]:
        exporter = self._exporter
        return {
            "enabled": True,
            "protocol": self.protocol,
            "spans": {
                "exported": exporter.exported if exporter else 0,
                "queued": self.emitted - exporter.taken if exporter else 0,
                "dropped": self.dropped,
                "failed": exporter.failed if exporter else 0,
            },
        }

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Export what is queued now (blocking: tests and benchmarks, never a request)."""
        done = True
        if self._processor is not None:
            done = self._processor.force_flush(int(timeout_s * 1000))
        if self._meter_provider is not None:
            done = self._meter_provider.force_flush(int(timeout_s * 1000)) and done
        return done

    async def aclose(self, wait_s: float = _SHUTDOWN_WAIT_S) -> None:
        """Export what is left and stop, waiting at most ``wait_s``: a stalled collector must
        not hold the gateway's shutdown (the export threads are daemons)."""
        finished = threading.Event()

        def shut() -> None:
            try:
                if self._processor is not None:
                    self._processor.shutdown()  # type: ignore[no-untyped-call]
                if self._meter_provider is not None:
                    self._meter_provider.shutdown(timeout_millis=wait_s * 1000)
            except Exception:
                log.exception("OpenTelemetry shutdown failed")
            finally:
                finished.set()

        threading.Thread(target=shut, name="groundgate-otel-shutdown", daemon=True).start()
        if not await asyncio.to_thread(finished.wait, wait_s):
            log.warning("OpenTelemetry export did not finish within %.0f s at shutdown", wait_s)


def build_otel(
    settings: Settings,
    registry: CollectorRegistry,
    known_model: Callable[[str], bool],
    version: str,
    environ: Mapping[str, str] | None = None,
) -> OtelExport | None:
    """The export this configuration asks for, or None when it is off."""
    env = os.environ if environ is None else environ
    config = settings.otel
    if not config.is_enabled(env):
        return None
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from groundgate.observe.otel_metrics import GenAIMetrics
        from groundgate.observe.otel_semconv import semconv
        from groundgate.observe.otel_spans import SpanBuilder, process_resource
    except ImportError as exc:
        raise ConfigError(
            [
                "otel: export is on but the OpenTelemetry packages are not installed "
                f"({exc.name}): pip install 'groundgate[otel]'"
            ],
            source="config",
        ) from None
    protocol = config.resolved_protocol(env)
    headers = _headers(config, env)
    conventions = semconv(config.latest_semconv(env))
    resource = process_resource(config.resolved_service_name(env), version)
    upstreams = upstreams_of(settings)
    spans_total = Counter(
        "groundgate_otel_spans",
        "Spans handed to the OpenTelemetry exporter, by outcome: exported, dropped (the "
        "queue was full), failed (the collector did not take them).",
        ["outcome"],
        registry=registry,
    )
    builder = processor = exporter = None
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip() != "none":
        exporter = CountingExporter(
            _span_exporter(config, protocol, headers),
            spans_total.labels("exported"),
            spans_total.labels("failed"),
        )
        processor = BatchSpanProcessor(
            exporter,
            max_queue_size=config.queue_size,
            schedule_delay_millis=config.schedule_delay_ms,
            max_export_batch_size=min(config.batch_size, config.queue_size),
        )
        builder = SpanBuilder(resource, conventions, upstreams, version)
    metrics = meter_provider = None
    if env.get("OTEL_METRICS_EXPORTER", "otlp").strip() != "none":
        interval = config.metrics_interval_s
        reader = PeriodicExportingMetricReader(
            _metric_exporter(config, protocol, headers),
            export_interval_millis=None if interval is None else interval * 1000,
        )
        # No atexit hook: a stalled collector must not hold the process's exit.
        meter_provider = MeterProvider(
            metric_readers=[reader], resource=resource, shutdown_on_exit=False
        )
        meter = meter_provider.get_meter("groundgate", version, conventions.schema_url)
        metrics = GenAIMetrics(meter, conventions, upstreams, known_model)
    log.info("OpenTelemetry export on (%s, GenAI semconv %s)", protocol, conventions.version)
    return OtelExport(
        config, builder, processor, exporter, metrics, meter_provider, spans_total, protocol
    )


def upstreams_of(settings: Settings) -> dict[str, Upstream]:
    """Each configured provider as the attempt spans name it: the conventions' provider name
    and the host and port its deployments are called at."""
    from groundgate.observe.otel_semconv import PROVIDER_NAMES
    from groundgate.observe.otel_spans import Upstream

    out: dict[str, Upstream] = {}
    for name, provider in settings.providers.items():
        # base_url: the vendor's public endpoint when the file named none (config.py).
        parsed = urlparse(provider.base_url) if provider.base_url else None
        port = None
        if parsed is not None and parsed.hostname:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
        out[name] = Upstream(
            PROVIDER_NAMES.get(provider.type, provider.type),
            parsed.hostname if parsed is not None else None,
            port,
        )
    out.setdefault("local", Upstream("groundgate"))
    return out


if TYPE_CHECKING:
    _ExporterBase = SpanExporter
else:
    _ExporterBase = object


class CountingExporter(_ExporterBase):
    """The OTLP exporter, counting what it was given and what the collector took. Its
    counters are written by the processor's worker thread only."""

    def __init__(self, inner: SpanExporter, exported: Any, failed: Any) -> None:
        self.inner = inner
        self.taken = 0  # spans the processor took off its queue for export
        self.exported = 0
        self.failed = 0
        self._exported_total = exported
        self._failed_total = failed

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from opentelemetry.sdk.trace.export import SpanExportResult

        count = len(spans)
        self.taken += count
        try:
            result = self.inner.export(spans)
        except Exception:
            log.exception("OpenTelemetry span export failed")
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.exported += count
            self._exported_total.inc(count)
        else:
            self.failed += count
            self._failed_total.inc(count)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


def _headers(config: OtelConfig, env: Mapping[str, str]) -> dict[str, str] | None:
    """Export headers from the variable the config names (None: the exporter reads
    OTEL_EXPORTER_OTLP_HEADERS itself). Never logged, never recorded."""
    if config.headers_env is None:
        return None
    raw = env.get(config.headers_env)
    if raw is None:
        raise ConfigError(
            [f"otel.headers_env names {config.headers_env}, which is not set"],
            source="environment",
        )
    headers = {}
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


def _timeout(config: OtelConfig) -> float | None:
    return config.export_timeout_s


def _span_exporter(
    config: OtelConfig, protocol: str, headers: dict[str, str] | None
) -> SpanExporter:
    """The official OTLP exporter for ``protocol``, with the in-place encoding
    (``otel_encode.py``)."""
    from groundgate.observe.otel_encode import GrpcSpanExporter, HttpSpanExporter

    if protocol == "grpc":
        return GrpcSpanExporter(endpoint=config.endpoint, headers=headers, timeout=_timeout(config))
    endpoint = config.endpoint.rstrip("/") + "/v1/traces" if config.endpoint else None
    return HttpSpanExporter(endpoint=endpoint, headers=headers, timeout=_timeout(config))


def _metric_exporter(config: OtelConfig, protocol: str, headers: dict[str, str] | None) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter(
            endpoint=config.endpoint, headers=headers, timeout=_timeout(config)
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    endpoint = config.endpoint.rstrip("/") + "/v1/metrics" if config.endpoint else None
    return OTLPMetricExporter(endpoint=endpoint, headers=headers, timeout=_timeout(config))
