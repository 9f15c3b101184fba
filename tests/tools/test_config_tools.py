"""[tools] and [mcp_servers] config: cross-references and names are checked when the config
loads, with one clear line per problem."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from groundgate.config import load_settings
from groundgate.errors import ConfigError


def problems(tmp_path: Path, text: str) -> str:
    path = tmp_path / "g.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    return str(err.value)


def test_valid_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text(
        """
[tools.calc]
kind = "builtin"
which = "calculator"
[tools.search]
kind = "builtin"
which = "search_kb"
knowledge_base = "handbook"
[tools.weather]
kind = "http"
url = "https://api.weather.example/v1/{city}?units={units}"
headers = { Authorization = "env:WEATHER_TOKEN" }
[mcp_servers.files]
transport = "stdio"
command = "files-mcp"
include = ["read", "delete"]
irreversible = ["delete"]
[apps.helper]
knowledge_base = "handbook"
tools = ["calc", "search", "weather", "files__read", "mcp:files"]
"""
    )
    settings = load_settings(path)
    assert settings.apps["helper"].tools[-1] == "mcp:files"
    weather = settings.tools["weather"]
    assert weather.kind == "http" and weather.placeholders() == ["city", "units"]


def test_unknown_references_are_config_errors(tmp_path: Path) -> None:
    text = problems(
        tmp_path,
        """
[tools.search]
kind = "builtin"
which = "search_kb"
knowledge_base = "nowhere"
[mcp_servers.files]
transport = "stdio"
command = "files-mcp"
include = ["read"]
[apps.helper]
knowledge_base = "handbook"
tools = ["nope", "mcp:ghost", "ghost__x", "files__write"]
""",
    )
    assert "tools.search.knowledge_base: unknown knowledge base 'nowhere'" in text
    assert "apps.helper.tools: unknown tool 'nope'" in text
    assert "unknown MCP server 'ghost' in 'mcp:ghost'" in text
    assert "unknown MCP server 'ghost' in 'ghost__x'" in text
    assert "'write' is not in mcp_servers.files.include" in text


def test_an_agent_app_without_a_knowledge_base_needs_knowledge_tools_that_name_one(
    tmp_path: Path,
) -> None:
    tools = """
[tools.calc]
kind = "builtin"
which = "calculator"
[tools.search]
kind = "builtin"
which = "search_kb"
[tools.fetch]
kind = "builtin"
which = "fetch_document"
knowledge_base = "handbook"
[knowledge_bases.handbook]
mode = "keyword"
"""
    text = problems(
        tmp_path,
        tools + '[apps.ops]\nmode = "agent"\ntools = ["calc", "search", "fetch"]\n',
    )
    assert (
        "apps.ops.tools[1]: 'search' searches the app's own knowledge base and the app has none"
        in text
    )
    assert "tools[0]" not in text and "tools[2]" not in text
    # The same tool is fine in an app with a knowledge base of its own.
    path = tmp_path / "ok.toml"
    path.write_text(
        tools + '[apps.ops]\nmode = "agent"\nknowledge_base = "handbook"\ntools = ["search"]\n'
    )
    assert load_settings(path).apps["ops"].tools == ["search"]


def test_bad_names_are_config_errors(tmp_path: Path) -> None:
    text = problems(
        tmp_path,
        """
[tools.bad__name]
kind = "builtin"
which = "calculator"
[tools."has space"]
kind = "builtin"
which = "calculator"
[mcp_servers."a__b"]
transport = "http"
url = "http://127.0.0.1:1/mcp"
""",
    )
    assert "tools.bad__name: a tool name must match" in text
    assert "tools.has space: a tool name must match" in text
    assert "mcp_servers.a__b: a server name must match" in text


def test_transport_fields_are_checked(tmp_path: Path) -> None:
    text = problems(tmp_path, '[mcp_servers.x]\ntransport = "stdio"\nurl = "http://h/mcp"\n')
    assert "needs command" in text
    text = problems(tmp_path, '[mcp_servers.x]\ntransport = "http"\n')
    assert "needs url" in text


def test_mcp_servers_without_the_sdk_name_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # as if the extra were not installed
    text = problems(tmp_path, '[mcp_servers.x]\ntransport = "stdio"\ncommand = "x"\n')
    assert "pip install 'groundgate[mcp]'" in text
