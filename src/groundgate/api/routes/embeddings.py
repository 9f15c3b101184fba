"""POST /v1/embeddings: OpenAI schema, string or batched input, float or base64 encoding."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from groundgate.api.body import read_json_object, validate
from groundgate.api.gate import principal_of
from groundgate.api.routes.chat import client_trace
from groundgate.api.schemas import FORBIDDEN_FIELDS, EmbeddingRequest
from groundgate.container import Container
from groundgate.errors import InvalidRequest, UnsupportedRequest

router = APIRouter(tags=["openai"])

_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/EmbeddingRequest"}}
        },
    }
}
MAX_INPUTS = 2048


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        if len(value) > MAX_INPUTS:
            raise InvalidRequest(f"At most {MAX_INPUTS} inputs per request.", param="input")
        return list(value)
    raise UnsupportedRequest("Token-array input is not supported; send strings.", param="input")


def _encode(vector: list[float], encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


@router.post("/v1/embeddings", openapi_extra=_SCHEMA)
async def embeddings(request: Request) -> Response:
    data = await read_json_object(request)
    parsed = validate(EmbeddingRequest, data)
    forbidden = FORBIDDEN_FIELDS.intersection(data)
    if forbidden:
        name = sorted(forbidden)[0]
        raise InvalidRequest(
            f"The field '{name}' is not accepted.", param=name, code="forbidden_parameter"
        )
    texts = _texts(parsed.input)
    if any(not t for t in texts):
        raise InvalidRequest("Inputs must be non-empty strings.", param="input")
    runtime: Container = request.app.state.runtime
    principal = principal_of(request)
    principal.may_call(parsed.model)
    ticket = await runtime.admission.admit(principal, sum(len(t) for t in texts) // 4 + 1)
    cost, tokens = 0.0, None
    try:
        trace, deployment, result = await runtime.embed(
            parsed.model,
            texts,
            tenant=principal.tenant,
            key_id=principal.key_id,
            parent=client_trace(request),
        )
        cost, tokens = trace.cost_usd, result.usage.prompt_tokens
    finally:
        await runtime.admission.settle(ticket, tokens, cost)
    request.state.trace_id = trace.id
    request.state.trace = trace  # for the request's log line (api/request_log.py)
    vectors = result.vectors
    if parsed.dimensions is not None:
        width = len(vectors[0]) if vectors else 0
        if parsed.dimensions != width:
            raise UnsupportedRequest(
                f"This model returns {width} dimensions; 'dimensions' must be {width} or left out.",
                param="dimensions",
            )
    encoding = parsed.encoding_format or "float"
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode(v, encoding)}
            for i, v in enumerate(vectors)
        ],
        "model": parsed.model,
        "usage": {
            "prompt_tokens": result.usage.prompt_tokens,
            "total_tokens": result.usage.prompt_tokens,
        },
    }
    return Response(
        orjson.dumps(body),
        media_type="application/json",
        headers={
            "x-groundgate-trace-id": trace.id,
            "x-groundgate-source": "model",
            "x-groundgate-model": deployment,
            "x-groundgate-cost-usd": f"{trace.cost_usd:.8f}",
        },
    )
