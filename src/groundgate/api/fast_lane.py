"""The hot routes, served straight from ASGI.

FastAPI still declares these routes (they appear in OpenAPI and work through it), but the
requests on the hot path skip its middleware stack, router scan and dependency solving:
measured on the 2-core bench, that machinery cost more CPU per request than the gateway's
own work. Endpoints here take a ``Request`` and return a ``Response`` and raise
``GroundgateError`` for failures, exactly as they do under FastAPI.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from groundgate.api.errors import error_body, error_response, json_error
from groundgate.errors import GroundgateError

log = logging.getLogger("groundgate.api")

Endpoint = Callable[[Request], Awaitable[Response]]


class FastLane:
    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], Endpoint]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.routes.get((scope["method"], scope["path"]))
            if endpoint is not None:
                await self._serve(endpoint, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except GroundgateError as exc:
            response = error_response(exc, _trace_header(request))
        except Exception as exc:
            headers = _trace_header(request)
            log.error(
                "unhandled error on %s %s: %s",
                scope["method"],
                scope["path"],
                type(exc).__name__,
                exc_info=exc,
            )
            ref = f" (trace {headers['x-groundgate-trace-id']})" if headers else ""
            response = json_error(500, error_body(f"Internal error{ref}.", "server_error"), headers)
        await response(scope, receive, send)


def _trace_header(request: Request) -> dict[str, str]:
    trace_id = request.scope.get("state", {}).get("trace_id")
    return {"x-groundgate-trace-id": trace_id} if trace_id else {}
