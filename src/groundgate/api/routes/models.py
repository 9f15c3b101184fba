"""GET /v1/models and GET /v1/models/{id}: the names clients may call."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from groundgate.config import AppConfig, ModelConfig
from groundgate.config_routing import RoutingConfig
from groundgate.errors import ModelNotFound
from groundgate.providers.catalog import Catalog, CatalogEntry

router = APIRouter(tags=["openai"])


def _model(entry: CatalogEntry, created: int, config: ModelConfig | None) -> dict[str, Any]:
    model = {
        "id": entry.name,
        "object": "model",
        "created": created,
        "owned_by": "groundgate",
        "groundgate": {
            "kind": entry.kind,
            "description": entry.description,
            "deployments": [d.id for d in entry.deployments],
        },
    }
    _tiers(model, config.route if config is not None else None)
    return model


def _tiers(obj: dict[str, Any], route: RoutingConfig | None) -> None:
    """A target that routes between tiers lists them (tier -> model), cheapest first."""
    if route is not None and route.tiers:
        obj["groundgate"]["tiers"] = dict(route.tiers)
        obj["groundgate"]["router"] = route.router


def _app(name: str, app: AppConfig, created: int) -> dict[str, Any]:
    obj = {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "groundgate",
        "groundgate": {
            "kind": "app",
            "description": app.description,
            "knowledge_base": app.knowledge_base,
            "model": app.model,
            "prompt": app.prompt,
        },
    }
    _tiers(obj, app.route)
    return obj


def _all(request: Request) -> list[dict[str, Any]]:
    runtime = request.app.state.runtime
    catalog: Catalog = runtime.catalog
    settings = runtime.settings
    models = [_model(e, catalog.created, settings.models.get(e.name)) for e in catalog.entries()]
    apps = [_app(n, a, catalog.created) for n, a in runtime.settings.apps.items()]
    return models + apps


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": _all(request)}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    for model in _all(request):
        if model["id"] == model_id:
            return model
    raise ModelNotFound(f"The model '{model_id}' does not exist.", param="model")
