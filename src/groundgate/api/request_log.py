"""One log line per HTTP request, at info: a pure ASGI middleware outside every other one, so
requests refused by the web checks or authentication are logged too.

The line says what was asked and how it ended: method, route, status, duration, and for a
request that ran the pipeline its model, app, tenant, source, trace id (and OTel trace and span
ids when spans are exported); an error response adds its OpenAI-style type and code and the
error class on the trace. Routes that run the pipeline put their trace on ``scope["state"]``
(``state["trace"]``), authentication puts the tenant there. Nothing of the body is logged,
nor the query string; the formatter scrubs every value anyway (observe/logging.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from groundgate.observe.logging import log_fields
from groundgate.observe.trace import Trace

log = logging.getLogger("groundgate.request")
# An error body larger than this is not read for its type (ours are a few hundred bytes).
_ERROR_BODY_MAX = 4096


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        response: dict[str, Any] = {"status": 500}

        async def watch(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                response["status"] = message["status"]
            elif kind == "http.response.body" and response["status"] >= 400:
                # Error bodies are small JSON objects; keep the first chunk for its type.
                response.setdefault("body", message.get("body", b"")[:_ERROR_BODY_MAX])
            await send(message)

        failed: BaseException | None = None
        try:
            await self.app(scope, receive, watch)
        except BaseException as exc:
            failed = exc
            raise
        finally:
            duration_ms = (time.perf_counter() - started) * 1000
            _log(scope, response, duration_ms, failed)


def _log(
    scope: Scope, response: dict[str, Any], duration_ms: float, failed: BaseException | None
) -> None:
    status: int = response["status"]
    state: dict[str, Any] = scope.get("state") or {}
    fields: dict[str, Any] = {
        "method": scope["method"],
        "route": _route(scope),
        "status": status,
        "duration_ms": round(duration_ms, 3),
        "tenant": state.get("tenant"),
    }
    trace = state.get("trace")
    if isinstance(trace, Trace):
        fields.update(_trace_fields(trace))
    if status >= 400 or failed is not None:
        fields["error"] = _error(response.get("body"), trace, failed)
    elif isinstance(trace, Trace) and trace.error_type:
        # A stream that failed after its 200 went out.
        fields["error"] = {"class": trace.error_type}
    message = f"{fields['method']} {fields['route']} {status}"
    log_fields(log, logging.INFO, message, {k: v for k, v in fields.items() if v is not None})


def _route(scope: Scope) -> str:
    """The route's template where the router found one (``/v1/traces/{trace_id}``): the
    path's variable parts are the client's text. Otherwise the path itself."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    return template if isinstance(template, str) else str(scope.get("path", ""))


def _trace_fields(trace: Trace) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "trace_id": trace.id,
        "model": trace.model,
        "tenant": trace.tenant,
        "stream": trace.stream,
    }
    app = trace.attrs.get("app")
    if isinstance(app, str):
        fields["app"] = app
    if trace.source:
        fields["source"] = trace.source
    if trace.otel_trace_id:
        fields["otel_trace_id"] = trace.otel_trace_id
    if trace.span_id:
        fields["span_id"] = trace.span_id
    return fields


def _error(body: bytes | None, trace: Trace | None, failed: BaseException | None) -> dict[str, Any]:
    error: dict[str, Any] = {}
    if body:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        detail = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(detail, dict):
            error["type"] = detail.get("type")
            error["code"] = detail.get("code")
    if trace is not None and trace.error_type:
        error["class"] = trace.error_type
    elif failed is not None:
        error["class"] = type(failed).__name__
    return error
