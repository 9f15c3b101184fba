"""RetryPolicy: backoff bounds, full jitter, Retry-After handling, deadline fit."""

from __future__ import annotations

import random

import pytest

from groundgate.reliability.retry import RetryPolicy


def test_defaults() -> None:
    p = RetryPolicy()
    assert (p.max_attempts, p.base_delay_s, p.max_delay_s, p.max_retry_after_s) == (
        3,
        0.05,
        2.0,
        10.0,
    )


def test_backoff_cap_doubles_then_saturates() -> None:
    p = RetryPolicy(max_attempts=10, base_delay_s=0.1, max_delay_s=1.0)
    assert [p.backoff_cap(a) for a in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    # Absurd attempt numbers do not overflow.
    assert p.backoff_cap(10_000) == 1.0


def test_delay_is_within_the_exponential_cap() -> None:
    p = RetryPolicy(max_attempts=100, base_delay_s=0.1, max_delay_s=1.0)
    rng = random.Random(1)
    for attempt in range(1, 8):
        cap = min(1.0, 0.1 * 2 ** (attempt - 1))
        delays = [p.delay(attempt, None, rng) for _ in range(2000)]
        assert all(d is not None and 0.0 <= d <= cap for d in delays)
        values = [d for d in delays if d is not None]
        # Full jitter: the draws cover the whole [0, cap] range, not a band near the cap.
        assert min(values) < 0.05 * cap
        assert max(values) > 0.95 * cap
        assert sum(values) / len(values) == pytest.approx(cap / 2, rel=0.08)


def test_delay_is_deterministic_with_a_seeded_rng() -> None:
    p = RetryPolicy()
    a = [p.delay(1, None, random.Random(42)) for _ in range(3)]
    b = [p.delay(1, None, random.Random(42)) for _ in range(3)]
    assert a == b
    assert p.delay(1, None, random.Random(42)) != p.delay(1, None, random.Random(43))


def test_delay_without_rng_uses_a_default() -> None:
    d = RetryPolicy(base_delay_s=0.5).delay(1, None)
    assert d is not None and 0.0 <= d <= 0.5


def test_no_delay_once_attempts_are_used_up() -> None:
    p = RetryPolicy(max_attempts=3)
    rng = random.Random(0)
    assert p.delay(1, None, rng) is not None
    assert p.delay(2, None, rng) is not None
    assert p.delay(3, None, rng) is None
    assert p.delay(4, None, rng) is None
    assert p.delay(3, 0.1, rng) is None  # Retry-After does not add attempts
    assert RetryPolicy(max_attempts=1).delay(1, None, rng) is None


def test_retry_after_is_honoured_when_longer_than_the_jitter() -> None:
    p = RetryPolicy(base_delay_s=0.05, max_delay_s=2.0, max_retry_after_s=10.0)
    rng = random.Random(3)
    for _ in range(200):
        assert p.delay(1, 3.0, rng) == 3.0
    assert p.delay(1, 10.0, rng) == 10.0  # the limit itself is still waited for


def test_retry_after_shorter_than_the_jitter_uses_the_jitter() -> None:
    p = RetryPolicy(max_attempts=5, base_delay_s=1.0, max_delay_s=1.0)
    rng = random.Random(5)
    delays = [p.delay(1, 0.2, rng) for _ in range(2000)]
    values = [d for d in delays if d is not None]
    assert len(values) == 2000
    assert all(0.2 <= d <= 1.0 for d in values)
    assert max(values) > 0.9  # the jitter wins when it is longer
    assert sum(1 for d in values if d == 0.2) > 100  # ~20% of draws fall under 0.2


def test_retry_after_too_long_means_give_up_on_this_deployment() -> None:
    p = RetryPolicy(max_retry_after_s=10.0)
    assert p.delay(1, 10.01, random.Random(0)) is None
    assert p.delay(1, 3600.0, random.Random(0)) is None


def test_zero_or_negative_retry_after_falls_back_to_jitter() -> None:
    p = RetryPolicy(base_delay_s=0.4, max_delay_s=0.4)
    for ra in (0.0, -5.0):
        d = p.delay(1, ra, random.Random(9))
        assert d is not None and 0.0 <= d <= 0.4


def test_fits_leaves_room_for_the_attempt() -> None:
    p = RetryPolicy()
    assert p.fits(delay=0.5, remaining_s=2.0, min_attempt_s=1.0)
    assert p.fits(delay=1.0, remaining_s=2.0, min_attempt_s=1.0)  # exactly enough
    assert not p.fits(delay=1.5, remaining_s=2.0, min_attempt_s=1.0)
    assert not p.fits(delay=0.0, remaining_s=0.5, min_attempt_s=1.0)
    assert not p.fits(delay=0.0, remaining_s=-1.0, min_attempt_s=0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay_s": -0.1},
        {"max_delay_s": float("inf")},
        {"max_retry_after_s": float("nan")},
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempt_counts_from_one() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().delay(0, None)
