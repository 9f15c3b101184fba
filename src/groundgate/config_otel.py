"""The ``[otel]`` section: OpenTelemetry export of every request's trace and the GenAI client
metrics over OTLP. Kept beside ``config.py``, which imports it, as ``config_cache.py`` is.

Off by default. On when ``enabled = true``, or (``enabled`` left unset) when an OTLP endpoint is
named here or by the standard environment (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``). Every key left unset falls back to the standard
``OTEL_*`` variable the OpenTelemetry SDK reads; the file never holds a secret: export headers
(an API key for a hosted backend) come from the environment only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Protocol = Literal["http/protobuf", "grpc"]
# The GenAI conventions' opt-in value (OTEL_SEMCONV_STABILITY_OPT_IN): the latest experimental
# version this release supports (v1.41.0) instead of the v1.36.0 baseline.
GEN_AI_LATEST = "gen_ai_latest_experimental"


class OtelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # None: on if an endpoint is configured (here or by OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT).
    enabled: bool | None = None
    # The collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT reads: http/protobuf appends
    # /v1/traces and /v1/metrics; grpc uses it as it is (http:// means no TLS).
    endpoint: str | None = None
    # None: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.
    protocol: Protocol | None = None
    # The NAME of an environment variable holding the export headers ("k1=v1,k2=v2", the
    # syntax of OTEL_EXPORTER_OTLP_HEADERS, which is read when this is unset).
    headers_env: str | None = None
    # None: OTEL_SERVICE_NAME, else "groundgate".
    service_name: str | None = None
    # Apps (or models) whose prompts and answers are exported (gen_ai.input.messages and
    # gen_ai.output.messages): the messages as sent upstream, after the guards' redaction,
    # and the answer as delivered. Every other request exports no text of the conversation.
    capture_content: list[str] = Field(default_factory=list)
    # OTEL_SEMCONV_STABILITY_OPT_IN, when the file should decide instead of the environment:
    # "gen_ai_latest_experimental" emits the GenAI conventions v1.41.0; anything else, the
    # v1.36.0 baseline (see README, "OpenTelemetry").
    semconv_stability_opt_in: str | None = None
    # The batch span processor: spans held at most (beyond, a request's spans are dropped and
    # counted), spans per export, and the longest a span waits for its batch. Large batches:
    # each export request costs ~1 ms of CPU whatever its size (2048 gateway spans are ~1 MB,
    # well under a collector's 4 MiB default limit).
    queue_size: int = Field(8192, ge=16, le=1_000_000)
    batch_size: int = Field(2048, ge=1, le=10_000)
    schedule_delay_ms: int = Field(1000, ge=1, le=60_000)
    # One export's time limit (the exporter's own retries included). None: OTEL_EXPORTER_OTLP_
    # TIMEOUT, else 10 s. A stalled collector costs the export thread this long, never a request.
    export_timeout_s: float | None = Field(None, gt=0, le=300)
    # How often the GenAI metrics are exported. None: OTEL_METRIC_EXPORT_INTERVAL, else 60 s.
    metrics_interval_s: float | None = Field(None, gt=0, le=3600)

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {value!r})")
        return value

    def is_enabled(self, environ: Mapping[str, str] | None = None) -> bool:
        env = os.environ if environ is None else environ
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return False
        if self.enabled is not None:
            return self.enabled
        return bool(
            self.endpoint
            or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )

    def resolved_protocol(self, environ: Mapping[str, str] | None = None) -> Protocol:
        if self.protocol is not None:
            return self.protocol
        env = os.environ if environ is None else environ
        raw = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
        return "grpc" if raw == "grpc" else "http/protobuf"

    def resolved_service_name(self, environ: Mapping[str, str] | None = None) -> str:
        env = os.environ if environ is None else environ
        return self.service_name or env.get("OTEL_SERVICE_NAME") or "groundgate"

    def latest_semconv(self, environ: Mapping[str, str] | None = None) -> bool:
        """Whether the GenAI conventions' latest experimental version (v1.41.0) is emitted."""
        env = os.environ if environ is None else environ
        raw = self.semconv_stability_opt_in
        if raw is None:
            raw = env.get("OTEL_SEMCONV_STABILITY_OPT_IN", "")
        return GEN_AI_LATEST in {part.strip() for part in raw.split(",")}
