"""Query filters evaluated by the fake server: pure functions, no I/O.

Two languages of the Instasent API reference live here:

- the audience / event query filter: a tree of groups and conditions sent as
  the JSON body of search and scroll calls. :func:`compile_filter` validates the tree once
  and returns a predicate;
- the generic query filter of list endpoints: ``_start``/``_limit``/``_sort``/``_q``
  and ``field_operator=value`` query parameters. :func:`parse_list_query` turns them into
  a :class:`ListQuery` that :func:`apply_list_query` runs over a list of entities.

Both raise :class:`QueryFilterError` on malformed input; the server turns it into a 400.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar

import attrs
import orjson

__all__ = [
    "ALL_VALUES_MARKER",
    "EventView",
    "FilterContext",
    "ListQuery",
    "Predicate",
    "QueryFilterError",
    "apply_list_query",
    "compile_filter",
    "parse_iso8601",
    "parse_list_query",
    "sort_entities",
    "to_timestamp",
]

#: A leading ``"&&"`` in a condition's ``values`` means "every value must match".
ALL_VALUES_MARKER = "&&"


class QueryFilterError(ValueError):
    """The filter is malformed or uses an unknown operator (the server answers 400)."""


class EventView(Protocol):
    """What the filter needs to know about a stored event."""

    @property
    def event_type(self) -> str:
        """The ``_event_type`` of the event."""

    @property
    def timestamp(self) -> float:
        """``_event_date`` as epoch seconds."""

    @property
    def parameters(self) -> Mapping[str, Any]:
        """``_event_parameters`` (empty mapping when absent)."""

    def field(self, key: str) -> Any:
        """Any other read-side key (``_user_id``, ``_event_id``, ``id``...), or None."""


@attrs.frozen(slots=True)
class FilterContext:
    """What a condition may look up besides the subject itself.

    ``now`` is the server clock (epoch seconds) used by relative date ranges;
    ``segment_contains(uid, contact)`` answers segment conditions;
    ``events_of(contact)`` gives the events of a contact (audience filters with event
    conditions); ``contact_of(event)`` gives the contact of an event (event filters with
    attribute or segment conditions), or None.
    """

    now: float
    segment_contains: Callable[[str, Mapping[str, Any]], bool] = attrs.field(
        default=lambda _uid, _contact: False
    )
    events_of: Callable[[Mapping[str, Any]], Iterable[EventView]] = attrs.field(
        default=lambda _contact: ()
    )
    contact_of: Callable[[EventView], Mapping[str, Any] | None] = attrs.field(
        default=lambda _event: None
    )


#: A compiled filter: ``predicate(subject, context) -> bool``. The subject is a contact
#: mapping for audience filters and an :class:`EventView` for event filters.
Predicate = Callable[[Any, FilterContext], bool]
_ValueTest = Callable[[Any, float], bool]
_EventTest = Callable[[EventView, FilterContext], bool]

_MISSING: Any = object()
_M = TypeVar("_M", bound=Mapping[str, Any])
_NEGATIVE_SEGMENT_OPERATORS = frozenset({"not-in", "not-exists", "ne", "not-equals", "not"})
_POSITIVE_SEGMENT_OPERATORS = frozenset({"in", "exists", "eq", "equals", "matches-string", "is"})


def compile_filter(root: Any, *, target: Literal["audience", "event"]) -> Predicate:
    """Validate a filter tree (the ``root`` of a search or scroll) and return its predicate.

    ``target`` says what the predicate is applied to: contacts (``"audience"``) or events
    (``"event"``). ``None`` or a missing root matches everything.

    Raises:
        QueryFilterError: the tree is malformed or uses an unknown operator.
    """
    if root is None:
        return lambda _subject, _ctx: True
    return _compile_node(root, target, depth=0)


def _compile_node(node: Any, target: str, depth: int) -> Predicate:
    if depth > 32:
        raise QueryFilterError("filter nested too deeply")
    if not isinstance(node, Mapping):
        raise QueryFilterError("every filter node must be an object")
    kind = node.get("type")
    if kind == "group":
        return _compile_group(node, target, depth)
    if kind == "attribute_condition":
        return _compile_attribute(node, target)
    if kind == "segment_condition":
        return _compile_segment(node, target)
    if kind in ("event_condition", "group_event"):
        test = _compile_event_node(node, depth)
        if target == "event":
            return test
        return lambda contact, ctx: any(test(event, ctx) for event in ctx.events_of(contact))
    raise QueryFilterError(f"unknown filter node type {kind!r}")


def _join_of(node: Mapping[str, Any]) -> str:
    join = node.get("join", "and")
    if not isinstance(join, str) or join.lower() not in ("and", "or"):
        raise QueryFilterError(f"unknown join {join!r}")
    return join.lower()


def _children_of(node: Mapping[str, Any]) -> Sequence[Any]:
    children = node.get("children", [])
    if not isinstance(children, list):
        raise QueryFilterError("children must be a list")
    return children


def _combine(tests: list[Callable[[Any, FilterContext], bool]], join: str) -> Predicate:
    if len(tests) == 1:
        return tests[0]
    if join == "and":
        return lambda subject, ctx: all(test(subject, ctx) for test in tests)
    # An empty "or" group matches nothing, as in any boolean algebra.
    return lambda subject, ctx: any(test(subject, ctx) for test in tests)


def _compile_group(node: Mapping[str, Any], target: str, depth: int) -> Predicate:
    join = _join_of(node)
    tests = [_compile_node(child, target, depth + 1) for child in _children_of(node)]
    return _combine(tests, join)


def _key_of(node: Mapping[str, Any]) -> str:
    key = node.get("key")
    if not isinstance(key, str) or not key:
        raise QueryFilterError("a condition needs a non-empty string key")
    return key


def _compile_attribute(node: Mapping[str, Any], target: str) -> Predicate:
    key = _key_of(node)
    test = _compile_value_test(node.get("operator"), node.get("values"))

    if target == "audience":
        return lambda contact, ctx: test(contact.get(key), ctx.now)

    def on_event(event: EventView, ctx: FilterContext) -> bool:
        contact = ctx.contact_of(event)
        return test(None if contact is None else contact.get(key), ctx.now)

    return on_event


def _compile_segment(node: Mapping[str, Any], target: str) -> Predicate:
    uid = _key_of(node)
    operator = node.get("operator")
    if operator is None or operator in _POSITIVE_SEGMENT_OPERATORS:
        negate = False
    elif operator in _NEGATIVE_SEGMENT_OPERATORS:
        negate = True
    else:
        raise QueryFilterError(f"unknown segment operator {operator!r}")

    def on_contact(contact: Mapping[str, Any] | None, ctx: FilterContext) -> bool:
        member = contact is not None and ctx.segment_contains(uid, contact)
        return member != negate

    if target == "audience":
        return on_contact
    return lambda event, ctx: on_contact(ctx.contact_of(event), ctx)


def _compile_event_node(node: Any, depth: int) -> _EventTest:
    if depth > 32:
        raise QueryFilterError("filter nested too deeply")
    if not isinstance(node, Mapping):
        raise QueryFilterError("every filter node must be an object")
    kind = node.get("type")
    if kind == "event_condition":
        return _compile_event_condition(node)
    if kind in ("group_event", "group"):
        tests = [_compile_event_node(child, depth + 1) for child in _children_of(node)]
        combined = _combine(tests, _join_of(node))
        event_type = node.get("key") if kind == "group_event" else None
        if event_type is None:
            return combined
        if not isinstance(event_type, str):
            raise QueryFilterError("a group_event key must be an event type string")
        return lambda event, ctx: event.event_type == event_type and combined(event, ctx)
    raise QueryFilterError(f"unexpected node {kind!r} inside an event group")


def _compile_event_condition(node: Mapping[str, Any]) -> _EventTest:
    key = _key_of(node)
    operator = node.get("operator")
    test = _compile_value_test(operator, node.get("values"))
    getter: Callable[[EventView], Any]
    if key == "event-type":
        getter = _event_type_of
    elif key == "created-at":
        getter = _timestamp_of if operator in _DATE_OPERATORS else _created_at_text
    elif "." in key:
        event_type, _, parameter = key.partition(".")

        def getter(event: EventView) -> Any:
            if event.event_type != event_type:
                return _MISSING
            return event.parameters.get(parameter)

    else:

        def getter(event: EventView) -> Any:
            return event.field(key)

    def run(event: EventView, ctx: FilterContext) -> bool:
        value = getter(event)
        # A parameter condition never matches an event of another type, even "not-exists".
        return value is not _MISSING and test(value, ctx.now)

    return run


def _event_type_of(event: EventView) -> Any:
    return event.event_type


def _timestamp_of(event: EventView) -> Any:
    return event.timestamp


def _created_at_text(event: EventView) -> Any:
    return event.field("created-at")


# --- operators ---------------------------------------------------------------------------

_DATE_OPERATORS = frozenset({"range-date-relative"})


def _compile_value_test(operator: Any, values: Any) -> _ValueTest:
    if operator == "exists":
        return lambda value, _now: _present(value)
    if operator == "not-exists":
        return lambda value, _now: not _present(value)
    if operator in ("contains", "matches-string", "eq", "equals"):
        return _compile_scalar_test(operator, values)
    if operator == "range-number":
        return _compile_range_number(values)
    if operator == "range-date-relative":
        return _compile_range_date_relative(values)
    raise QueryFilterError(f"unknown operator {operator!r}")


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def _compile_scalar_test(operator: str, values: Any) -> _ValueTest:
    if not isinstance(values, list) or not values:
        raise QueryFilterError(f"operator {operator!r} needs a non-empty list of values")
    require_all = values[0] == ALL_VALUES_MARKER
    needles = values[1:] if require_all else values
    if not needles:
        raise QueryFilterError(f"operator {operator!r} needs at least one value")
    for needle in needles:
        if needle is None or isinstance(needle, (list, dict)):
            raise QueryFilterError("condition values must be strings, numbers or booleans")

    one: Callable[[Any, Any], bool]
    if operator == "contains":
        lowered = [_text(needle).lower() for needle in needles]

        def one(element: Any, needle: Any) -> bool:
            return bool(needle in _text(element).lower())

        needles = lowered
    elif operator == "matches-string":
        needles = [_text(needle).lower() for needle in needles]

        def one(element: Any, needle: Any) -> bool:
            return bool(_text(element).lower() == needle)

    else:
        one = _loose_equal

    def test(value: Any, _now: float) -> bool:
        if not _present(value):
            return False
        elements = value if isinstance(value, list) else (value,)
        hits = (any(one(element, needle) for element in elements) for needle in needles)
        return all(hits) if require_all else any(hits)

    return test


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _loose_equal(value: Any, needle: Any) -> bool:
    """Equality across the types a JSON filter and an ingested string may disagree on."""
    if isinstance(value, bool) or isinstance(needle, bool):
        return _as_bool(value) is not None and _as_bool(value) == _as_bool(needle)
    if isinstance(value, (int, float)) or isinstance(needle, (int, float)):
        left, right = _as_number(value), _as_number(needle)
        return left is not None and left == right
    return _text(value) == _text(needle)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _optional_number(values: Mapping[str, Any], key: str) -> float | None:
    raw = values.get(key)
    if raw is None:
        return None
    number = _as_number(raw)
    if number is None:
        raise QueryFilterError(f"{key} must be a number")
    return number


def _compile_range_number(values: Any) -> _ValueTest:
    if not isinstance(values, Mapping):
        raise QueryFilterError("range-number needs an object of values")
    lower = _optional_number(values, "lowerNumber")
    upper = _optional_number(values, "upperNumber")
    lower_open = bool(values.get("lowerExcludeEquals", False))
    upper_open = bool(values.get("upperExcludeEquals", False))

    def test(value: Any, _now: float) -> bool:
        numbers = value if isinstance(value, list) else (value,)
        for raw in numbers:
            number = _as_number(raw)
            if number is not None and _in_range(number, lower, upper, lower_open, upper_open):
                return True
        return False

    return test


def _in_range(
    value: float, lower: float | None, upper: float | None, lower_open: bool, upper_open: bool
) -> bool:
    if lower is not None and (value < lower or (lower_open and value == lower)):
        return False
    return not (upper is not None and (value > upper or (upper_open and value == upper)))


_PERIODS = ("second", "minute", "hour", "day", "week", "month", "year")
_FIXED_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}


def _period(values: Mapping[str, Any], key: str) -> str:
    raw = values.get(key) or "day"
    if not isinstance(raw, str):
        raise QueryFilterError(f"{key} must be a period name")
    period = raw.lower().rstrip("s")
    if period not in _PERIODS:
        raise QueryFilterError(f"unknown period {raw!r}")
    return period


def _rounding(values: Mapping[str, Any], key: str, default: str) -> str | None:
    raw = values.get(key)
    if raw is None or raw is False or raw == "":
        return None
    if raw is True:
        return default
    if isinstance(raw, str) and raw.lower().rstrip("s") in _PERIODS:
        return raw.lower().rstrip("s")
    raise QueryFilterError(f"{key} must be a boolean or a period name")


def _compile_range_date_relative(values: Any) -> _ValueTest:
    """Relative date range: offsets are signed amounts of a period added to now.

    ``lowerOffset: -7, lowerOffsetPeriod: "day"`` is "from 7 days ago"; a missing offset
    leaves that side open. ``*Rounding`` (true or a period name) rounds the lower bound down
    to the start of its period and the upper bound up to the end of its period.
    """
    if not isinstance(values, Mapping):
        raise QueryFilterError("range-date-relative needs an object of values")
    lower_offset = _optional_number(values, "lowerOffset")
    upper_offset = _optional_number(values, "upperOffset")
    lower_period = _period(values, "lowerOffsetPeriod")
    upper_period = _period(values, "upperOffsetPeriod")
    lower_rounding = _rounding(values, "lowerRounding", lower_period)
    upper_rounding = _rounding(values, "upperRounding", upper_period)
    lower_open = bool(values.get("lowerExcludeEquals", False))
    upper_open = bool(values.get("upperExcludeEquals", False)) or upper_rounding is not None
    cache: dict[float, tuple[float | None, float | None]] = {}

    def bounds(now: float) -> tuple[float | None, float | None]:
        found = cache.get(now)
        if found is None:
            lower = upper = None
            if lower_offset is not None:
                lower = _shift(now, lower_offset, lower_period)
                if lower_rounding is not None:
                    lower = _period_start(lower, lower_rounding)
            if upper_offset is not None:
                upper = _shift(now, upper_offset, upper_period)
                if upper_rounding is not None:
                    upper = _period_end(upper, upper_rounding)
            cache.clear()
            found = cache[now] = (lower, upper)
        return found

    def test(value: Any, now: float) -> bool:
        stamp = to_timestamp(value)
        if stamp is None:
            return False
        lower, upper = bounds(now)
        return _in_range(stamp, lower, upper, lower_open, upper_open)

    return test


def _utc(stamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(stamp, tz=dt.timezone.utc)


def _add_months(moment: dt.datetime, months: int) -> dt.datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _shift(now: float, amount: float, period: str) -> float:
    if period in _FIXED_SECONDS:
        return now + amount * _FIXED_SECONDS[period]
    months = round(amount) * (12 if period == "year" else 1)
    return _add_months(_utc(now), months).timestamp()


def _period_start(stamp: float, period: str) -> float:
    moment = _utc(stamp)
    if period == "second":
        moment = moment.replace(microsecond=0)
    elif period == "minute":
        moment = moment.replace(second=0, microsecond=0)
    elif period == "hour":
        moment = moment.replace(minute=0, second=0, microsecond=0)
    else:
        moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if period == "week":
            moment -= dt.timedelta(days=moment.weekday())
        elif period == "month":
            moment = moment.replace(day=1)
        elif period == "year":
            moment = moment.replace(month=1, day=1)
    return moment.timestamp()


def _period_end(stamp: float, period: str) -> float:
    """The start of the next period (used as an exclusive upper bound)."""
    start = _period_start(stamp, period)
    if period in _FIXED_SECONDS:
        return start + _FIXED_SECONDS[period]
    return _add_months(_utc(start), 12 if period == "year" else 1).timestamp()


_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)


def parse_iso8601(text: str) -> float | None:
    """Parse an ISO 8601 date or date-time to epoch seconds (naive means UTC), or None."""
    match = _ISO_RE.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=dt.timezone.utc,
        )
    except ValueError:
        return None
    stamp = moment.timestamp()
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60
        stamp -= sign * offset
    return stamp


def to_timestamp(value: Any) -> float | None:
    """Epoch seconds from an epoch number (seconds or milliseconds) or an ISO 8601 string."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) / 1000.0 if abs(value) > 1e11 else float(value)
    if isinstance(value, str):
        return parse_iso8601(value)
    return None


