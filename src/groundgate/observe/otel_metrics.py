"""The GenAI client metrics of the OpenTelemetry semantic conventions, one measurement set per
finished request, through the OTel metrics SDK (exported over OTLP by a periodic reader).

* ``gen_ai.client.operation.duration`` (s): every request, with ``error.type`` when it failed;
* ``gen_ai.client.token.usage`` ({token}): input and output tokens a model was paid for (a cache
  hit used none, so records none);
* time to first chunk (s): streamed requests that sent one (named by the semconv version:
  ``gen_ai.client.operation.time_to_first_chunk`` in v1.41.0,
  ``gen_ai.server.time_to_first_token`` in the v1.36.0 baseline).

Attributes are bounded by configuration: a model name nothing declares is recorded as
``_OTHER`` (a client's typo must not mint a series), the response model comes from the
deployments in config, ``error.type`` is an error class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.metrics import Meter

from groundgate.observe import otel_semconv as sc
from groundgate.observe.otel_spans import OPERATIONS, Upstream
from groundgate.observe.trace import Trace


class GenAIMetrics:
    def __init__(
        self,
        meter: Meter,
        semconv: sc.Semconv,
        upstreams: Mapping[str, Upstream],
        known_model: Callable[[str], bool],
    ) -> None:
        self.semconv = semconv
        self._upstreams = dict(upstreams)
        self._known = known_model
        self.duration = meter.create_histogram(
            sc.OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(sc.SECONDS_BUCKETS),
        )
        self.tokens = meter.create_histogram(
            sc.TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(sc.TOKEN_BUCKETS),
        )
        self.ttft = meter.create_histogram(
            semconv.ttft_metric,
            unit="s",
            description=semconv.ttft_description,
            explicit_bucket_boundaries_advisory=list(sc.SECONDS_BUCKETS),
        )
        # The attribute sets, built once per distinct request shape and reused: the SDK keys
        # its aggregations by them, and building dicts per request is most of the cost.
        self._attributes: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._token_attributes: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = {}

    def record(self, trace: Trace) -> None:
        error = trace.error_type if trace.status == "error" else None
        key = (trace.endpoint, trace.model, trace.deployment, error)
        attributes = self._attributes.get(key)
        if attributes is None:
            attributes = self._attributes[key] = self._build(trace, error)
        self.duration.record(trace.latency_ms / 1000.0, attributes)
        if trace.ttft_ms is not None and trace.stream:
            self.ttft.record(trace.ttft_ms / 1000.0, attributes)
        if trace.source != "cache" and (trace.prompt_tokens or trace.completion_tokens):
            pair = self._token_attributes.get(key)
            if pair is None:
                plain = {k: v for k, v in attributes.items() if k != sc.ERROR_TYPE}
                pair = self._token_attributes[key] = (
                    {**plain, sc.TOKEN_TYPE: "input"},
                    {**plain, sc.TOKEN_TYPE: "output"},
                )
            self.tokens.record(trace.prompt_tokens, pair[0])
            self.tokens.record(trace.completion_tokens, pair[1])

    def _build(self, trace: Trace, error: str | None) -> dict[str, Any]:
        deployment = trace.deployment or ""
        provider, _, upstream_model = deployment.partition(":")
        upstream = self._upstreams.get(provider) if deployment else None
        attributes: dict[str, Any] = {
            sc.OPERATION: OPERATIONS.get(trace.endpoint, trace.endpoint),
            self.semconv.provider: upstream.provider_name if upstream else sc.GATEWAY_PROVIDER,
            sc.REQUEST_MODEL: trace.model if self._known(trace.model) else "_OTHER",
        }
        if upstream is not None:
            # server.address (Recommended) is left to the attempt spans: a request's attempts
            # may reach several hosts, and each attribute costs every measurement (~1 us).
            attributes[sc.RESPONSE_MODEL] = upstream_model
        if error:
            attributes[sc.ERROR_TYPE] = error
        if len(self._attributes) > 10_000:
            self._attributes.clear()  # bounded by config anyway; never let it grow unchecked
            self._token_attributes.clear()
        return attributes
