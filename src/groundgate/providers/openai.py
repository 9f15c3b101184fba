"""Any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, llama.cpp server, Groq, Together, ...

The request and response already are Groundgate's canonical shape, so this adapter passes them
through and only adds the upstream model id, authentication and error mapping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from groundgate.config import ProviderConfig
from groundgate.errors import GroundgateError, ProviderError
from groundgate.providers.base import ChatCall, Chunk, Completion, Embeddings, Usage
from groundgate.providers.http import (
    iter_sse,
    load_json,
    make_session,
    read_api_key,
    status_error,
    transport_error,
)


def _usage(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
    )


class OpenAIProvider:
    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config
        self._base = config.base_url or "https://api.openai.com/v1"
        self._session: aiohttp.ClientSession | None = None
        self._headers: dict[str, str] = {}

    async def start(self) -> None:
        if self._session is None:
            self._session = make_session(self.config)
        headers = {"Content-Type": "application/json", **self.config.headers}
        key = read_api_key(self.config)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._headers = headers

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def readiness(self) -> tuple[bool, str]:
        if self._session is None:
            return False, "not started"
        if self.config.api_key_env and read_api_key(self.config) is None:
            return False, f"environment variable {self.config.api_key_env} is not set"
        return True, "ok"

    def _client(self, deployment: str) -> aiohttp.ClientSession:
        if self._session is None:
            raise ProviderError(
                f"provider {self.name} is not started", transient=False, deployment=deployment
            )
        if self.config.api_key_env and "Authorization" not in self._headers:
            raise ProviderError(
                f"provider {self.name}: environment variable {self.config.api_key_env} is not set",
                transient=False,
                deployment=deployment,
            )
        return self._session

    def _timeout(self, timeout: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=min(timeout, self.config.timeout_s),
            sock_connect=min(timeout, self.config.connect_timeout_s),
        )

    async def _post_json(
        self, path: str, body: dict[str, Any], deployment: str, timeout: float
    ) -> Any:
        session = self._client(deployment)
        try:
            async with session.post(
                self._base + path,
                data=orjson.dumps(body),
                headers=self._headers,
                timeout=self._timeout(timeout),
            ) as resp:
                payload = await resp.read()
                if resp.status != 200:
                    raise status_error(resp.status, payload, resp.headers, deployment=deployment)
        except GroundgateError:
            raise
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, deployment=deployment, timeout=timeout) from None
        return load_json(payload, deployment=deployment)

    async def complete(self, call: ChatCall, model: str, *, timeout: float) -> Completion:
        deployment = f"{self.name}:{model}"
        body = {**call.params, "model": model, "messages": call.messages}
        data = await self._post_json("/chat/completions", body, deployment, timeout)
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list):
            raise ProviderError(
                f"upstream {deployment} returned no choices", transient=True, deployment=deployment
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
        session = self._client(deployment)
        # Always ask for usage: cost accounting needs it even when the client did not.
        body = {
            **call.params,
            "model": model,
            "messages": call.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        # For a stream, the timeout bounds connecting and each wait for the next bytes;
        # the request's overall deadline is enforced by the pipeline.
        client_timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=min(timeout, self.config.connect_timeout_s),
            sock_read=min(timeout, self.config.timeout_s),
        )
        try:
            async with session.post(
                self._base + "/chat/completions",
                data=orjson.dumps(body),
                headers=self._headers,
                timeout=client_timeout,
            ) as resp:
                if resp.status != 200:
                    payload = await resp.read()
                    raise status_error(resp.status, payload, resp.headers, deployment=deployment)
                done = False
                async for _event, data in iter_sse(resp):
                    if data == b"[DONE]":
                        done = True
                        break
                    yield _chunk(load_json(data, deployment=deployment), deployment)
                if not done:
                    raise ProviderError(
                        f"upstream {deployment}: stream ended before [DONE]",
                        transient=True,
                        deployment=deployment,
                    )
        except GroundgateError:
            raise
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, deployment=deployment, timeout=timeout) from None

    async def embed(self, inputs: list[str], model: str, *, timeout: float) -> Embeddings:
        deployment = f"{self.name}:{model}"
        data = await self._post_json(
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
