"""Config loading: defaults, file, environment, and errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from groundgate.config import load_settings
from groundgate.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "groundgate.toml"
    path.write_text(text, "utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return info.value.problems


def test_embedded_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROUNDGATE_CONFIG", raising=False)
    settings = load_settings()
    assert settings.server.host == "127.0.0.1" and settings.server.port == 8080
    assert settings.models["local"].deployments == ["local:extractive"]
    assert "all-minilm-l6-v2" in settings.embedders
    assert settings.store.type == "sqlite"


def test_file_merges_over_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[server]
port = 9001
[providers.openai]
type = "openai"
api_key_env = "OPENAI_API_KEY"
[models.flagship]
deployments = ["openai:gpt-4o", "local:extractive"]
""",
    )
    settings = load_settings(path)
    assert settings.server.port == 9001
    assert settings.server.host == "127.0.0.1"  # kept from defaults
    assert settings.providers["openai"].base_url == "https://api.openai.com/v1"
    assert set(settings.models) == {"local", "flagship"}


def test_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[server]\nport = 9001\n")
    monkeypatch.setenv("GROUNDGATE_SERVER__PORT", "9555")
    assert load_settings(path).server.port == 9555


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[server]\nport = 9002\n")
    monkeypatch.setenv("GROUNDGATE_CONFIG", str(path))
    assert load_settings().server.port == 9002


def test_retention_tables_override_only_what_they_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = load_settings(write(tmp_path, "")).retention
    assert (defaults.traces.max_age_days, defaults.traces.max_rows) == (45, 1_000_000)
    assert defaults.question_vectors.max_age_days < defaults.embeddings.max_age_days
    # Agent runs hold user data: kept shorter than traces; eval runs, small, kept a year.
    assert (defaults.agent_runs.max_age_days, defaults.eval_runs.max_age_days) == (30, 365)
    assert defaults.feedback == defaults.traces
    path = write(
        tmp_path, "[retention.traces]\nmax_rows = 5000\n[retention.reviews]\nmax_rows = 0\n"
    )
    monkeypatch.setenv("GROUNDGATE_RETENTION__QUESTION_VECTORS__MAX_AGE_DAYS", "2")
    retention = load_settings(path).retention
    assert (retention.traces.max_age_days, retention.traces.max_rows) == (45, 5000)
    assert retention.question_vectors.max_age_days == 2
    assert retention.question_vectors.max_rows == defaults.question_vectors.max_rows
    assert retention.embeddings == defaults.embeddings
    assert (retention.reviews.max_age_days, retention.reviews.max_rows) == (90, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nport = 'abc'\n", "server.port: Input should be a valid integer"),
        ("[server]\nprot = 1\n", "server.prot: unknown key"),
        (
            "[providers.x]\ntype = 'openai'\napi_key = 'sk-123'\n",
            "providers.x: 'api_key' is not allowed in the config file",
        ),
        ("[providers.x]\ntype = 'grpc'\n", "providers.x.type: Input should be"),
        (
            "[providers.x]\ntype = 'openai'\nbase_url = 'ftp://a'\n",
            "providers.x.base_url: must start with http:// or https://",
        ),
        (
            "[models.m]\ndeployments = ['nope:gpt']\n",
            "models.m.deployments[0]: unknown provider 'nope'",
        ),
        ("[models.m]\ndeployments = ['no-colon']\n", "must look like 'provider:upstream-model'"),
        ("[models.m]\ndeployments = []\n", "models.m: a model needs deployments (or route.tiers"),
        # Tiers name chat models that generate themselves; routers do not nest.
        (
            "[models.r.route]\ntiers = { cheap = 'local', top = 'gpt' }\n",
            "models.r.route.tiers.top: unknown model 'gpt'",
        ),
        (
            "[models.r.route]\ntiers = { cheap = 'local', top = 'r' }\n",
            "models.r.route.tiers.top: 'r' has no deployments of its own",
        ),
        (
            "[apps.a]\nknowledge_base = 'kb'\n[apps.a.route]\ntiers = { a = 'local', b = 'x' }\n",
            "apps.a.route.tiers.b: unknown model 'x'",
        ),
        ("[server\nport = 1\n", "not valid TOML"),
        (
            "[retention.traces]\nmax_age_days = -1\n",
            "retention.traces.max_age_days: Input should be greater than or equal to 0",
        ),
        ("[retention.embeddings]\nmax_bytes = 1\n", "retention.embeddings.max_bytes: unknown key"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(write(tmp_path, text))
    assert any(expected in p for p in found), found


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    found = problems(tmp_path / "absent.toml")
    assert "cannot read config file" in found[0]


def test_config_check_cli(tmp_path: Path) -> None:
    good = write(tmp_path, "[server]\nport = 9003\n")
    ok = subprocess.run(
        [sys.executable, "-m", "groundgate", "config", "check", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[models.m]\ndeployments = ['ghost:x']\n")
    fail = subprocess.run(
        [sys.executable, "-m", "groundgate", "config", "check", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fail.returncode == 2
    assert "models.m.deployments[0]: unknown provider 'ghost'" in fail.stderr


def test_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    bad = write(tmp_path, "[server]\nport = -4\n")
    proc = subprocess.run(
        [sys.executable, "-m", "groundgate", "serve", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "server.port" in proc.stderr
