"""CircuitBreaker with a fake clock: thresholds, rate window, cooldown, half-open probes."""

from __future__ import annotations

import pytest

from groundgate.reliability.breaker import BreakerConfig, BreakerState, CircuitBreaker

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Change = tuple[str, BreakerState, BreakerState]


def make(
    clock: FakeClock | None = None, **config: float
) -> tuple[CircuitBreaker, FakeClock, list[Change]]:
    clock = clock or FakeClock()
    changes: list[Change] = []
    breaker = CircuitBreaker(
        "up:gpt",
        BreakerConfig(**config),  # type: ignore[arg-type]
        clock=clock,
        on_change=lambda *c: changes.append(c),
    )
    return breaker, clock, changes


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.record_failure()


def test_starts_closed_and_allows() -> None:
    b, _, changes = make()
    assert b.state is CLOSED
    assert all(b.allow() for _ in range(100))
    assert changes == []


def test_consecutive_failures_open_it() -> None:
    b, _, changes = make(failure_threshold=3)
    fail(b, 2)
    assert b.state is CLOSED
    fail(b, 1)
    assert b.state is OPEN
    assert not b.allow()
    assert changes == [("up:gpt", CLOSED, OPEN)]


def test_a_success_resets_the_consecutive_count() -> None:
    b, _, _ = make(failure_threshold=3)
    fail(b, 2)
    b.record_success()
    fail(b, 2)
    assert b.state is CLOSED
    assert b.snapshot()["consecutive_failures"] == 2
    fail(b, 1)
    assert b.state is OPEN


def test_failure_rate_opens_it_only_with_min_calls() -> None:
    b, _, _ = make(failure_threshold=100, failure_rate=0.5, min_calls=10)
    # Alternate: never two failures in a row, 50% failure rate.
    for _ in range(4):
        b.record_success()
        b.record_failure()
    assert b.state is CLOSED  # 8 calls < min_calls, though the rate is 50%
    b.record_success()
    assert b.state is CLOSED  # 9 calls, 4 failures
    b.record_failure()  # 10 calls, 5 failures: 50%
    assert b.state is OPEN


def test_failure_rate_below_the_threshold_keeps_it_closed() -> None:
    b, _, _ = make(failure_threshold=100, failure_rate=0.5, min_calls=10)
    for _ in range(30):
        b.record_success()
        b.record_success()
        b.record_failure()  # 33%
    assert b.state is CLOSED
    snap = b.snapshot()
    assert (snap["window_calls"], snap["window_failures"]) == (90, 30)


def test_old_calls_slide_out_of_the_window() -> None:
    b, clock, _ = make(failure_threshold=100, failure_rate=0.5, min_calls=10, window_s=30.0)
    for _ in range(9):
        b.record_failure()  # 9 failures, below min_calls
    clock.advance(31.0)
    assert b.snapshot()["window_calls"] == 0
    b.record_failure()  # only 1 call in the window now
    assert b.state is CLOSED
    for _ in range(9):
        b.record_success()
    assert b.state is CLOSED  # 10 calls, 1 failure
    assert b.snapshot()["window_calls"] == 10


def test_window_memory_is_bounded() -> None:
    b, clock, _ = make(failure_threshold=10**9, failure_rate=1.0, window_s=30.0)
    for _ in range(2000):
        for _ in range(50):
            b.record_success()
        clock.advance(0.1)
    assert len(b._window._buckets) <= 31
    assert 14_000 <= b.snapshot()["window_calls"] <= 15_000  # ~30 s of 500 calls/s


def test_cooldown_moves_open_to_half_open() -> None:
    b, clock, changes = make(failure_threshold=1, cooldown_s=10.0)
    fail(b, 1)
    clock.advance(9.9)
    assert b.state is OPEN
    assert not b.allow()
    assert b.snapshot()["retry_in_s"] == pytest.approx(0.1)
    clock.advance(0.1)
    assert b.state is HALF_OPEN
    assert changes == [("up:gpt", CLOSED, OPEN), ("up:gpt", OPEN, HALF_OPEN)]