def sort_entities(items: Iterable[_M], keys: Sequence[tuple[str, bool]]) -> list[_M]:
    """Sort by ``(field path, descending)`` pairs, stable; missing values always go last.

    A field path uses ``*`` to reach nested fields (``attributes*drink``).
    """
    result = list(items)
    for path, descending in reversed(keys):
        getter = _path_getter(path)
        present = [item for item in result if _present_for_sort(getter(item))]
        missing = [item for item in result if not _present_for_sort(getter(item))]
        present.sort(key=lambda item: _sort_key(getter(item)), reverse=descending)
        result = present + missing
    return result


def _present_for_sort(value: Any) -> bool:
    return value is not None and value is not _MISSING


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, float(value))
    if isinstance(value, (int, float)):
        return (0, float(value))
    return (1, _text(value))


def _path_getter(path: str) -> Callable[[Mapping[str, Any]], Any]:
    parts = path.split("*")
    if len(parts) == 1:
        return lambda item: item.get(path)

    def get(item: Mapping[str, Any]) -> Any:
        current: Any = item
        for part in parts:
            if not isinstance(current, Mapping):
                return None
            current = current.get(part)
        return current

    return get


# --- generic query filter of list endpoints ---------------------------------------------

_ItemTest = Callable[[Mapping[str, Any]], bool]
_MAX_LIST_LIMIT = 100


