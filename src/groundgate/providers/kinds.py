"""The provider types a config may name (``[providers.x] type = "..."``) and the base URL of
each vendor's public API, used when the config gives none.

Vendors are known in ``providers/`` only: config validation reads this module (which imports
nothing, so config stays at the bottom of the layers), and ``providers/registry.py`` builds
an adapter for each type listed here.
"""

from __future__ import annotations

from typing import Final

# Speaks the OpenAI API (OpenAI itself, vLLM, Ollama, llama.cpp, ...), the Anthropic Messages
# API, or runs in-process (the embedded embedder and extractive answerer).
PROVIDER_TYPES: Final = ("openai", "anthropic", "local")

DEFAULT_BASE_URLS: Final = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}


def default_base_url(provider_type: str) -> str | None:
    """The vendor's public endpoint for ``provider_type``; None for in-process types."""
    return DEFAULT_BASE_URLS.get(provider_type)


def check_provider_type(value: str) -> str:
    """``value`` if it names a known provider type, else a ``ValueError`` that lists them
    (worded as pydantic words a wrong literal)."""
    if value not in PROVIDER_TYPES:
        *head, last = (repr(kind) for kind in PROVIDER_TYPES)
        raise ValueError(f"Input should be {', '.join(head)} or {last}")
    return value
