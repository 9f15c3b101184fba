"""Anthropic's Messages API (``POST {base_url}/v1/messages``).

The vendor translation lives in :mod:`groundgate.providers.anthropic_translate` (pure, unit
tested); this module does the HTTP: authentication headers, timeouts, status and transport
error mapping, and reading the event stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from groundgate.errors import ProviderError, UpstreamUnavailable
from groundgate.providers.anthropic_translate import (
    StreamTranslator,
    from_anthropic_response,
    to_anthropic_request,
)
from groundgate.providers.base import ChatCall, Chunk, Completion, Embeddings
from groundgate.providers.http import (
    error_text,
    load_json,
    parse_retry_after,
    status_error,
)
from groundgate.providers.http_provider import HTTPProvider

_PATH = "/v1/messages"
# Anthropic's "overloaded" status: a busy upstream, to be treated exactly like a 503.
_OVERLOADED = 529


def anthropic_status_error(
    status: int, body: bytes, headers: Any, *, deployment: str
) -> ProviderError:
    """:func:`status_error`, plus Anthropic's 529 mapped to a transient 503-style error."""
    if status == _OVERLOADED:
        retry_after = parse_retry_after(headers.get("Retry-After")) if headers is not None else None
        return UpstreamUnavailable(
            f"upstream {deployment} returned 529 (overloaded): {error_text(body)}",
            transient=True,
            upstream_status=status,
            retry_after=retry_after,
            deployment=deployment,
        )
    return status_error(status, body, headers, deployment=deployment)


class AnthropicProvider(HTTPProvider):
    default_base_url = "https://api.anthropic.com"
    auth_header = "x-api-key"

    def vendor_headers(self) -> dict[str, str]:
        return {"anthropic-version": self.config.api_version}

    def map_status(
        self,
        status: int,
        body: bytes,
        headers: Any,
        deployment: str,
    ) -> ProviderError:
        return anthropic_status_error(status, body, headers, deployment=deployment)

    async def complete(self, call: ChatCall, model: str, *, timeout: float) -> Completion:
        deployment = f"{self.name}:{model}"
        data = await self.post_json(_PATH, to_anthropic_request(call, model), deployment, timeout)
        return from_anthropic_response(data, deployment)

    async def stream(self, call: ChatCall, model: str, *, timeout: float) -> AsyncIterator[Chunk]:
        deployment = f"{self.name}:{model}"
        body = {**to_anthropic_request(call, model), "stream": True}
        translator = StreamTranslator(deployment)
        events = self.post_sse(_PATH, body, deployment, timeout)
        try:
            async for _event, data in events:
                for chunk in translator.feed(load_json(data, deployment=deployment)):
                    yield chunk
                if translator.done:
                    return
        finally:
            await events.aclose()
        raise ProviderError(
            f"upstream {deployment}: stream ended before message_stop",
            transient=True,
            deployment=deployment,
        )

    async def embed(self, inputs: list[str], model: str, *, timeout: float) -> Embeddings:
        raise ProviderError(
            f"provider {self.name} (anthropic) cannot embed: Anthropic has no embeddings API; "
            "configure an embedder with an OpenAI-compatible or local provider",
            transient=False,
            deployment=f"{self.name}:{model}",
        )
