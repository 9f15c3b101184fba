"""Putting a reply on the wire, honestly or not: the failure behaviours live here.

The API modules (``fake_openai``, ``fake_anthropic``) only *build* replies: a JSON body or a
list of SSE events. ``respond`` then applies the request's ``Behavior`` (latency, hang,
reset, error status, truncation, malformed bytes, mid-stream failure) the same way for every
route, and keeps the exchange's completed/cancelled accounting straight.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from aiohttp import web

from groundgate.testing.fake_state import Behavior, Exchange

Style = Literal["openai", "anthropic"]

_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_NOT_JSON = b'{"this is": not json'


class BadRequest(Exception):
    """Raised by a reply builder for a request the real API would reject with a 400."""


@dataclass(slots=True)
class JsonReply:
    body: dict[str, Any]


@dataclass(slots=True)
class SseEvent:
    """One server-sent event. ``content`` marks the pieces that ``stream_fail_after`` counts."""

    data: bytes
    event: str | None = None
    content: bool = False

    def encode(self, data: bytes | None = None) -> bytes:
        body = b"data: " + (self.data if data is None else data) + b"\n\n"
        if self.event is None:
            return body
        return b"event: " + self.event.encode() + b"\n" + body


@dataclass(slots=True)
class StreamReply:
    events: list[SseEvent]


Reply = JsonReply | StreamReply
Builder = Callable[[Any, Behavior, int], Reply]

# Error "type" per status, as each vendor names them.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_body(style: Style, status: int, message: str) -> dict[str, Any]:
    if style == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    code = "rate_limit_exceeded" if status == 429 else None
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def error_response(
    style: Style, status: int, message: str, retry_after: float | None = None
) -> web.Response:
    headers: dict[str, str] = {}
    if retry_after is not None:
        # Whole seconds where possible (the HTTP form); sub-second values keep their fraction
        # so tests can use short waits, and retry-after-ms says the same in milliseconds.
        whole = float(retry_after).is_integer()
        headers["Retry-After"] = str(int(retry_after)) if whole else str(retry_after)
        headers["retry-after-ms"] = str(int(retry_after * 1000))
    return web.Response(
        status=status,
        body=orjson.dumps(error_body(style, status, message)),
        content_type="application/json",
        headers=headers,
    )


async def respond(
    request: web.Request, exchange: Exchange, style: Style, build: Builder, body: Any
) -> web.StreamResponse:
    """Answer one request according to its behaviour. Marks the exchange completed."""
    b = exchange.behavior
    if b.hang:
        # Never resolves: the handler sits here until the client disconnects (aiohttp then
        # cancels it, which the caller counts as cancelled) or the server stops.
        await asyncio.get_running_loop().create_future()
    if b.latency_ms > 0:
        await asyncio.sleep(b.latency_ms / 1000)
    if b.reset:
        exchange.complete()
        _drop_connection(request, rst=True)
        return web.Response()  # never sent: the transport is gone
    if b.status != 200:
        exchange.complete()
        return error_response(style, b.status, b.error_message, b.retry_after)
    try:
        reply = build(body, b, exchange.seq)
    except BadRequest as exc:
        exchange.complete()
        return error_response(style, 400, str(exc))
    if isinstance(reply, JsonReply):
        return await _send_json(request, exchange, orjson.dumps(reply.body))
    return await _send_stream(request, exchange, reply.events)


async def _send_json(
    request: web.Request, exchange: Exchange, payload: bytes
) -> web.StreamResponse:
    b = exchange.behavior
    if b.truncated:
        return await _send_truncated(request, exchange, payload, "application/json")
    if b.malformed:
        payload = payload[: len(payload) // 2] + _NOT_JSON
    exchange.complete()
    return web.Response(body=payload, content_type="application/json")


async def _send_truncated(
    request: web.Request, exchange: Exchange, payload: bytes, content_type: str
) -> web.StreamResponse:
    """Promise the whole payload in Content-Length, send half of it, then hang up."""
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    resp.content_length = len(payload)
    await resp.prepare(request)
    await resp.write(payload[: len(payload) // 2])
    exchange.complete()
    _drop_connection(request, rst=False)
    return resp


async def _send_stream(
    request: web.Request, exchange: Exchange, events: list[SseEvent]
) -> web.StreamResponse:
    b = exchange.behavior
    if b.truncated:
        payload = b"".join(ev.encode() for ev in events)
        return await _send_truncated(request, exchange, payload, _SSE_HEADERS["Content-Type"])

    contents = [i for i, ev in enumerate(events) if ev.content]
    last_content = contents[-1] if contents else -1
    # The event whose data is replaced by garbage: the first content piece, if any.
    malformed_at = (contents[0] if contents else 0) if b.malformed else -1
    fail_after = b.stream_fail_after
    delay = b.stream_delay_ms / 1000

    resp = web.StreamResponse(headers=_SSE_HEADERS)
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    sent = 0
    last = len(events) - 1
    for i, ev in enumerate(events):
        # Fail once N content pieces are out: before the next piece, or before the closing
        # events when the reply has N pieces or fewer.
        if fail_after is not None and ((ev.content and sent >= fail_after) or i > last_content):
            exchange.complete()
            _drop_connection(request, rst=False)
            return resp
        if ev.content:
            if delay and sent:
                await asyncio.sleep(delay)
            sent += 1
        if i == last:
            # Count it before the last write, so a client that has read the whole stream
            # always finds it counted.
            exchange.complete()
        await resp.write(ev.encode(_NOT_JSON if i == malformed_at else None))
    await resp.write_eof()
    return resp


def _drop_connection(request: web.Request, *, rst: bool) -> None:
    """Close the client connection: with a TCP RST (``rst``) or after flushing what was sent."""
    transport = request.transport
    if transport is None:
        return
    if not rst:
        transport.close()
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger on, timeout 0: close() sends RST instead of FIN, like a crashed peer.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
