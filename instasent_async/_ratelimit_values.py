"""The governor's public values: bucket keys, events, snapshots, and an answer's error info."""

from __future__ import annotations

import datetime as _dt
import math
from typing import Final, Literal, NamedTuple

import attrs

from ._core.headers import AnswerInfo
from ._errors import RateLimitInfo

__all__ = [
    "DEFAULT_MAX_WAIT",
    "BucketKey",
    "BucketSnapshot",
    "RateLimitEvent",
    "check_max_wait",
    "rate_limit_info",
]

#: The default ``max_wait``: a little over the API's one-minute window.
DEFAULT_MAX_WAIT: Final = 120.0


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

    ``limit``/``remaining``: as of the freshest believed answer (``None`` before
    one). ``reset_at``: when that window ends, an aware UTC datetime in local clock
    terms. ``closed``: a 429 closed the bucket and the probe that follows has not
    been answered yet. ``unmanaged``: why the governor does not pace this bucket
    (its answers carry no believable rate-limit headers), ``None`` when it does.
    """

    key: BucketKey
    limit: int | None
    remaining: int | None
    reset_at: _dt.datetime | None
    in_flight: int
    waiters: int
    closed: bool
    unmanaged: str | None = None


def rate_limit_info(info: AnswerInfo | None) -> RateLimitInfo | None:
    """The ``RateLimitInfo`` an error carries: ``None`` when the answer had no such headers.

    ``reset_at`` is the local time of the announced wait (``Retry-After``, else the
    ``Reset``), ``None`` when none is believable.
    """
    if info is None or not info.has_rate_limit_headers:
        return None
    wait = info.announced_wait
    reset_at = (
        None
        if wait is None
        else _dt.datetime.fromtimestamp(info.received_at + wait, _dt.timezone.utc)
    )
    return RateLimitInfo(limit=info.limit, remaining=info.remaining, reset_at=reset_at)


def check_max_wait(max_wait: float | None) -> float | None:
    """Validate a ``max_wait``: seconds >= 0, or ``None`` for no bound.

    Raises:
        ValueError: a negative, non-finite or non-numeric value.
    """
    if max_wait is None:
        return None
    if isinstance(max_wait, bool) or not isinstance(max_wait, int | float):
        raise ValueError(f"max_wait must be a number of seconds or None, got {max_wait!r}")
    if not math.isfinite(max_wait) or max_wait < 0:
        raise ValueError(f"max_wait must be a finite number >= 0 or None, got {max_wait!r}")
    return float(max_wait)
