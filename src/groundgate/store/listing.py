"""The WHERE clause of a tenant's listing (reviews, agent runs, eval runs): the tenant, the
filters given, and keyset pagination, with the backend's placeholder ("?" or "%s")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def listing_where(
    placeholder: str,
    filters: Mapping[str, Any],
    before: tuple[float, str] | None = None,
) -> tuple[str, list[Any]]:
    """The clause and its parameters after the tenant (the caller passes the tenant first,
    then these, then adds the order and the limit). A filter whose value is None is left
    out; ``before`` is the (created_at, id) of the previous page's last row."""
    where = [f"tenant = {placeholder}"]
    params: list[Any] = []
    for column, value in filters.items():
        if value is not None:
            where.append(f"{column} = {placeholder}")
            params.append(value)
    if before is not None:
        # Keyset pagination: strictly after the previous page's last row in (created_at, id)
        # descending order, so rows added meanwhile never shift a page.
        where.append(
            f"(created_at < {placeholder} OR (created_at = {placeholder} AND id < {placeholder}))"
        )
        params += [before[0], before[0], before[1]]
    return " AND ".join(where), params
