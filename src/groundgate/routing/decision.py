"""What the route stage decided for one request (``ctx.route``): for the trace, the metrics,
the ``x-groundgate-route`` header and the response's ``groundgate.route``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RouteDecision:
    tier: str  # the tier that generated (after any escalation)
    model: str  # that tier's model
    router: str  # none | rules | learned | cascade | pinned
    score: float | None = None  # the router's score behind the choice (e.g. P(cheap is right))
    reason: str = ""  # a rule's name, "pinned", "escalated: <why>", ...
    # Estimated USD saved against sending the request to the top tier (negative: spent more).
    saved_usd: float | None = None
    # The estimate the saving is from: the answer's cost as routed (discarded cascade answers
    # included); on the top tier it would have been ``estimated_usd + saved_usd``.
    estimated_usd: float | None = None
    escalations: list[dict[str, Any]] = field(default_factory=list)  # cascade: each step up

    def header(self) -> str:
        return f"{self.tier}; router={self.router}" + (
            f"; score={self.score:.3f}" if self.score is not None else ""
        )

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tier": self.tier, "model": self.model, "router": self.router}
        if self.score is not None:
            out["score"] = round(self.score, 4)
        if self.reason:
            out["reason"] = self.reason
        if self.saved_usd is not None:
            out["saved_usd"] = round(self.saved_usd, 10)
        if self.estimated_usd is not None:
            out["estimated_usd"] = round(self.estimated_usd, 10)
        if self.escalations:
            out["escalations"] = self.escalations
        return out
