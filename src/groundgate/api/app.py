"""The FastAPI application: routes, error mapping, body limit, and the runtime's lifecycle."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import ORJSONResponse
from starlette.types import ASGIApp

from groundgate import __version__
from groundgate.api.auth import Authenticator, AuthMiddleware
from groundgate.api.errors import install_error_handlers
from groundgate.api.fast_lane import FastLane
from groundgate.api.limits import BodySizeLimit
from groundgate.api.routes import (
    admin,
    ask,
    chat,
    embeddings,
    health,
    knowledge,
    models,
    traces,
    usage,
)
from groundgate.api.schemas import AskRequest, ChatCompletionRequest, EmbeddingRequest
from groundgate.config import Settings, load_settings
from groundgate.runtime import Runtime


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The ASGI application: the hot routes in a fast lane in front of FastAPI, and the body
    size limit in front of both."""
    api = create_fastapi(settings)
    runtime: Runtime = api.state.runtime
    lane = FastLane(
        api,
        {
            ("POST", "/v1/chat/completions"): chat.chat_completions,
            ("POST", "/v1/embeddings"): embeddings.embeddings,
            ("POST", "/v1/ask"): ask.ask,
        },
    )
    guarded = AuthMiddleware(lane, api.state.authenticator)
    return BodySizeLimit(guarded, max_bytes=runtime.settings.server.max_body_bytes)


def create_fastapi(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    runtime = Runtime(settings)

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
        default_response_class=ORJSONResponse,
    )
    app.state.runtime = runtime
    app.state.authenticator = authenticator
    install_error_handlers(app)
    for module in (chat, embeddings, models, health, traces, knowledge, ask, admin, usage):
        app.include_router(module.router)
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


def _document_raw_bodies(app: FastAPI) -> None:
    """Routes that parse their body by hand still publish its schema in OpenAPI."""

    def openapi() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ChatCompletionRequest, EmbeddingRequest, AskRequest):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in model_schema.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components[model.__name__] = model_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app_from_env() -> ASGIApp:
    """Factory for ``uvicorn --factory`` and multi-worker serving: config from the env."""
    return create_app(load_settings())
