"""RateLimitGovernor, the async shell: FIFO waiters, timers, max_wait, loops, events, snapshots.

Everything runs on a virtual clock (``run_virtual``): waits of seconds or hours
pass at once, and a governor that would wait forever makes the loop raise.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from instasent_async import RateLimitError
from instasent_async._core.headers import AnswerInfo
from instasent_async._ratelimit import (
    BucketKey,
    BucketSnapshot,
    Permit,
    RateLimitEvent,
    RateLimitGovernor,
    rate_limit_info,
)

KEY = BucketKey("0123456789ab", "org", "default")
WALL0 = 1_750_000_000.0
RunVirtual = Callable[[Coroutine[Any, Any, Any]], Any]


def answer(remaining: int, reset_in: float, limit: int = 50) -> AnswerInfo:
    return AnswerInfo(limit, remaining, None, reset_in, None, None, WALL0, None)


NOTHING = AnswerInfo(None, None, None, None, None, None, WALL0, None)


def governor(**kwargs: Any) -> RateLimitGovernor:
    """A governor on the running (virtual) loop's clock."""
    loop = asyncio.get_running_loop()
    return RateLimitGovernor(clock=loop.time, wall_clock=lambda: WALL0 + loop.time(), **kwargs)


def snap(gov: RateLimitGovernor) -> BucketSnapshot:
    (found,) = gov.snapshot()
    return found


def open_bucket(gov: RateLimitGovernor, remaining: int, reset_in: float = 30.0) -> None:
    probe = gov.try_acquire(KEY)
    assert probe is not None and probe.probe
    gov.release(probe, 200, answer(remaining, reset_in))


async def settle() -> None:
    """Let every ready callback run (no virtual time passes)."""
    for _ in range(20):
        await asyncio.sleep(0)


# -- FIFO, cancellation, probes ----------------------------------------------------------------


def test_waiters_are_served_in_fifo_order(run_virtual: RunVirtual) -> None:
    async def main() -> None:
        gov = governor(pacing="burst")
        probe = gov.try_acquire(KEY)
        assert probe is not None
        order: list[int] = []
        tasks = []
        for i in range(5):
            task = asyncio.create_task(gov.acquire(KEY))
            task.add_done_callback(lambda _t, i=i: order.append(i))
            tasks.append(task)
        await settle()
        assert snap(gov).waiters == 5
        assert gov.try_acquire(KEY) is None  # never jumps the queue
        gov.release(probe, 200, answer(3, 30.0))
        await settle()
        assert order == [0, 1, 2]
        gov.release(tasks[0].result(), 200, answer(10, 60.0))  # a newer window with room
        await settle()
        assert order == [0, 1, 2, 3, 4]
        assert snap(gov).in_flight == 4

    run_virtual(main())


def test_cancelled_waiters_hold_nothing_and_block_no_one(run_virtual: RunVirtual) -> None:
    async def main() -> None:
        gov = governor()
        probe = gov.try_acquire(KEY)
        assert probe is not None
        waiters = [asyncio.create_task(gov.acquire(KEY)) for _ in range(100)]
        await settle()
        for task in waiters[::2]:
            task.cancel()
        await settle()
        assert snap(gov).waiters == 50
        for task in waiters[1::2]:
            task.cancel()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        assert (snap(gov).waiters, snap(gov).in_flight) == (0, 1)
        gov.release(probe, 200, answer(10, 30.0))
        assert isinstance(await gov.acquire(KEY), Permit)
        assert snap(gov).in_flight == 1

    run_virtual(main())


def test_a_waiter_cancelled_right_after_its_grant_gives_the_permit_back(
    run_virtual: RunVirtual,
) -> None:
    async def main() -> None:
        gov = governor(pacing="burst")
        probe = gov.try_acquire(KEY)
        assert probe is not None
        first = asyncio.create_task(gov.acquire(KEY))
        second = asyncio.create_task(gov.acquire(KEY))
        await settle()
        gov.release(probe, 200, answer(1, 30.0))  # room for one: granted to `first`...
        assert snap(gov).in_flight == 1
        first.cancel()  # ...which is cancelled before it could run
        with pytest.raises(asyncio.CancelledError):
            await first
        assert isinstance(await second, Permit)
        assert snap(gov).in_flight == 1  # only `second` holds one

    run_virtual(main())


