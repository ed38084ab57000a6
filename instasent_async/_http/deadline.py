"""The per-attempt deadline: one timer for every attempt in flight, not one per request.

An attempt registers its task and its deadline; a single timer, running only
while attempts are registered, looks at them every ``period`` seconds and
cancels the tasks past their deadline. The attempt then sees ``CancelledError``,
asks ``expired()`` whether the cancellation was the deadline's, and raises a
timeout instead. aiohttp's own ``ClientTimeout.total`` would arm and cancel a
timer per request and wrap every read of the body in it: far dearer per request.
"""

from __future__ import annotations

import asyncio
import sys
import time

_current_task = asyncio.current_task
_monotonic = time.monotonic

__all__ = ["Deadlines"]


class Deadlines:
    """Cancels the attempts that outlive ``seconds``, within ``period`` of their deadline."""

    __slots__ = ("_expired", "_handle", "_period", "_running", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        # Late by at most a tenth of the deadline (and never by more than a second).
        self._period = min(1.0, seconds / 10)
        self._running: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._handle: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<Deadlines {self.seconds}s, {len(self._running)} running>"

    def enter(self) -> asyncio.Task[object] | None:
        """Start the deadline of the current task's attempt; pass the result to ``leave``."""
        task = _current_task()
        if task is not None:
            self._running[task] = _monotonic() + self.seconds
            if self._handle is None:
                loop = task.get_loop()
                self._handle = loop.call_later(self._period, self._check, loop)
        return task

    def leave(self, task: asyncio.Task[object] | None) -> None:
        """End the deadline of an attempt (whatever its outcome)."""
        if task is not None:
            self._running.pop(task, None)
            if self._expired:
                self._expired.discard(task)

    def expired(self, task: asyncio.Task[object] | None) -> bool:
        """Whether the deadline cancelled ``task``, and no one else did too.

        Call it when the attempt sees ``CancelledError``: ``True`` means "raise a
        timeout instead"; ``False`` means the cancellation came from elsewhere.
        """
        if task is None or task not in self._expired:
            return False
        self._expired.discard(task)
        # 3.11+: undo our own cancellation; a count left means the caller cancelled too.
        return sys.version_info < (3, 11) or task.uncancel() == 0

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = _monotonic()
        for task, deadline in list(self._running.items()):
            if deadline <= now:
                del self._running[task]
                self._expired.add(task)
                task.cancel()
        self._handle = loop.call_later(self._period, self._check, loop) if self._running else None
