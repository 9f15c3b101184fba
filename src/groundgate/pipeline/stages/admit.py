"""Admit: model permission, request shaping, rate limits and budgets on the way in; the
settle (actual tokens for the estimate, the cost into the spend counters, the concurrency
slot back) on the way out, however the request ended."""

from __future__ import annotations

from groundgate.config import Settings
from groundgate.config_routing import RoutingConfig
from groundgate.gateway.admission import Admission
from groundgate.gateway.principal import Principal
from groundgate.gateway.shaping import shape_chat
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.stage import Outcome, Stage
from groundgate.routing.resolve import app_models
from groundgate.routing.tiers import PinRefused, pinned_model


class Admit(Stage):
    name = "admit"

    def __init__(self, settings: Settings, admission: Admission) -> None:
        self.settings = settings
        self.admission = admission

    async def enter(self, ctx: RequestContext) -> None:
        principal = ctx.principal
        if principal is None:
            return  # in-process callers (CLI, evals) are not metered
        check_models(self.settings, ctx, principal)
        estimate = shape_chat(ctx.call, principal, self.settings.limits)
        ctx.ticket = await self.admission.admit(principal, estimate)

    async def exit(self, ctx: RequestContext, outcome: Outcome) -> None:
        if ctx.ticket is None:
            return
        # An answer (a cache hit's included: it used none) settles its actual tokens; a request
        # that failed keeps its estimate unless it was billed for some (a stream cut short).
        tokens = ctx.usage.total_tokens if outcome.ok else (ctx.usage.total_tokens or None)
        await self.admission.settle(ctx.ticket, tokens, ctx.cost_usd)


def names_to_check(settings: Settings, ctx: RequestContext) -> list[str]:
    """Every name the caller's key must be allowed to call for this request to run.

    The app the client named (if any), and each model the request may generate with. A grant
    of an app covers the models its own configuration runs (the operator chose them); a model
    the client picks itself (``/v1/ask``'s ``model``, an ad-hoc ``kb`` ask's model, a plain
    model request) needs a grant of its own.
    """
    names: list[str] = []
    covered: set[str] = set()
    configured = settings.apps.get(ctx.app_name) if ctx.app_name is not None else None
    if ctx.app_name is not None and configured is not None:
        names.append(ctx.app_name)
        covered.update(app_models(configured))
    # ctx.app is what will run: the app as configured, or with the client's choices applied.
    # A plain model's tiers are covered by its grant in the same way.
    runs = app_models(ctx.app) if ctx.app is not None else [ctx.model]
    names.extend(model for model in runs if model not in covered)
    return names


def check_models(settings: Settings, ctx: RequestContext, principal: Principal) -> None:
    """Refuse (as an unknown model) a request that would run anything the key may not call;
    then a tier the client pinned: it must exist and be pinnable (400), and, being the
    client's own choice like ``/v1/ask``'s ``model``, its model needs a grant of its own
    (403)."""
    for name in names_to_check(settings, ctx):
        principal.may_call(name)
    if ctx.tier is None:
        return
    target = ctx.app_name if ctx.app is not None else ctx.model
    route = ctx.app.route if ctx.app is not None else _model_route(settings, ctx.model)
    model = pinned_model(target or "", route, ctx.tier)
    if principal.models is not None and model not in principal.models:
        raise PinRefused(
            f"This API key may not pin the tier '{ctx.tier}' of '{target}'.",
            param="model",
        )


def _model_route(settings: Settings, name: str) -> RoutingConfig | None:
    config = settings.models.get(name)
    return config.route if config is not None else None
