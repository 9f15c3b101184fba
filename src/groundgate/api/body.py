"""Fast request-body parsing: orjson, then pydantic validation (groundgate.validation), with
OpenAI-style errors."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from pydantic import BaseModel

from groundgate.errors import InvalidRequest
from groundgate.validation import validate

__all__ = ["body_schema", "read_json_object", "validate"]


async def read_json_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object; an ``optional`` body may be left out (``{}``)."""
    raw = await request.body()
    if not raw and optional:
        return {}
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"The request body is not valid JSON: {exc.msg} (at byte {exc.pos}).",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return data


def body_schema(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that reads its body by hand (as above) rather
    than through a FastAPI parameter: pass it as the route's ``openapi_extra``."""
    schema = model.model_json_schema()
    return {
        "requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}
    }
