"""Evaluating one arm of an app's A/B split offline (``groundgate eval run --variant NAME``):
the app keeps only that variant, so the split stage gives it to every case, and the run's
reports compare with ``groundgate eval compare`` under the same statistics as any two runs."""

from __future__ import annotations

from groundgate.config import Settings
from groundgate.errors import ConfigError


def pin_variant(settings: Settings, app: str, variant: str) -> Settings:
    """``settings`` with ``app``'s split reduced to ``variant`` (weight 1)."""
    config = settings.apps[app]
    chosen = [v for v in config.variants if v.name == variant]
    if not chosen:
        known = ", ".join(v.name for v in config.variants) or "none"
        raise ConfigError([f"apps.{app}.variants: no variant named {variant!r} (known: {known})"])
    pinned = config.model_copy(update={"variants": [chosen[0].model_copy(update={"weight": 1.0})]})
    return settings.model_copy(update={"apps": {**settings.apps, app: pinned}})
