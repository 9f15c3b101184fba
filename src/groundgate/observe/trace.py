"""One Trace per request: what happened, in which stage, with which deployment, at what cost."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from groundgate.observe.redact import redact
from groundgate.observe.traceparent import RemoteParent


def new_trace_id() -> str:
    """32 random hex digits (as a uuid4's hex, at a fraction of its cost per request)."""
    return os.urandom(16).hex()


@dataclass(slots=True)
class Span:
    name: str
    start_ms: float  # since the trace started
    duration_ms: float = 0.0
    status: str = "ok"
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Attempt:
    """One try at one deployment (the fallback chain records every one)."""

    deployment: str
    status: str  # ok | error | skipped
    duration_ms: float = 0.0
    error: str | None = None
    upstream_status: int | None = None
    transient: bool | None = None
    try_number: int = 1  # 1 for the first try of this deployment, 2 for its first retry, ...
    model: str | None = None  # set when the chain moved on to a fallback model
    # Why it failed, as a small fixed vocabulary (reliability/error_class.py): a metric label.
    error_class: str | None = None
    # When the try began, since the trace started (for exported spans; not persisted).
    start_ms: float | None = None


@dataclass(frozen=True, slots=True)
class ExportedContent:
    """What an app opted in to export: OpenAI-shaped messages and choices."""

    messages: list[dict[str, Any]]
    choices: list[dict[str, Any]]


@dataclass(slots=True)
class Trace:
    id: str
    tenant: str
    endpoint: str  # chat.completions | embeddings | ask
    model: str  # the name the client asked for
    created_at: float = field(default_factory=time.time)
    key_id: str | None = None  # the API key that made the request (never the secret)
    stream: bool = False
    source: str | None = None  # model | rag | cache | fallback
    deployment: str | None = None  # provider:upstream-model that answered
    status: str = "ok"  # ok | error | cancelled | held (queued for review, 202)
    http_status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None  # time to first token, streams only
    spans: list[Span] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    # The OpenTelemetry ids of this request when it is exported as an OTel trace (set by the
    # exporter; a client's ``traceparent`` makes the OTel trace id differ from ``id``). The
    # request's log line carries them, so logs, traces and spans join up.
    otel_trace_id: str | None = None
    span_id: str | None = None
    # For the OpenTelemetry export only (not persisted): the client's W3C trace context, its
    # request parameters (temperature, max_tokens, ...), the answer's finish reasons, and,
    # where the app opted in to content capture, the messages as sent upstream (after the
    # guards' redaction) and the answer as delivered.
    parent: RemoteParent | None = field(default=None, repr=False)
    params: dict[str, Any] | None = field(default=None, repr=False)
    finish_reasons: tuple[str, ...] = field(default=(), repr=False)
    content: ExportedContent | None = field(default=None, repr=False)
    # Monotonic start, for span offsets; not persisted.
    started: float = field(default_factory=time.perf_counter, repr=False)
    # The JSON form, cached once the trace is finished (see ``to_json``).
    _json: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # The model name is the client's own text, stored in a column of its own and grouped
        # by in usage reports: a key pasted there must not land in the store.
        self.model = redact(self.model)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def to_json(self) -> bytes:
        """The persisted JSON, computed once and scrubbed of secrets (a question or an upstream
        error may hold one). Call it only when the trace is complete."""
        if self._json is None:
            self._json = redact(orjson.dumps(self.to_dict()).decode()).encode()
        return self._json

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "key_id": self.key_id,
            "endpoint": self.endpoint,
            "model": self.model,
            "created_at": self.created_at,
            "stream": self.stream,
            "source": self.source,
            "deployment": self.deployment,
            "status": self.status,
            "http_status": self.http_status,
            "error": (
                {"type": self.error_type, "message": self.error_message}
                if self.error_type
                else None
            ),
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
            "cost_usd": self.cost_usd,
            "latency_ms": round(self.latency_ms, 3),
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 3),
            "spans": [
                {
                    "name": s.name,
                    "start_ms": round(s.start_ms, 3),
                    "duration_ms": round(s.duration_ms, 3),
                    "status": s.status,
                    "attrs": s.attrs,
                }
                for s in self.spans
            ],
            "attempts": [
                {
                    "deployment": a.deployment,
                    "status": a.status,
                    "duration_ms": round(a.duration_ms, 3),
                    "error": a.error,
                    "upstream_status": a.upstream_status,
                    "transient": a.transient,
                    "try": a.try_number,
                    "model": a.model,
                }
                for a in self.attempts
            ],
            "attrs": self.attrs,
        }
