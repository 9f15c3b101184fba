"""Work that must finish even when the request that started it is cancelled.

When a client goes away mid-stream, Starlette cancels the response task through an anyio
cancel scope, which cancels *every* await in it, ``finally`` blocks included. Settling a
request (spend, token counts, concurrency slots: a Redis round trip) and closing its upstream
would then stop at their first await. ``shielded`` runs such work in a task of its own that the
cancellation cannot reach; the caller still sees its cancellation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("groundgate")

T = TypeVar("T")

# Work whose caller was cancelled, kept referenced until it is done (the event loop holds
# tasks only weakly).
_running: set[asyncio.Task[Any]] = set()


def start_shielded(work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run ``work`` in a task no caller's cancellation reaches, referenced until it is done.
    For a caller that must wait for the same work again later (``shielded`` awaits it once)."""
    task = asyncio.get_running_loop().create_task(work)
    _running.add(task)
    task.add_done_callback(_done)
    return task


async def shielded(work: Coroutine[Any, Any, T]) -> T:
    return await asyncio.shield(start_shielded(work))


def _done(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    # Retrieve the outcome so an error whose caller was gone is logged, not lost as "never
    # retrieved"; a caller that is still there gets the same error from the await.
    if not task.cancelled() and (error := task.exception()) is not None:
        log.debug("shielded work failed: %s", type(error).__name__, exc_info=error)
