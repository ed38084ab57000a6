"""The rate-limit governor: header-driven permits shared by every coroutine of a client.

Each response's ``X-RateLimit-Limit/Remaining/Reset`` headers update a bucket keyed
by (token fingerprint, scope, rate class). Before a request the transport asks the
governor for a permit; it is granted only when the bucket has room after counting
requests already in flight, paced over the time left in the window. ``Reset`` is
read against the response's ``Date`` header and mapped to ``time.monotonic()``, so
the local wall clock never matters. A 429 closes the whole bucket until the reset,
then one probe request goes first.

The bookkeeping is plain synchronous code (no I/O); waiting is a FIFO of futures
per bucket woken by responses or by one timer per bucket.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import datetime as _dt
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from email.utils import parsedate_tz
from typing import Any, Final, Literal, NamedTuple

import attrs
from multidict import istr

from ._errors import RateLimitInfo

__all__ = [
    "BucketKey",
    "BucketSnapshot",
    "Permit",
    "RateLimitEvent",
    "RateLimitGovernor",
    "parse_rate_limit",
    "reset_delay",
]

log = logging.getLogger("instasent_async.ratelimit")

# istr names: aiohttp's case-insensitive headers look them up without lowercasing
# the name again each time; plain dicts see the same string.
_LIMIT: Final = istr("X-RateLimit-Limit")
_REMAINING: Final = istr("X-RateLimit-Remaining")
_RESET: Final = istr("X-RateLimit-Reset")
_DATE: Final = istr("Date")
_RETRY_AFTER: Final = istr("Retry-After")

# A Reset below this is "seconds from now", above it an absolute epoch.
_EPOCH_THRESHOLD: Final = 10**9
# A window announced further away than this is treated as garbage (unknown reset).
_MAX_WINDOW: Final = 86400.0
# Remaining == 0 and no reset known: look again (optimistically) after this long.
_UNKNOWN_RESET_WAIT: Final = 1.0
# Spread pacing lets a burst of one interval, or of this share of the time left
# (about that share of the remaining allowance), go back to back.
_BURST_SHARE: Final = 0.05
# A permit needs this much expected room. While other clients of the same token
# are busy (phi > 0) up to one more unit is left for whichever of them saw the
# last ones first: that race is where 429s come from.
_MIN_ROOM: Final = 1.0
# Time constant of the estimate of other clients' use: a share of the window, or
# this many seconds while the window length is unknown.
_FOREIGN_TAU_SHARE: Final = 0.25
_FOREIGN_TAU: Final = 0.5
_PHI_MAX: Final = 16.0
# Closing delays after a 429 when the reset is unknown / already past by our clock.
_CLOSE_BASE: Final = 0.5
_CLOSE_MAX: Final = 8.0
_EARLY_BASE: Final = 0.05
_EARLY_MAX: Final = 1.0
# How much later than computed a bucket's deadlines are set after a 429 proved them early.
_MARGIN_STEP: Final = 0.05
_MARGIN_MAX: Final = 1.0
# Samples of the server clock offset are forgotten after two of these periods (drift).
_OFFSET_PERIOD: Final = 30.0
# Larger counts are garbage (they would overflow the float math).
_MAX_COUNT: Final = 2**53
# Idle buckets are swept when there are more than this many.
_MAX_BUCKETS: Final = 4096
# While a bucket has plenty of room (at least _PLENTY requests and a _PLENTY_SHARE
# of its limit beyond those in flight), ``release`` reads the headers of one answer
# in _SAMPLE and counts the others as one request each, without reading them: what
# other clients of the token spent meanwhile shows at the next read (folded as
# usual), long before the window could run short.
_SAMPLE: Final = 16
_PLENTY: Final = 64
_PLENTY_SHARE: Final = 0.25


class BucketKey(NamedTuple):
    """What a rate-limit bucket is keyed by.

    ``token`` is the token fingerprint (first 12 hex chars of its sha256, never the
    token); ``scope`` is ``"org"`` for Product API classes or the datasource id;
    ``rate_class`` is ``default``/``search``/``scroll``/``aggregations`` or, for
    datasource paths, ``"<METHOD> <endpoint>"`` such as ``"POST stream/events"``.
    """

    token: str
    scope: str
    rate_class: str


@attrs.frozen(slots=True)
class RateLimitEvent:
    """A wait, throttle or retry, passed to ``on_event`` callbacks and listeners.

    ``kind``: ``"wait"`` (the governor delayed a permit; ``delay`` is how long it
    waited), ``"throttled"`` (a 429 closed a bucket; ``delay`` is how long it stays
    closed) or ``"retry"`` (the transport retries; ``delay`` is the sleep before
    it). ``bucket`` is a label such as ``"org/search"`` (never the token).
    """

    kind: Literal["wait", "retry", "throttled"]
    bucket: str
    delay: float
    attempt: int | None = None
    status: int | None = None
    reason: str | None = None


@attrs.frozen(slots=True)
class BucketSnapshot:
    """The governor's view of one bucket at the time of ``snapshot()``.

    ``limit``/``remaining`` are as of the freshest response (``remaining`` is the
    full ``limit`` once the window passed its reset); ``reset_at`` is an aware UTC
    datetime in local clock terms; ``closed`` is true after a 429 until the probe
    that follows the reset has answered.
    """

    key: BucketKey
    limit: int | None
    remaining: int | None
    reset_at: _dt.datetime | None
    in_flight: int
    waiters: int
    closed: bool


# ---------------------------------------------------------------------------
# Pure header parsing


_date_cache: dict[str, float | None] = {}


def _http_date(value: str) -> float | None:
    """Epoch seconds of an HTTP date (``Date``, ``Retry-After``), cached by string."""
    try:
        return _date_cache[value]
    except KeyError:
        pass
    result: float | None = None
    try:
        parts = parsedate_tz(value)
        if parts is not None:
            result = float(calendar.timegm((*parts[:6], 0, 0, 0)) - (parts[9] or 0))
    except Exception:  # email.utils raises odd errors on odd input
        result = None
    if len(_date_cache) >= 256:
        _date_cache.clear()
    _date_cache[value] = result
    return result


def _count(value: str | None) -> int | None:
    """A non-negative integer header value, or ``None`` for missing/garbage."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        try:
            f = float(value)
        except ValueError:
            return None
        if not math.isfinite(f) or not f.is_integer():
            return None
        number = int(f)
    return number if number >= 0 else None