@attrs.frozen(slots=True)
class ListQuery:
    """A parsed generic query filter: a predicate, a sort and an optional page."""

    predicate: _ItemTest
    sort: tuple[tuple[str, bool], ...] = ()
    start: int | None = None
    limit: int | None = None


def apply_list_query(items: Iterable[_M], query: ListQuery) -> list[_M]:
    """Filter, sort and page ``items`` as ``query`` says."""
    selected = [item for item in items if query.predicate(item)]
    if query.sort:
        selected = sort_entities(selected, query.sort)
    if query.start is not None and query.limit is not None:
        selected = selected[query.start : query.start + query.limit]
    return selected


_RESERVED_PARAMS = frozenset({"_sort", "_start", "_limit", "_group", "_q"})
_URL_OPERATORS = frozenset(
    {"eq", "ne", "neq", "in", "nin", "notin", "gt", "gte", "lt", "lte", "like", "contains"}
)


def parse_list_query(params: Iterable[tuple[str, str]], *, ignore: Iterable[str] = ()) -> ListQuery:
    """Parse the query parameters of a list call (the generic query filter).

    URL form: ``field_operator=value`` (operators ``eq ne in nin gt gte lt lte like
    contains``; a parameter without a known operator suffix means ``eq``; ``in`` takes a
    comma-separated list or a JSON array), ``_sort=a,b:-``, ``_start`` with ``_limit``
    (both or neither, ``_limit`` at most 100). JSON form: ``_q`` holding
    ``{"filter": [...], "paging": {...}, "sort": [...]}``; ``_q`` may also be a small
    expression such as ``status in ["draft","sent"] and title contains "x"``.
    Parameters named in ``ignore`` are not filters (endpoint-specific options).

    Raises:
        QueryFilterError: malformed parameters.
    """
    ignored = frozenset(ignore)
    tests: list[_ItemTest] = []
    sort: list[tuple[str, bool]] = []
    start = limit = None
    for name, raw in params:
        if name in ignored or name == "_group":
            continue
        if name == "_sort":
            sort.extend(_parse_sort_text(raw))
        elif name == "_start":
            start = _parse_int(raw, "_start", minimum=0)
        elif name == "_limit":
            limit = _parse_int(raw, "_limit", minimum=1)
        elif name == "_q":
            test, q_sort, q_start, q_limit = _parse_q(raw)
            tests.append(test)
            sort.extend(q_sort)
            if q_start is not None or q_limit is not None:
                start, limit = q_start or 0, q_limit
        elif name.startswith("_"):
            raise QueryFilterError(f"unknown reserved parameter {name!r}")
        else:
            tests.append(_url_condition(name, raw))
    if (start is None) != (limit is None):
        raise QueryFilterError("_start and _limit must be given together")
    if limit is not None and limit > _MAX_LIST_LIMIT:
        raise QueryFilterError(f"_limit must be at most {_MAX_LIST_LIMIT}")
    return ListQuery(_all_of(tests), tuple(sort), start, limit)


