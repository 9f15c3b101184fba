"""The catalog resolves client-facing names, and says clearly when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from groundgate.config import load_settings
from groundgate.errors import InvalidRequest, ModelNotFound
from groundgate.providers.catalog import Catalog
from groundgate.providers.registry import build_provider


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    path = tmp_path / "g.toml"
    path.write_text("""
[providers.up]
type = "openai"
base_url = "http://127.0.0.1:9/v1"
[models.chain]
deployments = ["up:a", "up:b"]
[embedders.emb]
deployments = ["up:e"]
""")
    settings = load_settings(path)
    providers = {n: build_provider(n, c, settings) for n, c in settings.providers.items()}
    return Catalog(settings, providers)


def test_entries_keep_deployment_order(catalog: Catalog) -> None:
    entry = catalog.get("chain", "chat")
    assert [d.id for d in entry.deployments] == ["up:a", "up:b"]
    assert [d.upstream_model for d in entry.deployments] == ["a", "b"]
    assert entry.deployments[0].provider is entry.deployments[1].provider


def test_unknown_name_lists_what_exists(catalog: Catalog) -> None:
    with pytest.raises(ModelNotFound) as info:
        catalog.get("gpt-5", "chat")
    assert "chain" in info.value.message and "local" in info.value.message
    assert "emb" not in info.value.message  # only names callable on this route


def test_wrong_kind_points_to_the_right_route(catalog: Catalog) -> None:
    with pytest.raises(InvalidRequest) as info:
        catalog.get("emb", "chat")
    assert "/v1/embeddings" in info.value.message
    with pytest.raises(InvalidRequest) as info2:
        catalog.get("chain", "embedding")
    assert "/v1/chat/completions" in info2.value.message