def _seconds(value: str | None) -> float | None:
    """A finite, non-negative number header value, or ``None``."""
    if value is None:
        return None
    try:
        f = float(value)
    except ValueError:
        return None
    return f if math.isfinite(f) and f >= 0 else None


def _retry_after(value: str, server_now: float | None) -> float | None:
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    when = _http_date(value)
    if when is None:
        return None
    return when - (server_now if server_now is not None else time.time())


def reset_delay(headers: Mapping[str, str]) -> float | None:
    """Seconds until the rate-limit window resets, per the response headers.

    ``Retry-After`` (seconds or an HTTP date) wins when present; otherwise
    ``X-RateLimit-Reset`` is read as seconds from now (below 10**9) or as an
    absolute epoch compared with the response's ``Date`` header (so the local
    clock does not matter). Clamped at 0; ``None`` when unknown. Never raises.
    """
    date_s = headers.get(_DATE)
    server_now = _http_date(date_s) if date_s else None
    ra = headers.get(_RETRY_AFTER)
    if ra is not None:
        delay = _retry_after(ra, server_now)
        if delay is not None:
            return max(0.0, delay)
    reset = _seconds(headers.get(_RESET))
    if reset is None:
        return None
    if reset < _EPOCH_THRESHOLD:
        return reset
    return max(0.0, reset - (server_now if server_now is not None else time.time()))


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """The rate-limit headers of a response as a ``RateLimitInfo``.

    ``reset_at`` is the local time of the reset (aware UTC): local now plus
    ``reset_delay(headers)``, so a skewed client clock changes nothing. ``None``
    when no rate-limit header is present; garbage values give ``None`` fields.
    Never raises.
    """
    limit_s = headers.get(_LIMIT)
    remaining_s = headers.get(_REMAINING)
    if (
        limit_s is None
        and remaining_s is None
        and headers.get(_RESET) is None
        and headers.get(_RETRY_AFTER) is None
    ):
        return None
    delay = reset_delay(headers)
    reset_at = (
        None
        if delay is None or delay > _MAX_WINDOW
        else _dt.datetime.fromtimestamp(time.time() + delay, tz=_dt.timezone.utc)
    )
    return RateLimitInfo(limit=_count(limit_s), remaining=_count(remaining_s), reset_at=reset_at)


# ---------------------------------------------------------------------------
# The governor

_UNKNOWN: Final = 0  # no answer yet (or the probe failed): the next permit is a probe
_PROBING: Final = 1  # a probe is in flight; everyone else waits for its answer
_OPEN: Final = 2  # headers known: permits within room and pacing
_CLOSED: Final = 3  # a 429 closed the bucket until reopen_at
_UNMANAGED: Final = 4  # the server sends no usable headers: permits flow freely


