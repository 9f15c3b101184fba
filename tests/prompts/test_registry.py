"""The prompt registry over a real store: labels resolve through the store with a refresh
cache (a move through the same registry applies at once), a used version never changes, and a
gateway whose app names an unset label or a changed version does not start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from groundgate.config import load_settings
from groundgate.config_prompts import PromptsConfig
from groundgate.container import Container
from groundgate.errors import ConfigError, InvalidRequest, NotFound, PromptUnavailable
from groundgate.prompts.registry import PromptRegistry
from groundgate.prompts.views import content_diff, prompts_list
from groundgate.store.sqlite import SQLiteStore

TWO_VERSIONS = """
[[versions]]
version = 1
instructions = "Answer in English."
[[versions]]
version = 2
instructions = "Answer in French."
"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "gg.db"))
    await store.open()
    yield store
    await store.close()


def folder(tmp_path: Path, text: str = TWO_VERSIONS) -> Path:
    where = tmp_path / "prompts"
    where.mkdir(exist_ok=True)
    (where / "myprompt.toml").write_text(text, "utf-8")
    return where


def registry(store: SQLiteStore, where: Path, clock: Clock) -> PromptRegistry:
    config = PromptsConfig(dir=str(where), label_refresh_s=60.0)
    return PromptRegistry.load(config, store.prompts, clock=clock)


async def test_labels_resolve_through_the_store_within_the_refresh(
    tmp_path: Path, store: SQLiteStore
) -> None:
    clock = Clock()
    where = folder(tmp_path)
    mine, other = registry(store, where, clock), registry(store, where, clock)
    assert (await mine.resolve("myprompt")).ref == "myprompt@2"  # bare: the latest
    assert (await mine.resolve("myprompt@1")).ref == "myprompt@1"
    with pytest.raises(PromptUnavailable, match="label 'production' is not set"):
        await mine.resolve("myprompt@production")

    await mine.promote("myprompt", 1, "production", moved_by="t", tenant="a", key_id="k")
    assert (await mine.resolve("myprompt@production")).ref == "myprompt@1"  # at once, here
    await other.promote("myprompt", 2, "production", moved_by="cli", tenant=None, key_id=None)
    # Another process's move: seen once this one's cached lookup is older than the refresh.
    assert (await mine.resolve("myprompt@production")).ref == "myprompt@1"
    clock.now += 60.0
    assert (await mine.resolve("myprompt@production")).ref == "myprompt@2"

    history = await mine.history("myprompt")
    assert [(m.from_version, m.to_version, m.moved_by) for m in history] == [
        (1, 2, "cli"),
        (None, 1, "t"),
    ]
    assert "-  Answer in English.\n+  Answer in French.\n" in content_diff(
        mine.version("myprompt", 1), mine.version("myprompt", 2)
    )
    with pytest.raises(InvalidRequest, match="is not a label"):
        await mine.promote("myprompt", 1, "Prod!", moved_by="t", tenant=None, key_id=None)
    with pytest.raises(NotFound, match="has no version 3"):
        await mine.promote("myprompt", 3, "production", moved_by="t", tenant=None, key_id=None)


async def test_a_used_version_never_changes(tmp_path: Path, store: SQLiteStore) -> None:
    clock = Clock()
    where = folder(tmp_path)
    first = registry(store, where, clock)
    await first.resolve("myprompt@1")  # served once: its content is fixed from now on
    (where / "myprompt.toml").write_text(TWO_VERSIONS.replace("English", "German"), "utf-8")
    edited = registry(store, where, clock)
    with pytest.raises(ConfigError) as info:
        await edited.check({"apps.bot.prompt": "myprompt@2"})
    problem = str(info.value)
    assert (
        str(where / "myprompt.toml") in problem
        and "myprompt@1 changed after it was used" in problem
    )
    with pytest.raises(PromptUnavailable, match="myprompt@1 changed after it was used"):
        await edited.resolve("myprompt@1")
    listed = {p["name"]: p for p in await prompts_list(edited)}["myprompt"]
    assert (listed["used"], listed["changed"]) == ([1], [1])
    # An unused version may still be edited; only what answered is frozen.
    assert (await edited.resolve("myprompt@2")).ref == "myprompt@2"


def write_config(tmp_path: Path, prompt: str) -> Path:
    folder(tmp_path)
    config = tmp_path / "groundgate.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path}/gg.db"\n[prompts]\ndir = "prompts"\n'
        f'[apps.bot]\nknowledge_base = "kb"\nprompt = "{prompt}"\n',
        "utf-8",
    )
    return config


@pytest.mark.parametrize(
    ("prompt", "problem"),
    [
        ("nosuch@production", "apps.bot.prompt: No prompt named 'nosuch'"),
        ("myprompt@7", "apps.bot.prompt: Prompt 'myprompt' has no version 7"),
        ("myprompt@staging", "the label 'staging' is not set (set it with `groundgate prompts"),
    ],
)
async def test_a_gateway_whose_app_names_a_prompt_it_cannot_serve_does_not_start(
    tmp_path: Path, prompt: str, problem: str
) -> None:
    # ``dir`` is relative to the config file's folder, not the working directory.
    settings = load_settings(write_config(tmp_path, prompt))
    assert settings.prompts.dir == str(tmp_path / "prompts")
    with pytest.raises(ConfigError) as info:
        container = Container(settings)
        await container.start()
        await container.stop()  # pragma: no cover - only when the check fails to refuse
    assert problem in str(info.value)
