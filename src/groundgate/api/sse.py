"""A server-sent event stream that always runs its closing work.

Starlette's ``StreamingResponse`` cannot be trusted to end its body: when the client goes away
before the first byte, it cancels the sending task before the body iterator ever started, so
the iterator's ``finally`` never runs; mid-stream, it cancels every await of the ``finally``
that does run. A stream holds a deployment's slot, a trace and a limiter ticket until it ends:
``on_close`` ends them once the response is over, whatever happened, out of the
cancellation's reach.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from groundgate.shielded import shielded


class EventStreamResponse(StreamingResponse):
    def __init__(
        self,
        events: AsyncIterator[bytes],
        *,
        on_close: Callable[[], Coroutine[Any, Any, None]],
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(events, media_type="text/event-stream", headers=headers)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await shielded(self._on_close())
