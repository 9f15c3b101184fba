"""POST /v1/chat/completions: OpenAI-compatible, streamed (SSE) or not."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from groundgate.agents.loop import summary
from groundgate.api.body import read_json_object, validate
from groundgate.api.errors import error_body
from groundgate.api.gate import principal_of
from groundgate.api.ratelimit_headers import ratelimit_headers
from groundgate.api.schemas import FORBIDDEN_FIELDS, GATEWAY_FIELDS, ChatCompletionRequest
from groundgate.api.sse import EventStreamResponse
from groundgate.cache.response import CacheState
from groundgate.container import Container
from groundgate.errors import GroundgateError, InvalidRequest
from groundgate.observe.traceparent import RemoteParent, parse_traceparent
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.runner import Flight
from groundgate.pipeline.stages.agent import PROGRESS
from groundgate.providers.base import ChatCall, Chunk
from groundgate.routing.tiers import TIER_HEADER

router = APIRouter()

TIMEOUT_HEADER = "x-groundgate-timeout"
# OpenAPI for the optional deadline header that model-calling routes read by hand.
TIMEOUT_PARAMETER = {
    "name": TIMEOUT_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "A shorter deadline for this request, in seconds. It never extends the app's or the "
        "server's: a longer one is clamped to it."
    ),
    "schema": {"type": "number", "exclusiveMinimum": 0},
}
SESSION_HEADER = "x-groundgate-session"
# OpenAPI for the optional session header (A/B splits stick to it when the body names no user).
SESSION_PARAMETER = {
    "name": SESSION_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "The end user's session: an A/B split of the app or model keeps every request of the "
        "session in one variant (the body's ``user`` field, when set, comes first)."
    ),
    "schema": {"type": "string"},
}
TIER_PARAMETER = {
    "name": TIER_HEADER,
    "in": "header",
    "required": False,
    "description": (
        'Pin a tier of an app or model that routes between tiers (as `model: "NAME@TIER"` '
        "does), where its route allows pinning and the key may use the tier's model."
    ),
    "schema": {"type": "string"},
}
# One server-sent event (OpenAPI 3.1 reads an event stream's schema per event): its data is a
# chat.completion.chunk as JSON, an error object if the stream fails, and finally "[DONE]".
_SSE_EVENT = {"type": "object", "required": ["data"], "properties": {"data": {"type": "string"}}}
# An answer held for a human reviewer (``guards.review.mode = "hold"``): poll the review.
HELD_RESPONSE: dict[str, Any] = {
    "202": {
        "description": "The answer is held for review: poll GET /v1/reviews/{id}",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["object", "id", "status", "trace_id"],
                    "properties": {
                        "object": {"const": "review"},
                        "id": {"type": "string"},
                        "status": {"const": "pending"},
                        "trace_id": {"type": "string"},
                    },
                }
            }
        },
    }
}
_CHAT_SCHEMA = {
    "parameters": [TIMEOUT_PARAMETER, SESSION_PARAMETER, TIER_PARAMETER],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}
        },
    },
    "responses": {
        "200": {
            "description": "A chat completion, or with ``stream: true`` its chunks as SSE",
            "content": {"text/event-stream": {"schema": _SSE_EVENT}},
        },
        **HELD_RESPONSE,
    },
}


def build_call(data: dict[str, Any]) -> ChatCall:
    forbidden = FORBIDDEN_FIELDS.intersection(data)
    if forbidden:
        name = sorted(forbidden)[0]
        raise InvalidRequest(
            f"The field '{name}' is not accepted: upstream routing and credentials are set "
            "by the gateway's configuration, never by the client.",
            param=name,
            code="forbidden_parameter",
        )
    params = {k: v for k, v in data.items() if k not in GATEWAY_FIELDS and v is not None}
    return ChatCall(messages=data["messages"], params=params)


def request_timeout(request: Request) -> float | None:
    """The client's deadline for this request, in seconds (``x-groundgate-timeout``). It can
    only shorten the configured one (``pipeline.requests.request_timeout_s`` clamps it)."""
    raw = request.headers.get(TIMEOUT_HEADER)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value > 0 and math.isfinite(value)):
        raise InvalidRequest(
            f"{TIMEOUT_HEADER} must be a positive number of seconds.", param=TIMEOUT_HEADER
        )
    return value


def apply_cache_control(request: Request, ctx: RequestContext) -> None:
    """``Cache-Control: no-cache`` asks for a fresh answer (which is still cached for
    others); ``no-store`` also keeps this one out of the cache."""
    raw = request.headers.get("cache-control")
    if not raw:
        return
    directives = {part.strip().lower() for part in raw.split(",")}
    if "no-cache" in directives or "no-store" in directives:
        ctx.cache_read = False
    if "no-store" in directives:
        ctx.cache_write = False


def groundgate_headers(ctx: RequestContext, *, with_cost: bool) -> dict[str, str]:
    headers = {
        "x-groundgate-trace-id": ctx.trace_id,
        "x-groundgate-source": ctx.source,
        "x-groundgate-model": ctx.deployment or "",
    }
    if ctx.cache is not None:
        headers.update(cache_headers(ctx.cache))
    if with_cost:
        headers["x-groundgate-cost-usd"] = f"{ctx.cost_usd:.8f}"
    if ctx.ticket is not None:
        headers.update(ratelimit_headers(ctx.ticket.headroom))
    if ctx.guards is not None and ctx.guards.decisions:
        headers["x-groundgate-guards"] = ctx.guards.header()
    if ctx.variant is not None:
        headers["x-groundgate-variant"] = ctx.variant
    if ctx.route is not None:
        headers["x-groundgate-route"] = ctx.route.header()
    return headers


def client_trace(request: Request) -> RemoteParent | None:
    """The client's W3C trace context (``traceparent``): the request's exported OpenTelemetry
    trace continues it. Groundgate's own trace id is unchanged by it (README, "OpenTelemetry")."""
    return parse_traceparent(request.headers.get("traceparent"))


