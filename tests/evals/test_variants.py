"""``eval run --variant``: one arm of an app's A/B split pinned, and named in the fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from groundgate.config import load_settings
from groundgate.errors import ConfigError
from groundgate.evals.app_answerer import app_fingerprint
from groundgate.evals.variants import pin_variant

SPLIT = """
[apps.bot]
knowledge_base = "kb"
route = { tiers = { cheap = "local" } }
variants = [
  { name = "control", weight = 3 },
  { name = "terse", weight = 1, prompt = "grounded-answer@1", tier = "cheap" },
]
"""


def test_a_pinned_variant_is_the_only_arm_and_changes_the_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "g.toml").write_text(SPLIT)
    settings = load_settings(tmp_path / "g.toml")
    pinned = pin_variant(settings, "bot", "terse")
    (only,) = pinned.apps["bot"].variants
    assert only.name == "terse" and only.weight == 1.0 and only.tier == "cheap"
    assert len(settings.apps["bot"].variants) == 2  # the original settings are untouched
    control = app_fingerprint(pin_variant(settings, "bot", "control"), "bot", variant="control")
    terse = app_fingerprint(pinned, "bot", variant="terse")
    assert terse.config_digest != control.config_digest and terse.scope != control.scope
    assert terse.prompt_versions["variant:terse"] == "grounded-answer@1"
    with pytest.raises(ConfigError, match="no variant named 'nope'"):
        pin_variant(settings, "bot", "nope")
