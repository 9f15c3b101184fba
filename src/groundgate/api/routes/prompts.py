"""The prompt registry over HTTP: ``/v1/prompts``.

Prompts are gateway-wide config, not tenant data. Reading them needs a key with the ``chat``,
``review`` or ``admin`` scope (the keys that use, judge or run prompts; an ``embeddings``- or
``feedback``-only key has no business with them). Moving a label needs ``admin``
(``api/auth.py``); the move is audited with the caller's tenant and key id and takes effect on
this process's next request, and on other replicas' within ``[prompts] label_refresh_s``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from groundgate.api.body import body_schema, read_json_object, validate
from groundgate.api.gate import principal_of, principal_with
from groundgate.config_prompts import parse_ref
from groundgate.container import Container
from groundgate.errors import InvalidRequest
from groundgate.gateway.principal import PermissionDenied
from groundgate.prompts.registry import PromptRegistry
from groundgate.prompts.views import move_view, prompt_view, prompts_list, version_view

router = APIRouter(tags=["prompts"])

READ_SCOPES = frozenset({"chat", "review", "admin"})


class LabelBody(BaseModel):
    """Where the label points from now on."""

    model_config = ConfigDict(extra="forbid", strict=True)

    version: int = Field(ge=1)
    note: str | None = Field(None, max_length=2000)


_LABEL_SCHEMA = body_schema(LabelBody)


def _registry(request: Request) -> PromptRegistry:
    principal = principal_of(request)
    if not READ_SCOPES & principal.scopes:
        raise PermissionDenied("Reading prompts needs the 'chat', 'review' or 'admin' scope.")
    runtime: Container = request.app.state.runtime
    return runtime.prompts


@router.get("/v1/prompts")
async def list_prompts(request: Request) -> dict[str, Any]:
    """Every prompt: versions, labels, tokens per version, which versions were used."""
    return {"object": "list", "data": await prompts_list(_registry(request))}


@router.get("/v1/prompts/{name}")
async def get_prompt(name: str, request: Request) -> dict[str, Any]:
    """One prompt: its versions (digest, tokens, used) and labels."""
    return await prompt_view(_registry(request), name)


@router.get("/v1/prompts/{name}/versions/{ref}")
async def get_prompt_version(name: str, ref: str, request: Request) -> dict[str, Any]:
    """One version in full; ``ref`` is a version number or a label."""
    registry = _registry(request)
    try:
        parsed = parse_ref(f"{name}@{ref}")
    except ValueError as exc:
        raise InvalidRequest(str(exc)[:300], param="ref", code="invalid_prompt_ref") from None
    registry.versions(parsed.name)  # 404 for an unknown prompt before reading labels
    return version_view(registry, await registry.lookup(parsed))


@router.post("/v1/prompts/{name}/labels/{label}", openapi_extra=_LABEL_SCHEMA)
async def move_label(name: str, label: str, request: Request) -> dict[str, Any]:
    """Point ``label`` at a version (admin scope); answers the audited move."""
    principal = principal_with(request, "admin")
    body = validate(LabelBody, await read_json_object(request))
    runtime: Container = request.app.state.runtime
    move = await runtime.prompts.promote(
        name,
        body.version,
        label,
        moved_by=principal.key_id or "admin",
        tenant=principal.tenant,
        key_id=principal.key_id,
        note=body.note,
    )
    return move_view(move)
