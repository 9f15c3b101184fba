"""A/B variants in config: each name it gives must exist, checked when the config loads (models,
tiers) or when the gateway builds its pipelines (prompt versions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from groundgate.config import load_settings
from groundgate.container import Container
from groundgate.errors import ConfigError

BASE = """
[store]
path = "{tmp}/g.db"
[providers.up]
type = "openai"
base_url = "http://127.0.0.1:9/v1"
[models.small]
deployments = ["up:small"]
[models.big]
deployments = ["up:big"]
[apps.bot]
knowledge_base = "notes"
model = "small"
"""


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "g.toml"
    path.write_text(BASE.format(tmp=tmp_path) + extra)
    return path


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            '[[models.small.variants]]\nname = "b"\nweight = 1\nmodel = "nope"\n',
            "models.small.variants[0].model: unknown model 'nope'",
        ),
        (
            '[[apps.bot.variants]]\nname = "b"\nweight = 1\ntier = "flagship"\n',
            "apps.bot.variants[0].tier: unknown tier 'flagship' (tiers: none: apps.bot.route",
        ),
        (
            '[apps.bot.route]\ntiers = { cheap = "small", flagship = "big" }\n'
            '[[apps.bot.variants]]\nname = "b"\nweight = 1\ntier = "mid"\n',
            "apps.bot.variants[0].tier: unknown tier 'mid' (tiers: cheap, flagship)",
        ),
        (
            '[[models.small.variants]]\nname = "b"\nweight = 1\nprompt = "grounded-answer@1"\n',
            "models.small.variants[0].prompt: only an app has a prompt",
        ),
        (
            '[[apps.bot.variants]]\nname = "a"\nweight = 1\n'
            '[[apps.bot.variants]]\nname = "a"\nweight = 2\nmodel = "big"\n',
            "apps.bot.variants: names used twice: a",
        ),
        (
            '[apps.bot.route]\ntiers = { cheap = "small", flagship = "big" }\n'
            '[[apps.bot.variants]]\nname = "b"\nweight = 1\ntier = "cheap"\nmodel = "big"\n',
            "apps.bot.variants[0]: set model or tier, not both",
        ),
    ],
)
def test_a_variant_naming_what_does_not_exist_is_refused(
    tmp_path: Path, extra: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, extra))
    assert problem in str(info.value)


def test_a_variant_with_an_unknown_prompt_stops_the_gateway(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[[apps.bot.variants]]\nname = "b"\nweight = 1\nprompt = "grounded-answer@9"\n'
    )
    settings = load_settings(path)  # the prompt registry is checked when pipelines are built
    with pytest.raises(ConfigError) as info:
        Container(settings)
    assert (
        "apps.bot.variants[0].prompt: Prompt 'grounded-answer' has no version 9 (versions: 1)."
    ) in str(info.value)


def test_variants_naming_what_exists_load(tmp_path: Path) -> None:
    settings = load_settings(
        write(
            tmp_path,
            '[apps.bot.route]\ntiers = { cheap = "small", flagship = "big" }\n'
            '[[apps.bot.variants]]\nname = "a"\nweight = 1\n'
            '[[apps.bot.variants]]\nname = "b"\nweight = 1\ntier = "flagship"\n'
            '[[apps.bot.variants]]\nname = "c"\nweight = 1\nprompt = "grounded-answer@1"\n'
            '[[models.small.variants]]\nname = "big"\nweight = 0.1\nmodel = "big"\n',
        )
    )
    assert [v.name for v in settings.apps["bot"].variants] == ["a", "b", "c"]
