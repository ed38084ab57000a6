"""One parse of an answer's rate-limit headers into an immutable value.

``parse_answer(headers, now)`` reads ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``,
``X-RateLimit-Reset``, ``Retry-After`` and ``Date`` once and returns an ``AnswerInfo``.
The transport parses each answer once and hands that value to the governor, to the
retry decision (``AnswerInfo.announced_wait``) and to the error it raises; nothing
reads the raw headers again.

``now`` is the local wall clock (``time.time()``) when the answer arrived: it is only
used where the answer itself gives no server time (an absolute ``Reset`` or an
HTTP-date ``Retry-After`` without a ``Date`` header).

Rules of belief, all decided here so every reader agrees:

- ``X-RateLimit-Reset`` below ``10**9`` is seconds from now, at or above it an
  absolute epoch of the server's clock, read against the answer's ``Date`` (so a
  skewed local clock does not matter).
- ``Retry-After`` is delta-seconds or an HTTP date.
- Headers that are present but unreadable, a ``Remaining`` above ``Limit``, a count
  above 2**53, a ``Reset`` or ``Retry-After`` more than ``MAX_BELIEVED_WAIT`` (one
  day) ahead, or a ``Reset`` more than a second in the past make the answer
  *implausible*: ``AnswerInfo.implausible`` says why, and nothing in it is believed
  (the governor leaves the bucket unmanaged, a retry backs off as if no wait was
  announced). Never raises.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from email.utils import parsedate_tz
from typing import Final, NamedTuple

from multidict import istr

__all__ = [
    "EPOCH_THRESHOLD",
    "MAX_BELIEVED_WAIT",
    "AnswerInfo",
    "parse_answer",
]

# istr names: aiohttp's case-insensitive headers look them up without lowercasing
# the name again each time; plain dicts see the same string.
_LIMIT: Final = istr("X-RateLimit-Limit")
_REMAINING: Final = istr("X-RateLimit-Remaining")
_RESET: Final = istr("X-RateLimit-Reset")
_RETRY_AFTER: Final = istr("Retry-After")
_DATE: Final = istr("Date")

#: A ``Reset`` below this is seconds from now, above it an absolute epoch.
EPOCH_THRESHOLD: Final = 10**9
#: An announced wait longer than this (one day) is not believed.
MAX_BELIEVED_WAIT: Final = 86400.0
# An absolute Reset this far behind the Date is still "now" (the Date is truncated).
_PAST_TOLERANCE: Final = 1.0
_MAX_COUNT: Final = 2**53


class AnswerInfo(NamedTuple):
    """What one answer's rate-limit headers say, parsed once.

    ``limit``/``remaining``: the counts (``None`` when absent or unreadable).
    ``reset_epoch``: an absolute ``Reset`` on the server's clock (``None`` for a
    relative or missing one). ``reset_in``: seconds from this answer to the reset
    (clamped at 0). ``retry_after``: seconds from this answer. ``server_date``: the
    ``Date`` header as an epoch. ``received_at``: the local wall clock the answer
    was parsed with. ``implausible``: why nothing here is believed, or ``None``.
    """

    limit: int | None
    remaining: int | None
    reset_epoch: float | None
    reset_in: float | None
    retry_after: float | None
    server_date: float | None
    received_at: float
    implausible: str | None

    @property
    def has_rate_limit_headers(self) -> bool:
        """Whether the answer carried any rate-limit header at all (even unreadable)."""
        return self.implausible is not None or not (
            self.limit is None
            and self.remaining is None
            and self.reset_in is None
            and self.retry_after is None
        )

    @property
    def announced_wait(self) -> float | None:
        """Seconds to wait before asking again: ``Retry-After``, else the ``Reset``.

        ``None`` when the answer announces no believable wait.
        """
        if self.implausible is not None:
            return None
        return self.retry_after if self.retry_after is not None else self.reset_in


_date_cache: dict[str, float | None] = {}


def http_date(value: str) -> float | None:
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


def _count(value: str) -> int | None:
    """A non-negative integer no larger than 2**53 (integral floats too), else None."""
    try:
        number = int(value)
        if 0 <= number <= _MAX_COUNT:
            return number
        return None
    except ValueError:
        try:
            f = float(value)
        except ValueError:
            return None
        if not math.isfinite(f) or not f.is_integer():
            return None
        number = int(f)
    return number if 0 <= number <= _MAX_COUNT else None


def _seconds(value: str) -> float | None:
    """A finite, non-negative number, else None."""
    try:
        f = float(value)
    except ValueError:
        return None
    return f if math.isfinite(f) and f >= 0 else None


def _unreadable(name: str, value: str) -> str:
    return f"unreadable {name}: {value[:40]!r}"


def parse_answer(headers: Mapping[str, str], now: float) -> AnswerInfo:
    """Parse the rate-limit headers of one answer (see the module docstring). Never raises.

    What ``Limit``, ``Reset`` and ``Date`` say is read by ``_window``; an answer with
    the same three strings as the last one read against a ``Date`` takes that
    reading again (the usual answer: the same window and second as the one
    before), so only its ``Remaining`` and ``Retry-After`` are parsed anew.
    """
    global _last
    get = headers.get
    limit_s = get(_LIMIT)
    remaining_s = get(_REMAINING)
    reset_s = get(_RESET)
    retry_s = get(_RETRY_AFTER)
    if limit_s is None and remaining_s is None and reset_s is None and retry_s is None:
        return _new(AnswerInfo, (None, None, None, None, None, None, now, None))
    date_s = get(_DATE)
    last = _last
    if date_s == last[2] and reset_s == last[1] and limit_s == last[0]:
        window = last[3]
    else:
        window = _window(limit_s, reset_s, date_s, now)
        if window[3] is not None:  # read against the Date: the same strings, the same reading
            _last = (limit_s, reset_s, date_s, window)
    limit, reset_epoch, reset_in, server_date, limit_problem, problem = window
    if remaining_s is None:
        remaining = None
    else:
        try:
            remaining = int(remaining_s)
        except ValueError:
            remaining = _count(remaining_s)
        if remaining is None or not 0 <= remaining <= _MAX_COUNT:
            remaining = None
            problem = problem or _unreadable("X-RateLimit-Remaining", remaining_s)
        elif limit is not None and remaining > limit:
            problem = problem or "X-RateLimit-Remaining above X-RateLimit-Limit"
    retry_after = None
    if retry_s is not None:
        retry_after = _seconds(retry_s)
        if retry_after is None:
            when = http_date(retry_s)
            if when is None:
                problem = _unreadable("Retry-After", retry_s)
            else:
                retry_after = max(0.0, when - (now if server_date is None else server_date))
        if retry_after is not None and retry_after > MAX_BELIEVED_WAIT:
            problem = "Retry-After more than a day ahead"
    return _new(
        AnswerInfo,
        (
            limit,
            remaining,
            reset_epoch,
            reset_in,
            retry_after,
            server_date,
            now,
            problem or limit_problem,
        ),
    )


_Window = tuple[int | None, float | None, float | None, float | None, str | None, str | None]


def _window(limit_s: str | None, reset_s: str | None, date_s: str | None, now: float) -> _Window:
    """What ``Limit``, ``Reset`` and ``Date`` say: ``(limit, reset_epoch, reset_in,
    server_date, limit_problem, problem)``.

    ``limit_problem`` is an unreadable ``Limit``; ``problem`` one of ``Date`` or
    ``Reset``, which ``parse_answer`` reports before one of ``Remaining`` (and
    ``Limit``'s last). ``now`` matters only when ``server_date`` is ``None``.
    """
    limit = None
    limit_problem = problem = None
    if limit_s is not None:
        try:  # whole numbers inline (the usual case); _count reads the rest
            limit = int(limit_s)
        except ValueError:
            limit = _count(limit_s)
        if limit is None or not 0 <= limit <= _MAX_COUNT:
            limit = None
            limit_problem = _unreadable("X-RateLimit-Limit", limit_s)
    server_date = None
    if date_s is not None:
        server_date = _date_cache.get(date_s) or http_date(date_s)
        if server_date is None:
            problem = _unreadable("Date", date_s)
    server_now = now if server_date is None else server_date
    reset_epoch = reset_in = None
    if reset_s is not None:
        try:
            reset: float | None = int(reset_s)  # the usual whole seconds
        except ValueError:
            reset = _seconds(reset_s)
        else:
            if reset < 0:  # type: ignore[operator]
                reset = None
        if reset is None:
            problem = _unreadable("X-RateLimit-Reset", reset_s)
        elif reset < EPOCH_THRESHOLD:
            reset_in = float(reset)
        else:
            reset_epoch = reset
            reset_in = reset - server_now
            if reset_in < 0.0:
                if reset_in < -_PAST_TOLERANCE:
                    problem = "X-RateLimit-Reset in the past"
                reset_in = 0.0
        if reset_in is not None and reset_in > MAX_BELIEVED_WAIT:
            problem = "X-RateLimit-Reset more than a day ahead"
    return limit, reset_epoch, reset_in, server_date, limit_problem, problem


# The last (Limit, Reset, Date) strings read against a Date, and their reading.
# Replaced whole (one assignment), never changed in place; at first, a marker no
# header equals.
_NOTHING_READ: Final = object()
_last: tuple[object, object, object, _Window] = (
    _NOTHING_READ,
    _NOTHING_READ,
    _NOTHING_READ,
    (None, None, None, None, None, None),
)


# The tuple constructor itself: the same value as AnswerInfo(...), without the
# generated keyword-handling __new__ (a third of the parse on the hot path).
_new: Final = tuple.__new__