def test_a_probe_that_fails_hands_probing_to_the_next_waiter(run_virtual: RunVirtual) -> None:
    async def main() -> None:
        gov = governor()
        probe = gov.try_acquire(KEY)
        assert probe is not None
        tasks = [asyncio.create_task(gov.acquire(KEY)) for _ in range(3)]
        await settle()
        gov.release(probe, None, None)  # cancelled or connection refused
        second_probe = await tasks[0]
        assert second_probe.probe
        assert not tasks[1].done() and not tasks[2].done()
        gov.release(second_probe, 200, answer(10, 30.0))
        rest = await asyncio.gather(*tasks[1:])
        assert not any(p.probe for p in rest)

    run_virtual(main())


def test_an_empty_window_wakes_its_waiters_at_the_reset_with_one_timer(
    run_virtual: RunVirtual,
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        events: list[RateLimitEvent] = []
        gov = governor(pacing="burst", on_event=events.append)
        open_bucket(gov, 0, reset_in=0.3)
        calls = 0
        dispatch = gov._dispatch

        def counting(bucket: Any) -> None:
            nonlocal calls
            calls += 1
            dispatch(bucket)

        gov._dispatch = counting  # type: ignore[method-assign]
        tasks = [asyncio.create_task(gov.acquire(KEY)) for _ in range(3)]
        probe = await tasks[0]  # at the reset one probe asks what the new window holds
        assert probe.probe and loop.time() == pytest.approx(1000.3)
        assert not tasks[1].done()
        gov.release(probe, 200, answer(5, 30.0))
        rest = await asyncio.gather(*tasks[1:])
        assert not any(p.probe for p in rest) and loop.time() == pytest.approx(1000.3)
        assert calls <= 6  # woken by one timer and the answer, not by polling
        assert gov.waits == 3
        assert [e.kind for e in events] == ["wait"] * 3
        assert all(e.bucket == "org/default" for e in events)

    run_virtual(main())


def test_a_waiter_until_the_reset_wakes_when_an_answer_brings_a_new_window(
    run_virtual: RunVirtual,
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        gov = governor(pacing="burst")
        open_bucket(gov, 1, reset_in=30.0)
        in_flight = gov.try_acquire(KEY)
        assert in_flight is not None
        waiter = asyncio.create_task(gov.acquire(KEY))
        await settle()
        gov.release(in_flight, 200, answer(9, 60.0))  # already a newer window
        assert isinstance(await waiter, Permit)
        assert loop.time() == pytest.approx(1000.0)

    run_virtual(main())


def test_a_429_closes_the_bucket_then_one_probe_then_the_rest(run_virtual: RunVirtual) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        kinds: list[str] = []
        gov = governor(pacing="burst")
        gov.add_listener(lambda e: kinds.append(e.kind))
        open_bucket(gov, 50, reset_in=30.0)
        p = gov.try_acquire(KEY)
        assert p is not None
        gov.release(p, 429, answer(0, 0.3))
        assert snap(gov).closed
        tasks = [asyncio.create_task(gov.acquire(KEY)) for _ in range(20)]
        probe = await tasks[0]  # FIFO: the oldest waiter probes
        assert probe.probe and loop.time() == pytest.approx(1000.3)
        await settle()
        assert snap(gov).in_flight == 1 and not any(t.done() for t in tasks[1:])
        gov.release(probe, 200, answer(40, 60.0))
        assert len(await asyncio.gather(*tasks[1:])) == 19
        assert loop.time() == pytest.approx(1000.3)  # all at once: the probe showed room
        assert not snap(gov).closed
        assert kinds[0] == "throttled"

    run_virtual(main())


# -- max_wait ----------------------------------------------------------------------------------


def test_a_permit_later_than_max_wait_raises_at_once_with_reset_at(run_virtual: RunVirtual) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        gov = governor(max_wait=5.0)
        open_bucket(gov, 0, reset_in=82800.0)
        with pytest.raises(RateLimitError) as info:
            await gov.acquire(KEY)
        assert loop.time() == 1000.0  # at once, not after 5 s
        assert info.value.status == 429
        assert info.value.reset_at == dt.datetime.fromtimestamp(
            WALL0 + 1000.0 + 82800.0, dt.timezone.utc
        )
        assert "org/default" in str(info.value) and "not sent" in str(info.value)
        # A caller's own bound wins over the governor's.
        with pytest.raises(RateLimitError):
            await gov.acquire(KEY, max_wait=60.0)
        assert (snap(gov).waiters, snap(gov).in_flight) == (0, 0)

    run_virtual(main())


def test_waiters_beyond_max_wait_fail_as_soon_as_a_429_says_so(run_virtual: RunVirtual) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        gov = governor(max_wait=10.0)
        open_bucket(gov, 1, reset_in=30.0)
        held = gov.try_acquire(KEY)
        assert held is not None
        tasks = [asyncio.create_task(gov.acquire(KEY)) for _ in range(3)]
        await settle()
        gov.release(held, 429, AnswerInfo(50, 0, None, 3600.0, None, None, WALL0, None))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, RateLimitError) for r in results)
        assert loop.time() == 1000.0
        assert (snap(gov).waiters, snap(gov).in_flight) == (0, 0)

    run_virtual(main())


