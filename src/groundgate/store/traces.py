"""What the store needs of a finished trace to persist it: its indexed columns and its JSON.

``observe.trace.Trace`` is one (structurally); the store names only this protocol, so the
persistence layer does not import the observability layer that writes through it.
"""

from __future__ import annotations

from typing import Protocol


class TraceRow(Protocol):
    id: str
    tenant: str
    key_id: str | None
    endpoint: str
    model: str
    created_at: float
    source: str | None
    deployment: str | None
    status: str
    http_status: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float

    def to_json(self) -> bytes:
        """The whole trace as persisted JSON, already scrubbed of secrets."""
        ...