def _all_of(tests: list[_ItemTest]) -> _ItemTest:
    if not tests:
        return lambda _item: True
    if len(tests) == 1:
        return tests[0]
    return lambda item: all(test(item) for test in tests)


def _any_of(tests: list[_ItemTest]) -> _ItemTest:
    return lambda item: any(test(item) for test in tests)


def _parse_int(raw: Any, name: str, *, minimum: int) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise QueryFilterError(f"{name} must be an integer") from None
    if isinstance(raw, bool) or value < minimum:
        raise QueryFilterError(f"{name} must be at least {minimum}")
    return value


def _parse_sort_text(raw: str) -> list[tuple[str, bool]]:
    keys = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        descending = part.endswith(":-")
        field = part[:-2] if descending or part.endswith(":+") else part
        keys.append((field, descending))
    return keys


def _url_condition(name: str, raw: str) -> _ItemTest:
    field, _, operator = name.rpartition("_")
    if not field or operator not in _URL_OPERATORS:
        field, operator = name, "eq"
    if operator in ("in", "nin", "notin"):
        value: Any = _split_list(raw)
    else:
        value = raw
    return _field_condition(field, operator, value)


def _split_list(raw: str) -> list[Any]:
    text = raw.strip()
    if text.startswith("["):
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise QueryFilterError("malformed JSON list") from None
        return _flatten(parsed)
    return [part.strip() for part in text.split(",") if part.strip()]


