"""What every HTTP provider shares: one pooled session, authentication from the environment,
readiness, timeouts, and JSON and SSE calls with upstream errors mapped to the error tree.
Vendor adapters subclass it and say only how they authenticate and translate."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson

from groundgate.config import ProviderConfig
from groundgate.errors import GroundgateError, ProviderError
from groundgate.providers.http import (
    iter_sse,
    load_json,
    make_session,
    read_api_key,
    status_error,
    transport_error,
)


class HTTPProvider:
    default_base_url = ""
    # The header that carries the key; its presence means "authenticated".
    auth_header = "Authorization"

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config
        self._base = config.base_url or self.default_base_url
        self._session: aiohttp.ClientSession | None = None
        self._headers: dict[str, str] = {}

    # -- what subclasses say -------------------------------------------------------------

    def vendor_headers(self) -> dict[str, str]:
        return {}

    def auth_value(self, key: str) -> str:
        return key

    def map_status(
        self,
        status: int,
        body: bytes,
        headers: Any,
        deployment: str,
    ) -> ProviderError:
        return status_error(status, body, headers, deployment=deployment)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is None:
            self._session = make_session(self.config)
        self._headers = self._build_headers()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def warm(self, model: str) -> None:
        return None  # a remote model is always loaded

    def readiness(self) -> tuple[bool, str]:
        if self._session is None:
            return False, "not started"
        if self.config.api_key_env and read_api_key(self.config) is None:
            return False, f"environment variable {self.config.api_key_env} is not set"
        return True, "ok"

    def _build_headers(self) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            **self.vendor_headers(),
            **self.config.headers,
        }
        key = read_api_key(self.config)
        if key:
            headers[self.auth_header] = self.auth_value(key)
        return headers

    def _client(self, deployment: str) -> aiohttp.ClientSession:
        if self._session is None:
            raise ProviderError(
                f"provider {self.name} is not started", transient=False, deployment=deployment
            )
        if self.config.api_key_env and self.auth_header not in self._headers:
            # The variable may have been set after start: look once more before giving up.
            self._headers = self._build_headers()
            if self.auth_header not in self._headers:
                raise ProviderError(
                    f"provider {self.name}: environment variable {self.config.api_key_env} "
                    "is not set",
                    transient=False,
                    deployment=deployment,
                )
        return self._session

    # -- calls ---------------------------------------------------------------------------

    async def post_json(
        self, path: str, body: dict[str, Any], deployment: str, budget: float
    ) -> Any:
        session = self._client(deployment)
        timeout = aiohttp.ClientTimeout(
            total=min(budget, self.config.timeout_s),
            sock_connect=min(budget, self.config.connect_timeout_s),
        )
        try:
            async with session.post(
                self._base + path, data=orjson.dumps(body), headers=self._headers, timeout=timeout
            ) as resp:
                payload = await resp.read()
                if resp.status != 200:
                    raise self.map_status(resp.status, payload, resp.headers, deployment)
        except GroundgateError:
            raise
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, deployment=deployment, timeout=budget) from None
        return load_json(payload, deployment=deployment)

    async def post_sse(
        self, path: str, body: dict[str, Any], deployment: str, budget: float
    ) -> AsyncGenerator[tuple[str | None, bytes], None]:
        """(event, data) pairs of a streamed response; closing the iterator closes the
        upstream connection, which is how a client's disconnect reaches the upstream."""
        session = self._client(deployment)
        # For a stream, the budget bounds connecting and each wait for the next bytes;
        # the request's overall deadline is enforced by the pipeline.
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=min(budget, self.config.connect_timeout_s),
            sock_read=min(budget, self.config.timeout_s),
        )
        try:
            async with session.post(
                self._base + path, data=orjson.dumps(body), headers=self._headers, timeout=timeout
            ) as resp:
                if resp.status != 200:
                    payload = await resp.read()
                    raise self.map_status(resp.status, payload, resp.headers, deployment)
                async for event in iter_sse(resp):
                    yield event
        except GroundgateError:
            raise
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, deployment=deployment, timeout=budget) from None
