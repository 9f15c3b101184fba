"""Route (first version): the requested name resolved to the catalog entry that generates."""

from __future__ import annotations

from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.stage import Stage
from groundgate.providers.catalog import Catalog


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
