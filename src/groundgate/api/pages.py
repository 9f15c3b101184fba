"""One page of a listing, in the OpenAI list shape that every paged route answers with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def list_page(data: Sequence[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    """``data`` with the ids a client pages on: the next page is ``after=last_id``."""
    return {
        "object": "list",
        "data": list(data),
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