class Permit:
    """The right to send one request in a bucket; give it back with ``release``."""

    __slots__ = ("_bucket", "_probe", "_released", "_sent_at", "_store")

    def __init__(self, bucket: _Bucket, sent_at: float, probe: bool) -> None:
        self._bucket = bucket
        self._sent_at = sent_at
        self._probe = probe
        self._released = False
        self._store = 0

    @property
    def key(self) -> BucketKey:
        """The bucket this permit belongs to."""
        return self._bucket.key

    @property
    def probe(self) -> bool:
        """Whether this is the probe that goes first in an unknown or reopened bucket."""
        return self._probe

    def __repr__(self) -> str:
        return f"<Permit {self._bucket.label}{' probe' if self._probe else ''}>"


class _Bucket:
    __slots__ = (
        "deadline",
        "expired",
        "fast_date",
        "fast_date_p1",
        "fast_limit",
        "fast_limit_s",
        "fast_reset",
        "in_flight",
        "key",
        "label",
        "last_count",
        "limit",
        "link",
        "margin",
        "next_at",
        "off_lo",
        "off_prev",
        "off_rotate_at",
        "own_since",
        "phi",
        "phi_d",
        "phi_n",
        "probe_out",
        "remaining",
        "reopen_at",
        "reset_abs",
        "reset_eps",
        "reset_key",
        "seen_at",
        "skip",
        "state",
        "strikes",
        "throttled",
        "timer",
        "timer_at",
        "waiters",
        "window",
        "window_exact",
    )

    def __init__(self, key: BucketKey) -> None:
        self.key = key
        self.label = f"{key.scope}/{key.rate_class}"
        self.state = _UNKNOWN
        self.limit: int | None = None
        self.remaining: int | None = None
        # The current window: its reset as the server said it (absolute epoch, or the
        # monotonic deadline for relative resets) and as a monotonic deadline.
        self.reset_key: float | None = None
        self.reset_abs = False
        self.reset_eps = 0.0
        self.deadline: float | None = None
        # True once the window of reset_key passed: its late answers are stale.
        self.expired = False
        # Window length: from consecutive resets when exact, else the longest time left seen.
        self.window: float | None = None
        self.window_exact = False
        # Other clients of the same token: how many requests/s they spend (a moving
        # average), our answers since the freshest one, and when it arrived.
        self.phi = 0.0
        self.phi_n = 0.0
        self.phi_d = 0.0
        self.own_since = 0
        self.seen_at = 0.0
        self.last_count = 0
        self.in_flight = 0
        self.next_at = 0.0
        self.probe_out = False
        self.reopen_at = 0.0
        self.strikes = 0
        self.throttled = False
        self.margin = 0.0
        # Lower bound of (server clock - monotonic clock), the max of recent samples.
        self.off_lo: float | None = None
        self.off_prev: float | None = None
        self.off_rotate_at = 0.0
        self.waiters: deque[asyncio.Future[Permit]] = deque()
        self.link: Any = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        # What the last answer that went through ``_update`` to the same-window branch
        # with an absolute reset and a Date said, raw (see ``release``): None when unset.
        self.fast_reset: str | None = None
        self.fast_date: str | None = None
        self.fast_date_p1 = 0.0  # its Date + 1 (epoch seconds)
        self.fast_limit_s: str | None = None
        self.fast_limit = 0
        # Answers ``release`` may count without reading their headers (see there).
        self.skip = 0

    def observe_date(self, date: float, sent: float, recv: float) -> float:
        """Fold one ``Date`` sample into the offset estimate and return the estimate.

        The server stamped ``date`` (truncated to the second) between ``sent`` and
        ``recv``, so ``date - recv <= offset < date + 1 - sent``. The largest lower
        bound seen recently is a safe estimate: a deadline computed with it is never
        earlier than the server's reset.
        """
        lo = date - recv
        current = self.off_lo
        if current is None or date + 1.0 - sent < current:
            # First sample, or one that contradicts the estimate: the server clock
            # stepped back. Start over from this sample.
            self.off_lo = self.off_prev = lo
            self.off_rotate_at = recv + _OFFSET_PERIOD
            return lo
        if lo > current:
            self.off_lo = current = lo
        if recv >= self.off_rotate_at:
            self.off_prev = current
            self.off_lo = lo
            self.off_rotate_at = recv + _OFFSET_PERIOD
        prev = self.off_prev
        return current if prev is None or current >= prev else prev


