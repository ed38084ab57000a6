"""What is retried and after how long: a pure decision, no I/O.

``RetryPolicy.decide`` maps (operation safety, attempt number, outcome) to a
``RetryDecision``. The transport performs the attempts; this module only says
whether another one is safe and how long to sleep first.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from typing import Literal

import attrs

from .status import Failure

__all__ = ["Outcome", "RetryDecision", "RetryPolicy"]

Outcome = int | Failure
"""How an attempt ended: a status code, ``"not_sent"`` (the request never left:
connection refused, DNS failure), ``"maybe_sent"`` (it may have reached the
server: connection reset or dropped, read timeout) or ``"fatal"`` (must not be
repeated: a TLS failure, a body over the size limit)."""

# Upper bound of the jitter added to a server-announced reset when nobody else waits.
_RESET_JITTER_MAX = 1.0


@attrs.frozen(slots=True)
class RetryDecision:
    """What to do after a failed attempt.

    ``action`` is ``"retry"`` (sleep ``delay`` seconds, then try again),
    ``"raise"`` (raise the error of this attempt) or ``"ambiguous"`` (raise
    ``AmbiguousOutcomeError``: a non-idempotent operation may have reached the
    server, so repeating it could act twice).
    """

    action: Literal["retry", "raise", "ambiguous"]
    delay: float = 0.0


def _check_max_attempts(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"max_attempts must be an int >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"max_attempts must be >= 1 (1 disables retries), got {value}")


def _check_seconds(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{attribute.name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _to_statuses(value: Iterable[int]) -> frozenset[int]:
    if isinstance(value, int | str | bytes):
        raise ValueError(f"retry_statuses must be a collection of status codes, got {value!r}")
    return frozenset(value)


def _check_statuses(
    _: object, attribute: attrs.Attribute[frozenset[int]], value: frozenset[int]
) -> None:
    for status in value:
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"retry_statuses must hold 4xx/5xx status codes, got {status!r}")


@attrs.frozen(slots=True)
class RetryPolicy:
    """How failed requests are retried.

    Retried: connection errors and timeouts, 429 (after the rate-limit reset) and
    the statuses in ``retry_statuses`` (by default 500, 502, 503, 504), with
    exponential backoff and full jitter capped at ``backoff_max`` seconds. An
    operation that is not idempotent (direct SMS) is retried only when the
    request certainly never reached the server; otherwise the caller gets
    ``AmbiguousOutcomeError``. ``max_attempts`` counts the first attempt
    (``RetryPolicy.none()`` disables retries).

    Raises:
        ValueError: an argument is out of range (``max_attempts < 1``, a negative
            or non-finite delay, ``backoff_max < backoff_base``, a status code
            outside 400-599).
    """

    max_attempts: int = attrs.field(default=4, validator=_check_max_attempts)
    backoff_base: float = attrs.field(default=0.5, validator=_check_seconds)
    backoff_max: float = attrs.field(default=8.0, validator=_check_seconds)
    retry_statuses: frozenset[int] = attrs.field(
        default=frozenset({429, 500, 502, 503, 504}),
        converter=_to_statuses,
        validator=_check_statuses,
    )

    def __attrs_post_init__(self) -> None:
        if self.backoff_max < self.backoff_base:
            raise ValueError(
                f"backoff_max ({self.backoff_max}) must be >= backoff_base ({self.backoff_base})"
            )

    @classmethod
    def none(cls) -> RetryPolicy:
        """A policy that never retries (one attempt)."""
        return cls(max_attempts=1)

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Full-jitter backoff after attempt number ``attempt`` (1-based).

        A uniform draw in ``[0, min(backoff_max, backoff_base * 2**(attempt-1))]``.
        ``rng`` returns a float in ``[0, 1)``.

        Raises:
            ValueError: ``attempt < 1``.
        """
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
        # 2**63 already exceeds any sane cap; avoids float overflow for huge attempts.
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** min(attempt - 1, 63))
        return rng() * ceiling

    def decide(
        self,
        *,
        idempotent: bool,
        attempt: int,
        outcome: Outcome,
        reset_after: float | None = None,
        governed: bool = True,
        rng: Callable[[], float] = random.random,
    ) -> RetryDecision:
        """Decide what follows attempt number ``attempt`` (1-based) that ended in ``outcome``.

        ``idempotent``: repeating the operation cannot act twice. ``reset_after``:
        seconds until the rate-limit window reopens, when the response said so.
        ``governed``: a rate-limit governor will hold the next attempt until the
        reset, so a 429 needs no sleep here.

        Raises:
            ValueError: ``attempt < 1`` or an unknown outcome.
        """
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
        exhausted = attempt >= self.max_attempts
        if isinstance(outcome, bool) or not isinstance(outcome, int):
            if outcome == "fatal":
                return _RAISE
            if outcome == "not_sent":
                # Nothing reached the server: safe to repeat for any operation.
                if exhausted:
                    return _RAISE
                return RetryDecision("retry", self.backoff(attempt, rng))
            if outcome == "maybe_sent":
                if not idempotent:
                    return _AMBIGUOUS
                if exhausted:
                    return _RAISE
                return RetryDecision("retry", self.backoff(attempt, rng))
            raise ValueError(f"unknown outcome {outcome!r}")
        status = outcome
        if status == 429:
            # The server rejected the request unprocessed: safe for every operation.
            if 429 not in self.retry_statuses or exhausted:
                return _RAISE
            if governed:
                return _RETRY_NOW
            if reset_after is not None and math.isfinite(reset_after):
                jitter = rng() * min(_RESET_JITTER_MAX, max(self.backoff_base, 0.01))
                return RetryDecision("retry", max(0.0, reset_after) + jitter)
            return RetryDecision("retry", self.backoff(attempt, rng))
        if status in self.retry_statuses:
            if not idempotent and status >= 500:
                # The server may have acted before failing.
                return _AMBIGUOUS
            if exhausted:
                return _RAISE
            return RetryDecision("retry", self.backoff(attempt, rng))
        return _RAISE


_RAISE = RetryDecision("raise")
_AMBIGUOUS = RetryDecision("ambiguous")
_RETRY_NOW = RetryDecision("retry", 0.0)
