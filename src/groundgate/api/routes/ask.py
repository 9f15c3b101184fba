"""POST /v1/ask: the native grounded question: an answer with resolvable citations."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from groundgate.api.body import read_json_object, validate
from groundgate.api.gate import principal_of
from groundgate.api.routes.chat import (
    HELD_RESPONSE,
    SESSION_HEADER,
    SESSION_PARAMETER,
    TIER_PARAMETER,
    TIMEOUT_PARAMETER,
    apply_cache_control,
    client_trace,
    groundgate_headers,
    request_timeout,
    requested_tier,
)
from groundgate.api.schemas import AskRequest
from groundgate.container import Container
from groundgate.errors import NotFound
from groundgate.pipeline.context import RequestContext
from groundgate.retrieval.documents import check_kb_name

router = APIRouter(tags=["grounding"])

_SCHEMA = {
    "parameters": [TIMEOUT_PARAMETER, SESSION_PARAMETER, TIER_PARAMETER],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AskRequest"}}},
    },
    "responses": HELD_RESPONSE,
}


def answer_body(ctx: RequestContext) -> dict[str, Any]:
    completion = ctx.completion
    message = (
        (completion.choices[0].get("message") or {}) if completion and completion.choices else {}
    )
    return {
        "object": "answer",
        "answer": message.get("content") or "",
        "citations": ctx.citations,
        "abstained": ctx.abstained,
        "trace_id": ctx.trace_id,
        "source": ctx.source,
        "model": ctx.deployment,
        "app": ctx.app_name,
        "knowledge_base": ctx.app.knowledge_base if ctx.app else None,
        "prompt": ctx.app.prompt if ctx.app else None,
        "query": ctx.query,
        "retrieval_error": ctx.retrieval_error,
        "usage": ctx.usage.as_dict(),
        "cost_usd": round(ctx.cost_usd, 10),
        "cache": ctx.cache.summary() if ctx.cache is not None else None,
        "guards": ctx.guards.summary() if ctx.guards is not None else None,
        "variant": ctx.variant,
        "route": ctx.route.summary() if ctx.route is not None else None,
    }


@router.post("/v1/ask", openapi_extra=_SCHEMA)
async def ask(request: Request) -> Response:
    data = await read_json_object(request)
    parsed = validate(AskRequest, data)
    runtime: Container = request.app.state.runtime
    principal = principal_of(request)
    tenant = principal.tenant
    if parsed.kb is not None and parsed.app is None:
        kb = check_kb_name(parsed.kb)
        if await runtime.store.knowledge.get_kb(tenant, kb) is None:
            raise NotFound(f"No knowledge base named '{kb}'.", param="kb")
    ctx = runtime.new_ask(
        parsed.question,
        app=parsed.app,
        kb=parsed.kb,
        model=parsed.model,
        top_k=parsed.top_k,
        filters=parsed.filters,
        history=[h.model_dump() for h in parsed.history or []],
        timeout_s=request_timeout(request),
        principal=principal,
        user=parsed.user,
        session=request.headers.get(SESSION_HEADER),
        tier=requested_tier(request),
    )
    request.state.trace_id = ctx.trace_id
    request.state.trace = ctx.trace  # for the request's log line (api/request_log.py)
    ctx.trace.parent = client_trace(request)
    apply_cache_control(request, ctx)
    await runtime.complete(ctx)
    return Response(
        orjson.dumps(answer_body(ctx)),
        media_type="application/json",
        headers=groundgate_headers(ctx, with_cost=True),
    )
