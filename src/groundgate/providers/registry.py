"""Provider types register here by name; config picks one with ``type = "..."``."""

from __future__ import annotations

from collections.abc import Callable

from groundgate.config import ProviderConfig, Settings
from groundgate.providers.base import ManagedProvider

ProviderFactory = Callable[[str, ProviderConfig, Settings], ManagedProvider]

_FACTORIES: dict[str, ProviderFactory] = {}


def register(type_name: str, factory: ProviderFactory) -> None:
    _FACTORIES[type_name] = factory


def build_provider(name: str, config: ProviderConfig, settings: Settings) -> ManagedProvider:
    _register_builtins()
    try:
        factory = _FACTORIES[config.type]
    except KeyError:
        raise ValueError(f"providers.{name}.type: unknown provider type {config.type!r}") from None
    return factory(name, config, settings)


def _register_builtins() -> None:
    if _FACTORIES:
        return

    # Imported lazily so that a gateway without a local model never loads onnxruntime.
    def openai(name: str, config: ProviderConfig, settings: Settings) -> ManagedProvider:
        from groundgate.providers.openai import OpenAIProvider

        return OpenAIProvider(name, config)

    def anthropic(name: str, config: ProviderConfig, settings: Settings) -> ManagedProvider:
        from groundgate.providers.anthropic import AnthropicProvider

        return AnthropicProvider(name, config)

    def local(name: str, config: ProviderConfig, settings: Settings) -> ManagedProvider:
        from groundgate.providers.local import LocalProvider, deployed_models

        return LocalProvider(name, config, settings.local, serves=deployed_models(name, settings))

    register("openai", openai)
    register("anthropic", anthropic)
    register("local", local)


def registered_types() -> frozenset[str]:
    """Every provider type an adapter is registered for (the built-ins and any plug-in)."""
    _register_builtins()
    return frozenset(_FACTORIES)
