"""Fixed-window rate limits of the fake server: pure bookkeeping, the caller gives the time.

Buckets are keyed by whatever the server decides (organization and class, or datasource
and endpoint); each rate class has its own limit and window. Windows are aligned to
``floor(now / window) * window`` so ``X-RateLimit-Reset`` is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Literal

import attrs

__all__ = ["RATE_CLASSES", "UNLIMITED", "RateClass", "RateLimiter", "check_rate"]

RateClass = Literal["default", "search", "scroll", "datasource"]
RATE_CLASSES: tuple[RateClass, ...] = ("default", "search", "scroll", "datasource")
#: ``X-RateLimit-Limit`` sent when rate limiting is off.
UNLIMITED = 1_000_000_000


def check_rate(limit: int | None, window: float) -> None:
    """Validate a limit and a window.

    Raises:
        ValueError: a limit below 1 (None is fine: unlimited) or a window <= 0.
    """
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ValueError("rate_limit must be >= 1 or None")
    if not window > 0:
        raise ValueError("window must be > 0")


@attrs.define(slots=True)
class _RateConfig:
    limit: int | None
    window: float


class RateLimiter:
    """Counts requests per bucket in fixed windows and renders the rate-limit headers."""

    def __init__(self, limit: int | None, window: float) -> None:
        check_rate(limit, window)
        self._configs: dict[str, _RateConfig] = {
            name: _RateConfig(limit, window) for name in RATE_CLASSES
        }
        self._buckets: dict[Hashable, list[float]] = {}

    def configure(
        self, limit: int | None, window: float | None = None, rate_class: str | None = None
    ) -> None:
        """Change the limit (and the window, unless None) of one class or of all.

        Raises:
            ValueError: unknown class or invalid values.
        """
        if rate_class is not None and rate_class not in self._configs:
            raise ValueError(f"unknown rate class {rate_class!r}")
        names = (rate_class,) if rate_class is not None else RATE_CLASSES
        for name in names:
            check_rate(limit, self._configs[name].window if window is None else window)
        for name in names:
            config = self._configs[name]
            config.limit = limit
            config.window = config.window if window is None else window

    def reset(self) -> None:
        """Empty every bucket."""
        self._buckets.clear()

    def consume(self, key: Hashable, rate_class: str, now: float) -> tuple[bool, dict[str, str]]:
        """Count one request on ``key``: (allowed, headers). A refused request counts nothing."""
        config = self._configs[rate_class]
        start = math.floor(now / config.window) * config.window
        bucket = self._buckets.get(key)
        if bucket is None or bucket[0] != start:
            bucket = self._buckets[key] = [start, 0]
        limit = UNLIMITED if config.limit is None else config.limit
        allowed = bucket[1] < limit
        if allowed:
            bucket[1] += 1
        return allowed, _headers(limit, limit - int(bucket[1]), start + config.window)

    def headers_without_bucket(self, now: float) -> dict[str, str]:
        """Headers for a response that counts on no bucket (401): a full default window."""
        config = self._configs["default"]
        limit = UNLIMITED if config.limit is None else config.limit
        end = math.floor(now / config.window) * config.window + config.window
        return _headers(limit, limit, end)


def _headers(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(remaining, 0)),
        # Rounded to the microsecond first so float noise never adds a second.
        "X-RateLimit-Reset": str(math.ceil(round(reset, 6))),
        "X-RateLimit-Reset-Precise": f"{reset:.6f}",
    }