def test_a_wait_on_a_slow_probe_ends_at_max_wait(run_virtual: RunVirtual) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        gov = governor()
        probe = gov.try_acquire(KEY)  # never answered within the test
        assert probe is not None
        with pytest.raises(RateLimitError) as info:
            await gov.acquire(KEY, max_wait=2.5)
        assert loop.time() == pytest.approx(1002.5)
        assert info.value.reset_at is None  # nobody knows when
        gov.release(probe, None, None)

    run_virtual(main())


def test_max_wait_none_waits_as_long_as_it_takes(run_virtual: RunVirtual) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        gov = governor(max_wait=None)
        open_bucket(gov, 0, reset_in=82800.0)
        permit = await gov.acquire(KEY)
        assert permit.probe and loop.time() == pytest.approx(1000.0 + 82800.0)

    run_virtual(main())


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "5", True])
def test_a_bad_max_wait_or_pacing_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_wait"):
        RateLimitGovernor(max_wait=bad)
    with pytest.raises(ValueError, match="pacing"):
        RateLimitGovernor(pacing="fast")  # type: ignore[arg-type]


# -- several event loops ---------------------------------------------------------------------


def test_a_governor_shared_by_two_loops_survives_one_closing(
    virtual_loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    first, second = virtual_loop_factory(), virtual_loop_factory()
    gov = RateLimitGovernor(clock=second.time)

    async def stranded() -> list[asyncio.Task[Permit]]:
        probe = gov.try_acquire(KEY)  # a probe whose answer never comes: its loop closes
        assert probe is not None
        tasks = [asyncio.create_task(gov.acquire(KEY)) for _ in range(3)]
        await settle()
        return tasks

    tasks = first.run_until_complete(stranded())
    first.close()  # with its waiters and its probe still pending
    assert all(not t.done() for t in tasks)

    async def later() -> None:
        permit = await asyncio.wait_for(gov.acquire(KEY), 10)
        assert permit.probe  # the lost probe was ended, this request asks again
        waiter = asyncio.create_task(gov.acquire(KEY))
        await settle()
        waiter.cancel()  # never 'Event loop is closed'
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gov.release(permit, 200, answer(10, 30.0))
        assert (snap(gov).in_flight, snap(gov).waiters) == (0, 0)

    try:
        second.run_until_complete(later())
    finally:
        second.close()
    for task in tasks:  # the stranded coroutines of the closed loop
        task._coro.close()  # type: ignore[attr-defined]
    assert snap(gov).in_flight == 0


def test_waiters_on_two_live_loops_are_each_woken_by_their_own_timer(
    virtual_loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    first, second = virtual_loop_factory(), virtual_loop_factory()
    gov = RateLimitGovernor(clock=second.time)

    async def opened() -> None:
        probe = gov.try_acquire(KEY)
        assert probe is not None
        gov.release(probe, 200, answer(0, 2.0))

    async def queue_one() -> asyncio.Task[Permit]:
        task = asyncio.create_task(gov.acquire(KEY))
        await settle()
        return task

    async def behind() -> asyncio.Task[Permit]:
        task = asyncio.create_task(gov.acquire(KEY))
        await asyncio.sleep(2.5)  # only this loop runs: its own timer must fire at the reset
        assert (snap(gov).in_flight, snap(gov).waiters) == (1, 1)  # the head got the probe
        return task

    try:
        second.run_until_complete(opened())
        head = first.run_until_complete(queue_one())  # then the first loop stops running
        waiting = second.run_until_complete(behind())
        probe = first.run_until_complete(head)
        assert probe.probe
        gov.release(probe, 200, answer(5, 30.0))
        assert not second.run_until_complete(waiting).probe
    finally:
        first.close()
        second.close()


# -- events, logs, snapshots -------------------------------------------------------------------


def test_snapshot_reports_every_bucket(run_virtual: RunVirtual) -> None:
    async def main() -> None:
        gov = governor(pacing="burst")
        open_bucket(gov, 7, reset_in=20.0)
        held = gov.try_acquire(KEY)
        assert held is not None
        s = snap(gov)
        assert (s.limit, s.remaining, s.in_flight, s.waiters, s.closed, s.unmanaged) == (
            50,
            7,
            1,
            0,
            False,
            None,
        )
        assert s.reset_at == dt.datetime.fromtimestamp(WALL0 + 1000.0 + 20.0, dt.timezone.utc)

    run_virtual(main())


def test_an_unmanaged_bucket_says_why_once(
    run_virtual: RunVirtual, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        gov = governor()
        bad = AnswerInfo(10, 11, None, 5.0, None, None, WALL0, "Remaining above Limit")
        with caplog.at_level(logging.DEBUG, logger="instasent_async.ratelimit"):
            for _ in range(5):
                p = gov.try_acquire(KEY)
                assert p is not None
                gov.release(p, 200, bad)
        s = snap(gov)
        assert (s.unmanaged, s.remaining, s.reset_at) == ("Remaining above Limit", None, None)
        said = [r for r in caplog.records if "not paced" in r.getMessage()]
        assert len(said) == 1 and "Remaining above Limit" in said[0].getMessage()

    run_virtual(main())


def test_callback_errors_are_logged_and_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def broken(event: RateLimitEvent) -> None:
        raise RuntimeError("progress bar exploded")

    gov = RateLimitGovernor(on_event=broken)
    gov.add_listener(lambda e: seen.append(e.kind))
    with caplog.at_level(logging.WARNING, logger="instasent_async.ratelimit"):
        gov.emit(RateLimitEvent(kind="retry", bucket="org/default", delay=0.1, status=503))
    assert seen == ["retry"]
    assert "callback raised" in caplog.text
    gov.remove_listener(seen.append)  # never added: ignored


def test_throttles_and_waits_are_logged_at_debug_without_the_token(
    run_virtual: RunVirtual, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        gov = governor()
        open_bucket(gov, 10)
        with caplog.at_level(logging.DEBUG, logger="instasent_async.ratelimit"):
            refused = gov.try_acquire(KEY)
            assert refused is not None
            gov.release(refused, 429, answer(0, 3.0))
            permit = await gov.acquire(KEY)
            gov.release(permit, 200, answer(5, 30.0, limit=6))
        text = caplog.text
        assert "bucket org/default throttled (429): closed for 3.000s" in text
        assert "waited 3.000s for a permit in bucket org/default" in text
        assert "reopened" in text and "limit changed from 50 to 6" in text
        assert KEY.token not in text

    run_virtual(main())


def test_rate_limit_info_for_errors() -> None:
    assert rate_limit_info(None) is None
    assert rate_limit_info(NOTHING) is None
    info = rate_limit_info(AnswerInfo(600, 0, None, 30.0, None, None, WALL0, None))
    assert info is not None and (info.limit, info.remaining) == (600, 0)
    assert info.reset_at == dt.datetime.fromtimestamp(WALL0 + 30.0, dt.timezone.utc)
    garbage = rate_limit_info(AnswerInfo(None, None, None, None, None, None, WALL0, "unreadable"))
    assert garbage is not None and garbage.reset_at is None
