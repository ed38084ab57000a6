"""The rate-limit bucket as a pure state machine: no asyncio, no timers, no logging.

API (what a shell, or a shared store, calls):

- ``Bucket(spread_pacing=True)``: the state of one bucket, a small slotted value.
  Every field is a plain number, string or ``None``; ``copy.copy`` copies it and
  ``Bucket.__slots__`` lists it, so a store can save and load it as it is.
- ``bucket.grant(now) -> Permit | float | None``: a permit to send now, or the time
  to ask again (a float on the caller's clock), or ``None`` when only an answer can
  change anything (a probe is out).
- ``bucket.observe(permit, status, info, now, sent=True) -> Notice``: fold one answer
  in (``status=None``: no answer, the request failed or was cancelled, and
  ``sent=False`` when it certainly never reached the server; ``info`` is the
  ``AnswerInfo`` of ``parse_answer``). Call it exactly once per permit; later calls
  are ignored. The ``Notice`` says what changed that a shell may tell its users
  (closed, unmanaged, limit changed, reopened); ``QUIET`` when nothing did.

``now`` is any monotonic clock in seconds, the same for every call on one bucket.
Modes: ``unknown`` (the next permit is a probe), ``probing`` (a probe is out, the
rest wait for its answer), ``open`` (counts known: permits within room and pacing),
``closed`` (after a 429, until ``reopen_at``), ``unmanaged`` (the server's headers
are missing or not believable: permits flow freely).
"""

from __future__ import annotations

from typing import Final

from .headers import AnswerInfo
from .permit import QUIET, Notice, Permit
from .timing import compare_window, paced_wake, window_of

__all__ = ["QUIET", "Bucket", "Notice", "Permit"]

UNKNOWN: Final = "unknown"
PROBING: Final = "probing"
OPEN: Final = "open"
CLOSED: Final = "closed"
UNMANAGED: Final = "unmanaged"

#: Spread pacing lets a burst of one interval, or of this share of the time left, go at once.
BURST_SHARE: Final = 0.05
#: A 429 announcing no believable wait closes for this, doubling per strike...
CLOSE_BASE: Final = 0.5
#: ...up to this.
CLOSE_MAX: Final = 8.0
#: A 429 closes for at least this, doubling per strike (a reset already past is no
#: reason to hammer the server)...
FLOOR_BASE: Final = 0.05
#: ...up to this.
FLOOR_MAX: Final = 1.0
#: How much later every deadline is set after a 429 proved one early, up to MARGIN_MAX.
MARGIN_STEP: Final = 0.05
MARGIN_MAX: Final = 1.0
#: After a reset, answers still in flight are awaited this long before a probe goes.
ROLL_PATIENCE: Final = 1.0
#: Seconds over which what other clients of the token spent fades from their rate.
FOREIGN_MEMORY: Final = 2.0
# Pacing grants this much early, so float rounding never leaves a timer firing a hair too
# soon (larger than the rounding of an epoch-sized clock).
_EPSILON: Final = 1e-6


