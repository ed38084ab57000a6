"""A small typed builder for audience and event query filters.

The builder is sugar: every method that takes a query also takes the wire dict
(the audience and event query filters of Instasent's API reference), and the builder
produces exactly that dict::

    from instasent_async.query import Q, AudienceQuery, EventQuery

    q = AudienceQuery(
        Q.all(Q.attr("_email").contains("yahoo"),
              Q.any(Q.attr("plan").eq("pro"), Q.segment("seg_1"))),
        sort_field="_date_updated", sort_asc=False, include_all_data=True,
    )
    q.to_dict()  # {"version": "0.0.1", "root": {"type": "group", "join": "and", ...}, ...}

    EventQuery(Q.event("event-type").matches("order"), Q.event("created-at").in_last(7))

Operators documented by Instasent: ``contains``, ``matches-string`` (``matches``,
``eq``; ``has_all`` adds the leading ``"&&"`` token), ``exists``,
``range-date-relative`` (``in_last``, ``date_relative``) and ``range-number``
(``between``, ``gte``, ``lte``). ``not_exists`` (``"not-exists"``) and the shapes
of ``Q.segment`` / ``Q.group_event`` are inferred (and match ``FakeInstasent``);
``Field.op`` and raw dict children cover anything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Union

import attrs

__all__ = [
    "DEFAULT_VERSION",
    "AudienceQuery",
    "Condition",
    "EventQuery",
    "Field",
    "Group",
    "Q",
    "query_to_dict",
]

DEFAULT_VERSION: Final = "0.0.1"
"""The query filter version the API documents."""

_PERIODS: Final = frozenset({"second", "minute", "hour", "day", "week", "month", "year"})


@attrs.frozen(slots=True)
class Condition:
    """One condition: ``{"type", "key", "operator", "values"}`` on the wire.

    ``values`` is a tuple (sent as a list) or a mapping (sent as an object, for
    the range operators).
    """

    type: str
    key: str
    operator: str
    values: tuple[Any, ...] | Mapping[str, Any] = ()

    def to_dict(self) -> dict[str, Any]:
        """The wire form of this condition (a new dict)."""
        values = self.values
        return {
            "type": self.type,
            "key": self.key,
            "operator": self.operator,
            "values": dict(values) if isinstance(values, Mapping) else list(values),
        }


Node = Union[Condition, "Group", Mapping[str, Any]]
"""A child of a group: a condition, a group, or a raw wire dict (copied shallowly)."""


@attrs.frozen(slots=True)
class Group:
    """Children joined by ``and`` / ``or``.

    ``type`` is ``group``, or ``group_event`` for event conditions that must hold
    for one event, whose ``key`` is then the event type.
    """

    join: str
    children: tuple[Node, ...] = ()
    type: str = "group"
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The wire form of this group (new dicts all the way down, raw children copied)."""
        out: dict[str, Any] = {"type": self.type}
        if self.key is not None:
            out["key"] = self.key
        out["join"] = self.join
        out["children"] = [_node_dict(child) for child in self.children]
        return out


def _node_dict(node: Node) -> dict[str, Any]:
    if isinstance(node, (Condition, Group)):
        return node.to_dict()
    if isinstance(node, Mapping):
        return dict(node)
    raise TypeError(
        f"a query child must be a condition, a group or a dict, not {type(node).__name__}"
    )


def _check_key(key: object, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"{what} must be a non-empty string, got {key!r}")
    return key


