"""The gateway checks every model-calling route runs: who, which model, limits, budgets."""

from __future__ import annotations

from fastapi import Request

from groundgate.config import Settings
from groundgate.errors import AuthenticationFailed
from groundgate.gateway.admission import Ticket
from groundgate.gateway.principal import Principal
from groundgate.gateway.shaping import shape_chat
from groundgate.pipeline.context import RequestContext
from groundgate.routing.resolve import app_models
from groundgate.runtime import Runtime


def principal_of(request: Request) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        # The auth middleware always runs first; a route reached without it is a bug.
        raise AuthenticationFailed("Request was not authenticated.")
    return principal


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
    runs = app_models(ctx.app) if ctx.app is not None else [ctx.model]
    names.extend(model for model in runs if model not in covered)
    return names


def check_models(settings: Settings, ctx: RequestContext, principal: Principal) -> None:
    """Refuse (as an unknown model) a request that would run anything the key may not call."""
    for name in names_to_check(settings, ctx):
        principal.may_call(name)


async def admit_chat(runtime: Runtime, ctx: RequestContext, principal: Principal) -> Ticket:
    """Model permission, shaping, limits and budgets; a refusal is traced like any error."""
    try:
        check_models(runtime.settings, ctx, principal)
        estimate = shape_chat(ctx.call, principal, runtime.settings.limits)
        return await runtime.admission.admit(principal, estimate)
    except BaseException as exc:
        runtime.finish(ctx, exc)
        raise
