"""Any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, llama.cpp server, Groq, Together, ...

The request and response already are Groundgate's canonical shape, so this adapter passes them
through and only adds the upstream model id, authentication and error mapping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from groundgate.errors import ProviderError
from groundgate.providers.base import ChatCall, Chunk, Completion, Embeddings, Usage
from groundgate.providers.http import load_json
from groundgate.providers.http_provider import HTTPProvider


def _usage(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
    )


class OpenAIProvider(HTTPProvider):
    default_base_url = "https://api.openai.com/v1"
    auth_header = "Authorization"

    def auth_value(self, key: str) -> str:
        return f"Bearer {key}"

    async def complete(self, call: ChatCall, model: str, *, timeout: float) -> Completion:
        deployment = f"{self.name}:{model}"
        body = {**call.params, "model": model, "messages": call.messages}
        data = await self.post_json("/chat/completions", body, deployment, timeout)
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list):
            raise ProviderError(
                f"upstream {deployment} returned no choices",
                transient=True,
                deployment=deployment,
            )
        return Completion(
            choices=choices,
            usage=_usage(data.get("usage")),
            id=data.get("id"),
            created=data.get("created"),
            system_fingerprint=data.get("system_fingerprint"),
        )

    async def stream(self, call: ChatCall, model: str, *, timeout: float) -> AsyncIterator[Chunk]:
        deployment = f"{self.name}:{model}"
        # Always ask for usage: cost accounting needs it even when the client did not.
        body = {
            **call.params,
            "model": model,
            "messages": call.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        events = self.post_sse("/chat/completions", body, deployment, timeout)
        try:
            async for _event, data in events:
                if data == b"[DONE]":
                    return
                yield _chunk(load_json(data, deployment=deployment), deployment)
        finally:
            await events.aclose()
        raise ProviderError(
            f"upstream {deployment}: stream ended before [DONE]",
            transient=True,
            deployment=deployment,
        )

    async def embed(self, inputs: list[str], model: str, *, timeout: float) -> Embeddings:
        deployment = f"{self.name}:{model}"
        data = await self.post_json(
            "/embeddings", {"model": model, "input": inputs}, deployment, timeout
        )
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != len(inputs):
            raise ProviderError(
                f"upstream {deployment} returned a wrong number of embeddings",
                transient=True,
                deployment=deployment,
            )
        items = sorted(items, key=lambda item: int(item.get("index", 0)))
        return Embeddings(
            vectors=[item["embedding"] for item in items], usage=_usage(data.get("usage"))
        )


def _chunk(data: Any, deployment: str) -> Chunk:
    if not isinstance(data, dict):
        raise ProviderError(
            f"upstream {deployment} sent a stream event that is not an object",
            transient=True,
            deployment=deployment,
        )
    if "error" in data:
        err = data["error"]
        message = err.get("message") if isinstance(err, dict) else str(err)
        raise ProviderError(
            f"upstream {deployment} failed mid-stream: {message}",
            transient=True,
            deployment=deployment,
        )
    usage = data.get("usage")
    return Chunk(
        choices=data.get("choices") or [],
        usage=_usage(usage) if usage else None,
        id=data.get("id"),
        system_fingerprint=data.get("system_fingerprint"),
    )
