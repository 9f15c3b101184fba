"""An upstream stream that has begun to answer, holding its deployment until it ends.

The fallback chain reads a stream's leading events (an empty role delta, Anthropic's
``message_start``) until the first chunk that carries part of the answer; until then nothing
was committed, so a failure can still be retried or fall back, and the leading events of the
deployment that finally serves are replayed from a buffer. From the first content on, the
stream is the answer, and :class:`HeldStream` keeps what a call holds (bulkhead slot, in-flight
count, breaker verdict: a :class:`Lease`) until the stream ends, however it ends:

* the last chunk was read: a success for the breaker;
* the upstream failed mid-stream: a failure for the breaker (a deployment that always breaks
  mid-stream opens its breaker like one that fails at once);
* the request deadline passed: :class:`DeadlineExceeded`, no verdict;
* the reader went away (``aclose``, cancellation): no verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator

from groundgate.errors import DeadlineExceeded, ProviderError
from groundgate.providers.base import Chunk
from groundgate.reliability.lease import Lease, Verdict, verdict_for


def carries_content(chunk: Chunk) -> bool:
    """Whether a chunk gives the client part of the answer: text, a tool call, a refusal, or
    the end of a choice. A role-only delta or Anthropic's ``message_start`` carries none."""
    for choice in chunk.choices:
        if choice.get("finish_reason"):
            return True
        delta = choice.get("delta") or {}
        if (
            delta.get("content")
            or delta.get("tool_calls")
            or delta.get("refusal")
            or delta.get("function_call")
        ):
            return True
    return False


async def read_leading(upstream: AsyncIterator[Chunk], deployment: str) -> list[Chunk]:
    """The chunks up to and including the first with content (or all of a stream that ended
    without any). Raises ``ProviderError`` for a stream that ended with nothing at all."""
    leading: list[Chunk] = []
    while True:
        try:
            chunk = await anext(upstream)
        except StopAsyncIteration:
            if not leading:
                raise ProviderError(
                    f"upstream {deployment} sent an empty stream",
                    transient=True,
                    deployment=deployment,
                ) from None
            return leading
        leading.append(chunk)
        if carries_content(chunk):
            return leading


class HeldStream:
    """``first`` is the first buffered chunk; iterating yields the rest of the buffer, then the
    upstream's chunks, each read bounded by the request deadline."""

    def __init__(
        self,
        leading: list[Chunk],
        upstream: AsyncIterator[Chunk],
        lease: Lease,
        deadline: float,
        deployment: str,
    ) -> None:
        self.first = leading[0]
        self._buffer = deque(leading[1:])
        self._upstream = upstream
        self._lease = lease
        self._deadline = deadline  # time.monotonic()
        self._deployment = deployment
        self._closed = False

    def __aiter__(self) -> HeldStream:
        return self

    async def __anext__(self) -> Chunk:
        if self._buffer:
            return self._buffer.popleft()
        if self._lease.ended:
            raise StopAsyncIteration  # closed, or already ended
        remaining = self._deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            async with asyncio.timeout(remaining):
                return await anext(self._upstream)
        except StopAsyncIteration:
            self._lease.end(Verdict.SUCCESS)
            raise
        except TimeoutError:
            error = DeadlineExceeded(
                "the request deadline passed while the answer was streaming",
                deployment=self._deployment,
            )
            self._lease.end(Verdict.NONE, error)
            await self._close_upstream()
            raise error from None
        except ProviderError as exc:
            self._lease.end(verdict_for(exc), exc)
            raise
        except BaseException:
            self._lease.end(Verdict.NONE)  # cancelled: the reader went away
            raise

    async def aclose(self) -> None:
        """The reader is done, whether or not the stream is: free the deployment now (no
        verdict if the stream had not finished) and close the upstream response."""
        self._buffer.clear()
        self._lease.end(Verdict.NONE)  # does nothing if the stream already ended
        await self._close_upstream()

    async def _close_upstream(self) -> None:
        if self._closed:
            return
        self._closed = True
        await close_quietly(self._upstream)


async def close_quietly(stream: AsyncIterator[Chunk]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
