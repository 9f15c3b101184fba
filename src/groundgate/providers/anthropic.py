"""Anthropic's Messages API (``POST {base_url}/v1/messages``).

The vendor translation lives in :mod:`groundgate.providers.anthropic_translate` (pure, unit
tested); this module does the HTTP: authentication headers, timeouts, status and transport
error mapping, and reading the event stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from groundgate.config import ProviderConfig
from groundgate.errors import GroundgateError, ProviderError, UpstreamUnavailable
from groundgate.providers.anthropic_translate import (
    StreamTranslator,
    from_anthropic_response,
    to_anthropic_request,
)
from groundgate.providers.base import ChatCall, Chunk, Completion, Embeddings
from groundgate.providers.http import (
    error_text,
    iter_sse,
    load_json,
    make_session,
    parse_retry_after,
    read_api_key,
    status_error,
    transport_error,
)

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


class AnthropicProvider:
    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config
        self._base = config.base_url or "https://api.anthropic.com"
        self._session: aiohttp.ClientSession | None = None
        self._headers: dict[str, str] = {}

    async def start(self) -> None:
        if self._session is None:
            self._session = make_session(self.config)
        self._headers = self._build_headers()

    def _build_headers(self) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "anthropic-version": self.config.api_version,
            **self.config.headers,
        }
        key = read_api_key(self.config)
        if key:
            headers["x-api-key"] = key
        return headers

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
        if self.config.api_key_env and "x-api-key" not in self._headers:
            # The variable may have been set after start: look once more before giving up.
            self._headers = self._build_headers()
            if "x-api-key" not in self._headers:
                raise ProviderError(
                    f"provider {self.name}: environment variable {self.config.api_key_env} "
                    "is not set",
                    transient=False,
                    deployment=deployment,
                )
        return self._session

    def _timeout(self, timeout: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=min(timeout, self.config.timeout_s),
            sock_connect=min(timeout, self.config.connect_timeout_s),
        )

    async def complete(self, call: ChatCall, model: str, *, timeout: float) -> Completion:
        deployment = f"{self.name}:{model}"
        body = to_anthropic_request(call, model)
        session = self._client(deployment)
        try:
            async with session.post(
                self._base + _PATH,
                data=orjson.dumps(body),
                headers=self._headers,
                timeout=self._timeout(timeout),
            ) as resp:
                payload = await resp.read()
                if resp.status != 200:
                    raise anthropic_status_error(
                        resp.status, payload, resp.headers, deployment=deployment
                    )
        except GroundgateError:
            raise
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, deployment=deployment, timeout=timeout) from None
        return from_anthropic_response(load_json(payload, deployment=deployment), deployment)

    async def stream(self, call: ChatCall, model: str, *, timeout: float) -> AsyncIterator[Chunk]:
        deployment = f"{self.name}:{model}"
        body = {**to_anthropic_request(call, model), "stream": True}
        session = self._client(deployment)
        # For a stream, the timeout bounds connecting and each wait for the next bytes;
        # the request's overall deadline is enforced by the pipeline.
        client_timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=min(timeout, self.config.connect_timeout_s),
            sock_read=min(timeout, self.config.timeout_s),
        )
        translator = StreamTranslator(deployment)
        try:
            async with session.post(
                self._base + _PATH,
                data=orjson.dumps(body),
                headers=self._headers,
                timeout=client_timeout,
            ) as resp:
                if resp.status != 200:
                    payload = await resp.read()
                    raise anthropic_status_error(
                        resp.status, payload, resp.headers, deployment=deployment
                    )
                async for _event, data in iter_sse(resp):
                    for chunk in translator.feed(load_json(data, deployment=deployment)):
                        yield chunk
                    if translator.done:
                        break
                if not translator.done:
                    raise ProviderError(
                        f"upstream {deployment}: stream ended before message_stop",
                        transient=True,
                        deployment=deployment,
                    )
        except GroundgateError:
            raise
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, deployment=deployment, timeout=timeout) from None

    async def embed(self, inputs: list[str], model: str, *, timeout: float) -> Embeddings:
        raise ProviderError(
            f"provider {self.name} (anthropic) cannot embed: Anthropic has no embeddings API; "
            "configure an embedder with an OpenAI-compatible or local provider",
            transient=False,
            deployment=f"{self.name}:{model}",
        )