class Bucket:
    """One rate-limit bucket's state and the decisions over it (see the module docstring)."""

    __slots__ = (
        "closed_at",
        "foreign_rate",
        "foreign_span",
        "foreign_spent",
        "in_flight",
        "limit",
        "margin",
        "mode",
        "next_send_at",
        "own_answers_since",
        "remaining",
        "remaining_seen_at",
        "reopen_at",
        "round_trip",
        "server_offset_low",
        "server_offset_previous",
        "server_offset_renew_at",
        "spread_pacing",
        "strikes",
        "throttled",
        "unmanaged_reason",
        "window_date",
        "window_ends_at",
        "window_key",
        "window_key_tolerance",
    )

    def __init__(self, spread_pacing: bool = True) -> None:
        self.spread_pacing = spread_pacing
        self.mode: str = UNKNOWN
        self.limit: int | None = None
        self.remaining: int | None = None
        self.remaining_seen_at = 0.0
        self.own_answers_since = 0
        self.foreign_spent = 0.0
        self.foreign_span = 0.0
        self.foreign_rate = 0.0
        self.round_trip = 0.0
        self.window_key = 0.0
        self.window_key_tolerance = 0.0
        self.window_ends_at = 0.0
        self.window_date: float | None = None
        self.next_send_at = 0.0
        self.in_flight = 0
        self.reopen_at = 0.0
        self.closed_at = float("-inf")
        self.strikes = 0
        self.throttled = False
        self.margin = 0.0
        self.server_offset_low: float | None = None
        self.server_offset_previous: float | None = None
        self.server_offset_renew_at = 0.0
        self.unmanaged_reason: str | None = None

    # -- granting ------------------------------------------------------------------

    def grant(self, now: float) -> Permit | float | None:
        """A permit to send now, else when to ask again (``None``: on the probe's answer).

        Open: a permit needs one unit of room beyond the requests in flight and,
        while other clients of the token are seen spending, beyond what they will
        have spent since our freshest count and by the time this request arrives
        (``round_trip`` later: the race for the last units of a window is where
        429s come from between processes). Spread
        pacing spaces the room over the time left in the window (a burst of one
        interval, or of ``BURST_SHARE`` of the time left, may go at once); burst
        pacing sends while there is room. When the window passes its reset the
        bucket does not assume it refilled: the answers still in flight come first
        (one may already speak of the new window), then, when none is left or
        ``ROLL_PATIENCE`` after the reset at the latest, one probe asks and its
        answer says what the new window holds (so a limit that changed, a limit of
        0 or a sliding window are read, never guessed). Closed: nothing until
        ``reopen_at``, then one probe. Unmanaged: always.
        """
        mode = self.mode
        if mode == OPEN:
            ends = self.window_ends_at
            if now < ends:
                room: float = self.remaining - self.in_flight  # type: ignore[operator]
                if self.foreign_rate:
                    room -= self.foreign_rate * (now - self.remaining_seen_at + self.round_trip)
                if room < 1:
                    return ends
                if self.spread_pacing:
                    left = ends - now
                    interval = left / room
                    share = left * BURST_SHARE
                    tolerance = interval if interval > share else share
                    next_at = self.next_send_at
                    if now < next_at - tolerance - _EPSILON:
                        return paced_wake(next_at, ends, tolerance / left)
                    self.next_send_at = (next_at if next_at > now else now) + interval
                self.in_flight += 1
                return Permit(self, now, False)
            if self.in_flight and now < ends + ROLL_PATIENCE:
                return ends + ROLL_PATIENCE
            mode = UNKNOWN
        elif mode == UNMANAGED:
            self.in_flight += 1
            return Permit(self, now, False)
        elif mode == CLOSED:
            if now < self.reopen_at:
                return self.reopen_at
            mode = UNKNOWN
        if mode == UNKNOWN:
            self.mode = PROBING
            self.in_flight += 1
            return Permit(self, now, True)
        return None

    # -- answers ---------------------------------------------------------------------

    def observe(
        self,
        permit: Permit,
        status: int | None,
        info: AnswerInfo | None,
        now: float,
        *,
        sent: bool = True,
    ) -> Notice:
        """Fold the answer to ``permit`` into the bucket (see the module docstring).

        A failed probe (``status=None``) lets the next request probe. While the
        bucket is closed, probing or unknown, answers to requests sent before it
        got there are older news than the probe's and change nothing. Open or
        unmanaged: implausible headers make the bucket unmanaged, others are
        folded by ``_fold``. Open, a request that brought no count back (it failed,
        or its answer has none) counts as spent (``_spent_unseen``), unless
        ``sent=False`` says it certainly never reached the server (a permit given
        back unused, a connection refused).
        """
        if permit.settled:
            return QUIET
        permit.settled = True
        self.in_flight -= 1
        if status is None:
            if permit.probe and self.mode == PROBING:
                self.mode = UNKNOWN
            elif sent and self.mode == OPEN:
                self._spent_unseen()
            return QUIET
        if status == 429:
            return self._refused(permit, info, now)
        if permit.probe:
            return self._probe_answered(status, info, permit.sent_at, now)
        mode = self.mode
        if info is None or (mode != OPEN and mode != UNMANAGED):
            return QUIET
        if info.implausible is not None:
            return self._unmanage(info.implausible)
        if info.remaining is None or info.reset_in is None:
            if mode == OPEN:
                self._spent_unseen()
            return QUIET
        if mode == UNMANAGED:
            return self._adopt(info, permit.sent_at, now)
        return self._fold(info, permit.sent_at, now)

    def _spent_unseen(self) -> None:
        """A request of ours brought no count back: believe one unit fewer is left.

        It may well have reached the server and been counted (a dropped connection,
        a proxy's error page), and nothing would tell us: counting it as spent keeps
        the room we grant within the server's. The next answer with a count says how
        many are left; one that says more raises the count again under ``_fold``'s
        rule (``remaining_seen_at`` is left as it was for that).
        """
        if self.remaining:
            self.remaining -= 1

    def _fold(self, info: AnswerInfo, sent_at: float, now: float) -> Notice:
        """An open bucket's answer: which window it speaks of decides what is believed.

        A newer window (a later reset) is adopted with its count. An older one is
        stale and ignored. In the same window a lower count is the freshest; a
        higher count (the server raised the limit or reset its counter) is
        believed only from an answer to a request sent after the lower count was
        received, so answers that merely arrive out of order never raise it.
        """
        date = info.server_date
        if (
            date is not None
            and date == self.window_date
            and info.reset_epoch == self.window_key
            and now < self.server_offset_renew_at
            and date + 1.0 - sent_at >= self.server_offset_low  # type: ignore[operator]
        ):
            # The usual answer: the same window and Date as the last one read. The
            # server offset and so the window's end cannot change (``_server_offset``
            # keeps its estimate for a Date it has seen unless a renewal is due or
            # the sample contradicts it, checked here); only the counts are read.
            pass
        else:
            key, tolerance, ends = window_of(self, info, sent_at, now)
            order = compare_window(self, key, tolerance)
            if order > 0:
                return self._adopt(info, sent_at, now, key, tolerance, ends)
            if order < 0:
                return QUIET
            if not tolerance:
                # An absolute reset: its local time is known better with every Date seen.
                self.window_ends_at = ends + self.margin
                self.window_date = date
        remaining: int = info.remaining  # type: ignore[assignment]
        believed: int = self.remaining  # type: ignore[assignment]
        if remaining < believed:
            # What the window lost beyond our own answers was spent by other clients.
            spent = believed - remaining - self.own_answers_since - 1
            if spent or self.foreign_spent:
                self._foreign_spent(spent, now - self.remaining_seen_at)
                self.round_trip += (now - sent_at - self.round_trip) * 0.25
            self.remaining = remaining
            self.remaining_seen_at = now
            self.own_answers_since = 0
        elif remaining > believed and sent_at >= self.remaining_seen_at:
            self.remaining = remaining
            self.remaining_seen_at = now
            self.own_answers_since = 0
        else:
            self.own_answers_since += 1
        limit = info.limit
        if limit is None or limit == self.limit:
            return QUIET
        return self._take_limit(limit)

    def _adopt(
        self,
        info: AnswerInfo,
        sent_at: float,
        now: float,
        key: float | None = None,
        tolerance: float = 0.0,
        ends: float = 0.0,
    ) -> Notice:
        """Make the window ``info`` speaks of the current one, with its count and limit."""
        if key is None:
            key, tolerance, ends = window_of(self, info, sent_at, now)
        self.mode = OPEN
        self.window_key = key
        self.window_key_tolerance = tolerance
        self.window_ends_at = ends + self.margin
        self.window_date = info.server_date if not tolerance else None
        self.remaining = info.remaining
        self.remaining_seen_at = now
        self.own_answers_since = 0
        self.unmanaged_reason = None
        return self._take_limit(info.limit)

    def _foreign_spent(self, spent: int, elapsed: float) -> None:
        """Fold ``spent`` requests of other clients over ``elapsed`` seconds into their rate.

        Both sums fade over ``FOREIGN_MEMORY`` seconds. ``spent`` may be negative:
        an answer of ours that came late made an earlier drop look foreign.
        """
        keep = 1.0 - elapsed / FOREIGN_MEMORY if elapsed < FOREIGN_MEMORY else 0.0
        total = self.foreign_spent * keep + spent
        span = self.foreign_span * keep + elapsed
        self.foreign_spent = total
        self.foreign_span = span
        self.foreign_rate = total / span if total > 0 and span > 1e-9 else 0.0

    def _take_limit(self, limit: int | None) -> Notice:
        """A ``Limit`` that changed takes effect from this answer on, down or up."""
        previous = self.limit
        if limit is None or limit == previous:
            return QUIET
        self.limit = limit
        return QUIET if previous is None else Notice(limit_change=(previous, limit))

    def _probe_answered(
        self, status: int, info: AnswerInfo | None, sent_at: float, now: float
    ) -> Notice:
        """The probe's answer is the truth: its window, count and limit replace ours.

        Whatever window the bucket believed (even one with a later reset, such as a
        long window a short 429 interrupted), the queued requests then flow at the
        paced rate at once. Without believable headers the bucket becomes
        unmanaged, except after a 5xx without any: that is inconclusive (a proxy's
        error page), the next request probes again.
        """
        if info is None or not info.has_rate_limit_headers:
            if status >= 500:
                self.mode = UNKNOWN
                return QUIET
            return self._unmanage("answers carry no rate-limit headers")
        if info.implausible is not None:
            return self._unmanage(info.implausible)
        if info.remaining is None or info.reset_in is None:
            return self._unmanage("answers carry no X-RateLimit-Remaining or no Reset")
        reopened = self.throttled
        self.throttled = False
        self.strikes = 0
        self.next_send_at = now
        notice = self._adopt(info, sent_at, now)
        return notice._replace(reopened=True) if reopened else notice

    def _unmanage(self, reason: str) -> Notice:
        """Headers that cannot be believed: stop pacing (say so once per reason)."""
        was = self.mode
        self.mode = UNMANAGED
        self.throttled = False
        self.strikes = 0
        if was == UNMANAGED and reason == self.unmanaged_reason:
            return QUIET
        self.unmanaged_reason = reason
        return Notice(unmanaged_because=reason)

    def _refused(self, permit: Permit, info: AnswerInfo | None, now: float) -> Notice:
        """A 429 closes the whole bucket until *that answer's* wait, then one probe.

        The wait is its ``Retry-After``, else its ``Reset``, plus the margin, and at
        least ``FLOOR_BASE`` doubling per strike (at most ``FLOOR_MAX``); a 429
        announcing no believable wait closes for ``CLOSE_BASE`` doubling per strike
        (at most ``CLOSE_MAX``). A 429 sets the count to 0 only in the window it
        announces: one from a shorter limiter never pins the count of the window
        the bucket paces, the probe's answer will tell. A 429 to a request sent
        after the window it announces had ended by our clock proves our deadlines
        early for this server: every later one gets ``MARGIN_STEP`` more margin.
        Stragglers sent before the bucket closed change nothing once it reopened,
        and while closed only extend it.
        """
        mode = self.mode
        if not permit.probe and (
            mode in (UNKNOWN, PROBING) or (mode != CLOSED and permit.sent_at < self.closed_at)
        ):
            return QUIET
        strikes = min(self.strikes, 16)
        wait = info.announced_wait if info is not None else None
        if info is None or wait is None:
            until = now + min(CLOSE_MAX, CLOSE_BASE * 2**strikes)
        else:
            until = now + wait + self.margin
            if info.reset_in is not None:
                key, tolerance, ends = window_of(self, info, permit.sent_at, now)
                if mode == OPEN and compare_window(self, key, tolerance) == 0:
                    self.remaining = 0
                    self.remaining_seen_at = now
                if info.retry_after is None:
                    if ends <= permit.sent_at:
                        self.margin = min(MARGIN_MAX, self.margin + MARGIN_STEP)
                    until = ends + self.margin
            floor = now + min(FLOOR_MAX, FLOOR_BASE * 2**strikes)
            if until < floor:
                until = floor
        if mode == CLOSED:
            if until <= self.reopen_at:
                return QUIET
        else:
            self.closed_at = now
        self.mode = CLOSED
        self.reopen_at = until
        self.strikes += 1
        self.throttled = True
        return Notice(closed_for=until - now)