def _flatten(value: Any) -> list[Any]:
    # n8n's default SMS filter nests a list inside the list (["sent", ["enqueued"]]).
    if not isinstance(value, list):
        return [value]
    flat: list[Any] = []
    for element in value:
        flat.extend(_flatten(element))
    return flat


_OPERATOR_ALIASES = {
    "=": "eq",
    "==": "eq",
    "equals": "eq",
    "!=": "ne",
    "<>": "ne",
    "neq": "ne",
    ">": "gt",
    ">=": "gte",
    "<": "lt",
    "<=": "lte",
    "not in": "nin",
    "notin": "nin",
    "not-in": "nin",
}


def _field_condition(field: str, operator: str, value: Any) -> _ItemTest:
    operator = _OPERATOR_ALIASES.get(operator.lower(), operator.lower())
    getter = _path_getter(field)
    if operator in ("in", "nin"):
        options = _flatten(value)
        negate = operator == "nin"

        def member(item: Mapping[str, Any]) -> bool:
            found = _elements(getter(item))
            hit = any(_compare(elem, option) == 0 for elem in found for option in options)
            return hit != negate

        return member
    if operator in ("like", "contains"):
        needle = _text(value).lower().strip("%")
        return lambda item: any(needle in _text(e).lower() for e in _elements(getter(item)))
    checks: dict[str, Callable[[int], bool]] = {
        "eq": lambda order: order == 0,
        "ne": lambda order: order != 0,
        "gt": lambda order: order > 0,
        "gte": lambda order: order >= 0,
        "lt": lambda order: order < 0,
        "lte": lambda order: order <= 0,
    }
    check = checks.get(operator)
    if check is None:
        raise QueryFilterError(f"unknown operator {operator!r}")
    if operator == "ne":
        return lambda item: all(_compare(e, value) != 0 for e in _elements(getter(item)))

    def compare(item: Mapping[str, Any]) -> bool:
        for element in _elements(getter(item)):
            order = _compare(element, value)
            if order is not None and check(order):
                return True
        return False

    return compare