def test_half_open_allows_only_the_configured_probes() -> None:
    b, clock, _ = make(failure_threshold=1, cooldown_s=5.0, half_open_probes=2)
    fail(b, 1)
    clock.advance(5.0)
    assert b.allow()
    assert b.allow()
    assert not b.allow()  # two probes already out
    b.release()  # one probe ended without a result
    assert b.allow()
    assert not b.allow()


def test_successful_probe_closes_it() -> None:
    b, clock, changes = make(failure_threshold=2, cooldown_s=5.0)
    fail(b, 2)
    clock.advance(5.0)
    assert b.allow()
    b.record_success()
    assert b.state is CLOSED
    assert changes[-1] == ("up:gpt", HALF_OPEN, CLOSED)
    snap = b.snapshot()
    assert snap["consecutive_failures"] == 0
    assert snap["window_calls"] == 0  # a fresh start after the outage
    assert snap["opened_at"] is None
    fail(b, 1)
    assert b.state is CLOSED  # old failures do not count any more


def test_several_successes_needed_to_close() -> None:
    b, clock, _ = make(failure_threshold=1, cooldown_s=5.0, success_to_close=2)
    fail(b, 1)
    clock.advance(5.0)
    assert b.allow()
    b.record_success()
    assert b.state is HALF_OPEN
    assert b.allow()  # the first probe's slot was freed
    b.record_success()
    assert b.state is CLOSED


def test_failed_probe_reopens_and_restarts_the_cooldown() -> None:
    b, clock, changes = make(failure_threshold=1, cooldown_s=5.0)
    fail(b, 1)
    clock.advance(7.0)
    assert b.allow()
    b.record_failure()
    assert b.state is OPEN
    assert b.snapshot()["opened_at"] == clock.now
    assert changes[-1] == ("up:gpt", HALF_OPEN, OPEN)
    clock.advance(4.9)
    assert not b.allow()
    clock.advance(0.1)
    assert b.allow()
    b.record_success()
    assert b.state is CLOSED


def test_stragglers_do_not_move_the_state() -> None:
    b, clock, _ = make(failure_threshold=1, cooldown_s=5.0)
    fail(b, 1)
    opened_at = clock.now
    clock.advance(1.0)
    b.record_failure()  # a call allowed before it opened, failing late
    assert b.snapshot()["opened_at"] == opened_at  # the cooldown is not extended
    b.record_success()
    assert b.state is OPEN
    clock.advance(4.0)
    assert b.state is HALF_OPEN
    b.record_success()  # no probe out: not a probe's result
    b.record_failure()
    assert b.state is HALF_OPEN


def test_release_without_a_probe_is_harmless() -> None:
    b, clock, _ = make(failure_threshold=1, cooldown_s=1.0, half_open_probes=1)
    b.release()  # closed: nothing to free
    fail(b, 1)
    clock.advance(1.0)
    b.release()
    b.release()
    assert b.allow()
    assert not b.allow()  # releases did not create extra probe slots


def test_zero_cooldown_half_opens_at_once() -> None:
    b, _, _ = make(failure_threshold=1, cooldown_s=0.0)
    fail(b, 1)
    assert b.state is HALF_OPEN


def test_snapshot_shape() -> None:
    b, clock, _ = make(failure_threshold=2, cooldown_s=10.0)
    assert b.snapshot() == {
        "name": "up:gpt",
        "state": "closed",
        "consecutive_failures": 0,
        "window_calls": 0,
        "window_failures": 0,
        "opened_at": None,
        "retry_in_s": 0.0,
    }
    b.record_success()
    fail(b, 2)
    clock.advance(4.0)
    snap = b.snapshot()
    assert snap["state"] == "open"
    assert snap["consecutive_failures"] == 2
    assert (snap["window_calls"], snap["window_failures"]) == (3, 2)
    assert snap["opened_at"] == clock.now - 4.0
    assert snap["retry_in_s"] == pytest.approx(6.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": 0},
        {"failure_rate": 0.0},
        {"failure_rate": 1.5},
        {"window_s": 0.0},
        {"min_calls": 0},
        {"cooldown_s": -1.0},
        {"half_open_probes": 0},
        {"success_to_close": 0},
    ],
)
def test_invalid_configs_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]
