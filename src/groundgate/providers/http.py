"""Shared HTTP machinery for HTTP providers: one pooled aiohttp session per provider,
upstream status classification, Retry-After parsing and an SSE reader."""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from groundgate.config import ProviderConfig
from groundgate.errors import (
    ContentFiltered,
    ContextWindowExceeded,
    ProviderError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from groundgate.observe.redact import remember_secret

# How vendors phrase "the prompt is too long" and "refused by the content policy" (OpenAI,
# Anthropic, vLLM, Azure): these decide whether a context-window or content-filter fallback
# model is tried.
_CONTEXT_HINTS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "too many tokens",
    "prompt is too long",
    "input is too long",
)
_FILTER_HINTS = (
    "content_filter",
    "content filter",
    "content management policy",
    "content_policy",
    "safety system",
)
# Upstream error text is shown to clients and stored in traces; keep it short.
_MAX_ERROR_TEXT = 300


def make_session(config: ProviderConfig) -> aiohttp.ClientSession:
    """A pooled session reused by every request to this provider (never one per request)."""
    connector = aiohttp.TCPConnector(
        limit=config.max_connections,
        limit_per_host=config.max_connections,
        ttl_dns_cache=300,
        keepalive_timeout=30,
    )
    return aiohttp.ClientSession(
        connector=connector,
        # Sessions never read proxy settings or cookies: requests go where config says.
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        json_serialize=lambda obj: orjson.dumps(obj).decode(),
        raise_for_status=False,
        auto_decompress=True,
    )


def read_api_key(config: ProviderConfig) -> str | None:
    if not config.api_key_env:
        return None
    key = os.environ.get(config.api_key_env) or None
    remember_secret(key)  # whatever a vendor's format, it is never written anywhere
    return key


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), capped at 1 hour."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        seconds = parsed.timestamp() - time.time()
    return max(0.0, min(seconds, 3600.0))


def error_text(body: bytes) -> str:
    """The human message inside an upstream error body, whatever its vendor shape."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:_MAX_ERROR_TEXT].decode("utf-8", "replace").strip() or "no body"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:_MAX_ERROR_TEXT]
        if isinstance(err, str):
            return err[:_MAX_ERROR_TEXT]
    return str(data)[:_MAX_ERROR_TEXT]


def status_error(status: int, body: bytes, headers: Any, *, deployment: str) -> ProviderError:
    """Map an upstream HTTP status to the error tree; only transient ones may be retried."""
    detail = error_text(body)
    retry_after = parse_retry_after(headers.get("Retry-After")) if headers is not None else None
    prefix = f"upstream {deployment} returned {status}"
    if status in (400, 413, 422):
        lowered = detail.lower()
        if any(hint in lowered for hint in _CONTEXT_HINTS):
            return ContextWindowExceeded(
                f"{prefix}: {detail}", upstream_status=status, deployment=deployment
            )
        if any(hint in lowered for hint in _FILTER_HINTS):
            return ContentFiltered(
                f"{prefix}: {detail}", upstream_status=status, deployment=deployment
            )
        return UpstreamRejected(
            f"{prefix}: {detail}", upstream_status=status, deployment=deployment
        )
    if status in (401, 403):
        return ProviderError(
            f"{prefix}: the gateway's credentials for this provider were refused",
            transient=False,
            upstream_status=status,
            deployment=deployment,
        )
    if status == 429:
        return UpstreamRateLimited(
            f"{prefix}: {detail}",
            transient=True,
            upstream_status=status,
            retry_after=retry_after,
            deployment=deployment,
        )
    if status == 503:
        return UpstreamUnavailable(
            f"{prefix}: {detail}",
            transient=True,
            upstream_status=status,
            retry_after=retry_after,
            deployment=deployment,
        )
    transient = status >= 500 or status == 408
    return ProviderError(
        f"{prefix}: {detail}",
        transient=transient,
        upstream_status=status,
        retry_after=retry_after,
        deployment=deployment,
    )


def transport_error(exc: BaseException, *, deployment: str, timeout: float) -> ProviderError:
    """Map aiohttp/asyncio failures (no HTTP status) to the error tree."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamTimeout(
            f"upstream {deployment} did not answer within {timeout:.3g}s", deployment=deployment
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ProviderError(
            f"upstream {deployment}: cannot connect ({exc.os_error.strerror or 'refused'})",
            transient=True,
            deployment=deployment,
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ProviderError(
            f"upstream {deployment}: response body was cut off",
            transient=True,
            deployment=deployment,
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ProviderError(
            f"upstream {deployment}: connection closed before the response completed",
            transient=True,
            deployment=deployment,
        )
    return ProviderError(
        f"upstream {deployment}: {type(exc).__name__}", transient=True, deployment=deployment
    )


def load_json(body: bytes, *, deployment: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProviderError(
            f"upstream {deployment} returned a body that is not valid JSON",
            transient=True,
            deployment=deployment,
        ) from None


async def iter_sse(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str | None, bytes]]:
    """Yield (event, data) pairs of a text/event-stream body. Comments and ids are skipped."""
    event: str | None = None
    data_lines: list[bytes] = []
    async for raw in response.content:
        line = raw.rstrip(b"\r\n")
        if not line:
            if data_lines:
                yield event, b"\n".join(data_lines)
            event, data_lines = None, []
            continue
        if line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data_lines.append(value)
        elif field == b"event":
            event = value.decode("utf-8", "replace")
    if data_lines:
        yield event, b"\n".join(data_lines)
