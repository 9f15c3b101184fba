"""A finished request's :class:`Trace` as OpenTelemetry spans, following the GenAI semantic
conventions (``otel_semconv.py``).

Built once, when the record stage finishes the trace, from the times it already holds
(explicit start and end timestamps): nothing is opened around the stages while the request
runs, so the hot path pays one pass over a few objects per request, not a live span per stage.

* the **root** span is the request: a SERVER span named ``{operation} {model}`` (``chat
  support-bot``) with the GenAI attributes of what the client asked for and got; it continues
  the client's W3C trace when the request carried a ``traceparent``;
* one INTERNAL **child per pipeline span** the trace recorded (``route``, ``cache_lookup``,
  ``retrieve``, ``generate``, ...), with the stage's status;
* one CLIENT **child per upstream attempt** (``chat gpt-4o-mini``: every try, retries and
  fallbacks included), under the stage span it ran in (``generate``, a schema re-ask, a
  cascade), with the provider, the upstream model and address, and why it failed.

Every text attribute passes through ``observe/redact.py``; no header is ever recorded.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from groundgate.observe import otel_semconv as sc
from groundgate.observe.redact import redact
from groundgate.observe.trace import Attempt, ExportedContent, Span, Trace

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)
_ERROR = Status(StatusCode.ERROR)
# Groundgate's endpoints as the conventions' operation names.
OPERATIONS = {"chat.completions": "chat", "ask": "chat", "embeddings": "embeddings"}
_MAX_MESSAGE = 256  # an error message on a span: enough to read, bounded


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a provider's deployments live, for the attempt spans (from config, not secret)."""

    provider_name: str  # the conventions' name: openai, anthropic, groundgate
    address: str | None = None
    port: int | None = None


class CleanText:
    """``redact`` with a memory: most attribute values (model and deployment names, finish
    reasons, error classes) repeat on every request, so each distinct one is scrubbed once.
    Bounded: values past the cap are scrubbed every time, never kept."""

    __slots__ = ("_cap", "_seen")

    def __init__(self, cap: int = 4096) -> None:
        self._seen: dict[str, str] = {}
        self._cap = cap

    def __call__(self, text: str) -> str:
        clean = self._seen.get(text)
        if clean is None:
            clean = redact(text)
            if len(self._seen) < self._cap:
                self._seen[text] = clean
        return clean


