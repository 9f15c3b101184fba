"""Route: the catalog entry that generates. A plain model or app generates with the model it
names; one with tiers (``route.tiers``) with the tier its router picks (``routing/``), or the
tier the client pinned (``x-groundgate-tier`` / ``model: "NAME@TIER"``; the admit stage checked
that its key may). The decision is ``ctx.route``; the exit adds the estimated saving against
the top tier once the answer is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from groundgate.config_routing import RoutingConfig
from groundgate.gateway.metering import estimate_completion
from groundgate.gateway.shaping import estimate_input_tokens
from groundgate.guards.embedder import guard_embedder
from groundgate.guards.injection import embedding_text
from groundgate.guards.messages import last_user_text
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Outcome, Stage
from groundgate.providers.catalog import Catalog
from groundgate.retrieval.embedding import EmbeddingService
from groundgate.routing.decision import RouteDecision
from groundgate.routing.learned import load_router, shipped_router
from groundgate.routing.routers import (
    CheapestFirst,
    DefaultRouter,
    LearnedTierRouter,
    Router,
    RouteRequest,
    TierChoice,
)
from groundgate.routing.rules import RulesRouter
from groundgate.routing.tiers import Tiers, cheap_price_ratio


def target_route(target: Target) -> RoutingConfig | None:
    if target.app is not None:
        return target.app.route
    return target.model.route if target.model is not None else None


def route_stage(services: Services, target: Target) -> Stage:
    route = target_route(target)
    if route is None or not route.tiers:
        return Route(services.catalog)
    tiers = Tiers(target.name, route, services.catalog, services.prices)
    where = f"{'apps' if target.app is not None else 'models'}.{target.name}.route"
    embedder: EmbeddingService | None = None
    router: Router
    if route.router == "rules":
        router = RulesRouter(route.rules)
    elif route.router == "cascade":
        router = CheapestFirst()
    elif route.router == "learned":
        path = route.learned.model_path
        model = load_router(Path(path)) if path else shipped_router()
        router = LearnedTierRouter(model, route.learned, cheap_price_ratio(tiers))
        # The question's embedding, from the embedder the guards and the semantic cache
        # share (one embedding per request, whichever stage asks first).
        embedder = guard_embedder(
            services.embeddings, model.embedder, services.settings.cache.embedder, where
        )
    else:
        router = DefaultRouter()
    return TieredRoute(services.catalog, tiers, router, embedder)


class Route(Stage):
    name = "route"
    span = "route"

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def enter(self, ctx: RequestContext) -> None:
        # An app names the model it generates with; a plain request names the model itself;
        # an A/B variant (the split stage) may name another.
        name = ctx.variant_model or (ctx.app.model if ctx.app is not None else ctx.model)
        ctx.entry = self._catalog.get(name, "chat")


class TieredRoute(Route):
    """The route of a target with tiers."""

    def __init__(
        self,
        catalog: Catalog,
        tiers: Tiers,
        router: Router,
        embedder: EmbeddingService | None,
    ) -> None:
        super().__init__(catalog)
        self.tiers = tiers
        self.router = router
        self.embedder = embedder

    def _routes(self, ctx: RequestContext) -> bool:
        """Whether this request routes between the tiers: not when the client chose a model
        of its own (``/v1/ask``'s ``model``), or a variant swapped the model."""
        if ctx.variant_model is not None:
            return False
        if ctx.app is not None:
            return ctx.app.route is not None and bool(ctx.app.route.tiers)
        return ctx.model == self.tiers.target

    async def enter(self, ctx: RequestContext) -> None:
        if not self._routes(ctx):
            await super().enter(ctx)
            return
        tiers = self.tiers
        router = "pinned"
        if ctx.tier is not None:
            choice = TierChoice(tiers.get(ctx.tier).name, "pinned")
        else:
            choice = await self.router.choose(self._request(ctx))
            router = self.router.name
        tier = tiers.get(choice.tier)
        ctx.entry = tier.entry
        ctx.route = RouteDecision(tier.name, tier.model, router, choice.score, choice.reason)

    def _request(self, ctx: RequestContext) -> RouteRequest:
        call = ctx.call
        question = last_user_text(call.messages)
        embedder = self.embedder

        async def embedding() -> Any:
            if embedder is None:
                raise RuntimeError("this router was built without an embedder")
            text = embedding_text(question)
            return await embedder.embed_query(text, trace=ctx.trace, shared=ctx.vectors)

        response_format = call.params.get("response_format")
        return RouteRequest(
            tiers=[tier.name for tier in self.tiers.ordered],
            default_tier=self.tiers.default.name,
            question=question,
            prompt_tokens=estimate_input_tokens(call.messages),
            messages=len(call.messages),
            tools=bool(call.params.get("tools") or call.params.get("functions")),
            images=any(_has_image(m) for m in call.messages),
            json_schema=isinstance(response_format, dict)
            and response_format.get("type") == "json_schema",
            tenant=ctx.tenant,
            embedding=embedding,
        )

    async def exit(self, ctx: RequestContext, outcome: Outcome) -> None:
        """The estimated saving against the top tier: the answer as delivered, priced on the
        top tier, less what it cost as routed (the kept answer on its tier, and every answer
        the cascade discarded at what it was billed). Nothing for a cache hit."""
        decision = ctx.route
        delivered = ctx.delivered
        if decision is None or ctx.source == "cache" or delivered is None:
            return
        choices = delivered.choices()
        if not choices:
            return
        usage = estimate_completion(ctx.call, choices)
        tiers = self.tiers
        spent = tiers.cost(tiers.get(decision.tier), usage, ctx.deployment)
        spent += sum(float(step.get("cost_usd", 0.0)) for step in decision.escalations)
        decision.estimated_usd = spent
        decision.saved_usd = tiers.cost(tiers.top, usage) - spent


def _has_image(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") in ("image_url", "input_image", "image")
        for part in content
    )