def requested_tier(request: Request) -> str | None:
    """The tier the client pinned with ``x-groundgate-tier`` (checked by the admit stage)."""
    raw = request.headers.get(TIER_HEADER)
    return raw.strip() if raw is not None and raw.strip() else None


def cache_headers(state: CacheState) -> dict[str, str]:
    headers = {"x-groundgate-cache": state.status}
    if state.similarity is not None:
        headers["x-groundgate-cache-similarity"] = f"{state.similarity:.4f}"
    return headers


def groundgate_object(ctx: RequestContext) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "trace_id": ctx.trace_id,
        "source": ctx.source,
        "model": ctx.deployment,
        "cost_usd": round(ctx.cost_usd, 10),
    }
    if ctx.app is not None:
        obj.update(
            app=ctx.app_name,
            knowledge_base=ctx.app.knowledge_base,
            prompt=ctx.app.prompt,
            abstained=ctx.abstained,
        )
        if ctx.retrieval_error:
            obj["retrieval_error"] = ctx.retrieval_error
    if ctx.citations or ctx.app is not None:
        obj["citations"] = ctx.citations
    if ctx.cache is not None:
        obj["cache"] = ctx.cache.summary()
    if ctx.usage.estimated:
        obj["usage_estimated"] = True  # the upstream reported none: counted by the gateway
    if ctx.guards is not None:
        obj["guards"] = ctx.guards.summary()
    if ctx.variant is not None:
        obj["variant"] = ctx.variant
    if ctx.route is not None:
        obj["route"] = ctx.route.summary()
    if ctx.agent is not None:
        obj["agent"] = summary(ctx.agent.record)
    return obj


def pending_approval(ctx: RequestContext) -> str | None:
    """The run id of an agent run this request left waiting for approval, if any."""
    run = ctx.agent.record if ctx.agent is not None else None
    return run.id if run is not None and run.status == "pending_approval" else None


