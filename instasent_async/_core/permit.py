"""What the bucket core hands out and says back: ``Permit`` and ``Notice``.

``Bucket.grant`` gives a ``Permit`` (the right to send one request), the caller
hands it back to ``Bucket.observe`` with the answer, which returns a ``Notice`` of
what changed (``QUIET`` when nothing did).
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = ["QUIET", "Notice", "Permit"]


class Notice(NamedTuple):
    """What one answer changed that a shell may tell its users.

    ``closed_for``: a 429 closed (or kept closed) the bucket for this many seconds.
    ``unmanaged_because``: the bucket just stopped pacing, and why.
    ``limit_change``: (previous, new) ``X-RateLimit-Limit``.
    ``reopened``: the probe after a 429 was answered and the bucket is open again.
    """

    closed_for: float | None = None
    unmanaged_because: str | None = None
    limit_change: tuple[int, int] | None = None
    reopened: bool = False


QUIET: Final = Notice()


class Permit:
    """The right to send one request in ``bucket`` (the ``Bucket`` that granted it);
    hand it back to that bucket's ``observe``."""

    __slots__ = ("bucket", "probe", "sent_at", "settled")

    def __init__(self, bucket: object, sent_at: float, probe: bool) -> None:
        self.bucket = bucket
        self.sent_at = sent_at
        self.probe = probe
        self.settled = False
