"""Fallback chains: a model's deployments are tried in order until one answers.

A deployment failure moves on to the next deployment, except when the upstream rejected the
request itself (``UpstreamRejected``): another deployment would reject it too. Every attempt
lands in the trace, so "why did this take 4 s and use model B" is answered by the trace alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from groundgate.errors import ProviderError, UpstreamRejected, UpstreamTimeout
from groundgate.observe.trace import Attempt, Trace
from groundgate.providers.base import ChatCall, Chunk, Completion, Embeddings
from groundgate.routing.catalog import CatalogEntry, Deployment

T = TypeVar("T")


class DeadlineExceeded(UpstreamTimeout):
    pass


def _remaining(deadline: float) -> float:
    return deadline - time.monotonic()


async def _try_each(
    entry: CatalogEntry,
    deadline: float,
    trace: Trace,
    attempt: Callable[[Deployment, float], Awaitable[T]],
) -> tuple[Deployment, T]:
    errors: list[ProviderError] = []
    for deployment in entry.deployments:
        budget = _remaining(deadline)
        if budget <= 0:
            trace.attempts.append(Attempt(deployment.id, "skipped", error="deadline exceeded"))
            break
        started = time.perf_counter()
        try:
            result = await attempt(deployment, budget)
        except ProviderError as exc:
            exc.deployment = exc.deployment or deployment.id
            trace.attempts.append(
                Attempt(
                    deployment.id,
                    "error",
                    (time.perf_counter() - started) * 1000.0,
                    error=exc.message,
                    upstream_status=exc.upstream_status,
                    transient=exc.transient,
                )
            )
            errors.append(exc)
            if isinstance(exc, UpstreamRejected):
                raise
            continue
        trace.attempts.append(
            Attempt(deployment.id, "ok", (time.perf_counter() - started) * 1000.0)
        )
        return deployment, result
    raise _exhausted(entry, errors)


def _exhausted(entry: CatalogEntry, errors: list[ProviderError]) -> ProviderError:
    if not errors:
        return DeadlineExceeded(
            f"the request deadline passed before model '{entry.name}' could be called"
        )
    last = errors[-1]
    if len(errors) == 1 and len(entry.deployments) == 1:
        return last
    summary = "; ".join(e.message for e in errors)
    last.message = f"all deployments of model '{entry.name}' failed: {summary}"
    last.args = (last.message,)
    return last


async def complete(
    entry: CatalogEntry, call: ChatCall, deadline: float, trace: Trace
) -> tuple[Deployment, Completion]:
    async def attempt(dep: Deployment, budget: float) -> Completion:
        return await dep.provider.complete(call, dep.upstream_model, timeout=budget)

    return await _try_each(entry, deadline, trace, attempt)


async def embed(
    entry: CatalogEntry, inputs: list[str], deadline: float, trace: Trace
) -> tuple[Deployment, Embeddings]:
    async def attempt(dep: Deployment, budget: float) -> Embeddings:
        return await dep.provider.embed(inputs, dep.upstream_model, timeout=budget)

    return await _try_each(entry, deadline, trace, attempt)


async def open_stream(
    entry: CatalogEntry, call: ChatCall, deadline: float, trace: Trace
) -> tuple[Deployment, Chunk, AsyncIterator[Chunk]]:
    """Start a stream and wait for its first chunk, so a failure before anything reached the
    client can still fall back to the next deployment."""

    async def attempt(dep: Deployment, budget: float) -> tuple[Chunk, AsyncIterator[Chunk]]:
        stream = dep.provider.stream(call, dep.upstream_model, timeout=budget)
        try:
            async with asyncio.timeout(budget):
                first = await anext(aiter(stream))
        except StopAsyncIteration:
            raise ProviderError(
                f"upstream {dep.id} sent an empty stream", transient=True, deployment=dep.id
            ) from None
        except TimeoutError:
            await _close(stream)
            raise UpstreamTimeout(
                f"upstream {dep.id} sent nothing within {budget:.3g}s", deployment=dep.id
            ) from None
        except BaseException:
            await _close(stream)
            raise
        return first, stream

    deployment, (first, rest) = await _try_each(entry, deadline, trace, attempt)
    return deployment, first, rest


async def _close(stream: AsyncIterator[Chunk]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