def _check_number(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")


@attrs.frozen(slots=True)
class Field:
    """A key to build conditions on; get one from ``Q.attr`` or ``Q.event``."""

    type: str
    key: str

    def op(self, operator: str, values: Sequence[Any] | Mapping[str, Any] = ()) -> Condition:
        """A condition with any operator and values, sent as given (the escape hatch).

        Raises:
            ValueError: ``operator`` is empty.
        """
        _check_key(operator, "operator")
        if isinstance(values, Mapping):
            return Condition(self.type, self.key, operator, dict(values))
        if isinstance(values, (str, bytes)):
            raise ValueError("values must be a sequence of values or a mapping, not a string")
        return Condition(self.type, self.key, operator, tuple(values))

    def contains(self, *values: Any) -> Condition:
        """``contains``: the value contains any of ``values`` (substring)."""
        return self.op("contains", values)

    def matches(self, *values: Any) -> Condition:
        """``matches-string``: the value is one of ``values``."""
        return self.op("matches-string", values)

    def eq(self, value: Any) -> Condition:
        """Equal to ``value``: ``matches-string [value]``, or ``range-number`` for a number."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return self.between(value, value)
        return self.matches(value)

    def has_all(self, *values: Any) -> Condition:
        """Multi-value attributes (tags): has every one of ``values`` (``["&&", ...]``).

        Raises:
            ValueError: no value given.
        """
        if not values:
            raise ValueError("has_all() needs at least one value")
        return self.op("matches-string", ("&&", *values))

    def has_any(self, *values: Any) -> Condition:
        """Multi-value attributes (tags): has at least one of ``values``."""
        return self.matches(*values)

    def exists(self) -> Condition:
        """``exists``: the key has a value."""
        return self.op("exists")

    def not_exists(self) -> Condition:
        """``not-exists``: the key has no value (operator name inferred, not documented)."""
        return self.op("not-exists")

    def between(self, lower: float | None = None, upper: float | None = None) -> Condition:
        """``range-number``: ``lower <= value <= upper`` (either bound may be open).

        Raises:
            ValueError: both bounds are ``None``, or a bound is not a number.
        """
        if lower is None and upper is None:
            raise ValueError("between() needs a lower or an upper bound")
        for bound, what in ((lower, "lower"), (upper, "upper")):
            if bound is not None:
                _check_number(bound, what)
        return self.op("range-number", {"lowerNumber": lower, "upperNumber": upper})

    def gte(self, value: float) -> Condition:
        """``range-number`` with only a lower bound."""
        return self.between(value, None)

    def lte(self, value: float) -> Condition:
        """``range-number`` with only an upper bound."""
        return self.between(None, value)

    def in_last(self, amount: int, period: str = "day") -> Condition:
        """``range-date-relative``: within the last ``amount`` ``period``\\s (up to now).

        Raises:
            ValueError: ``amount`` is not a positive int or ``period`` is unknown.
        """
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError(f"amount must be a positive int, got {amount!r}")
        if period not in _PERIODS:
            raise ValueError(f"period must be one of {sorted(_PERIODS)}, got {period!r}")
        return self.date_relative(lower=-amount, period=period)

    def date_relative(
        self,
        *,
        lower: int | None = None,
        upper: int | None = None,
        period: str = "day",
        lower_period: str | None = None,
        upper_period: str | None = None,
        lower_exclude: bool = False,
        upper_exclude: bool = False,
        lower_rounding: bool = False,
        upper_rounding: bool = False,
    ) -> Condition:
        """``range-date-relative`` with every knob: offsets relative to now, in periods.

        ``lower=-30`` is "30 periods ago"; ``None`` leaves a bound open.

        Raises:
            ValueError: both offsets are ``None``.
        """
        if lower is None and upper is None:
            raise ValueError("date_relative() needs a lower or an upper offset")
        return self.op(
            "range-date-relative",
            {
                "lowerOffset": lower,
                "upperOffset": upper,
                "lowerExcludeEquals": lower_exclude,
                "upperExcludeEquals": upper_exclude,
                "lowerRounding": lower_rounding,
                "upperRounding": upper_rounding,
                "lowerOffsetPeriod": lower_period or period,
                "upperOffsetPeriod": upper_period or period,
            },
        )


class Q:
    """Entry points of the builder (all static)."""

    @staticmethod
    def attr(key: str) -> Field:
        """A contact attribute (``_email``, ``_client_tags``, a custom key...).

        Raises:
            ValueError: ``key`` is empty.
        """
        return Field("attribute_condition", _check_key(key, "key"))

    @staticmethod
    def event(key: str) -> Field:
        """An event field: ``event-type``, ``created-at`` or ``<event type>.<parameter>``.

        Raises:
            ValueError: ``key`` is empty.
        """
        return Field("event_condition", _check_key(key, "key"))

    @staticmethod
    def segment(uid: str, *, operator: str = "in") -> Condition:
        """Membership of the segment ``uid`` (a ``segment_condition``).

        The wire shape of segment conditions is not documented; this sends
        ``{"type": "segment_condition", "key": uid, "operator": "in", "values": []}``
        (what ``FakeInstasent`` understands). ``operator="not-in"`` negates it.

        Raises:
            ValueError: ``uid`` or ``operator`` is empty.
        """
        _check_key(operator, "operator")
        return Condition("segment_condition", _check_key(uid, "segment uid"), operator)

    @staticmethod
    def not_in_segment(uid: str) -> Condition:
        """Not a member of the segment ``uid`` (operator ``not-in``, inferred)."""
        return Q.segment(uid, operator="not-in")

    @staticmethod
    def all(*children: Node) -> Group:
        """Every child must match (``join: "and"``)."""
        return Group("and", children)

    @staticmethod
    def any(*children: Node) -> Group:
        """At least one child must match (``join: "or"``)."""
        return Group("or", children)

    @staticmethod
    def group_event(event_type: str, *children: Node, join: str = "and") -> Group:
        """Event conditions that must hold for one event of ``event_type``.

        Sent as ``{"type": "group_event", "key": event_type, "join", "children"}``
        (shape inferred from the docs' description; ``FakeInstasent`` reads it so).

        Raises:
            ValueError: ``event_type`` is empty.
        """
        return Group(join, children, type="group_event", key=_check_key(event_type, "event_type"))


def _root(conditions: tuple[Node, ...]) -> Node:
    if len(conditions) == 1:
        only = conditions[0]
        if isinstance(only, Group) and only.type == "group":
            return only
        if isinstance(only, Mapping) and only.get("type") == "group":
            return only
    return Group("and", conditions)


def _matches_all(root: Node) -> bool:
    """An empty top-level group: no filter, so no ``root`` is sent (as Instasent's clients do)."""
    if isinstance(root, Group):
        return root.type == "group" and root.join == "and" and not root.children
    return False


def _check_optional_int(value: object, what: str, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")


def _check_optional_bool(value: object, what: str) -> None:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{what} must be a bool, got {value!r}")


def _query_dict(
    version: str | None,
    root: Node,
    limit: int | None,
    offset: int | None,
    sort_field: str | None,
    sort_asc: bool | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if version is not None:
        out["version"] = version
    if not _matches_all(root):
        out["root"] = _node_dict(root)
    if limit is not None:
        out["limit"] = limit
    if offset is not None:
        out["offset"] = offset
    if sort_field is not None:
        out["sortField"] = sort_field
    if sort_asc is not None:
        out["sortAsc"] = sort_asc
    return out


def _check_options(
    limit: int | None, offset: int | None, sort_field: str | None, sort_asc: bool | None
) -> None:
    _check_optional_int(limit, "limit", 1)
    _check_optional_int(offset, "offset", 0)
    if sort_field is not None:
        _check_key(sort_field, "sort_field")
    _check_optional_bool(sort_asc, "sort_asc")


@attrs.frozen(slots=True, init=False)
class AudienceQuery:
    """An audience query filter (``/audience/search``, ``/audience/scroll``, segment scroll).

    Positional arguments are the conditions: several are joined with ``and``;
    a single ``Q.all``/``Q.any`` group becomes the root itself; none matches every
    contact (and no ``root`` is sent). Options left as ``None`` are not sent (the
    server's defaults apply); ``version=None`` omits the version key.
    """

    root: Node
    limit: int | None
    offset: int | None
    sort_field: str | None
    sort_asc: bool | None
    include_all_data: bool | None
    cursor: str | None
    version: str | None

    def __init__(
        self,
        *conditions: Node,
        limit: int | None = None,
        offset: int | None = None,
        sort_field: str | None = None,
        sort_asc: bool | None = None,
        include_all_data: bool | None = None,
        cursor: str | None = None,
        version: str | None = DEFAULT_VERSION,
    ) -> None:
        """Build the query.

        Raises:
            ValueError: an option has the wrong type or range (the message names it).
        """
        _check_options(limit, offset, sort_field, sort_asc)
        _check_optional_bool(include_all_data, "include_all_data")
        self.__attrs_init__(
            _root(conditions),
            limit,
            offset,
            sort_field,
            sort_asc,
            include_all_data,
            cursor,
            version,
        )

    def to_dict(self) -> dict[str, Any]:
        """The wire dict (a new one on every call)."""
        out = _query_dict(
            self.version, self.root, self.limit, self.offset, self.sort_field, self.sort_asc
        )
        if self.include_all_data is not None:
            out["includeAllData"] = self.include_all_data
        if self.cursor is not None:
            out["cursor"] = self.cursor
        return out


@attrs.frozen(slots=True, init=False)
class EventQuery:
    """An event query filter (``/event/search``, ``/event/scroll``).

    Same rules as :class:`AudienceQuery` (without ``include_all_data``).
    """

    root: Node
    limit: int | None
    offset: int | None
    sort_field: str | None
    sort_asc: bool | None
    cursor: str | None
    version: str | None

    def __init__(
        self,
        *conditions: Node,
        limit: int | None = None,
        offset: int | None = None,
        sort_field: str | None = None,
        sort_asc: bool | None = None,
        cursor: str | None = None,
        version: str | None = DEFAULT_VERSION,
    ) -> None:
        """Build the query.

        Raises:
            ValueError: an option has the wrong type or range (the message names it).
        """
        _check_options(limit, offset, sort_field, sort_asc)
        self.__attrs_init__(_root(conditions), limit, offset, sort_field, sort_asc, cursor, version)

    def to_dict(self) -> dict[str, Any]:
        """The wire dict (a new one on every call)."""
        out = _query_dict(
            self.version, self.root, self.limit, self.offset, self.sort_field, self.sort_asc
        )
        if self.cursor is not None:
            out["cursor"] = self.cursor
        return out


def query_to_dict(
    query: AudienceQuery | EventQuery | Condition | Group | Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The wire dict of any accepted query form, always a new top-level dict.

    A mapping is copied shallowly (the caller's object is never mutated); a bare
    condition or group is wrapped as the root of a versioned query; ``None`` is
    the match-all query, ``{}`` (no filter: the resource adds only the ``limit``).

    Raises:
        TypeError: ``query`` is of another type.
    """
    if isinstance(query, Mapping):
        return dict(query)
    if isinstance(query, (AudienceQuery, EventQuery)):
        return query.to_dict()
    if query is None:
        return {}
    if isinstance(query, (Condition, Group)):
        root = _root((query,))
        if _matches_all(root):
            return {"version": DEFAULT_VERSION}
        return {"version": DEFAULT_VERSION, "root": _node_dict(root)}
    raise TypeError(
        "query must be a dict, an AudienceQuery/EventQuery, a condition or a group, "
        f"not {type(query).__name__}"
    )
