"""Provider types and vendor base URLs are known in providers/ only; config validation reads
them from there."""

from __future__ import annotations

from pathlib import Path

import pytest

from groundgate.config import load_settings
from groundgate.errors import ConfigError
from groundgate.providers.kinds import DEFAULT_BASE_URLS, PROVIDER_TYPES
from groundgate.providers.registry import registered_types


def test_every_type_config_accepts_has_an_adapter() -> None:
    assert set(PROVIDER_TYPES) <= registered_types()


def test_a_provider_without_base_url_gets_its_vendors_default(tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text(
        "".join(f"[providers.p_{kind}]\ntype = '{kind}'\n" for kind in PROVIDER_TYPES), "utf-8"
    )
    providers = load_settings(config).providers
    for kind in PROVIDER_TYPES:
        assert providers[f"p_{kind}"].base_url == DEFAULT_BASE_URLS.get(kind)
    assert providers["p_anthropic"].base_url == "https://api.anthropic.com"


def test_an_unknown_type_is_refused_naming_the_key_and_the_known_types(tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text("[providers.x]\ntype = 'grpc'\n", "utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    assert "providers.x.type: Input should be 'openai', 'anthropic' or 'local'" in str(raised.value)