@router.post("/v1/chat/completions", openapi_extra=_CHAT_SCHEMA, tags=["openai"])
async def chat_completions(request: Request) -> Response:
    data = await read_json_object(request)
    parsed = validate(ChatCompletionRequest, data)
    runtime: Container = request.app.state.runtime
    stream = bool(parsed.stream)
    include_usage = bool(stream and parsed.stream_options and parsed.stream_options.include_usage)
    ctx = runtime.new_chat(
        parsed.model,
        build_call(data),
        stream=stream,
        include_usage=include_usage,
        timeout_s=request_timeout(request),
        principal=principal_of(request),
        session=request.headers.get(SESSION_HEADER),
        tier=requested_tier(request),
    )
    request.state.trace_id = ctx.trace_id
    request.state.trace = ctx.trace  # for the request's log line (api/request_log.py)
    ctx.trace.parent = client_trace(request)
    apply_cache_control(request, ctx)
    if stream:
        flight = await runtime.open(ctx)
        await flight.prime()  # a stage that holds the answer may still refuse with a status
        return _sse(ctx, flight)
    await runtime.complete(ctx)
    completion = ctx.completion
    assert completion is not None
    body = {
        "id": f"chatcmpl-{ctx.trace_id}",
        "object": "chat.completion",
        "created": completion.created or int(time.time()),
        "model": ctx.model,
        "choices": completion.choices,
        "usage": ctx.usage.as_dict(),
        "system_fingerprint": completion.system_fingerprint,
        "groundgate": groundgate_object(ctx),
    }
    headers = groundgate_headers(ctx, with_cost=True)
    # An agent run waiting for approval: accepted, not answered yet (the body says so, as a
    # chat completion the SDK reads; the run is at Location).
    run_id = pending_approval(ctx)
    if run_id is not None:
        headers["Location"] = f"/v1/runs/{run_id}"
    return Response(
        orjson.dumps(body),
        status_code=200 if run_id is None else 202,
        media_type="application/json",
        headers=headers,
    )


def _sse(ctx: RequestContext, flight: Flight) -> EventStreamResponse:
    events = _events(ctx, flight)

    async def close() -> None:
        # However the stream ended (finished, failed upstream, client gone, even before the
        # first byte): end it. A stream that did not end itself was left by its client.
        await events.aclose()
        await flight.close(asyncio.CancelledError())

    headers = {
        **groundgate_headers(ctx, with_cost=False),
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    }
    return EventStreamResponse(events, on_close=close, headers=headers)


async def _events(ctx: RequestContext, flight: Flight) -> AsyncGenerator[bytes, None]:
    """Re-frame the answer's chunks for the client. The chunks that carry a ``finish_reason``
    (one per choice: ``n`` may be more than 1) are held back until the stream ends, so the last
    one can carry usage and the ``groundgate`` object (cost is only known once the upstream
    reported usage, or the gateway counted it, when the request has ended)."""
    base = {
        "id": f"chatcmpl-{ctx.trace_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": ctx.model,
    }
    held: list[dict[str, Any]] = []
    fingerprint = None
    try:
        # Closed explicitly: a client gone mid-stream closes this generator, and the answer's
        # own ending must come before the request's (the flight's close).
        async with aclosing(flight.chunks()) as chunks:
            async for chunk in chunks:
                fingerprint = chunk.system_fingerprint or fingerprint
                if not chunk.choices:
                    progress = chunk.extra.get(PROGRESS)
                    if progress is not None:
                        # An agent's step: a comment line, which SSE clients skip.
                        yield b": groundgate-agent " + orjson.dumps(progress) + b"\n\n"
                    continue  # a usage-only chunk: re-emitted at the end if the client asked
                event = _event(base, chunk, fingerprint, ctx.include_usage)
                if any(c.get("finish_reason") for c in chunk.choices):
                    held.append(event)
                    continue
                yield b"data: " + orjson.dumps(event) + b"\n\n"
    except GroundgateError as exc:
        await flight.close(exc)
        # Headers are long gone: the error travels as an SSE event the OpenAI SDK raises.
        payload = error_body(exc.message, exc.error_type, param=exc.param, code=exc.code)
        yield b"data: " + orjson.dumps(payload) + b"\n\n"
        return
    except BaseException as exc:
        await flight.close(exc)
        raise
    await flight.close()
    tail = groundgate_object(ctx)
    if held and not ctx.include_usage:
        held[-1]["groundgate"] = tail
    for event in held:
        yield b"data: " + orjson.dumps(event) + b"\n\n"
    if ctx.include_usage:
        usage_event = {
            **base,
            "system_fingerprint": fingerprint,
            "choices": [],
            "usage": ctx.usage.as_dict(),
            "groundgate": tail,
        }
        yield b"data: " + orjson.dumps(usage_event) + b"\n\n"
    yield b"data: [DONE]\n\n"


def _event(
    base: dict[str, Any], chunk: Chunk, fingerprint: str | None, include_usage: bool
) -> dict[str, Any]:
    event = {**base, "system_fingerprint": fingerprint, "choices": chunk.choices}
    if include_usage:
        event["usage"] = None  # OpenAI's shape: null on every chunk but the last
    return event
