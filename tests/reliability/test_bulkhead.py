"""Bulkhead on a real event loop: limits, shedding, FIFO queueing, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from groundgate.errors import Overloaded
from groundgate.reliability.bulkhead import Bulkhead


async def settle() -> None:
    """Let every ready task run until it blocks."""
    for _ in range(5):
        await asyncio.sleep(0)


def assert_idle(bh: Bulkhead) -> None:
    assert (bh.in_flight, bh.waiting, len(bh._waiters)) == (0, 0, 0)


async def test_enters_while_under_the_limit_and_frees_on_exit() -> None:
    bh = Bulkhead("d", max_concurrent=2, max_queue=0, max_wait_s=1.0)
    async with bh.slot():
        assert bh.in_flight == 1
        async with bh.slot():
            assert bh.in_flight == 2
        assert bh.in_flight == 1
    assert_idle(bh)


async def test_an_exception_in_the_body_frees_the_slot() -> None:
    bh = Bulkhead("d", max_concurrent=1, max_queue=0, max_wait_s=1.0)
    with pytest.raises(RuntimeError):
        async with bh.slot():
            raise RuntimeError("boom")
    assert_idle(bh)
    async with bh.slot():
        pass


async def test_full_queue_sheds_at_once() -> None:
    bh = Bulkhead("d", max_concurrent=1, max_queue=1, max_wait_s=2.0)
    release = asyncio.Event()

    async def hold() -> None:
        async with bh.slot():
            await release.wait()

    holder = asyncio.create_task(hold())
    queued = asyncio.create_task(hold())
    await settle()
    assert (bh.in_flight, bh.waiting) == (1, 1)

    with pytest.raises(Overloaded) as info:
        async with bh.slot():
            pytest.fail("entered a full bulkhead")
    assert info.value.retry_after == 1.0
    assert info.value.status_code == 503
    assert "'d'" in info.value.message
    assert bh.snapshot()["rejected"] == 1

    release.set()
    await asyncio.gather(holder, queued)
    assert_idle(bh)


async def test_no_queue_means_shed_when_busy() -> None:
    bh = Bulkhead("d", max_concurrent=1, max_queue=0, max_wait_s=30.0, retry_after_s=2.5)
    async with bh.slot():
        with pytest.raises(Overloaded) as info:
            async with bh.slot():
                pass
    assert info.value.retry_after == 2.5
    assert_idle(bh)


async def test_waiters_enter_in_fifo_order() -> None:
    bh = Bulkhead("d", max_concurrent=1, max_queue=10, max_wait_s=5.0)
    entered: list[int] = []

    async def worker(i: int) -> None:
        async with bh.slot():
            entered.append(i)
            await asyncio.sleep(0)

    async with bh.slot():
        tasks = []
        for i in range(6):
            tasks.append(asyncio.create_task(worker(i)))
            await asyncio.sleep(0)  # arrive one after another
        assert bh.waiting == 6
    await asyncio.gather(*tasks)
    assert entered == [0, 1, 2, 3, 4, 5]
    assert_idle(bh)


async def test_a_newcomer_does_not_overtake_a_waiter() -> None:
    bh = Bulkhead("d", max_concurrent=1, max_queue=10, max_wait_s=5.0)
    entered: list[str] = []

    async def worker(name: str) -> None:
        async with bh.slot():
            entered.append(name)

    async with bh.slot():
        waiter = asyncio.create_task(worker("waiter"))
        await settle()
    # The slot was handed to the waiter, which has not run yet; a newcomer arrives now.
    assert bh.in_flight == 1
    newcomer = asyncio.create_task(worker("newcomer"))
    await asyncio.gather(waiter, newcomer)
    assert entered == ["waiter", "newcomer"]
    assert_idle(bh)


async def test_concurrency_never_exceeds_the_limit() -> None:
    bh = Bulkhead("d", max_concurrent=3, max_queue=100, max_wait_s=5.0)
    peak = 0
    done = 0

    async def worker(i: int) -> None:
        nonlocal peak, done
        async with bh.slot():
            peak = max(peak, bh.in_flight)
            await asyncio.sleep(0.001 * (i % 3))
            done += 1

    await asyncio.gather(*(worker(i) for i in range(60)))
    assert peak == 3
    assert done == 60
    assert_idle(bh)


async def test_waiting_too_long_sheds_and_cleans_the_queue() -> None:
    bh = Bulkhead("d", max_concurrent=1, max_queue=5, max_wait_s=0.02)
    async with bh.slot():
        with pytest.raises(Overloaded):
            async with bh.slot():
                pytest.fail("entered a busy bulkhead")
        assert (bh.in_flight, bh.waiting, len(bh._waiters)) == (1, 0, 0)
        assert bh.snapshot()["timed_out"] == 1
    assert_idle(bh)


async def test_the_callers_timeout_caps_the_wait() -> None:
    bh = Bulkhead("d", max_concurrent=1, max_queue=5, max_wait_s=60.0)
    async with bh.slot():
        # With max_wait_s the wait would be a minute; the outer bound catches that.
        async with asyncio.timeout(5.0):
            with pytest.raises(Overloaded):
                async with bh.slot(timeout_s=0.01):
                    pass
    assert_idle(bh)


async def test_no_time_left_sheds_when_busy_but_enters_when_free() -> None:
    bh = Bulkhead("d", max_concurrent=1, max_queue=5, max_wait_s=1.0)
    async with bh.slot(timeout_s=0.0):
        assert bh.in_flight == 1
        with pytest.raises(Overloaded):
            async with bh.slot(timeout_s=0.0):
                pass
        assert bh.waiting == 0
    assert_idle(bh)


async def test_cancelled_waiter_leaks_nothing() -> None:
    bh = Bulkhead("d", max_concurrent=1, max_queue=1, max_wait_s=30.0)
    async with bh.slot():
        waiter = asyncio.create_task(bh.slot().__aenter__())
        await settle()
        assert bh.waiting == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (bh.in_flight, bh.waiting, len(bh._waiters)) == (1, 0, 0)
        # The queue place is free again.
        other = asyncio.create_task(bh.slot().__aenter__())
        await settle()
        assert bh.waiting == 1
        other.cancel()
        with pytest.raises(asyncio.CancelledError):
            await other
    assert_idle(bh)


async def test_waiter_cancelled_right_after_being_handed_a_slot_passes_it_on() -> None:
    bh = Bulkhead("d", max_concurrent=1, max_queue=5, max_wait_s=2.0)
    entered: list[str] = []

    async def worker(name: str) -> None:
        async with bh.slot():
            entered.append(name)

    first = asyncio.create_task(worker("first"))
    second = asyncio.create_task(worker("second"))
    async with bh.slot():
        await settle()
        assert bh.waiting == 2
    # The slot now belongs to `first`, which has not run yet: cancel it in that window.
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert entered == ["second"]
    assert_idle(bh)


async def test_release_skips_a_waiter_cancelled_but_not_yet_cleaned_up() -> None:
    bh = Bulkhead("d", max_concurrent=1, max_queue=5, max_wait_s=2.0)
    entered: list[str] = []

    async def worker(name: str) -> None:
        async with bh.slot():
            entered.append(name)

    first = asyncio.create_task(worker("first"))
    second = asyncio.create_task(worker("second"))
    async with bh.slot():
        await settle()
        # Cancelled, but its cleanup has not run when the slot is released just below.
        first.cancel()
        assert bh.waiting == 1
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert entered == ["second"]
    assert_idle(bh)


async def test_waiter_handed_a_slot_as_its_wait_expires_uses_it() -> None:
    bh = Bulkhead("d", max_concurrent=1, max_queue=5, max_wait_s=0.01)
    entered: list[str] = []

    async def worker() -> None:
        async with bh.slot():
            entered.append("waiter")

    waiter = asyncio.create_task(worker())
    async with bh.slot():
        await settle()
        assert bh.waiting == 1
        # Block the loop past the waiter's deadline, so its timeout and our release fall in
        # the same loop iteration: the release comes first and the waiter is then cancelled.
        time.sleep(0.03)  # noqa: ASYNC251
        await asyncio.sleep(0)
    await waiter
    assert entered == ["waiter"]
    assert_idle(bh)


async def test_snapshot() -> None:
    bh = Bulkhead("up:gpt", max_concurrent=2, max_queue=3, max_wait_s=1.0)
    async with bh.slot():
        assert bh.snapshot() == {
            "name": "up:gpt",
            "max_concurrent": 2,
            "in_flight": 1,
            "max_queue": 3,
            "waiting": 0,
            "rejected": 0,
            "timed_out": 0,
        }


@pytest.mark.parametrize(
    ("max_concurrent", "max_queue", "max_wait_s"), [(0, 1, 1.0), (1, -1, 1.0), (1, 1, -1.0)]
)
def test_invalid_limits_are_refused(max_concurrent: int, max_queue: int, max_wait_s: float) -> None:
    with pytest.raises(ValueError):
        Bulkhead("d", max_concurrent, max_queue, max_wait_s)
