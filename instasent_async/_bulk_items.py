"""A batch of one ingest request, and the checks its items pass before it is sent.

``Batch`` holds the wire items of one request and the source positions they came
from; once encoded it keeps only its body. The checks find, by index, the items
that cannot go: no ``_event_id`` (a retry could store the event twice), not
encodable as JSON, or holding NaN or infinity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import Any, overload

import orjson

__all__ = [
    "MISSING_EVENT_ID",
    "NON_FINITE",
    "Batch",
    "Errors",
    "has_event_id",
    "missing_event_ids",
    "non_finite",
    "unencodable",
    "unencodable_errors",
]

Errors = dict[str, list[str]]
"""Per-item errors as the API words them: field -> messages."""

MISSING_EVENT_ID = (
    "missing _event_id: the server deduplicates events on it, so without one a retry "
    "could store the event twice"
)
NON_FINITE = "NaN and infinity cannot be sent: JSON has no such numbers"


class Batch(Sequence[Any]):
    """The wire items of one request, and the source records they came from.

    The batch covers source positions ``start .. end - 1``; item ``i`` of the
    request is at position ``position(i)`` (``start + i`` until items are set
    aside, then the ``positions`` list). Once built, the batch holds its
    encoded ``body`` and nothing else: the wire dicts are decoded from it again
    only when an answer needs them (a rejection, a failure, a dead letter).
    """

    __slots__ = ("_wire", "body", "end", "idempotent", "positions", "size", "start")

    def __init__(self, start: int, wire: list[Any]) -> None:
        self.start = start
        self.end = start + len(wire)
        self.size = len(wire)
        self._wire: list[Any] | None = wire
        self.positions: list[int] | None = None
        self.idempotent = True
        self.body = b""

    @property
    def wire(self) -> list[Any]:
        """The wire items (decoded from the body once it is built)."""
        if self._wire is None:
            self._wire = orjson.loads(self.body)
        return self._wire

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        return self.wire[index]

    def position(self, i: int) -> int:
        """The source position of item ``i``."""
        return self.start + i if self.positions is None else self.positions[i]

    def drop(self, indices: Iterable[int]) -> None:
        """Take the items at ``indices`` out of the request (they were accounted for)."""
        gone = set(indices)
        keep = [i for i in range(self.size) if i not in gone]
        wire = self.wire
        self.positions = [self.position(i) for i in keep]
        self._wire = [wire[i] for i in keep]
        self.size = len(keep)

    def encode(self) -> None:
        """Encode the request body.

        Raises:
            TypeError (orjson.JSONEncodeError): an item cannot be encoded.
        """
        self.body = orjson.dumps(self.wire)

    def release(self) -> None:
        """Let go of the wire items: from now on the body is the batch."""
        self._wire = None


def has_event_id(wire: Any) -> bool:
    """Whether a wire item carries a non-empty ``_event_id``."""
    try:
        value = wire.get("_event_id")
    except AttributeError:
        return False
    return value is not None and value != ""


def missing_event_ids(wire: list[Any]) -> list[int]:
    """Indices of the wire items without an ``_event_id`` (see ``has_event_id``)."""
    try:
        # Wire items are dicts: every id read in C, and none missing, the usual case.
        if all(map(dict.get, wire, repeat("_event_id"))):
            return []
    except TypeError:
        pass
    return [i for i, w in enumerate(wire) if not has_event_id(w)]


def unencodable(wire: list[Any]) -> list[int]:
    """Indices of the wire items orjson cannot encode."""
    bad = []
    for i, item in enumerate(wire):
        try:
            orjson.dumps(item)
        except TypeError:
            bad.append(i)
    return bad


def unencodable_errors(wire: list[Any]) -> Callable[[int], Errors]:
    """The per-item errors of the items ``unencodable`` found, by index."""

    def errors(i: int) -> Errors:
        try:
            orjson.dumps(wire[i])
        except TypeError as exc:
            return {"_": [f"cannot be sent as JSON: {exc}"]}
        return {"_": ["cannot be sent as JSON"]}

    return errors


def non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN or infinity in a wire value (``"_"`` at the top), or None."""
    kind = type(value)
    if kind is float or isinstance(value, float):
        return None if math.isfinite(value) else path or "_"
    if kind is dict or isinstance(value, dict):
        for key, sub in value.items():
            if type(sub) in (str, int, bool) or sub is None:
                continue
            found = non_finite(sub, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif kind is list or kind is tuple:
        for index, sub in enumerate(value):
            found = non_finite(sub, f"{path}[{index}]")
            if found:
                return found
    return None
