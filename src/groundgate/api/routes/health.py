"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

router = APIRouter(tags=["health"])

_NOT_READY = {
    "description": "Not ready: the same detail, saying what is not",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: _NOT_READY})
async def readyz(request: Request) -> Response:
    detail = await request.app.state.runtime.readiness()
    return Response(
        orjson.dumps(detail),
        status_code=200 if detail["ready"] else 503,
        media_type="application/json",
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    runtime = request.app.state.runtime
    body = runtime.render_metrics()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