def _foreign_spent(b: _Bucket, spent: int, elapsed: float, exposure: float = 0.0) -> None:
    """Fold ``spent`` requests of other clients of the same token into ``b.phi``.

    Other clients are modelled like us: each spends ``remaining / time_left`` per
    second, so together they spend ``phi * remaining / time_left`` (``phi`` is about
    the number of other busy clients). ``exposure`` is the integral of
    ``remaining / time_left`` over the ``elapsed`` seconds. Both sums decay over a
    quarter window. ``spent`` is signed: when the server counts our own request
    before its answer arrives, the drop first looks foreign and is taken back when
    the late answer shows up.
    """
    tau = _FOREIGN_TAU if b.window is None else b.window * _FOREIGN_TAU_SHARE
    keep = 1.0 - elapsed / tau
    if keep <= 0:
        b.phi_n, b.phi_d = spent, exposure
    else:
        b.phi_n = b.phi_n * keep + spent
        b.phi_d = b.phi_d * keep + exposure
    b.phi = min(_PHI_MAX, b.phi_n / b.phi_d) if b.phi_n > 0 and b.phi_d > 1e-9 else 0.0


class RateLimitGovernor:
    """Grants request permits per rate-limit bucket from the servers' own headers.

    One governor is shared by every coroutine and resource of a client and of its
    ``with_options()`` siblings (pass the same instance as ``rate_limit=`` to share
    it between clients). ``pacing="spread"`` (default) spreads the remaining
    allowance over the time left in the window; ``"burst"`` sends as long as the
    window has room. ``on_event`` receives a ``RateLimitEvent`` for every wait,
    throttle (429) and retry. Not thread-safe: use it from one event loop.

    ``clock``/``wall_clock`` replace ``time.monotonic``/``time.time`` (for tests).

    Raises:
        ValueError: unknown ``pacing``.
    """

    def __init__(
        self,
        *,
        pacing: Literal["spread", "burst"] = "spread",
        on_event: Callable[[RateLimitEvent], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        store: Any = None,
    ) -> None:
        if pacing not in ("spread", "burst"):
            raise ValueError(f"pacing must be 'spread' or 'burst', got {pacing!r}")
        self._spread = pacing == "spread"
        self._pacing = pacing
        self._on_event = on_event
        self._listeners: list[Callable[[RateLimitEvent], None]] = []
        self._clock = clock
        self._wall = wall_clock
        self._buckets: dict[BucketKey, _Bucket] = {}
        self._waits = 0
        # How many answers in a row share one header read while a bucket has plenty
        # of room (1: every answer is read).
        self._sample = _SAMPLE
        self._links: Any = None
        if store is not None:
            from ._bucket_store import StoreLinks

            self._links = StoreLinks(store, clock)

    def __repr__(self) -> str:
        return f"<RateLimitGovernor pacing={self._pacing!r} buckets={len(self._buckets)}>"

    @property
    def pacing(self) -> str:
        """``"spread"`` or ``"burst"``."""
        return self._pacing

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

    def _bucket(self, key: BucketKey) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._sweep()
            bucket = self._buckets[key] = _Bucket(key)
            if self._links is not None:
                b = bucket
                bucket.link = self._links.link(
                    key,
                    self._links.store.bucket_name(key.token, key.scope, key.rate_class),
                    bucket.label,
                    lambda: self._dispatch(b) if b.waiters else None,
                )
        return bucket

    def _sweep(self) -> None:
        now = self._clock()
        for key, b in list(self._buckets.items()):
            if (
                not b.in_flight
                and not b.waiters
                and b.state != _CLOSED
                and (b.deadline is None or b.deadline <= now)
            ):
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
        now = self._clock()
        deadline = b.deadline
        remaining = b.remaining
        if (
            b.state == _OPEN
            and deadline is not None
            and now < deadline
            and not b.phi
            and remaining is not None
            and b.link is None
        ):
            # _try's usual case, inline: no roll due, no other clients seen.
            room = remaining - b.in_flight
            if room < _MIN_ROOM:
                return None
            if self._spread:
                left = deadline - now
                interval = left / room
                tolerance = interval if interval > left * _BURST_SHARE else left * _BURST_SHARE
                next_at = b.next_at
                if now < next_at - tolerance:
                    return None
                b.next_at = (next_at if next_at > now else now) + interval
            b.in_flight += 1
            return Permit(b, now, False)
        result = self._try(b, now)
        return result if type(result) is Permit else None

    async def acquire(self, key: BucketKey) -> Permit:
        """Wait for a permit in ``key``'s bucket and return it.

        Waiters are served in FIFO order. Cancellation-safe: a waiter cancelled
        before or just after being granted holds nothing and blocks no one.
        """
        bucket = self._bucket(key)
        if not bucket.waiters:
            result = self._try(bucket, self._clock())
            if type(result) is Permit:
                return result
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Permit] = loop.create_future()
        bucket.waiters.append(fut)
        started = self._clock()
        self._dispatch(bucket)
        try:
            permit = await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # Granted, but the cancellation won the race: give the permit back.
                self.release(fut.result(), None, None)
            else:
                with contextlib.suppress(ValueError):
                    bucket.waiters.remove(fut)
                self._dispatch(bucket)
            raise
        waited = self._clock() - started
        self._waits += 1
        log.debug("waited %.3fs for a permit in bucket %s", waited, bucket.label)
        if self._on_event is not None or self._listeners:
            self.emit(RateLimitEvent(kind="wait", bucket=bucket.label, delay=waited))
        return permit

    def _try(self, b: _Bucket, now: float) -> Permit | float | None:
        """Grant a permit now, or say when to look again (a time, or None: on a release)."""
        link = b.link
        if link is not None:
            taken = link.take(now, len(b.waiters) + 1)
            if taken == "permit" or taken == "probe":
                b.in_flight += 1
                permit = Permit(b, now, False)
                permit._store = 1 if taken == "permit" else 2
                return permit
            if taken != "fallback":
                return None if taken == math.inf else taken
        state = b.state
        if state == _OPEN:
            deadline = b.deadline
            if deadline is not None and now >= deadline:
                self._roll(b, now)
                if b.state != _OPEN:
                    return self._try(b, now)
                deadline = b.deadline
            remaining = b.remaining
            assert remaining is not None
            room: float = remaining - b.in_flight
            phi = b.phi
            if phi and deadline is not None:
                # Other clients of the same token kept spending since our freshest
                # answer: remaining * (time left now / time left then) ** phi is left.
                left_seen = deadline - b.seen_at
                if left_seen > 0:
                    room = remaining * ((deadline - now) / left_seen) ** phi - b.in_flight
            if room < (_MIN_ROOM + phi if phi < 1.0 else _MIN_ROOM + 1.0):
                if deadline is not None:
                    return deadline
                if b.in_flight:
                    return None
                b.deadline = now + _UNKNOWN_RESET_WAIT
                return b.deadline
            if self._spread:
                if deadline is not None:
                    left = deadline - now
                    interval = left / room
                    # A small burst is fine: one interval, or a slice of the time left.
                    tolerance = interval if interval > left * _BURST_SHARE else left * _BURST_SHARE
                    next_at = b.next_at
                    if now < next_at - tolerance:
                        return next_at - tolerance
                    b.next_at = (next_at if next_at > now else now) + interval
                elif b.in_flight and b.reset_key is not None:
                    # The window rolled and its length is unknown: one at a time until
                    # the first answer tells how much time is left.
                    return None
            b.in_flight += 1
            return Permit(b, now, False)
        if state == _UNMANAGED:
            b.in_flight += 1
            return Permit(b, now, False)
        if state == _CLOSED:
            if now < b.reopen_at:
                return b.reopen_at
            b.state = state = _UNKNOWN
            if b.deadline is not None and now >= b.deadline:
                self._roll(b, now)
                b.state = _UNKNOWN
        if state == _UNKNOWN and not b.probe_out:
            b.state = _PROBING
            b.probe_out = True
            b.in_flight += 1
            return Permit(b, now, True)
        return None

    def _roll(self, b: _Bucket, now: float) -> None:
        """The window passed its reset without news: assume it refilled."""
        if b.limit is None:
            b.state = _UNKNOWN
            b.remaining = None
            b.deadline = None
            return
        b.last_count = b.remaining if b.remaining is not None else 0
        if b.own_since:
            _foreign_spent(b, -b.own_since, 0.0)
        b.remaining = b.limit
        b.expired = True
        b.fast_reset = None  # late answers of the old window go through _update
        b.skip = 0
        deadline = b.deadline
        window = b.window
        b.own_since = 0
        b.seen_at = deadline if deadline is not None else now
        b.next_at = 0.0  # pacing restarts with the window
        if deadline is not None and window is not None and window > 0:
            # Assume fixed windows: the next reset is a whole number of windows later.
            b.deadline = deadline + window * (math.floor((now - deadline) / window) + 1)
        else:
            b.deadline = None

    def release(
        self, permit: Permit, status: int | None, headers: Mapping[str, str] | None
    ) -> None:
        """Give a permit back with the response's status and headers.

        Call exactly once per permit, also when the request failed or was cancelled
        (``status=None, headers=None``); later calls are ignored. Updates the bucket
        from the headers when they are present and valid, closes it on a 429 and
        wakes waiters. Never raises on missing or garbage headers.
        """
        if permit._released:
            return
        permit._released = True
        b = permit._bucket
        b.in_flight -= 1
        if permit._store:
            now = self._clock()
            self._settle(b, permit, status, headers, now)
            self._to_store(b, permit, status, now)
            return
        if (
            b.skip
            and status is not None
            and status != 429
            and b.state == _OPEN
            and not permit._probe
        ):
            # Plenty of room when the last answer was read: this answer is one
            # more request of ours spent, like the ones read.
            b.skip -= 1
            b.remaining -= 1  # type: ignore[operator]
            if b.waiters:
                self._dispatch(b)
            return
        now = self._clock()
        if (
            b.fast_reset is not None
            and headers is not None
            and status is not None
            and status != 429
            and b.state == _OPEN
            and not permit._probe
        ):
            # The usual answer: same window, same Reset, Date and Limit as the last
            # one _update folded (proof above _update). Exactly what _update would do, inline.
            get = headers.get
            off_lo = b.off_lo
            if (
                get(_RESET) == b.fast_reset
                and get(_DATE) == b.fast_date
                and get(_LIMIT) == b.fast_limit_s
                and now < b.off_rotate_at
                and off_lo is not None
                and not b.fast_date_p1 - permit._sent_at < off_lo
            ):
                remaining_s = get(_REMAINING)
                try:
                    remaining = int(remaining_s) if remaining_s is not None else -1
                except (ValueError, TypeError):
                    remaining = -1
                previous = b.remaining
                # _update would set b.deadline to what it set it to last time;
                # nothing but _roll (which drops the cache) changed it since.
                deadline = b.deadline
                window = b.window
                tau = _FOREIGN_TAU if window is None else window * _FOREIGN_TAU_SHARE
                # tau == 0 would fail in _foreign_spent: _update deals with it.
                if (
                    0 <= remaining <= _MAX_COUNT
                    and previous is not None
                    and deadline is not None
                    and tau
                ):
                    limit = b.fast_limit
                    b.limit = limit if limit >= remaining else remaining
                    if remaining < previous:
                        # _update's foreign-spending fold and _foreign_spent, in order.
                        seen_at = b.seen_at
                        left_prev = deadline - seen_at
                        left_now = deadline - now
                        exposure = (
                            previous * math.log(left_prev / left_now)
                            if left_now > 0 and left_prev > left_now
                            else 0.0
                        )
                        spent = previous - remaining - (b.own_since + 1)
                        keep = 1.0 - (now - seen_at) / tau
                        if keep <= 0:
                            phi_n: float = spent
                            phi_d = exposure
                        else:
                            phi_n = b.phi_n * keep + spent
                            phi_d = b.phi_d * keep + exposure
                        phi = min(_PHI_MAX, phi_n / phi_d) if phi_n > 0 and phi_d > 1e-9 else 0.0
                        b.phi_n = phi_n
                        b.phi_d = phi_d
                        b.phi = phi
                        b.own_since = 0
                        b.remaining = remaining
                        b.seen_at = now
                        if (
                            remaining - b.in_flight >= _PLENTY
                            and remaining - b.in_flight >= limit * _PLENTY_SHARE
                        ):
                            b.skip = self._sample - 1
                    else:
                        b.own_since += 1
                    if b.waiters:
                        self._dispatch(b)
                    return
        self._settle(b, permit, status, headers, now)

    def _to_store(self, b: _Bucket, permit: Permit, status: int | None, now: float) -> None:
        from ._redis_store import Observation

        obs = None
        if (
            status is not None
            and b.remaining is not None
            and b.reset_key is not None
            and b.deadline is not None
            and not b.expired
        ):
            obs = Observation(
                window=b.reset_key if b.reset_abs else self._wall() + (b.deadline - now),
                tolerance=b.reset_eps if b.reset_abs else 1.0,
                ends_in=max(0.0, b.deadline - now),
                remaining=b.remaining,
                limit=b.limit,
            )
        closed_for = b.reopen_at - now if status == 429 and b.state == _CLOSED else None
        b.link.answered(permit._store == 2, status, obs, closed_for)

    def _settle(
        self,
        b: _Bucket,
        permit: Permit,
        status: int | None,
        headers: Mapping[str, str] | None,
        now: float,
    ) -> None:
        """``release`` in general: fold the headers, close on a 429, end a probe."""
        answer: float | Literal[False] | None = False
        if status is not None and headers is not None:
            try:
                answer = self._update(b, permit, headers, now)
            except Exception:  # a broken server's headers never break a request
                log.debug("ignored unreadable rate-limit headers in bucket %s", b.label)
                answer = False
        usable = answer is not False
        if permit._probe:
            b.probe_out = False
        if status == 429:
            self._throttle(b, permit, headers, now, answer if answer is not False else None)
        elif permit._probe:
            if b.state == _PROBING:
                if status is None:
                    b.state = _UNKNOWN  # no answer: the next permit probes again
                else:
                    b.state = _OPEN if usable and b.remaining is not None else _UNMANAGED
                    b.strikes = 0
                    b.throttled = False
        elif usable and b.state == _UNMANAGED and b.remaining is not None:
            b.state = _OPEN
        if b.waiters:
            self._dispatch(b)

    # ``release``'s fast path, proved: an answer reaches it only with the raw
    # Reset, Date and Limit of the last answer _update folded into the current window
    # (the cache is dropped by _update itself, by _roll and when _throttle moves the
    # margin; release checks the state is OPEN). _update would then find the same
    # window (same reset key, not expired) and the same deadline,
    # ``reset - offset + margin``: the margin is unchanged and so is the offset,
    # because observe_date with the same Date D changes nothing unless its rotation
    # is due (checked) or the sample contradicts the estimate (the same test is made).
    # After the sample of D received at r0, off_lo >= D - r0, and a later receipt
    # r >= r0 only gives the lower bound D - r <= D - r0: never above off_lo.

    def _update(
        self, b: _Bucket, permit: Permit, headers: Mapping[str, str], now: float
    ) -> float | Literal[False] | None:
        """Fold the headers of one answer into the bucket.

        Returns False when they are missing or unusable, else the monotonic reset
        deadline they announce (``None`` when they announce none).
        """
        b.fast_reset = None
        b.skip = 0
        get = headers.get
        remaining_s = get(_REMAINING)
        if remaining_s is None:
            return False
        try:
            remaining: int | None = int(remaining_s)
        except ValueError:
            remaining = _count(remaining_s)
        if remaining is None or remaining < 0 or remaining > _MAX_COUNT:
            return False
        limit_s = get(_LIMIT)
        limit = _count(limit_s) if limit_s is not None else None
        if limit is not None and limit > _MAX_COUNT:
            limit = None
        if limit is not None:
            b.limit = limit if limit >= remaining else remaining
        elif b.limit is not None and remaining > b.limit:
            b.limit = remaining
        reset_s = get(_RESET)
        reset = _seconds(reset_s)
        deadline: float | None = None
        server_now: float | None = None
        date_s: str | None = None
        if reset is not None:
            if reset >= _EPOCH_THRESHOLD:
                date_s = get(_DATE)
                server_now = _http_date(date_s) if date_s else None
                if server_now is not None:
                    offset = b.observe_date(server_now, permit._sent_at, now)
                else:
                    offset = self._wall() - now
                deadline = reset - offset + b.margin
                key, absolute, eps = reset, True, 0.0
            else:
                deadline = now + reset + b.margin
                key, absolute = deadline, False
                eps = 0.02 if reset != int(reset) else 1.0
            if deadline - now > _MAX_WINDOW:
                deadline = None
        if deadline is None:
            if b.reset_key is None or b.remaining is None or b.state != _OPEN:
                b.remaining = remaining  # no windows known: the latest answer is all we have
            return None
        current = b.reset_key
        if current is None or absolute != b.reset_abs or key > current + b.reset_eps:
            # A newer window.
            span = key - current if current is not None and absolute == b.reset_abs else 0.0
            if span > 0:
                # Consecutive resets are a whole number of windows apart.
                if not b.window_exact or b.window is None or span < b.window:
                    b.window = span
                    b.window_exact = True
            elif not b.window_exact and (b.window is None or deadline - now > b.window):
                b.window = deadline - now
            if b.own_since and not b.expired:
                _foreign_spent(b, -b.own_since, 0.0)
            b.reset_key = key
            b.reset_abs = absolute
            b.reset_eps = eps
            b.remaining = remaining
            b.deadline = deadline
            b.expired = False
            b.own_since = 0
            b.seen_at = now
        elif key >= current - b.reset_eps:
            if b.expired:
                # A late answer of the window we already rolled over. If it is not
                # fresher than the window's last count, an earlier drop was ours.
                if remaining >= b.last_count:
                    _foreign_spent(b, -1, 0.0)
                return deadline
            # The same window: answers may arrive out of order, the lowest count is freshest.
            b.own_since += 1
            previous = b.remaining
            if previous is None or remaining < previous:
                if previous is not None:
                    # What the window lost beyond our own answers since the last
                    # fresher one was spent by other clients of the same token.
                    left_prev = deadline - b.seen_at
                    left_now = deadline - now
                    exposure = (
                        previous * math.log(left_prev / left_now)
                        if left_now > 0 and left_prev > left_now
                        else 0.0
                    )
                    _foreign_spent(b, previous - remaining - b.own_since, now - b.seen_at, exposure)
                b.own_since = 0
                b.remaining = remaining
                b.seen_at = now
            if absolute:
                b.deadline = deadline
        if server_now is not None and limit is not None and key == b.reset_key:
            # This answer reached the current window (reset_key == key, reset_abs set,
            # expired unset): one with the same raw headers takes release()'s fast path.
            b.fast_reset = reset_s
            b.fast_date = date_s
            b.fast_date_p1 = server_now + 1.0
            b.fast_limit_s = limit_s
            b.fast_limit = limit
        return deadline

    def _throttle(
        self,
        b: _Bucket,
        permit: Permit,
        headers: Mapping[str, str] | None,
        now: float,
        answer: float | None,
    ) -> None:
        """A 429: close the whole bucket until the reset, then one probe.

        ``answer`` is the monotonic reset deadline this 429 announced, if any.
        """
        delay: float | None = None
        if headers is not None:
            ra = headers.get(_RETRY_AFTER)
            if ra is not None:
                date_s = headers.get(_DATE)
                delay = _retry_after(ra, _http_date(date_s) if date_s else None)
        if delay is None and answer is not None:
            delay = answer - now
            if delay <= 0:
                if permit._sent_at < answer:
                    # Refused in a window that is over by now (a slow answer): the
                    # request goes again through the current window, nothing to close.
                    return
                # Sent after we believed that window over, yet the server still counted
                # it: our deadlines are early for this server. Set them later.
                b.margin = min(_MARGIN_MAX, b.margin + _MARGIN_STEP)
                b.fast_reset = None  # its deadline no longer holds
                delay = min(_EARLY_MAX, _EARLY_BASE * 2 ** min(b.strikes, 16))
        if delay is None or delay <= 0:
            delay = min(_CLOSE_MAX, _CLOSE_BASE * 2 ** min(b.strikes, 16))
        if answer is not None and not b.expired:
            b.remaining = 0
        reopen_at = now + delay
        was_closed = b.state == _CLOSED
        if was_closed and reopen_at <= b.reopen_at:
            return  # a straggler sent before the bucket closed
        b.state = _CLOSED
        b.skip = 0
        b.reopen_at = reopen_at
        b.strikes += 1
        b.throttled = True
        if not was_closed:
            log.debug("bucket %s throttled (429): closed for %.3fs", b.label, delay)
            if self._on_event is not None or self._listeners:
                self.emit(RateLimitEvent(kind="throttled", bucket=b.label, delay=delay, status=429))

    # -- waking waiters -----------------------------------------------------

    def _dispatch(self, b: _Bucket) -> None:
        """Grant permits to waiters in FIFO order; arm the bucket's timer for the rest."""
        waiters = b.waiters
        now = self._clock()
        wake: Permit | float | None = None
        while waiters:
            fut = waiters[0]
            if fut.done():
                waiters.popleft()
                continue
            wake = self._try(b, now)
            if type(wake) is not Permit:
                break
            waiters.popleft()
            fut.set_result(wake)
            wake = None
        if waiters and isinstance(wake, float):
            if b.timer is not None and b.timer_at == wake:
                return
            if b.timer is not None:
                b.timer.cancel()
            loop = waiters[0].get_loop()
            b.timer_at = wake
            b.timer = loop.call_later(max(0.0, wake - now), self._on_timer, b)
        elif b.timer is not None:
            b.timer.cancel()
            b.timer = None

    def _on_timer(self, b: _Bucket) -> None:
        b.timer = None
        self._dispatch(b)

    def wake_all(self) -> None:
        """Re-examine every bucket that has waiters (after a clock change in tests)."""
        for b in list(self._buckets.values()):
            if b.waiters:
                self._dispatch(b)

    async def release_leases(self) -> None:
        """Give the shared store back every permit leased and not used, and any probe
        held; stop the background store calls. Without a store this does nothing.
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
            remaining = b.remaining
            deadline = b.deadline
            if deadline is not None and now >= deadline and b.limit is not None:
                remaining = b.limit
            reset_at = (
                None
                if deadline is None
                else _dt.datetime.fromtimestamp(wall + (deadline - now), tz=_dt.timezone.utc)
            )
            closed = b.state == _CLOSED or (b.throttled and b.state in (_UNKNOWN, _PROBING))
            result.append(
                BucketSnapshot(
                    key=b.key,
                    limit=b.limit,
                    remaining=remaining,
                    reset_at=reset_at,
                    in_flight=b.in_flight,
                    waiters=sum(1 for f in b.waiters if not f.done()),
                    closed=closed,
                )
            )
        return result
