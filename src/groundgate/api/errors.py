"""The one place that turns errors into HTTP: OpenAI-style bodies with the right status."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from groundgate.errors import (
    GroundgateError,
    HeldForReview,
    Overloaded,
    ProviderError,
    RateLimited,
)
from groundgate.observe.redact import redact
from groundgate.validation import describe_validation

log = logging.getLogger("groundgate.api")

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(
    message: str, error_type: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    # Messages can carry upstream text, which may echo a credential.
    message = redact(message)
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def json_error(
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def error_response(exc: GroundgateError, headers: dict[str, str] | None = None) -> Response:
    if isinstance(exc, HeldForReview):
        # Not an error: the answer waits for a reviewer; the client polls the review.
        where = {"Location": f"/v1/reviews/{exc.review_id}"}
        return json_error(exc.status_code, exc.body(), {**(headers or {}), **where})
    extra = dict(headers or {})
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, (RateLimited, Overloaded, ProviderError)) and retry_after is not None:
        extra["Retry-After"] = str(max(1, round(retry_after)))
    body = error_body(exc.message, exc.error_type, param=exc.param, code=exc.code)
    return json_error(exc.status_code, body, extra)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GroundgateError)
    async def _groundgate(request: Request, exc: GroundgateError) -> Response:
        return error_response(exc, _trace_header(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        message, param = describe_validation(list(exc.errors()))
        return json_error(
            400, error_body(message, "invalid_request_error", param=param, code="invalid_value")
        )

    @app.exception_handler(ValidationError)
    async def _pydantic(request: Request, exc: ValidationError) -> Response:
        message, param = describe_validation(list(exc.errors()))
        return json_error(
            400, error_body(message, "invalid_request_error", param=param, code="invalid_value")
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        status = exc.status_code
        message = str(exc.detail) if status != 404 else f"Unknown route: {request.url.path}"
        headers = dict(exc.headers or {})
        if status == 405:
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        return json_error(
            status,
            error_body(
                message,
                _STATUS_TYPES.get(status, "server_error"),
                code="not_found" if status == 404 else None,
            ),
            headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        trace = _trace_header(request)
        log.error(
            "unhandled error on %s %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
            exc_info=exc,
        )
        ref = f" (trace {trace['x-groundgate-trace-id']})" if trace else ""
        return json_error(500, error_body(f"Internal error{ref}.", "server_error"), trace)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method the path supports. Starlette's 405 names only those of the first route
    that matched the path (``Allow: POST`` where GET works too), so ask the router per method."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


def _trace_header(request: Request) -> dict[str, str]:
    trace_id = getattr(request.state, "trace_id", None)
    return {"x-groundgate-trace-id": trace_id} if trace_id else {}