def _elements(value: Any) -> list[Any]:
    if value is None or value is _MISSING:
        return []
    return value if isinstance(value, list) else [value]


def _compare(item_value: Any, filter_value: Any) -> int | None:
    """Order ``item_value`` against ``filter_value``, coerced to the item's type."""
    if filter_value is None:
        return 0 if item_value is None else None
    if isinstance(item_value, bool):
        wanted = _as_bool(filter_value)
        return None if wanted is None else (item_value > wanted) - (item_value < wanted)
    if isinstance(item_value, (int, float)):
        number = _as_number(filter_value)
        if number is None:
            return None
        return (item_value > number) - (item_value < number)
    left, right = _text(item_value), _text(filter_value)
    return (left > right) - (left < right)


def _parse_q(raw: str) -> tuple[_ItemTest, list[tuple[str, bool]], int | None, int | None]:
    text = raw.strip()
    if text.startswith("{"):
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise QueryFilterError("_q is not valid JSON") from None
        return _parse_q_document(document)
    return _ExpressionParser(text).parse(), [], None, None


def _parse_q_document(
    document: Any,
) -> tuple[_ItemTest, list[tuple[str, bool]], int | None, int | None]:
    if not isinstance(document, Mapping):
        raise QueryFilterError("_q must be a JSON object")
    test = _q_filters(document.get("filter", []), document.get("logic", "and"))
    sort: list[tuple[str, bool]] = []
    raw_sort = document.get("sort", [])
    if not isinstance(raw_sort, list):
        raise QueryFilterError("_q sort must be a list")
    for entry in raw_sort:
        sort.append(_q_sort_entry(entry))
    start = limit = None
    paging = document.get("paging")
    if paging is not None:
        if not isinstance(paging, Mapping):
            raise QueryFilterError("_q paging must be an object")
        start = _parse_int(paging.get("start", 0), "paging.start", minimum=0)
        limit = _parse_int(paging.get("limit"), "paging.limit", minimum=1)
    return test, sort, start, limit


