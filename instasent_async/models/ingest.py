"""Bulk write results: what happened to every item of an upsert, add or ingest."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["FailedItem", "IngestReport", "RejectedItem"]

_SHOWN = 5  # rejected/failed items listed by str(report)


@attrs.frozen(slots=True)
class RejectedItem:
    """An item refused, with its per-field errors (fix it, then resend).

    Refused by the server, or before sending when the wire cannot carry it (no
    ``_event_id`` on an event, NaN or infinity, a value JSON cannot hold, not a
    mapping or a model). ``item`` is the item as sent (its wire form, a dict;
    the caller's object when it has none); ``position`` is its 0-based index in
    the caller's input and ``line`` its line in the source file when the caller
    said (``locate=``); ``errors`` maps a field (``"_"`` when none is named) to
    its messages.
    """

    item: Any
    position: int
    errors: dict[str, list[str]]
    line: int | None = None


@attrs.frozen(slots=True)
class FailedItem:
    """An item whose request failed (transport error, 5xx after retries, unknown outcome).

    Unlike a rejection this says nothing about the item itself: resending it is
    safe for contacts (upsert) and for events with an ``_event_id`` (deduplicated).
    ``item``, ``position`` and ``line`` as for ``RejectedItem``.
    """

    item: Any
    position: int
    reason: str
    line: int | None = None


@attrs.define(slots=True)
class IngestReport:
    """The result of an ``upsert``, ``add`` or ``ingest``: every item read is accounted for.

    Each item read from the source is counted in exactly one of ``accepted``,
    ``rejected_count`` (refused, with its errors) or ``failed_count`` (its
    request failed or its outcome is unknown, with the reason); the counts are
    exact for any input size. ``rejected`` and ``failed`` keep the first
    ``keep_items`` entries of each kind (ordered by position at the end; the
    dead letter, when set, holds every one). ``consumed`` is how many leading
    source records are fully accounted for (and written to the dead letter when
    they had to be): a resumed run skips exactly that many. ``requests``,
    ``retries``, ``rate_limit_waits`` (requests the governor held back to pace
    them), ``rate_limited`` (429 answers) and ``elapsed`` (seconds) describe the
    work done; ``raw`` keeps (up to ``keep_items``) response bodies that were not
    fully understood, for inspection.
    """

    total: int = 0
    accepted: int = 0
    rejected: list[RejectedItem] = attrs.field(factory=list)
    failed: list[FailedItem] = attrs.field(factory=list)
    rejected_count: int = 0
    failed_count: int = 0
    consumed: int = 0
    requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    rate_limited: int = 0
    elapsed: float = 0.0
    raw: list[Any] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        """True when no item was rejected or failed."""
        return not self.rejected_count and not self.failed_count

    @property
    def done(self) -> int:
        """How many items have an outcome so far (accepted + rejected + failed)."""
        return self.accepted + self.rejected_count + self.failed_count

    def sort(self) -> None:
        """Order ``rejected`` and ``failed`` by position (batches may finish out of order)."""
        self.rejected.sort(key=_position)
        self.failed.sort(key=_position)

    def __str__(self) -> str:
        lines = [
            f"{self.total} items: {self.accepted} accepted, {self.rejected_count} rejected, "
            f"{self.failed_count} failed ({self.requests} requests, {self.retries} retries, "
            f"{self.rate_limit_waits} paced, {self.rate_limited} rate-limited (429), "
            f"{self.elapsed:.2f}s)"
        ]
        for r in self.rejected[:_SHOWN]:
            errors = "; ".join(f"{field}: {', '.join(msgs)}" for field, msgs in r.errors.items())
            lines.append(f"  rejected {_where(r)}: {errors}")
        if self.rejected_count > _SHOWN:
            lines.append(f"  ... and {self.rejected_count - _SHOWN} more rejected")
        for f in self.failed[:_SHOWN]:
            lines.append(f"  failed {_where(f)}: {f.reason}")
        if self.failed_count > _SHOWN:
            lines.append(f"  ... and {self.failed_count - _SHOWN} more failed")
        if self.raw:
            lines.append(f"  {len(self.raw)} response bodies kept in .raw")
        return "\n".join(lines)


def _position(entry: RejectedItem | FailedItem) -> int:
    return entry.position


def _where(entry: RejectedItem | FailedItem) -> str:
    if entry.line is not None:
        return f"#{entry.position} (line {entry.line})"
    return f"#{entry.position}"
