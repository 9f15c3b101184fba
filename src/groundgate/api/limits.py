"""Body size limit as a pure ASGI middleware: a body over the limit gets a 413 before it is
read into memory (Content-Length checked up front, chunked bodies counted as they arrive)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from groundgate.errors import PayloadTooLarge


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    break  # not a length: count the body as it arrives
                if too_big:
                    await self._reject(send)
                    return
                # The server delivers exactly Content-Length bytes as this request's body
                # (anything after it is the next request), so there is nothing to count.
                await self.app(scope, receive, send)
                return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the app, so the app's error handler answers 413.
                    raise PayloadTooLarge(self._message())
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except PayloadTooLarge:
            if not response_started:
                await self._reject(send)

    def _message(self) -> str:
        return f"Request body is larger than the limit of {self.max_bytes} bytes."

    async def _reject(self, send: Send) -> None:
        body: dict[str, Any] = {
            "error": {
                "message": self._message(),
                "type": "invalid_request_error",
                "param": None,
                "code": "request_too_large",
            }
        }
        payload = orjson.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
