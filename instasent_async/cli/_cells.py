"""CSV cells turned into the types a datasource's attribute specs declare.

A CSV cell is text; the API wants ``"age": 33`` for a number attribute, ``"1"``/``"0"``
for a ``bool`` one and an array for a multi-value one. :func:`converters` reads the
specs (``datasource.specs.attributes()``, fetched once per run) and returns one
converter per column that needs one; columns of text-like types (``string``, ``text``,
``date``, ``payload``...) and columns without a spec stay strings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ..models.specs import AttributeSpec
from ._files import CellConverter

__all__ = ["FALSE_WORDS", "NUMBER_TYPES", "TRUE_WORDS", "converters"]

NUMBER_TYPES = frozenset(
    {"number", "numeric", "int", "integer", "long", "float", "double", "decimal"}
)
"""``dataType`` values whose cells are sent as JSON numbers."""

_BOOL_TYPES = frozenset({"bool", "boolean"})
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "t"})
"""Cells (case-insensitive) sent as ``"1"`` for a ``bool`` attribute."""
FALSE_WORDS = frozenset({"0", "false", "no", "n", "f"})
"""Cells (case-insensitive) sent as ``"0"`` for a ``bool`` attribute."""

_INTEGER = re.compile(r"[+-]?\d+")
_SHOWN_CHARS = 30


def _shown(cell: str) -> str:
    return repr(cell if len(cell) <= _SHOWN_CHARS else cell[: _SHOWN_CHARS - 3] + "...")


def _number(cell: str) -> int | float:
    text = cell.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"expected a number, got {_shown(cell)}")
    return value


def _boolean(cell: str) -> str:
    word = cell.strip().lower()
    if word in TRUE_WORDS:
        return "1"
    if word in FALSE_WORDS:
        return "0"
    raise ValueError(f"expected a boolean (1/0, true/false, yes/no), got {_shown(cell)}")


def _text(cell: str) -> str:
    return cell


class _Declared:
    """The converter of one column: its spec's type, and a list when multi-value."""

    __slots__ = ("data_type", "many", "one")

    def __init__(self, data_type: str, one: CellConverter, many: bool) -> None:
        self.data_type = data_type
        self.one = one
        self.many = many

    def __call__(self, cell: str) -> Any:
        try:
            if not self.many:
                return self.one(cell)
            if cell.lstrip().startswith("["):
                return self._list(cell)
            return [self.one(cell)]
        except ValueError as exc:
            raise ValueError(
                f"{exc} (the datasource declares it {self.data_type}"
                f"{', multi-value' if self.many else ''}; fix the cell or pass --csv-strings "
                "to send cells as they are)"
            ) from None

    def _list(self, cell: str) -> list[Any]:
        try:
            values = orjson.loads(cell)
        except orjson.JSONDecodeError:
            raise ValueError(f"expected a JSON array, got {_shown(cell)}") from None
        if not isinstance(values, list):
            raise ValueError(f"expected a JSON array, got {_shown(cell)}")
        return [self.one(v) if isinstance(v, str) else v for v in values]


def _converter_of(data_type: str) -> CellConverter | None:
    if data_type in NUMBER_TYPES:
        return _number
    if data_type in _BOOL_TYPES:
        return _boolean
    return None


def converters(
    specs: Iterable[AttributeSpec], *, skip: Iterable[str] = ()
) -> Mapping[str, CellConverter]:
    """One converter per attribute whose declared type is not text (or is multi-value).

    ``skip`` names columns converted otherwise (the JSON columns). A converter raises
    ``ValueError`` with a message naming the declared type and ``--csv-strings``.
    """
    skipped = frozenset(skip)
    found: dict[str, CellConverter] = {}
    for spec in specs:
        if not spec.uid or spec.uid in skipped:
            continue
        data_type = (spec.data_type or "").strip().lower()
        one = _converter_of(data_type)
        many = (spec.multivalue or 1) > 1
        if one is None and not many:
            continue
        found[spec.uid] = _Declared(data_type or "untyped", one or _text, many)
    return found
