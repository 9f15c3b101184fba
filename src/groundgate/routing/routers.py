"""Routers: what picks a tier for one request. One small protocol, one class per kind
(``route.router`` in config): ``none`` (the default tier), ``rules`` (``rules.py``),
``learned`` (a classifier of whether the cheapest tier answers correctly) and ``cascade``
(the cheapest tier first; the cascade stage escalates on a weak answer).

Routers see a :class:`RouteRequest`: cheap features the route stage computed once, and the
question's embedding on demand (only the learned router asks for it; it is the vector the
guards and the semantic cache share).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from groundgate.config_routing import LearnedRouterConfig


@dataclass(frozen=True, slots=True)
class RouteRequest:
    tiers: Sequence[str]  # tier names, cheapest first
    default_tier: str  # ``default_tier``, else the cheapest
    question: str  # the last user message's text
    prompt_tokens: int  # every message, estimated as admission does
    messages: int  # conversation depth
    tools: bool  # tools (or functions) offered
    images: bool  # an image in any message
    json_schema: bool  # response_format asks for a JSON schema
    tenant: str
    # The question's embedding (computed once per request, shared with guards and cache).
    embedding: Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class TierChoice:
    tier: str
    reason: str  # which rule fired, the score against the threshold, ...
    score: float | None = None


class Router(Protocol):
    name: str  # none | rules | learned | cascade: the metrics label and RouteDecision.router

    async def choose(self, request: RouteRequest) -> TierChoice: ...


class DefaultRouter:
    """``none``: every request gets the default tier (``default_tier``, else the cheapest)."""

    name = "none"

    async def choose(self, request: RouteRequest) -> TierChoice:
        return TierChoice(request.default_tier, "default tier")


class CheapestFirst:
    """``cascade``: the cheapest tier answers first; the cascade stage escalates."""

    name = "cascade"

    async def choose(self, request: RouteRequest) -> TierChoice:
        return TierChoice(request.tiers[0], "cheapest tier first")


class CheapCorrectness(Protocol):
    """What the learned router needs of a trained model (``routing/learned.py``'s
    ``LearnedRouter``): the probability that the cheapest tier answers correctly."""

    @property
    def embedder(self) -> str:
        """The upstream embedding model it was trained on."""

    @property
    def threshold(self) -> float:
        """The shipped calibration: P(cheap correct) below it goes up."""

    def p_cheap_correct(self, text: str, vector: Any) -> float: ...

    def threshold_for_strong_share(self, share: float) -> float: ...


class LearnedTierRouter:
    """``learned``: the cheapest tier when the model trusts it (P(cheap correct) at or above
    the threshold), else the top tier."""

    name = "learned"

    def __init__(
        self, model: CheapCorrectness, config: LearnedRouterConfig, cheap_price_ratio: float
    ) -> None:
        """``cheap_price_ratio``: what a request costs on the cheapest tier against the top
        one (for a cost ceiling)."""
        self.model = model
        if config.min_cheap_probability is not None:
            self.threshold = config.min_cheap_probability
        elif config.strong_share is not None:
            self.threshold = model.threshold_for_strong_share(config.strong_share)
        elif config.max_cost_ratio is not None:
            share = strong_share_for_cost(config.max_cost_ratio, cheap_price_ratio)
            self.threshold = model.threshold_for_strong_share(share)
        else:
            self.threshold = model.threshold

    async def choose(self, request: RouteRequest) -> TierChoice:
        vector = await request.embedding()
        p = self.model.p_cheap_correct(request.question, vector)
        if p >= self.threshold:
            return TierChoice(request.tiers[0], f"p_cheap {p:.3f} >= {self.threshold:.3f}", p)
        return TierChoice(request.tiers[-1], f"p_cheap {p:.3f} < {self.threshold:.3f}", p)


def strong_share_for_cost(max_cost_ratio: float, cheap_price_ratio: float) -> float:
    """The share of requests the top tier may take for the traffic to cost at most
    ``max_cost_ratio`` of sending it all there, when a request costs ``cheap_price_ratio`` as
    much on the cheapest tier: ``s + (1 - s) * r <= c``, so ``s = (c - r) / (1 - r)``
    (requests assumed alike in length; 0 when even the cheapest tier alone costs more)."""
    if cheap_price_ratio >= 1.0:
        return 1.0 if max_cost_ratio >= 1.0 else 0.0
    share = (max_cost_ratio - cheap_price_ratio) / (1.0 - cheap_price_ratio)
    return min(1.0, max(0.0, share))
