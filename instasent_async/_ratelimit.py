"""The rate-limit governor: the async shell around the pure bucket core.

Every decision (who may send, what an answer means, how long a 429 closes a
bucket) is made by ``_core.bucket.Bucket``; this module only acts on them: it
keeps one bucket per key, queues the coroutines that must wait (FIFO, on any
number of event loops), wakes them with one timer per bucket and loop, raises
``RateLimitError`` for a wait longer than ``max_wait``, tells listeners and the
log what happened, and snapshots the buckets.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal

from ._core.bucket import CLOSED, OPEN, QUIET, UNMANAGED, Notice, Permit
from ._core.headers import AnswerInfo
from ._errors import RateLimitError, RateLimitInfo
from ._governed import GovernedBucket, LoopTimer, Waiter
from ._ratelimit_values import (
    DEFAULT_MAX_WAIT,
    BucketKey,
    BucketSnapshot,
    RateLimitEvent,
    check_max_wait,
    rate_limit_info,
)

if TYPE_CHECKING:
    from ._bucket_store import BucketStore, StoreLinks

__all__ = [
    "DEFAULT_MAX_WAIT",
    "BucketKey",
    "BucketSnapshot",
    "Permit",
    "RateLimitEvent",
    "RateLimitGovernor",
    "check_max_wait",
    "rate_limit_info",
]

log = logging.getLogger("instasent_async.ratelimit")

# Idle buckets are swept when there are more than this many.
_MAX_BUCKETS: Final = 4096
_UTC: Final = _dt.timezone.utc
_DEFAULT: Any = object()


class RateLimitGovernor:
    """Grants request permits per rate-limit bucket from the servers' own headers.

    One governor is shared by every coroutine and resource of a client and of its
    ``with_options()`` siblings (pass the same instance as ``rate_limit=`` to share
    it between clients, also on other event loops of the same thread).
    ``pacing="spread"`` (default) spreads the remaining allowance over the time left
    in the window; ``"burst"`` sends as long as the window has room. ``max_wait``
    (seconds, ``None`` = no bound) is how long ``acquire`` may wait when its caller
    gives no bound of its own. ``on_event`` receives a ``RateLimitEvent`` for every
    wait, throttle (429) and retry. Not thread-safe.

    ``store`` (e.g. ``RedisBucketStore``) shares every bucket with the other
    processes using the same store and token: permits are leased from it in small
    blocks; while it does not answer, a bucket falls back to the headers alone.

    ``clock``/``wall_clock`` replace ``time.monotonic``/``time.time`` (for tests).

    Raises:
        ValueError: unknown ``pacing``, or a negative ``max_wait``.
    """

    def __init__(
        self,
        *,
        pacing: Literal["spread", "burst"] = "spread",
        on_event: Callable[[RateLimitEvent], None] | None = None,
        max_wait: float | None = DEFAULT_MAX_WAIT,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        store: BucketStore | None = None,
    ) -> None:
        if pacing not in ("spread", "burst"):
            raise ValueError(f"pacing must be 'spread' or 'burst', got {pacing!r}")
        self._max_wait = check_max_wait(max_wait)
        self._spread = pacing == "spread"
        self._pacing = pacing
        self._on_event = on_event
        self._listeners: list[Callable[[RateLimitEvent], None]] = []
        self._clock = clock
        self._wall = wall_clock
        self._buckets: dict[BucketKey, GovernedBucket] = {}
        self._waits = 0
        self._links: StoreLinks | None = None
        if store is not None:
            from ._bucket_store import StoreLinks

            self._links = StoreLinks(store, clock, self._dispatch)

    def __repr__(self) -> str:
        return f"<RateLimitGovernor pacing={self._pacing!r} buckets={len(self._buckets)}>"

    @property
    def pacing(self) -> str:
        """``"spread"`` or ``"burst"``."""
        return self._pacing

    @property
    def max_wait(self) -> float | None:
        """The longest ``acquire`` waits when its caller gives no bound (``None``: no bound)."""
        return self._max_wait

    @property
    def waits(self) -> int:
        """How many permits so far had to wait (pacing, empty window, 429 or probe)."""
        return self._waits

    # -- events -------------------------------------------------------------

    def add_listener(self, cb: Callable[[RateLimitEvent], None]) -> None:
        """Also call ``cb`` for every event (after ``on_event``)."""
        self._listeners.append(cb)

    def remove_listener(self, cb: Callable[[RateLimitEvent], None]) -> None:
        """Stop calling ``cb``; a callback that was never added is ignored."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(cb)

    def emit(self, event: RateLimitEvent) -> None:
        """Pass ``event`` to ``on_event`` and every listener.

        A callback that raises is logged and skipped; it never breaks a request.
        """
        callbacks = (
            (*self._listeners,) if self._on_event is None else (self._on_event, *self._listeners)
        )
        for cb in callbacks:
            try:
                cb(event)
            except Exception:
                log.warning("a rate-limit event callback raised; ignored", exc_info=True)

    # -- permits ------------------------------------------------------------

    def _bucket(self, key: BucketKey) -> GovernedBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._sweep()
            links = self._links
            bucket = self._buckets[key] = (
                GovernedBucket(key, self._spread)
                if links is None
                else links.bucket(key, self._spread)
            )
        return bucket

    def _sweep(self) -> None:
        now = self._clock()
        for key, b in list(self._buckets.items()):
            if not b.in_flight and not b.waiters and b.mode != CLOSED and b.window_ends_at <= now:
                del self._buckets[key]

    def try_acquire(self, key: BucketKey) -> Permit | None:
        """A permit if one can be granted right now without waiting, else ``None``.

        Synchronous: never awaits. Returns ``None`` whenever others already wait in
        this bucket (they are served first).
        """
        b = self._buckets.get(key)
        if b is None:
            b = self._bucket(key)
        if b.waiters:
            return None
        got = b.grant(self._clock())
        if type(got) is not Permit:
            return None
        if got.probe:
            with contextlib.suppress(RuntimeError):  # outside a running loop: nothing to watch
                self._probing(b, got, asyncio.get_running_loop())
        return got

    async def acquire(self, key: BucketKey, *, max_wait: float | None = _DEFAULT) -> Permit:
        """Wait for a permit in ``key``'s bucket and return it.

        Waiters are served in FIFO order. ``max_wait`` (default: the governor's)
        bounds the wait: when the permit would come later, ``RateLimitError`` is
        raised at once (as soon as that is known, and at the latest after
        ``max_wait`` seconds). Cancellation-safe: a waiter cancelled before or just
        after being granted holds nothing and blocks no one.

        Raises:
            RateLimitError: no permit within ``max_wait`` (``reset_at``: when the
                bucket expects one, if known).
        """
        if max_wait is _DEFAULT:
            max_wait = self._max_wait
        b = self._bucket(key)
        loop = asyncio.get_running_loop()
        started = self._clock()
        if not b.waiters:
            got = b.grant(started)
            if type(got) is Permit:
                if got.probe:
                    self._probing(b, got, loop)
                return got
        waiter = Waiter(loop, math.inf if max_wait is None else started + max_wait)
        b.waiters.append(waiter)
        timer = b.loops.get(loop)
        if timer is None:
            timer = b.loops[loop] = LoopTimer()
        timer.waiters += 1
        if max_wait is not None:
            waiter.give_up_timer = loop.call_later(max_wait, self._give_up, b, waiter)
        self._dispatch(b)
        fut = waiter.future
        try:
            permit = await fut
        except BaseException:
            # Cancelled (or the loop was torn down): hold nothing, block no one.
            if fut.done() and not fut.cancelled():
                if fut.exception() is None:
                    self.release(fut.result(), None, None, sent=False)
            else:
                self._forget(b, waiter)
                with contextlib.suppress(ValueError):
                    b.waiters.remove(waiter)
                self._dispatch(b)
            raise
        waited = self._clock() - started
        self._waits += 1
        log.debug("waited %.3fs for a permit in bucket %s", waited, b.label)
        if self._on_event is not None or self._listeners:
            self.emit(RateLimitEvent(kind="wait", bucket=b.label, delay=waited))
        return permit

    def release(
        self, permit: Permit, status: int | None, info: AnswerInfo | None, *, sent: bool = True
    ) -> None:
        """Give a permit back with the answer's status and parsed headers.

        Call exactly once per permit, also when the request failed or was cancelled
        (``status=None, info=None``; ``sent=False`` when it certainly never reached
        the server, so its unit was not spent); later calls are ignored. Never
        raises on missing or garbage headers.
        """
        b: GovernedBucket = permit.bucket  # type: ignore[assignment]
        notice = b.observe(permit, status, info, self._clock(), sent=sent)
        if permit is b.probe_permit:
            b.probe_permit = b.probe_loop = None
        if notice is not QUIET:
            self._tell(b, notice)
        if b.waiters:
            self._dispatch(b)

    def _probing(self, b: GovernedBucket, permit: Permit, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the probe and its loop: a probe lost with a closed loop ends."""
        b.probe_permit = permit
        b.probe_loop = loop

    def _tell(self, b: GovernedBucket, notice: Notice) -> None:
        """Log and emit what the core says changed."""
        if notice.closed_for is not None:
            log.debug("bucket %s throttled (429): closed for %.3fs", b.label, notice.closed_for)
            if self._on_event is not None or self._listeners:
                self.emit(
                    RateLimitEvent(
                        kind="throttled", bucket=b.label, delay=notice.closed_for, status=429
                    )
                )
        if notice.unmanaged_because is not None and not b.said_unmanaged:
            b.said_unmanaged = True
            log.debug("bucket %s not paced: %s", b.label, notice.unmanaged_because)
        if notice.limit_change is not None:
            log.debug("bucket %s: limit changed from %d to %d", b.label, *notice.limit_change)
        if notice.reopened:
            log.debug("bucket %s reopened: the probe after a 429 was answered", b.label)

    # -- waking waiters -----------------------------------------------------

    def _forget(self, b: GovernedBucket, waiter: Waiter) -> None:
        """``waiter`` leaves the queue: stop its give-up timer, count it off its loop."""
        if waiter.give_up_timer is not None:
            waiter.give_up_timer.cancel()
        timer = b.loops.get(waiter.loop)
        if timer is not None:
            timer.waiters -= 1
            if not timer.waiters:
                if timer.handle is not None:
                    timer.handle.cancel()
                del b.loops[waiter.loop]

    def _dispatch(self, b: GovernedBucket) -> None:
        """Grant permits to waiters in FIFO order; fail those that would wait too long.

        Waiters whose loop is closed are dropped (their tasks are gone), and so is
        a probe sent from a closed loop (it will never be answered). One timer per
        loop with waiters wakes the bucket when the core says to look again.
        """
        now = self._clock()
        probe_loop = b.probe_loop
        if probe_loop is not None and probe_loop.is_closed() and b.probe_permit is not None:
            self.release(b.probe_permit, None, None)
            return
        waiters = b.waiters
        wake: Permit | float | None = None
        while waiters:
            waiter = waiters[0]
            if waiter.future.done() or waiter.loop.is_closed():
                waiters.popleft()
                self._forget(b, waiter)
                continue
            wake = b.grant(now)
            if type(wake) is not Permit:
                break
            waiters.popleft()
            self._forget(b, waiter)
            if wake.probe:
                self._probing(b, wake, waiter.loop)
            waiter.future.set_result(wake)
            wake = None
        if wake is not None:
            assert type(wake) is float
            while waiters and waiters[0].give_up_at < wake:
                self._fail(b, waiters.popleft(), wake, now)
        if not waiters or wake is None:
            return
        for loop, timer in list(b.loops.items()):
            if loop.is_closed():
                continue
            if timer.handle is not None:
                if timer.at == wake:
                    continue
                timer.handle.cancel()
            timer.at = wake
            timer.handle = loop.call_at(loop.time() + (wake - now), self._on_timer, b, timer)

    def _on_timer(self, b: GovernedBucket, timer: LoopTimer) -> None:
        timer.handle = None
        self._dispatch(b)

    def _give_up(self, b: GovernedBucket, waiter: Waiter) -> None:
        """A waiter's ``max_wait`` passed without a permit."""
        waiter.give_up_timer = None
        if waiter.future.done():
            return
        with contextlib.suppress(ValueError):
            b.waiters.remove(waiter)
        now = self._clock()
        mode = b.mode
        expected = b.reopen_at if mode == CLOSED else b.window_ends_at if mode == OPEN else None
        self._fail(b, waiter, expected, now)

    def _fail(self, b: GovernedBucket, waiter: Waiter, expected: float | None, now: float) -> None:
        self._forget(b, waiter)
        if waiter.future.done() or waiter.loop.is_closed():
            return
        reset_at = None
        message = f"no rate-limit permit in bucket {b.label} within max_wait"
        if expected is not None and expected > now:
            reset_at = _dt.datetime.fromtimestamp(self._wall() + (expected - now), _UTC)
            message += f" (the next one comes in {expected - now:.1f}s)"
        message += "; the request was not sent"
        info = RateLimitInfo(limit=b.limit, remaining=b.remaining, reset_at=reset_at)
        waiter.future.set_exception(RateLimitError(429, message, None, info))

    def wake_all(self) -> None:
        """Re-examine every bucket that has waiters (after a clock change in tests)."""
        for b in list(self._buckets.values()):
            if b.waiters:
                self._dispatch(b)

    async def release_leases(self) -> None:
        """Give the shared store back the permits leased and not used, and any probe
        held, and close its connections. Without a store this does nothing.
        ``Instasent.close()`` calls it; the governor stays usable (it leases again)."""
        if self._links is not None:
            await self._links.aclose()

    # -- observability ------------------------------------------------------

    def snapshot(self) -> list[BucketSnapshot]:
        """The state of every bucket: limit, remaining, reset, in flight, waiters."""
        now = self._clock()
        wall = self._wall()
        result = []
        for b in self._buckets.values():
            unmanaged = b.unmanaged_reason if b.mode == UNMANAGED else None
            known = b.remaining is not None and unmanaged is None
            reset_at = (
                _dt.datetime.fromtimestamp(wall + (b.window_ends_at - now), _UTC) if known else None
            )
            result.append(
                BucketSnapshot(
                    key=b.key,
                    limit=b.limit,
                    remaining=b.remaining if known else None,
                    reset_at=reset_at,
                    in_flight=b.in_flight,
                    waiters=sum(1 for w in b.waiters if not w.future.done()),
                    closed=b.mode == CLOSED or b.throttled,
                    unmanaged=unmanaged,
                )
            )
        return result
