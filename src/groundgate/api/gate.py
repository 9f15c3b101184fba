"""Who is calling: the principal the auth middleware attached to the request."""

from __future__ import annotations

from fastapi import Request

from groundgate.errors import AuthenticationFailed
from groundgate.gateway.principal import Principal


def principal_of(request: Request) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        # The auth middleware always runs first; a route reached without it is a bug.
        raise AuthenticationFailed("Request was not authenticated.")
    return principal


def principal_with(request: Request, scope: str) -> Principal:
    """The caller, who must hold ``scope`` (403 otherwise)."""
    principal = principal_of(request)
    principal.require(scope)
    return principal