class SpanBuilder:
    """Turns finished traces into spans for one resource (this process) and one semconv."""

    def __init__(
        self,
        resource: Resource,
        semconv: sc.Semconv,
        upstreams: Mapping[str, Upstream],
        version: str,
    ) -> None:
        self.resource = resource
        self.semconv = semconv
        self.scope = InstrumentationScope("groundgate", version, semconv.schema_url)
        self._upstreams = dict(upstreams)
        self._clean = CleanText()
        self._root_bases: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._attempt_bases: dict[tuple[Any, ...], dict[str, Any]] = {}

    def spans(self, trace: Trace) -> list[ReadableSpan]:
        """The trace's spans, the root first; none when the client's trace is not sampled."""
        parent = trace.parent
        if parent is not None and not parent.sampled:
            return []
        trace_id = parent.trace_id if parent is not None else int(trace.id, 16)
        base_ns = int(trace.created_at * 1e9)
        root = SpanContext(trace_id, _span_id(), False, _SAMPLED)
        # The request's log line names the exported trace and its root span (logs/request_log).
        trace.otel_trace_id = f"{trace_id:032x}"
        trace.span_id = f"{root.span_id:016x}"
        remote = (
            SpanContext(parent.trace_id, parent.span_id, True, _SAMPLED)
            if parent is not None
            else None
        )
        out = [
            ReadableSpan(
                self._root_name(trace),
                root,
                remote,
                self.resource,
                self._root_attributes(trace),
                kind=SpanKind.SERVER,
                status=_status(trace.status == "error", trace.error_type),
                start_time=base_ns,
                end_time=base_ns + int(trace.latency_ms * 1e6),
                instrumentation_scope=self.scope,
            )
        ]
        stages: list[tuple[Span, SpanContext]] = []
        for span in trace.spans:
            context = SpanContext(trace_id, _span_id(), False, _SAMPLED)
            stages.append((span, context))
            start = base_ns + int(span.start_ms * 1e6)
            out.append(
                ReadableSpan(
                    span.name,
                    context,
                    root,
                    self.resource,
                    self._plain(span.attrs) if span.attrs else None,
                    status=_ERROR if span.status == "error" else _UNSET,
                    start_time=start,
                    end_time=start + int(span.duration_ms * 1e6),
                    instrumentation_scope=self.scope,
                )
            )
        operation = OPERATIONS.get(trace.endpoint, trace.endpoint)
        answered = _answering_attempt(trace)
        for attempt in trace.attempts:
            start_ms = attempt.start_ms if attempt.start_ms is not None else trace.latency_ms
            start = base_ns + int(start_ms * 1e6)
            out.append(
                ReadableSpan(
                    f"{operation} {self._upstream_model(attempt)}",
                    SpanContext(trace_id, _span_id(), False, _SAMPLED),
                    _enclosing(stages, start_ms, root),
                    self.resource,
                    self._attempt_attributes(trace, attempt, operation, attempt is answered),
                    kind=SpanKind.CLIENT,
                    status=_status(attempt.status == "error", attempt.error),
                    start_time=start,
                    end_time=start + int(attempt.duration_ms * 1e6),
                    instrumentation_scope=self.scope,
                )
            )
        return out

    # -- attributes ---------------------------------------------------------------------

    def _root_name(self, trace: Trace) -> str:
        return f"{OPERATIONS.get(trace.endpoint, trace.endpoint)} {trace.model}"

    def _root_attributes(self, trace: Trace) -> dict[str, Any]:
        clean = self._clean
        semconv = self.semconv
        # What a request shares with every other of its model, deployment and outcome, built
        # once and copied (most of a root's attributes).
        key = (trace.endpoint, trace.model, trace.deployment, trace.source, trace.http_status)
        base = self._root_bases.get(key)
        if base is None:
            upstream = self._upstream(trace.deployment)
            base = {
                sc.OPERATION: OPERATIONS.get(trace.endpoint, trace.endpoint),
                semconv.provider: upstream.provider_name if upstream else sc.GATEWAY_PROVIDER,
                sc.REQUEST_MODEL: trace.model,  # the client's name, scrubbed by Trace itself
                "groundgate.endpoint": trace.endpoint,
                "http.response.status_code": trace.http_status,
            }
            if trace.deployment:
                base[sc.RESPONSE_MODEL] = clean(trace.deployment.partition(":")[2])
                base["groundgate.deployment"] = clean(trace.deployment)
            if trace.source:
                base["groundgate.source"] = trace.source
            _bounded(self._root_bases)[key] = base
        attrs = base.copy()
        attrs["groundgate.trace_id"] = trace.id
        if trace.endpoint != "embeddings":
            attrs[sc.RESPONSE_ID] = f"chatcmpl-{trace.id}"
        if trace.prompt_tokens or trace.completion_tokens:
            attrs[sc.INPUT_TOKENS] = trace.prompt_tokens
            attrs[sc.OUTPUT_TOKENS] = trace.completion_tokens
        if trace.finish_reasons:
            attrs[sc.FINISH_REASONS] = tuple(clean(r) for r in trace.finish_reasons)
        if trace.cost_usd:
            attrs["groundgate.cost_usd"] = trace.cost_usd
        app = trace.attrs.get("app")
        if isinstance(app, str):
            attrs["groundgate.app"] = clean(app)
        cache = trace.attrs.get("cache")
        if isinstance(cache, dict) and isinstance(cache.get("status"), str):
            attrs["groundgate.cache.status"] = cache["status"]
        params = trace.params
        if params:
            for field, value in params.items():
                name = sc.REQUEST_PARAMS.get(field)
                if name is not None and isinstance(value, int | float):
                    attrs[name] = value
        if semconv.streaming_attributes and trace.stream:
            attrs["gen_ai.request.stream"] = True
            if trace.ttft_ms is not None:
                attrs["gen_ai.response.time_to_first_chunk"] = trace.ttft_ms / 1000.0
        if trace.status == "error" and trace.error_type:
            attrs[sc.ERROR_TYPE] = clean(trace.error_type)
        elif trace.status == "cancelled":
            attrs[sc.ERROR_TYPE] = "client_disconnected"
        if trace.content is not None:
            attrs.update(content_attributes(trace.content, trace.finish_reasons))
        return attrs

    def _attempt_attributes(
        self, trace: Trace, attempt: Attempt, operation: str, answered: bool
    ) -> dict[str, Any]:
        clean = self._clean
        key = (
            attempt.deployment,
            operation,
            attempt.try_number,
            attempt.status,
            attempt.upstream_status,
            attempt.error if attempt.status == "skipped" else None,
        )
        base = self._attempt_bases.get(key)
        if base is None:
            upstream = self._upstream(attempt.deployment)
            base = {
                sc.OPERATION: operation,
                self.semconv.provider: (
                    upstream.provider_name if upstream else sc.GATEWAY_PROVIDER
                ),
                sc.REQUEST_MODEL: self._upstream_model(attempt),
                "groundgate.deployment": clean(attempt.deployment),
                "groundgate.attempt.try": attempt.try_number,
            }
            if upstream is not None and upstream.address:
                base[sc.SERVER_ADDRESS] = upstream.address
                if upstream.port is not None:
                    base[sc.SERVER_PORT] = upstream.port
            if attempt.status == "error":
                base[sc.ERROR_TYPE] = (
                    str(attempt.upstream_status) if attempt.upstream_status else "_OTHER"
                )
            elif attempt.status == "skipped":
                base["groundgate.attempt.skipped"] = clean(attempt.error or "skipped")
            _bounded(self._attempt_bases)[key] = base
        if not answered:
            return base  # shared, never changed: spans only read their attributes
        attrs = base.copy()
        attrs[sc.RESPONSE_MODEL] = base[sc.REQUEST_MODEL]
        if trace.prompt_tokens or trace.completion_tokens:
            attrs[sc.INPUT_TOKENS] = trace.prompt_tokens
            attrs[sc.OUTPUT_TOKENS] = trace.completion_tokens
        if trace.finish_reasons:
            attrs[sc.FINISH_REASONS] = tuple(clean(r) for r in trace.finish_reasons)
        return attrs

    def _plain(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """A stage span's own attributes, as OTel values (scalars; text scrubbed)."""
        out: dict[str, Any] = {}
        for key, value in attrs.items():
            if isinstance(value, str):
                out[f"groundgate.{key}"] = self._clean(value)
            elif isinstance(value, bool | int | float):
                out[f"groundgate.{key}"] = value
        return out

    def _upstream(self, deployment: str | None) -> Upstream | None:
        if not deployment:
            return None
        return self._upstreams.get(deployment.partition(":")[0])

    def _upstream_model(self, attempt: Attempt) -> str:
        return self._clean(attempt.deployment.partition(":")[2] or attempt.deployment)


def content_attributes(content: ExportedContent, finish_reasons: tuple[str, ...]) -> dict[str, str]:
    """``gen_ai.input.messages`` and ``gen_ai.output.messages`` (the conventions' JSON
    schemas), as JSON text, scrubbed of secrets."""
    inputs = [{"role": str(m.get("role", "user")), "parts": _parts(m)} for m in content.messages]
    outputs = []
    for i, choice in enumerate(content.choices):
        message = choice.get("message") or {}
        reason = choice.get("finish_reason") or (
            finish_reasons[i] if i < len(finish_reasons) else None
        )
        outputs.append(
            {
                "role": str(message.get("role", "assistant")),
                "parts": _parts(message),
                "finish_reason": reason or "stop",
            }
        )
    return {
        sc.INPUT_MESSAGES: redact(orjson.dumps(inputs).decode()),
        sc.OUTPUT_MESSAGES: redact(orjson.dumps(outputs).decode()),
    }


def _parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append({"type": "text", "content": str(part.get("text", ""))})
            elif isinstance(part, dict):
                parts.append({"type": str(part.get("type", "unknown"))})  # media: not its bytes
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict):
            function = call.get("function") or {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments"),
                }
            )
    return parts


