"""The route stage (first version): resolve the requested name to a catalog entry."""

from __future__ import annotations

from groundgate.pipeline.context import RequestContext
from groundgate.routing.catalog import Catalog


class ResolveModel:
    name = "route"

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def run(self, ctx: RequestContext) -> None:
        ctx.entry = self._catalog.get(ctx.model, "chat")
