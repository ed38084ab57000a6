"""RateLimitGovernor waiters on a real event loop: FIFO, cancellation, probes, wake-ups."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from instasent_async._ratelimit import (
    BucketKey,
    BucketSnapshot,
    Permit,
    RateLimitEvent,
    RateLimitGovernor,
)

KEY = BucketKey("0123456789ab", "org", "default")


def headers(remaining: int, reset: str, limit: int = 50) -> CIMultiDictProxy[str]:
    """Rate-limit headers with a relative reset (seconds from now)."""
    return CIMultiDictProxy(
        CIMultiDict(
            {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": reset,
            }
        )
    )


def snap(gov: RateLimitGovernor) -> BucketSnapshot:
    (found,) = gov.snapshot()
    return found


async def until(condition: object, what: str) -> None:
    """Let other tasks run until ``condition()`` holds (bounded)."""
    for _ in range(1000):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


def open_bucket(gov: RateLimitGovernor, remaining: int, reset: str = "30") -> None:
    probe = gov.try_acquire(KEY)
    assert probe is not None and probe.probe
    gov.release(probe, 200, headers(remaining, reset))


async def test_waiters_are_served_in_fifo_order() -> None:
    gov = RateLimitGovernor(pacing="burst")
    probe = gov.try_acquire(KEY)
    assert probe is not None
    order: list[int] = []
    tasks = []
    for i in range(5):
        task = asyncio.create_task(gov.acquire(KEY))
        task.add_done_callback(lambda _t, i=i: order.append(i))
        tasks.append(task)
    await until(lambda: snap(gov).waiters == 5, "5 waiters queued")
    # try_acquire never jumps the queue.
    assert gov.try_acquire(KEY) is None
    gov.release(probe, 200, headers(3, "30"))
    await until(lambda: len(order) == 3, "three granted")
    assert order == [0, 1, 2]
    assert not tasks[3].done() and not tasks[4].done()
    # A newer window with room wakes the rest, still in order.
    first = tasks[0].result()
    gov.release(first, 200, headers(10, "60"))
    await until(lambda: len(order) == 5, "all granted")
    assert order == [0, 1, 2, 3, 4]
    assert snap(gov).in_flight == 4


async def test_cancelled_waiters_hold_nothing_and_block_no_one() -> None:
    gov = RateLimitGovernor()
    probe = gov.try_acquire(KEY)
    assert probe is not None
    waiters = [asyncio.create_task(gov.acquire(KEY)) for _ in range(100)]
    await until(lambda: snap(gov).waiters == 100, "100 waiters queued")
    for task in waiters[::2]:
        task.cancel()
    await until(lambda: snap(gov).waiters == 50, "cancelled waiters gone")
    for task in waiters[1::2]:
        task.cancel()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    s = snap(gov)
    assert (s.waiters, s.in_flight) == (0, 1)
    gov.release(probe, 200, headers(10, "30"))
    permit = await asyncio.wait_for(gov.acquire(KEY), 5)
    assert isinstance(permit, Permit)
    assert snap(gov).in_flight == 1


async def test_a_waiter_cancelled_right_after_its_grant_gives_the_permit_back() -> None:
    gov = RateLimitGovernor(pacing="burst")
    probe = gov.try_acquire(KEY)
    assert probe is not None
    first = asyncio.create_task(gov.acquire(KEY))
    second = asyncio.create_task(gov.acquire(KEY))
    await until(lambda: snap(gov).waiters == 2, "two waiters")
    gov.release(probe, 200, headers(1, "30"))  # room for one: granted to `first`...
    assert snap(gov).in_flight == 1
    first.cancel()  # ...which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await first
    permit = await asyncio.wait_for(second, 5)
    assert isinstance(permit, Permit)
    assert snap(gov).in_flight == 1  # only `second` holds one


async def test_a_probe_that_fails_hands_probing_to_the_next_waiter() -> None:
    gov = RateLimitGovernor()
    probe = gov.try_acquire(KEY)
    assert probe is not None
    tasks = [asyncio.create_task(gov.acquire(KEY)) for _ in range(3)]
    await until(lambda: snap(gov).waiters == 3, "three waiters")
    gov.release(probe, None, None)  # cancelled or connection refused
    second_probe = await asyncio.wait_for(tasks[0], 5)
    assert second_probe.probe
    assert not tasks[1].done() and not tasks[2].done()
    gov.release(second_probe, 200, headers(10, "30"))
    rest = await asyncio.wait_for(asyncio.gather(*tasks[1:]), 5)
    assert not any(p.probe for p in rest)


async def test_a_waiter_sleeping_until_the_reset_wakes_when_an_answer_brings_room() -> None:
    gov = RateLimitGovernor(pacing="burst")
    open_bucket(gov, 1, reset="30")
    in_flight = gov.try_acquire(KEY)
    assert in_flight is not None
    waiter = asyncio.create_task(gov.acquire(KEY))
    await until(lambda: snap(gov).waiters == 1, "waiting for the 30 s reset")
    # The answer of the request in flight already belongs to a new window.
    gov.release(in_flight, 200, headers(9, "60"))
    permit = await asyncio.wait_for(waiter, 5)
    assert isinstance(permit, Permit)


async def test_an_empty_window_wakes_its_waiters_at_the_reset_without_polling() -> None:
    events: list[RateLimitEvent] = []
    gov = RateLimitGovernor(pacing="burst", on_event=events.append)
    open_bucket(gov, 0, reset="0.3")
    calls = 0
    dispatch = gov._dispatch

    def counting(bucket: object) -> None:
        nonlocal calls
        calls += 1
        dispatch(bucket)  # type: ignore[arg-type]

    gov._dispatch = counting  # type: ignore[method-assign]
    start = time.monotonic()
    permits = await asyncio.wait_for(asyncio.gather(*(gov.acquire(KEY) for _ in range(3))), 5)
    waited = time.monotonic() - start
    assert len(permits) == 3
    assert waited >= 0.25  # not before the reset
    assert calls <= 12  # woken by one timer, not by a busy loop
    assert gov.waits == 3
    assert [e.kind for e in events] == ["wait"] * 3
    assert all(e.bucket == "org/default" and e.delay >= 0.25 for e in events)


async def test_429_closes_the_bucket_then_one_probe_then_the_rest() -> None:
    kinds: list[str] = []
    gov = RateLimitGovernor(pacing="burst")
    gov.add_listener(lambda e: kinds.append(e.kind))
    open_bucket(gov, 50, reset="30")
    p = gov.try_acquire(KEY)
    assert p is not None
    gov.release(p, 429, headers(0, "0.3"))
    assert snap(gov).closed
    tasks = [asyncio.create_task(gov.acquire(KEY)) for _ in range(20)]
    done, pending = await asyncio.wait(tasks, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1
    (first,) = done
    probe = first.result()
    assert probe.probe
    assert first is tasks[0]  # FIFO: the oldest waiter probes
    # The probe is alone in flight until it answers.
    await until(lambda: snap(gov).waiters == 19, "19 still waiting")
    assert snap(gov).in_flight == 1 and not any(t.done() for t in pending)
    gov.release(probe, 200, headers(40, "60"))
    rest = await asyncio.wait_for(asyncio.gather(*pending), 5)
    assert len(rest) == 19
    assert not snap(gov).closed
    assert kinds[0] == "throttled"


async def test_waits_are_logged_at_debug_with_bucket_and_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gov = RateLimitGovernor()
    open_bucket(gov, 0, reset="0.1")
    with caplog.at_level(logging.DEBUG, logger="instasent_async.ratelimit"):
        await asyncio.wait_for(gov.acquire(KEY), 5)
    (record,) = [r for r in caplog.records if "waited" in r.getMessage()]
    assert "org/default" in record.getMessage()
    assert record.levelno == logging.DEBUG
