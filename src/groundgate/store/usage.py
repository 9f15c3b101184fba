"""The shape of one usage row, shared by every store backend."""

from __future__ import annotations

from typing import Any


def usage_row(r: Any) -> dict[str, Any]:
    """(model, key_id, requests, prompt, completion, cost, errors) as a JSON-ready dict."""
    return {
        "model": r[0],
        "key_id": r[1],
        "requests": int(r[2]),
        "prompt_tokens": int(r[3] or 0),
        "completion_tokens": int(r[4] or 0),
        "cost_usd": float(r[5] or 0.0),
        "errors": int(r[6] or 0),
    }
