"""GET /v1/models and GET /v1/models/{id}: the names clients may call."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from groundgate.errors import ModelNotFound
from groundgate.routing.catalog import Catalog, CatalogEntry

router = APIRouter(tags=["openai"])


def _model(entry: CatalogEntry, created: int) -> dict[str, Any]:
    return {
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


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    catalog: Catalog = request.app.state.runtime.catalog
    return {"object": "list", "data": [_model(e, catalog.created) for e in catalog.entries()]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    catalog: Catalog = request.app.state.runtime.catalog
    for entry in catalog.entries():
        if entry.name == model_id:
            return _model(entry, catalog.created)
    raise ModelNotFound(f"The model '{model_id}' does not exist.", param="model")
