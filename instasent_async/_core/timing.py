"""Time arithmetic of a bucket: which window an answer speaks of, when it ends on our clock.

An absolute ``Reset`` is on the server's clock; ``server_offset`` estimates that
clock from the answers' ``Date`` headers so a window's end is never placed early.
``paced_wake`` says when spread pacing grants again. Pure functions over the
window fields of a bucket (``WindowState``, which ``Bucket`` is).
"""

from __future__ import annotations

from typing import Final, Protocol

from .headers import AnswerInfo

__all__ = ["WindowState", "compare_window", "paced_wake", "server_offset", "window_of"]


class WindowState(Protocol):
    """The fields of a bucket that these functions read and write."""

    window_key: float
    window_key_tolerance: float
    window_date: float | None
    server_offset_low: float | None
    server_offset_previous: float | None
    server_offset_renew_at: float


# Samples of the server clock's offset are forgotten after two of these (drift).
_OFFSET_PERIOD: Final = 30.0


def paced_wake(next_at: float, ends: float, slope: float) -> float:
    """The time ``t = next_at - slope * (ends - t)``: when pacing grants again.

    The burst tolerance shrinks with the time left, so the moment the next
    permit is due is where the two lines meet (a timer set earlier would fire
    again and again a hair too early); with one unit of room it is the reset.
    """
    if slope >= 1.0:
        return ends
    return (next_at - slope * ends) / (1.0 - slope)


def compare_window(bucket: WindowState, key: float, tolerance: float) -> int:
    """-1, 0 or 1: the window keyed ``key`` is older than, the same as or newer than ours.

    Absolute and relative resets cannot be compared: a change of kind is newer.
    """
    current_tolerance = bucket.window_key_tolerance
    if (tolerance == 0.0) != (current_tolerance == 0.0):
        return 1
    if tolerance < current_tolerance:
        tolerance = current_tolerance
    current = bucket.window_key
    return 1 if key > current + tolerance else -1 if key < current - tolerance else 0


def window_of(
    bucket: WindowState, info: AnswerInfo, sent_at: float, now: float
) -> tuple[float, float, float]:
    """(window key, key tolerance, local time of the reset) of an answer with a reset.

    An absolute reset is keyed by itself and mapped to the local clock through
    the server's ``Date``; a relative one is keyed by its local time, give or
    take a second when it is whole seconds (the server rounded it).
    """
    reset_in: float = info.reset_in  # type: ignore[assignment]
    epoch = info.reset_epoch
    if epoch is not None:
        date = info.server_date
        if date is None:
            return epoch, 0.0, now + reset_in
        return epoch, 0.0, epoch - server_offset(bucket, date, sent_at, now)
    ends = now + reset_in
    return ends, (1.0 if reset_in.is_integer() else 0.05), ends


def server_offset(bucket: WindowState, date: float, sent_at: float, now: float) -> float:
    """The server clock minus ours, never above the truth: deadlines are never early.

    The server stamped ``date`` (truncated to the second) between ``sent_at`` and
    ``now``, so ``date - now <= offset < date + 1 - sent_at``. The largest lower
    bound of the last ``_OFFSET_PERIOD`` to ``2 * _OFFSET_PERIOD`` seconds is the
    estimate; a sample that contradicts it (the server clock stepped back)
    starts it over.
    """
    bucket.window_date = None  # the window's end may move: the next answer recomputes it
    low = date - now
    current = bucket.server_offset_low
    if current is None or date + 1.0 - sent_at < current:
        bucket.server_offset_low = bucket.server_offset_previous = low
        bucket.server_offset_renew_at = now + _OFFSET_PERIOD
        return low
    if low > current:
        bucket.server_offset_low = current = low
    if now >= bucket.server_offset_renew_at:
        bucket.server_offset_previous = current
        bucket.server_offset_low = low
        bucket.server_offset_renew_at = now + _OFFSET_PERIOD
    previous = bucket.server_offset_previous
    return current if previous is None or current >= previous else previous
