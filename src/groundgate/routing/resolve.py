"""Which models an app may generate with."""

from __future__ import annotations

from groundgate.config import AppConfig


def app_models(app: AppConfig) -> list[str]:
    """Every model ``app`` may generate with. One today; the router's tiers join this list,
    so the permission check (the admit stage) sees every model a request could run."""
    return [app.model]
