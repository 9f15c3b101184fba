"""The Provider protocol and the provider-neutral call and result types.

Groundgate's canonical chat format is the OpenAI chat shape (messages, choices, deltas,
tool calls): it is the lingua franca that every client already speaks. Adapters for other
vendors translate to and from it; the OpenAI-compatible adapter passes it through untouched,
which keeps the hot path free of needless conversions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

# One message, one choice, one delta: plain dicts in the OpenAI chat shape.
Message = dict[str, Any]


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Counted by the gateway because the upstream never reported it (a stream cut short,
    # or an upstream that ignores include_usage).
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class ChatCall:
    """What a provider is asked to do.

    ``messages`` are OpenAI-shaped messages. ``params`` holds every other request field the
    client sent (temperature, top_p, max_tokens, stop, seed, tools, tool_choice,
    response_format, ...), already stripped of fields the gateway owns (model, stream,
    stream_options) and of anything that would steer routing.
    """

    messages: list[Message]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Completion:
    """A finished chat completion: OpenAI-shaped ``choices`` plus usage."""

    choices: list[dict[str, Any]]
    usage: Usage
    id: str | None = None
    created: int | None = None
    system_fingerprint: str | None = None
    # Provider-specific facts worth keeping in the trace (e.g. citations of the local answerer).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Chunk:
    """One streamed piece: OpenAI-shaped ``choices`` deltas; ``usage`` only on the last one."""

    choices: list[dict[str, Any]]
    usage: Usage | None = None
    id: str | None = None
    system_fingerprint: str | None = None
    # As Completion.extra; set on the last chunk (e.g. the local answerer's citations).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Embeddings:
    vectors: list[list[float]]
    usage: Usage


@runtime_checkable
class Provider(Protocol):
    """A configured upstream. One instance per ``[providers.NAME]``, shared by all requests.

    ``model`` is the upstream model id from the deployment (``provider:model``). ``timeout`` is
    the time this attempt may take, in seconds, already cut to the request's deadline.
    Failures raise :class:`groundgate.errors.ProviderError` (or a subclass) with ``transient``
    set, so reliability code can decide whether another try or deployment makes sense.
    """

    name: str

    async def complete(self, call: ChatCall, model: str, *, timeout: float) -> Completion: ...

    def stream(self, call: ChatCall, model: str, *, timeout: float) -> AsyncIterator[Chunk]: ...

    async def embed(self, inputs: list[str], model: str, *, timeout: float) -> Embeddings: ...


@runtime_checkable
class ManagedProvider(Provider, Protocol):
    """Lifecycle hooks the runtime calls; every built-in provider implements them."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def warm(self, model: str) -> None:
        """Pay ``model``'s one-time cost (loading it) now, so that no call's own time budget
        has to: a no-op for a remote upstream."""
        ...

    def readiness(self) -> tuple[bool, str]:
        """(usable, reason) without touching the network; used by ``/readyz``."""
        ...
