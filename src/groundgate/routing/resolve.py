"""The route stage (first version): resolve the requested name to a catalog entry."""

from __future__ import annotations

from groundgate.config import AppConfig
from groundgate.pipeline.context import RequestContext
from groundgate.providers.catalog import Catalog


def app_models(app: AppConfig) -> list[str]:
    """Every model ``app`` may generate with. One today; the router's tiers join this list,
    so the permission check (``api/gate.py``) sees every model a request could run."""
    return [app.model]


class ResolveModel:
    name = "route"

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def run(self, ctx: RequestContext) -> None:
        # An app names the model it generates with; a plain request names the model itself.
        name = ctx.app.model if ctx.app is not None else ctx.model
        ctx.entry = self._catalog.get(name, "chat")
