"""Fallback chains with retries, circuit breakers and bulkheads.

For one model: its deployments in the order its balancer gives. Each deployment is skipped at
once while its breaker is open (no timeout paid), entered through its bulkhead, and retried on
transient failures with backoff and full jitter, never past the request deadline. A request
the upstream rejected as invalid stops the chain (another deployment would reject it too),
except a context-window or content-filter refusal, which moves to the model's configured
fallback models for exactly that case. When every deployment failed, the model's
``fallbacks`` are tried. Every try, retry and skip is recorded in the trace.

A stream may still move on until its first chunk with content; from then on it holds its
deployment (see ``held_stream``) until it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from groundgate.config import Settings
from groundgate.errors import (
    ContentFiltered,
    ContextWindowExceeded,
    DeadlineExceeded,
    Overloaded,
    ProviderError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from groundgate.observe.trace import Attempt, Trace
from groundgate.providers.base import ChatCall, Completion, Embeddings
from groundgate.providers.catalog import Catalog, CatalogEntry, Deployment
from groundgate.reliability.balancer import Balancer, Strategy
from groundgate.reliability.error_class import BREAKER_OPEN, DEADLINE, OVERLOADED, error_class
from groundgate.reliability.held_stream import HeldStream, close_quietly, read_leading
from groundgate.reliability.lease import Lease, Verdict, verdict_for
from groundgate.reliability.resilience import Resilience

T = TypeVar("T")
# One try at one deployment, given the time it may take and the lease it runs under.
Call = Callable[[Deployment, float, Lease], Awaitable[T]]

__all__ = ["DeadlineExceeded", "FallbackChain", "Served"]


@dataclass(frozen=True, slots=True)
class Served(Generic[T]):
    """What the chain got, and from where."""

    deployment: Deployment
    result: T
    # Answered after a failed or skipped attempt: by a later deployment of the order, or by
    # a fallback model. A first try that succeeded is never a fallback, whichever deployment
    # the balancer put first; neither is a retry that succeeded on that same deployment.
    fell_back: bool = False


class FallbackChain:
    def __init__(self, catalog: Catalog, settings: Settings, resilience: Resilience) -> None:
        self.catalog = catalog
        self.settings = settings
        self.resilience = resilience
        self._balancers: dict[str, Balancer] = {}

    # -- public calls --------------------------------------------------------------------

    async def complete(
        self, entry: CatalogEntry, call: ChatCall, deadline: float, trace: Trace
    ) -> Served[Completion]:
        async def attempt(dep: Deployment, budget: float, lease: Lease) -> Completion:
            return await dep.provider.complete(call, dep.upstream_model, timeout=budget)

        return await self._model(entry, deadline, trace, attempt, primary=entry.name)

    async def embed(
        self, entry: CatalogEntry, inputs: list[str], deadline: float, trace: Trace
    ) -> tuple[Deployment, Embeddings]:
        async def attempt(dep: Deployment, budget: float, lease: Lease) -> Embeddings:
            return await dep.provider.embed(inputs, dep.upstream_model, timeout=budget)

        # Embedders never fall back to another model: its vectors would be in another space.
        served = await self._deployments(entry, deadline, trace, attempt, model_note=None)
        return served.deployment, served.result

    async def open_stream(
        self, entry: CatalogEntry, call: ChatCall, deadline: float, trace: Trace
    ) -> Served[HeldStream]:
        """Start a stream and read it up to its first chunk with content, so that a failure
        before any of the answer could reach the client can still be retried or fall back.
        The stream returned holds its deployment until it ends."""

        async def attempt(dep: Deployment, budget: float, lease: Lease) -> HeldStream:
            upstream = dep.provider.stream(call, dep.upstream_model, timeout=budget)
            try:
                async with asyncio.timeout(budget):
                    leading = await read_leading(upstream, dep.id)
            except TimeoutError:
                await close_quietly(upstream)
                raise UpstreamTimeout(
                    f"upstream {dep.id} sent nothing within {budget:.3g}s", deployment=dep.id
                ) from None
            except BaseException:
                await close_quietly(upstream)
                raise
            lease.keep()
            return HeldStream(leading, upstream, lease, deadline, dep.id)

        return await self._model(entry, deadline, trace, attempt, primary=entry.name)

    # -- models and their fallbacks ------------------------------------------------------

    async def _model(
        self,
        entry: CatalogEntry,
        deadline: float,
        trace: Trace,
        attempt: Call[T],
        *,
        primary: str,
        seen: frozenset[str] = frozenset(),
    ) -> Served[T]:
        note = None if entry.name == primary else entry.name
        config = self.settings.models.get(entry.name)
        failure: ProviderError
        targets: list[str]
        try:
            return await self._deployments(entry, deadline, trace, attempt, model_note=note)
        except ContextWindowExceeded as exc:
            targets, failure = (config.context_window_fallbacks if config else []), exc
        except ContentFiltered as exc:
            targets, failure = (config.content_filter_fallbacks if config else []), exc
        except UpstreamRejected:
            raise
        except ProviderError as exc:
            targets, failure = (config.fallbacks if config else []), exc
        seen = seen | {entry.name}
        for name in targets:
            if name in seen or deadline - time.monotonic() <= 0:
                continue
            try:
                served = await self._model(
                    self.catalog.get(name, "chat"),
                    deadline,
                    trace,
                    attempt,
                    primary=primary,
                    seen=seen,
                )
                return replace(served, fell_back=True)
            except UpstreamRejected as exc:
                if not isinstance(exc, (ContextWindowExceeded, ContentFiltered)):
                    raise
                failure = exc
            except ProviderError as exc:
                failure = exc
        raise failure

    # -- one model's deployments -----------------------------------------------------------

    async def _deployments(
        self,
        entry: CatalogEntry,
        deadline: float,
        trace: Trace,
        attempt: Call[T],
        *,
        model_note: str | None,
    ) -> Served[T]:
        errors: list[ProviderError] = []
        skipped = 0
        order = self._order(entry)
        for index, dep in enumerate(order):
            if deadline - time.monotonic() <= 0:
                trace.attempts.append(
                    Attempt(
                        dep.id,
                        "skipped",
                        error="deadline exceeded",
                        model=model_note,
                        error_class=DEADLINE,
                        start_ms=trace.elapsed_ms(),
                    )
                )
                skipped += 1
                continue
            breaker = self.resilience.breaker(dep.id)
            if not breaker.allow():
                trace.attempts.append(
                    Attempt(
                        dep.id,
                        "skipped",
                        error="circuit open",
                        model=model_note,
                        error_class=BREAKER_OPEN,
                        start_ms=trace.elapsed_ms(),
                    )
                )
                skipped += 1
                continue
            try:
                more = index + 1 < len(order)
                result = await self._with_retries(dep, deadline, trace, attempt, model_note, more)
                # The loop only moves past a deployment that failed or was skipped.
                return Served(dep, result, fell_back=index > 0)
            except UpstreamRejected:
                raise  # incl. context-window / content-filter: _model picks their fallbacks
            except ProviderError as exc:
                errors.append(exc)
        raise self._exhausted(entry, errors, skipped)

    async def _with_retries(
        self,
        dep: Deployment,
        deadline: float,
        trace: Trace,
        attempt: Call[T],
        model_note: str | None,
        more: bool = False,
    ) -> T:
        """One deployment, retried on transient failures. The breaker's ``allow`` was taken by
        the caller for the first try; every try settles it exactly once: through its lease, or
        here when no call was made."""
        resilience = self.resilience
        breaker = resilience.breaker(dep.id)
        try_number = 1
        while True:
            started = time.perf_counter()
            try:
                lease = await self._lease(dep, deadline)
                try:
                    result = await attempt(dep, deadline - time.monotonic(), lease)
                except BaseException as exc:
                    lease.end(verdict_for(exc))
                    raise
            except Overloaded as exc:
                # Our own queue is full: not the deployment's fault, so no breaker failure.
                error = ProviderError(
                    f"{dep.id}: {exc.message}",
                    transient=True,
                    retry_after=exc.retry_after,
                    deployment=dep.id,
                )
                self._record(
                    trace, dep, started, error, try_number, model_note, "skipped", OVERLOADED
                )
                raise error from None
            except UpstreamRejected as exc:
                self._record(trace, dep, started, exc, try_number, model_note)
                raise
            except ProviderError as exc:
                exc.deployment = exc.deployment or dep.id
                self._record(trace, dep, started, exc, try_number, model_note)
                # A timeout is not retried on the same deployment when another one remains:
                # a hung upstream would most likely make the request pay the timeout twice.
                retry_here = exc.transient and not (more and isinstance(exc, UpstreamTimeout))
                delay = resilience.retry.delay(try_number, exc.retry_after) if retry_here else None
                remaining = deadline - time.monotonic()
                if delay is None or not resilience.retry.fits(
                    delay, remaining, resilience.min_attempt_s
                ):
                    raise
                await asyncio.sleep(delay)
                if not breaker.allow():
                    raise  # the breaker opened while we waited: move on
                try_number += 1
                continue
            record = Attempt(
                dep.id,
                "ok",
                (time.perf_counter() - started) * 1000,
                try_number=try_number,
                model=model_note,
                start_ms=(started - trace.started) * 1000,
            )
            if lease.kept:
                lease.record = record  # the stream brings it up to date when it ends
            else:
                lease.end(Verdict.SUCCESS)
            trace.attempts.append(record)
            return result

    async def _lease(self, dep: Deployment, deadline: float) -> Lease:
        """Enter the deployment's bulkhead. When no call can be made (deadline passed, queue
        full, cancelled while queued) the breaker's reservation is given back here."""
        resilience = self.resilience
        breaker = resilience.breaker(dep.id)
        try:
            budget = deadline - time.monotonic()
            if budget <= 0:
                raise DeadlineExceeded(
                    f"the request deadline passed before {dep.id} could be called",
                    deployment=dep.id,
                )
            return await Lease.take(
                resilience.bulkhead(dep.id), resilience.stats(dep.id), breaker, budget
            )
        except BaseException:
            breaker.release()
            raise

    def _order(self, entry: CatalogEntry) -> list[Deployment]:
        balancer = self._balancers.get(entry.name)
        if balancer is None:
            config = self.settings.models.get(entry.name)
            strategy = Strategy(config.routing) if config else Strategy.ORDERED
            balancer = Balancer(strategy, config.weights if config else None)
            self._balancers[entry.name] = balancer
        stats = [self.resilience.stats(d.id) for d in entry.deployments]
        ordered: list[Deployment] = balancer.order(list(entry.deployments), stats)
        return ordered

    @staticmethod
    def _record(
        trace: Trace,
        dep: Deployment,
        started: float,
        exc: ProviderError,
        try_number: int,
        model_note: str | None,
        status: str = "error",
        error_kind: str | None = None,
    ) -> None:
        trace.attempts.append(
            Attempt(
                dep.id,
                status,
                (time.perf_counter() - started) * 1000,
                error=exc.message,
                upstream_status=exc.upstream_status,
                transient=exc.transient,
                try_number=try_number,
                model=model_note,
                error_class=error_kind or error_class(exc),
                start_ms=(started - trace.started) * 1000,
            )
        )

    def _exhausted(
        self, entry: CatalogEntry, errors: list[ProviderError], skipped: int
    ) -> ProviderError:
        if not errors:
            if skipped and all(
                self.resilience.breaker(d.id).snapshot().get("state") != "closed"
                for d in entry.deployments
            ):
                return UpstreamUnavailable(
                    f"every deployment of model '{entry.name}' is unavailable (circuit open); "
                    "try again shortly",
                    transient=True,
                    retry_after=self._retry_in(entry),
                )
            return DeadlineExceeded(
                f"the request deadline passed before model '{entry.name}' could answer"
            )
        if len(errors) == 1 and not skipped and not errors[0].transient:
            return errors[0]  # one deployment, a permanent answer: pass it on as it is
        summary = "; ".join(e.message for e in errors)
        message = f"all deployments of model '{entry.name}' failed: {summary}"
        if all(isinstance(e, UpstreamTimeout) for e in errors):
            return UpstreamTimeout(message)
        if all(isinstance(e, UpstreamRateLimited) for e in errors):
            waits = [e.retry_after for e in errors if e.retry_after is not None]
            return UpstreamRateLimited(
                message, transient=True, retry_after=min(waits) if waits else None
            )
        return UpstreamUnavailable(message, transient=True, retry_after=self._retry_in(entry))

    def _retry_in(self, entry: CatalogEntry) -> float:
        waits = [
            float(self.resilience.breaker(d.id).snapshot().get("retry_in_s") or 0)
            for d in entry.deployments
        ]
        positive = [w for w in waits if w > 0]
        return max(1.0, min(positive)) if positive else 1.0
