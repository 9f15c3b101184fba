"""The FastAPI application: routes, error mapping, body limit, and the runtime's lifecycle."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from groundgate import __version__
from groundgate.api.auth import PUBLIC, AuthMiddleware
from groundgate.api.errors import install_error_handlers
from groundgate.api.fast_lane import FastLane
from groundgate.api.limits import BodySizeLimit
from groundgate.api.request_log import RequestLog
from groundgate.api.routes import (
    admin,
    ask,
    cache,
    chat,
    embeddings,
    feedback,
    health,
    knowledge,
    models,
    prompts,
    reviews,
    runs,
    traces,
    usage,
)
from groundgate.api.schemas import (
    AskRequest,
    ChatCompletionRequest,
    EmbeddingRequest,
    ErrorResponse,
)
from groundgate.api.web_guard import WebGuard
from groundgate.config import Settings, load_settings
from groundgate.container import Container
from groundgate.gateway.auth import Authenticator
from groundgate.gateway.key_admin import CreateKey, TenantBody
from groundgate.observe.logging import configure_logging


class OrjsonResponse(JSONResponse):
    """JSON bodies of the FastAPI routes, written by orjson (FastAPI deprecated its own
    ORJSONResponse; the hot routes write their bodies themselves)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The ASGI application: the hot routes in a fast lane in front of FastAPI, with
    authentication, the body size limit and the web-page checks (Host, Origin, content type)
    in front of both."""
    api = create_fastapi(settings)
    runtime: Container = api.state.runtime
    lane = FastLane(
        api,
        {
            ("POST", "/v1/chat/completions"): chat.chat_completions,
            ("POST", "/v1/embeddings"): embeddings.embeddings,
            ("POST", "/v1/ask"): ask.ask,
        },
    )
    guarded = AuthMiddleware(lane, api.state.authenticator)
    limited = BodySizeLimit(guarded, max_bytes=runtime.settings.server.max_body_bytes)
    app: ASGIApp = WebGuard(limited, runtime.settings.server)
    # Outermost, so a request refused by any check still gets its line.
    return RequestLog(app) if runtime.settings.logging.requests else app


def create_fastapi(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    runtime = Container(settings)

    authenticator = Authenticator(settings, runtime.store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        await authenticator.decide_mode()
        host = settings.server.host
        if not authenticator.required and not _loopback(host):
            await runtime.stop()
            raise RuntimeError(
                f"refusing to serve on {host} without API keys: set "
                f"{settings.auth.admin_key_env} (or create a key with `groundgate keys "
                "create`), or bind 127.0.0.1"
            )
        # Everything built at start-up lives for the whole process: move it out of the
        # collector's sight so full collections stay short on the request path.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Groundgate",
        version=__version__,
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
    )
    app.state.runtime = runtime
    app.state.authenticator = authenticator
    install_error_handlers(app)
    for module in (chat, embeddings, models, health, traces, knowledge, ask, admin, usage, cache):
        app.include_router(module.router)
    app.include_router(reviews.router)
    app.include_router(runs.router)
    app.include_router(feedback.router)
    app.include_router(prompts.router)
    _document_raw_bodies(app)
    return app


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Routes that call a model: admission (429) and upstream failures (502/503/504) apply.
_CALLS_MODELS = frozenset(
    {("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"), ("POST", "/v1/ask")}
)
# Ingestion embeds: an embedder upstream can fail, and the local one can shed load.
_EMBEDS = frozenset({("POST", "/v1/knowledge-bases/{kb}/documents")})
_ERROR_DESCRIPTIONS = {
    400: "Invalid request",
    401: "Missing or invalid API key",
    403: "The key lacks the scope, model or tenant this needs",
    404: "Not found",
    413: "Request body over the size limit",
    415: "Request body not sent as application/json (or multipart/form-data for uploads)",
    429: "Rate limit or budget exceeded",
    502: "Upstream error",
    503: "Upstream unavailable, or the gateway is overloaded",
    504: "Upstream timeout",
}


def _document_raw_bodies(app: FastAPI) -> None:
    """Routes that parse their body by hand still publish its schema in OpenAPI, and every
    operation documents the OpenAI-style errors it can answer."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (
            ChatCompletionRequest,
            EmbeddingRequest,
            AskRequest,
            CreateKey,
            TenantBody,
            ErrorResponse,
        ):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in model_schema.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components[model.__name__] = model_schema
        _document_errors(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_errors(schema: dict[str, Any]) -> None:
    """Replace FastAPI's 422 (never sent: validation errors are 400s) with the error statuses
    each operation can answer, all with the OpenAI error body."""
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in _error_statuses(method.upper(), path, operation):
                responses.setdefault(str(status), {"description": _ERROR_DESCRIPTIONS[status]})
            for status, documented in responses.items():
                # Errors a route declares itself (``responses=``) get the same body.
                if status.isdigit() and int(status) >= 400:
                    documented.setdefault("content", {"application/json": {"schema": error}})
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)


def _error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    statuses: set[int] = set()
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(400)  # validation of what the client sent
    if path not in PUBLIC:
        statuses |= {401, 403}  # the auth middleware, and scope/tenant checks in routes
    if "{" in path:
        statuses.add(404)  # the named resource does not exist
    if method not in ("GET", "HEAD", "OPTIONS"):
        statuses.add(413)  # the body size limit
    if method in ("POST", "PUT", "PATCH"):
        statuses.add(415)  # the content type (api/web_guard.py)
    if (method, path) in _CALLS_MODELS:
        statuses |= {404, 429, 502, 503, 504}  # unknown model; admission; upstreams
    if (method, path) in _EMBEDS:
        statuses |= {502, 503, 504}
    return statuses


def create_app_from_env() -> ASGIApp:
    """Factory for ``uvicorn --factory`` and multi-worker serving: config from the env. A
    worker is a fresh process: its logging is set up here as ``serve`` set up its parent's."""
    settings = load_settings()
    configure_logging(settings.logging.level_or(settings.server.log_level), settings.logging.format)
    return create_app(settings)
