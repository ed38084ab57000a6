"""The parameters of a list (index) endpoint, defined once for every resource.

``ListOptions`` is what every ``list``-style method takes as keywords
(``start``, ``limit``, ``sort``, ``q``, ``filters``); ``list_params`` turns them
into the query string (``_start``, ``_limit``, ``_sort``, ``_q`` and the filters).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypedDict

import orjson

from ..models._base import format_datetime

__all__ = ["LIST_OPTIONS", "ListOptions", "list_params"]


class ListOptions(TypedDict, total=False):
    """Keywords of every list method (all optional).

    ``start`` (offset of the first item, default 0), ``limit`` (page size, 1..100,
    default 100), ``sort`` (a field or fields, ``"-name"`` descending), ``q`` (the
    JSON query filter) and ``filters`` (``{"status": "sent"}``, see ``list_params``).
    """

    start: int
    limit: int
    sort: str | Sequence[str] | None
    q: Mapping[str, Any] | None
    filters: Mapping[str, Any] | None


LIST_OPTIONS: Final = frozenset(ListOptions.__annotations__)


_OPERATORS: Final = frozenset({"eq", "neq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "like"})
_RESERVED: Final = {
    "_sort": "sort",
    "_start": "start",
    "_limit": "limit",
    "_q": "q",
    "_group": None,
}


def list_params(
    *,
    start: int | None = None,
    limit: int | None = None,
    sort: str | Sequence[str] | None = None,
    q: Mapping[str, Any] | None = None,
    filters: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Query-string parameters of a list (index) endpoint.

    - ``start``/``limit`` -> ``_start``/``_limit``, always both: ``limit`` alone
      starts at 0; ``start`` without ``limit`` is an error.
    - ``sort``: a field or fields; ``"-name"`` (or ``"name:-"``) sorts descending ->
      ``_sort=name:-,surname``.
    - ``q``: the JSON query filter, sent as ``_q`` (compact JSON).
    - ``filters``: ``{"status_eq": "sent"}`` or ``{"status": "sent"}`` (``eq``; a
      list value means ``in``). Keys ending in ``_eq``, ``_neq``, ``_ne``, ``_gt``,
      ``_gte``, ``_lt``, ``_lte``, ``_in``, ``_nin`` or ``_like`` are sent as is.
      Values: strings as is, numbers as text, booleans ``true``/``false``,
      datetimes as UTC ISO 8601, lists as a JSON array.

    Raises:
        ValueError: an argument has the wrong type or value (the message names it).
    """
    params: dict[str, str] = {}
    if start is not None or limit is not None:
        if limit is None:
            raise ValueError("start needs a limit: the API takes _start and _limit together")
        _check_list_int(limit, "limit", 1)
        _check_list_int(start if start is not None else 0, "start", 0)
        params["_start"] = str(start if start is not None else 0)
        params["_limit"] = str(limit)
    if sort is not None:
        params["_sort"] = _sort_param(sort)
    if q is not None:
        if not isinstance(q, Mapping):
            raise ValueError(f"q must be a mapping (the JSON query filter), got {type(q).__name__}")
        try:
            params["_q"] = orjson.dumps(q).decode()
        except TypeError as exc:
            raise ValueError(f"q is not JSON-serialisable: {exc}") from None
    if filters is not None:
        if not isinstance(filters, Mapping):
            raise ValueError(f"filters must be a mapping, got {type(filters).__name__}")
        for key, value in filters.items():
            name, text = _filter_param(key, value)
            params[name] = text
    return params


def _check_list_int(value: object, what: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")


def _sort_param(sort: object) -> str:
    if isinstance(sort, str):
        fields: Sequence[object] = sort.split(",")
    elif isinstance(sort, Sequence):
        fields = sort
    else:
        raise ValueError(f"sort must be a string or a sequence of strings, got {sort!r}")
    parts: list[str] = []
    for field in fields:
        if not isinstance(field, str):
            raise ValueError(f"sort fields must be strings, got {field!r}")
        text = field.strip()
        if text.startswith("-"):
            text = text[1:] + ":-"
        elif text.startswith("+"):
            text = text[1:]
        name = text[:-2] if text.endswith((":-", ":+")) else text
        if not name or "," in name or ":" in name:
            raise ValueError(f"sort field {field!r} is not a field name")
        parts.append(text)
    if not parts:
        raise ValueError("sort needs at least one field")
    return ",".join(parts)


def _filter_param(key: object, value: object) -> tuple[str, str]:
    if not isinstance(key, str) or not key:
        raise ValueError(f"filter names must be non-empty strings, got {key!r}")
    if key in _RESERVED:
        hint = _RESERVED[key]
        advice = f": use the {hint}= argument" if hint else ""
        raise ValueError(f"filters cannot set the reserved parameter {key!r}{advice}")
    field, _, suffix = key.rpartition("_")
    if not (field and suffix in _OPERATORS):
        key = f"{key}_in" if isinstance(value, (list, tuple)) else f"{key}_eq"
    return key, _filter_value(key, value)


def _filter_value(key: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, _dt.datetime):
        return format_datetime(value)
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        try:
            return orjson.dumps(list(value)).decode()
        except TypeError as exc:
            raise ValueError(f"filter {key!r}: the list is not JSON-serialisable: {exc}") from None
    raise ValueError(
        f"filter {key!r}: unsupported value {value!r} (use a str, number, bool, date or list)"
    )
