"""``Deadlines``: one timer cancels the attempts past their deadline, and only those.

The clock is moved by the test (the module's ``_monotonic`` patched): nothing waits."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from instasent_async._http import deadline
from instasent_async._http.deadline import Deadlines


async def _attempt(deadlines: Deadlines, started: asyncio.Event) -> str:
    task = deadlines.enter()
    try:
        started.set()
        await asyncio.Event().wait()  # an answer that never comes
        return "answered"
    except asyncio.CancelledError:
        if not deadlines.expired(task):
            raise
        return "timed out"
    finally:
        deadlines.leave(task)


async def _started(deadlines: Deadlines) -> asyncio.Future[str]:
    """An attempt under ``deadlines``, started and waiting for its answer."""
    started = asyncio.Event()
    task = asyncio.ensure_future(_attempt(deadlines, started))
    await started.wait()
    return task


def _move_clock(monkeypatch: pytest.MonkeyPatch, deadlines: Deadlines, seconds: float) -> None:
    """Let ``seconds`` pass on the deadlines' clock and run their check."""
    now = time.monotonic()
    monkeypatch.setattr(deadline, "_monotonic", lambda: now + seconds)
    deadlines._check(asyncio.get_running_loop())


async def test_an_attempt_past_its_deadline_is_cancelled_and_told_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deadlines = Deadlines(5.0)
    late = await _started(deadlines)
    _move_clock(monkeypatch, deadlines, 4.9)
    assert not late.done()  # not yet
    _move_clock(monkeypatch, deadlines, 5.2)
    assert await late == "timed out"
    assert repr(deadlines) == "<Deadlines 5.0s, 0 running>"


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    task = await _started(Deadlines(5.0))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_caller_cancelling_at_the_deadline_still_cancels_where_python_can_tell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deadlines = Deadlines(1.0)
    task = await _started(deadlines)
    _move_clock(monkeypatch, deadlines, 2.0)
    task.cancel()  # the caller too, before the task runs again
    if sys.version_info >= (3, 11):
        with pytest.raises(asyncio.CancelledError):
            await task
    else:  # no uncancel(): the two cancellations look like one, the deadline's
        assert await task == "timed out"


async def test_the_timer_runs_only_while_attempts_are_in_flight() -> None:
    deadlines = Deadlines(0.5)
    assert deadlines._handle is None
    task = await _started(deadlines)
    assert deadlines._handle is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadlines._check(asyncio.get_running_loop())
    assert deadlines._handle is None and deadlines._running == {}
