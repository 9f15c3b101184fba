"""Which models an app may generate with."""

from __future__ import annotations

from groundgate.config import AppConfig


def app_models(app: AppConfig) -> list[str]:
    """Every model ``app`` may generate with: its tiers' models when it routes between tiers,
    else its one model. The permission check (the admit stage) sees every model a request
    could run."""
    if app.route is not None and app.route.tiers:
        return list(dict.fromkeys(app.route.tiers.values()))
    return [app.model]
