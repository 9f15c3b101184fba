"""Liveness, readiness and metrics.

``/healthz`` and the ready/not-ready answer of ``/readyz`` are for anyone (probes carry no
key). What lies behind them (deployment and provider names, the environment variables a
provider misses, spend) needs the ``metrics`` scope; ``/metrics`` as a whole does too, unless
``server.public_metrics`` serves it without a key, then still without spend totals.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from groundgate.errors import AuthenticationFailed
from groundgate.gateway.principal import PermissionDenied, Principal
from groundgate.providers.local.models import process_models

router = APIRouter(tags=["health"])

_NOT_READY = {
    "description": "Not ready: the same body, saying what is not (in detail to the metrics scope)",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_METRICS_SCOPE = "metrics"


def _principal(request: Request) -> Principal | None:
    principal = request.scope.get("state", {}).get("principal")
    return principal if isinstance(principal, Principal) else None


def _detailed(request: Request) -> bool:
    principal = _principal(request)
    return principal is not None and _METRICS_SCOPE in principal.scopes


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: _NOT_READY})
async def readyz(request: Request) -> Response:
    """Whether the store and at least one provider are usable; with a key that has the
    ``metrics`` scope, also per store, provider and deployment, and which of the embedded
    models this process has loaded (they load on first use, or at start with preload)."""
    detail = await request.app.state.runtime.readiness()
    ready = bool(detail["ready"])
    if _detailed(request):
        body = {**detail, "local_models": process_models().loaded()}
    else:
        body = {"ready": ready}
    return Response(
        orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json"
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    runtime = request.app.state.runtime
    if _detailed(request):
        body = runtime.render_metrics(public=False)
    elif runtime.settings.server.public_metrics:
        body = runtime.render_metrics(public=True)
    elif _principal(request) is None:
        raise AuthenticationFailed(
            "Missing API key: /metrics needs a key with the 'metrics' scope "
            "(or server.public_metrics = true)."
        )
    else:
        raise PermissionDenied("This API key lacks the 'metrics' scope.")
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
