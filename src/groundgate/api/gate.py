"""The gateway checks every model-calling route runs: who, which model, limits, budgets."""

from __future__ import annotations

from fastapi import Request

from groundgate.errors import AuthenticationFailed
from groundgate.gateway.admission import Ticket
from groundgate.gateway.principal import Principal
from groundgate.gateway.shaping import shape_chat
from groundgate.providers.base import ChatCall
from groundgate.runtime import Runtime


def principal_of(request: Request) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        # The auth middleware always runs first; a route reached without it is a bug.
        raise AuthenticationFailed("Request was not authenticated.")
    return principal


async def admit_chat(
    request: Request, runtime: Runtime, model: str, call: ChatCall
) -> tuple[Principal, Ticket]:
    principal = principal_of(request)
    principal.may_call(model)
    estimate = shape_chat(call, principal, runtime.settings.limits)
    ticket = await runtime.admission.admit(principal, estimate)
    return principal, ticket
