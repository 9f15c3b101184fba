"""Values given as ``env:VAR`` in the config (HTTP tool headers, MCP servers' headers and
environment), read from the environment once, at start-up. A missing variable is a config
error that names the variable, never a value."""

from __future__ import annotations

from collections.abc import Mapping

from groundgate.config_tools import ENV_PREFIX
from groundgate.errors import ConfigError


def resolve_env_values(
    values: Mapping[str, str], where: str, environ: Mapping[str, str]
) -> dict[str, str]:
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for name, raw in values.items():
        if raw.startswith(ENV_PREFIX):
            variable = raw[len(ENV_PREFIX) :]
            if variable not in environ:
                missing.append(f"{where}.{name}: the environment variable {variable} is not set")
                continue
            resolved[name] = environ[variable]
        else:
            resolved[name] = raw
    if missing:
        raise ConfigError(missing, source="environment")
    return resolved
