"""Per-deployment reliability state, shared by every request of a process: one circuit
breaker, one bulkhead and one latency/in-flight record per deployment."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from groundgate.config import ReliabilityConfig
from groundgate.reliability.balancer import DeploymentStats
from groundgate.reliability.breaker import BreakerConfig, BreakerState, CircuitBreaker
from groundgate.reliability.bulkhead import Bulkhead
from groundgate.reliability.retry import RetryPolicy

log = logging.getLogger("groundgate.reliability")

BreakerListener = Callable[[str, BreakerState, BreakerState], None]


class Resilience:
    def __init__(
        self, config: ReliabilityConfig, on_breaker_change: BreakerListener | None = None
    ) -> None:
        self.config = config
        self.retry = RetryPolicy(
            max_attempts=config.max_attempts,
            base_delay_s=config.base_delay_ms / 1000,
            max_delay_s=config.max_delay_ms / 1000,
            max_retry_after_s=config.max_retry_after_s,
        )
        self.min_attempt_s = config.min_attempt_ms / 1000
        self._breaker_config = BreakerConfig(
            failure_threshold=config.breaker_failures,
            failure_rate=config.breaker_failure_rate,
            window_s=config.breaker_window_s,
            min_calls=config.breaker_min_calls,
            cooldown_s=config.breaker_cooldown_s,
            half_open_probes=config.breaker_half_open_probes,
        )
        self._listeners: list[BreakerListener] = [self._log_change]
        if on_breaker_change is not None:
            self._listeners.append(on_breaker_change)
        self._breakers: dict[str, CircuitBreaker] = {}
        self._bulkheads: dict[str, Bulkhead] = {}
        self._stats: dict[str, DeploymentStats] = {}

    def breaker(self, deployment: str) -> CircuitBreaker:
        breaker = self._breakers.get(deployment)
        if breaker is None:
            breaker = CircuitBreaker(deployment, self._breaker_config, on_change=self._changed)
            self._breakers[deployment] = breaker
        return breaker

    def bulkhead(self, deployment: str) -> Bulkhead:
        bulkhead = self._bulkheads.get(deployment)
        if bulkhead is None:
            cfg = self.config
            bulkhead = Bulkhead(
                deployment, cfg.max_concurrent, cfg.max_queue, cfg.max_queue_wait_ms / 1000
            )
            self._bulkheads[deployment] = bulkhead
        return bulkhead

    def bulkheads(self) -> dict[str, Bulkhead]:
        """Every deployment's bulkhead made so far (one per deployment called): the queue
        depth gauges read them when metrics are scraped."""
        return self._bulkheads

    def stats(self, deployment: str) -> DeploymentStats:
        return self._stats.setdefault(deployment, DeploymentStats())

    def snapshot(self) -> dict[str, Any]:
        deployments = sorted(set(self._breakers) | set(self._bulkheads))
        return {
            dep: {
                "breaker": self._breakers[dep].snapshot() if dep in self._breakers else None,
                "bulkhead": self._bulkheads[dep].snapshot() if dep in self._bulkheads else None,
                "ewma_latency_ms": self.stats(dep).ewma_latency_ms,
            }
            for dep in deployments
        }

    def _changed(self, name: str, old: BreakerState, new: BreakerState) -> None:
        for listener in self._listeners:
            listener(name, old, new)

    @staticmethod
    def _log_change(name: str, old: BreakerState, new: BreakerState) -> None:
        level = logging.WARNING if new == BreakerState.OPEN else logging.INFO
        log.log(level, "circuit breaker %s: %s -> %s", name, old.value, new.value)
