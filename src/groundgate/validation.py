"""Input checked against a pydantic model, with one readable ``InvalidRequest`` on failure.

Shared by every door a request comes in through (the HTTP API, the CLI), so a bad value reads
the same wherever it was typed.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from groundgate.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)

# Discriminated unions add the tag to the path (messages.0.user.content): dropped from params.
_UNION_TAGS = frozenset({"system", "user", "assistant", "tool", "function", "developer"})


def describe_validation(errors: list[Any]) -> tuple[str, str | None]:
    """One readable sentence from pydantic errors (never the raw dump), and the first param."""
    parts = []
    param = None
    for err in errors[:3]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        path = ".".join(p for p in loc if p not in _UNION_TAGS)
        param = param or path or None
        msg = str(err.get("msg", "invalid value"))
        if err.get("type") == "missing":
            msg = "is required"
        elif err.get("type") == "union_tag_invalid":
            msg = "has an unknown role " + repr(err.get("input", {}).get("role"))
        parts.append(f"'{path}' {msg}" if path else msg)
    more = len(errors) - 3
    text = "; ".join(parts) + (f" (and {more} more problems)" if more > 0 else "")
    return f"Invalid request: {text}.", param


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, param = describe_validation(list(exc.errors()))
        raise InvalidRequest(message, param=param, code="invalid_value") from None