def _q_sort_entry(entry: Any) -> tuple[str, bool]:
    if isinstance(entry, str):
        parsed = _parse_sort_text(entry)
        if len(parsed) == 1:
            return parsed[0]
    elif isinstance(entry, list) and len(entry) in (1, 2) and isinstance(entry[0], str):
        direction = str(entry[1]).lower() if len(entry) == 2 else "asc"
        return entry[0], direction in ("desc", "-", "-1")
    elif isinstance(entry, Mapping) and isinstance(entry.get("field"), str):
        direction = str(entry.get("direction", entry.get("order", "asc"))).lower()
        return entry["field"], direction in ("desc", "-", "-1")
    raise QueryFilterError("malformed _q sort entry")


def _q_filters(entries: Any, logic: Any) -> _ItemTest:
    if not isinstance(entries, list):
        raise QueryFilterError("_q filter must be a list")
    if not isinstance(logic, str) or logic.lower() not in ("and", "or"):
        raise QueryFilterError("_q logic must be 'and' or 'or'")
    tests = [_q_filter(entry) for entry in entries]
    if not tests:
        return lambda _item: True
    return _all_of(tests) if logic.lower() == "and" else _any_of(tests)


def _q_filter(entry: Any) -> _ItemTest:
    if not isinstance(entry, Mapping):
        raise QueryFilterError("every _q filter must be an object")
    for logic in ("and", "or"):
        if logic in entry:
            return _q_filters(entry[logic], logic)
    if "filter" in entry:
        return _q_filters(entry["filter"], entry.get("logic", "and"))
    field, operator = entry.get("field"), entry.get("operator", "eq")
    if not isinstance(field, str) or not isinstance(operator, str):
        raise QueryFilterError("a _q filter needs a field and an operator")
    return _field_condition(field.replace(".", "*"), operator, entry.get("value"))


