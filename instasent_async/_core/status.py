"""What an answer or a failure means: pure decisions, no I/O.

- ``SUCCESSES``: per operation, the statuses the API documents as success. Every
  other status, 1xx and 3xx included, is an error (redirects are never followed
  and never read as success).
- ``FailureKinds``: an exception raised while sending -> how the attempt ended
  (``"not_sent"``, ``"maybe_sent"`` or ``"fatal"``). The I/O shell fills it with
  aiohttp's classes, so this module never imports aiohttp.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from .endpoints import OPERATIONS

__all__ = [
    "SUCCESSES",
    "Failure",
    "FailureKinds",
]

Failure = Literal["not_sent", "maybe_sent", "fatal"]
"""How a request that got no answer ended: it never left (safe to repeat), it may
have reached the server, or it must not be repeated at all (TLS failure, a body
over the size limit)."""

_READ = frozenset({200})
# Stream writes answer 202 when queued, 200 with ``_sync``; deletes may answer 204.
_WRITE = frozenset({200, 202, 204})
# Batches: 207 carries per-item results (read item by item by the bulk engine).
_BATCH = frozenset({200, 201, 202, 207})
_DIRECT = frozenset({200, 201, 202, 204})

_BY_NAME: dict[str, frozenset[int]] = {
    "audience.sms_subscribe": _WRITE,
    "audience.sms_unsubscribe": _WRITE,
    "audience.email_subscribe": _WRITE,
    "audience.email_unsubscribe": _WRITE,
    "audience.delete": _WRITE,
    "datasource.contacts.delete": _WRITE,
    "datasource.contacts.upsert": _BATCH,
    "datasource.events.add": _BATCH,
    "sms.send_direct": _DIRECT,
    "sms.send_direct_utm": _DIRECT,
}

SUCCESSES: Mapping[str, frozenset[int]] = {name: _BY_NAME.get(name, _READ) for name in OPERATIONS}
"""Operation name -> the statuses that mean success (reads and searches: 200)."""


class FailureKinds:
    """Classifies an exception raised while sending, by the classes it is given.

    ``fatal`` is checked first, then ``not_sent``, then ``maybe_sent`` (so a
    subclass listed in an earlier group wins over its base in a later one).
    ``classes`` holds every class given: what the shell catches at all.
    """

    __slots__ = ("_groups", "classes")

    def __init__(
        self,
        *,
        fatal: tuple[type[BaseException], ...],
        not_sent: tuple[type[BaseException], ...],
        maybe_sent: tuple[type[BaseException], ...],
    ) -> None:
        self._groups: tuple[tuple[tuple[type[BaseException], ...], Failure], ...] = (
            (fatal, "fatal"),
            (not_sent, "not_sent"),
            (maybe_sent, "maybe_sent"),
        )
        self.classes = fatal + not_sent + maybe_sent

    def __call__(self, exc: BaseException) -> Failure:
        """The kind of failure ``exc`` is (``"fatal"`` for a class given in no group)."""
        for classes, kind in self._groups:
            if isinstance(exc, classes):
                return kind
        return "fatal"
