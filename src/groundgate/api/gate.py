"""The gateway checks every model-calling route runs: who, which model, limits, budgets."""

from __future__ import annotations

from fastapi import Request

from groundgate.errors import AuthenticationFailed
from groundgate.gateway.admission import Ticket
from groundgate.gateway.principal import Principal
from groundgate.gateway.shaping import shape_chat
from groundgate.pipeline.context import RequestContext
from groundgate.runtime import Runtime


def principal_of(request: Request) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        # The auth middleware always runs first; a route reached without it is a bug.
        raise AuthenticationFailed("Request was not authenticated.")
    return principal


async def admit_chat(runtime: Runtime, ctx: RequestContext, principal: Principal) -> Ticket:
    """Model permission, shaping, limits and budgets; a refusal is traced like any error."""
    try:
        # The name the client used: an app (by name), else the model.
        named_app = ctx.app_name is not None and not ctx.app_name.startswith("kb:")
        principal.may_call(ctx.app_name if named_app and ctx.app_name else ctx.model)
        estimate = shape_chat(ctx.call, principal, runtime.settings.limits)
        return await runtime.admission.admit(principal, estimate)
    except BaseException as exc:
        runtime.finish(ctx, exc)
        raise