class _ExpressionParser:
    """``field op value [and|or ...]`` with parentheses; ``and`` binds tighter than ``or``."""

    _TOKEN = re.compile(
        r"\s*(?:(?P<paren>[()])|(?P<op>not\s+in\b|>=|<=|!=|<>|==|=|>|<)"
        r"|(?P<word>[A-Za-z_][\w.*-]*))"
    )
    _DECODER_START = frozenset('"[{-0123456789')

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0

    def parse(self) -> _ItemTest:
        test = self._or()
        if self._text[self._pos :].strip():
            raise QueryFilterError("unexpected text at the end of _q")
        return test

    def _peek_word(self) -> str | None:
        match = self._TOKEN.match(self._text, self._pos)
        if match is None:
            return None
        return (match.group("word") or match.group("op") or match.group("paren") or "").lower()

    def _take(self) -> str:
        match = self._TOKEN.match(self._text, self._pos)
        if match is None:
            raise QueryFilterError("malformed _q expression")
        self._pos = match.end()
        return match.group("word") or match.group("op") or match.group("paren") or ""

    def _or(self) -> _ItemTest:
        tests = [self._and()]
        while self._peek_word() == "or":
            self._take()
            tests.append(self._and())
        return tests[0] if len(tests) == 1 else _any_of(tests)

    def _and(self) -> _ItemTest:
        tests = [self._factor()]
        while self._peek_word() == "and":
            self._take()
            tests.append(self._factor())
        return _all_of(tests)

    def _factor(self) -> _ItemTest:
        if self._peek_word() == "(":
            self._take()
            test = self._or()
            if self._take() != ")":
                raise QueryFilterError("missing ')' in _q")
            return test
        field = self._take()
        if not re.match(r"[A-Za-z_]", field):
            raise QueryFilterError("expected a field name in _q")
        operator = self._take().lower()
        operator = re.sub(r"\s+", " ", operator)
        return _field_condition(field.replace(".", "*"), operator, self._value())

    def _value(self) -> Any:
        rest = self._text[self._pos :]
        stripped = rest.lstrip()
        self._pos += len(rest) - len(stripped)
        if stripped[:1] in self._DECODER_START:
            # One JSON value, then the rest of the expression.
            end = _json_value_end(stripped)
            try:
                value = orjson.loads(stripped[:end])
            except orjson.JSONDecodeError:
                raise QueryFilterError("malformed value in _q") from None
            self._pos += end
            return value
        match = re.match(r"[^\s()]+", stripped)
        if match is None:
            raise QueryFilterError("missing value in _q")
        self._pos += match.end()
        word = match.group(0)
        return {"true": True, "false": False, "null": None}.get(word, word)


def _json_value_end(text: str) -> int:
    """Length of the JSON value at the start of ``text`` (strings, arrays, numbers)."""
    depth = 0
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                if depth == 0:
                    return index + 1
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return index + 1
        elif depth == 0 and (char.isspace() or char in "()"):
            return index
    return len(text)