def _bounded(cache: dict[tuple[Any, ...], dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """``cache``, emptied first when full (its keys come from config, but a client's model
    name is part of a root's: never let it grow without end)."""
    if len(cache) >= 4096:
        cache.clear()
    return cache


def _answering_attempt(trace: Trace) -> Attempt | None:
    """The attempt whose answer the client got: the last successful one at the deployment
    that answered."""
    for attempt in reversed(trace.attempts):
        if attempt.status == "ok" and attempt.deployment == trace.deployment:
            return attempt
    return None


def _enclosing(
    stages: list[tuple[Span, SpanContext]], start_ms: float, root: SpanContext
) -> SpanContext:
    """The stage span an attempt ran in (the latest to start before it that it began inside
    of: generate, a schema re-ask, a cascade), else the root."""
    for span, context in reversed(stages):
        if span.start_ms <= start_ms <= span.start_ms + span.duration_ms:
            return context
    return root


class FrozenResource(Resource):
    """A resource whose hash is computed once. The OTLP encoder groups every span by its
    resource, and ``Resource.__hash__`` serialises the attributes to JSON each time: a third
    of the cost of encoding a small span, for a value that never changes."""

    def __init__(self, attributes: Any, schema_url: str | None = None) -> None:
        super().__init__(attributes, schema_url)
        self._frozen_hash = super().__hash__()

    def __hash__(self) -> int:
        return self._frozen_hash


def process_resource(service_name: str, version: str) -> FrozenResource:
    """This process as the OTel resource (``OTEL_RESOURCE_ATTRIBUTES`` merged in)."""
    base = Resource.create(
        {
            "service.name": service_name,
            "service.version": version,
            # One per process: the workers of one deployment are told apart.
            "service.instance.id": str(uuid.uuid4()),
        }
    )
    return FrozenResource(base.attributes, base.schema_url)


def _status(failed: bool, description: str | None) -> Status:
    if not failed:
        return _UNSET
    if not description:
        return _ERROR
    return Status(StatusCode.ERROR, redact(description)[:_MAX_MESSAGE])


def _span_id() -> int:
    # The SDK's own id generator draws the same way (random.getrandbits): cheap, and a span
    # id is an identifier, not a secret.
    return random.getrandbits(64) or 1
