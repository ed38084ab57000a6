"""Bulk write results: what happened to every item of an upsert, add or ingest."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

__all__ = ["BatchOutcome", "FailedItem", "IngestReport", "RejectedItem"]

_SHOWN = 5  # rejected/failed items listed by str(report)

UNKNOWN_OUTCOME = (
    "the server did not say whether this item was accepted (its response is in report.raw)"
)
"""The ``FailedItem.reason`` of items whose outcome the response left open."""


@attrs.frozen(slots=True)
class RejectedItem:
    """An item the server refused, with its per-field errors (fix it, then resend).

    ``position`` is the item's index in the caller's input; ``errors`` maps a
    field (``"_"`` when the server named none) to its messages.
    """

    item: Any
    position: int
    errors: dict[str, list[str]]


@attrs.frozen(slots=True)
class FailedItem:
    """An item whose request failed (transport error, 5xx after retries, unknown outcome).

    Unlike a rejection this says nothing about the item itself: resending it is
    safe for contacts (upsert) and for events with an ``_event_id`` (deduplicated).
    """

    item: Any
    position: int
    reason: str


@attrs.frozen(slots=True)
class BatchOutcome:
    """The parsed answer to one batch request (see ``_batch.parse_batch``).

    ``accepted`` counts accepted items; ``rejected`` carries positions in the
    caller's input; ``unknown`` lists positions whose fate the response does not
    settle; ``raw`` is the response body when it was not (fully) understood.
    """

    accepted: int = 0
    rejected: list[RejectedItem] = attrs.field(factory=list)
    unknown: list[int] = attrs.field(factory=list)
    raw: Any | None = None


@attrs.define(slots=True)
class IngestReport:
    """The result of an ``upsert``, ``add`` or ``ingest``: every input item is accounted for.

    Each item is counted in exactly one of ``accepted`` (a count), ``rejected``
    (refused by the server, with its errors) or ``failed`` (its request failed or
    its outcome is unknown, with the reason). ``requests``, ``retries``,
    ``rate_limit_waits`` and ``elapsed`` (seconds) describe the work done; ``raw``
    keeps response bodies the SDK could not fully interpret, for inspection.

    The report is filled in place by the bulk engine (``add_outcome``,
    ``add_failed``, ``merge``); ``ok`` is true when nothing was rejected or failed.
    """

    total: int = 0
    accepted: int = 0
    rejected: list[RejectedItem] = attrs.field(factory=list)
    failed: list[FailedItem] = attrs.field(factory=list)
    requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    elapsed: float = 0.0
    raw: list[Any] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        """True when no item was rejected or failed."""
        return not self.rejected and not self.failed

    @property
    def done(self) -> int:
        """How many items have an outcome so far (accepted + rejected + failed)."""
        return self.accepted + len(self.rejected) + len(self.failed)

    def add_outcome(
        self,
        outcome: BatchOutcome,
        items: Sequence[Any],
        offset: int = 0,
        *,
        unknown_reason: str = UNKNOWN_OUTCOME,
    ) -> None:
        """Record one parsed batch.

        ``items`` are the caller's items of that batch and ``offset`` the position
        of ``items[0]`` in the caller's input: rejected entries get the caller's
        item (not its wire form) and positions whose fate is unknown become
        ``FailedItem``s with ``unknown_reason``.

        Raises:
            IndexError: a position of ``outcome`` falls outside ``items``.
        """
        self.accepted += outcome.accepted
        for rejected in outcome.rejected:
            item = items[rejected.position - offset]
            if item is not rejected.item:
                rejected = RejectedItem(item, rejected.position, rejected.errors)
            self.rejected.append(rejected)
        for position in outcome.unknown:
            self.failed.append(FailedItem(items[position - offset], position, unknown_reason))
        if outcome.raw is not None:
            self.raw.append(outcome.raw)

    def add_failed(self, items: Iterable[Any], offset: int, reason: str) -> None:
        """Mark a run of items (the first at position ``offset``) as failed for ``reason``."""
        self.failed.extend(
            FailedItem(item, position, reason) for position, item in enumerate(items, offset)
        )

    def merge(self, other: IngestReport) -> IngestReport:
        """Add ``other``'s counts and items to this report (in place) and return it.

        ``elapsed`` takes the larger of the two (reports merged from concurrent
        work overlap in time); everything else is summed or concatenated.
        """
        self.total += other.total
        self.accepted += other.accepted
        self.rejected.extend(other.rejected)
        self.failed.extend(other.failed)
        self.requests += other.requests
        self.retries += other.retries
        self.rate_limit_waits += other.rate_limit_waits
        self.elapsed = max(self.elapsed, other.elapsed)
        self.raw.extend(other.raw)
        return self

    def sort(self) -> None:
        """Order ``rejected`` and ``failed`` by position (batches may finish out of order)."""
        self.rejected.sort(key=_position)
        self.failed.sort(key=_position)

    def __str__(self) -> str:
        lines = [
            f"{self.total} items: {self.accepted} accepted, {len(self.rejected)} rejected, "
            f"{len(self.failed)} failed ({self.requests} requests, {self.retries} retries, "
            f"{self.rate_limit_waits} rate-limit waits, {self.elapsed:.2f}s)"
        ]
        for r in self.rejected[:_SHOWN]:
            errors = "; ".join(f"{field}: {', '.join(msgs)}" for field, msgs in r.errors.items())
            lines.append(f"  rejected #{r.position}: {errors}")
        if len(self.rejected) > _SHOWN:
            lines.append(f"  ... and {len(self.rejected) - _SHOWN} more rejected")
        for f in self.failed[:_SHOWN]:
            lines.append(f"  failed #{f.position}: {f.reason}")
        if len(self.failed) > _SHOWN:
            lines.append(f"  ... and {len(self.failed) - _SHOWN} more failed")
        if self.raw:
            lines.append(f"  {len(self.raw)} response bodies kept in .raw")
        return "\n".join(lines)


def _position(entry: RejectedItem | FailedItem) -> int:
    return entry.position
