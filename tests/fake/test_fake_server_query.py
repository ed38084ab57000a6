"""The fake server's query filters (list, audience and event), as pure functions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs
import pytest

from instasent_async.testing._query import (
    FilterContext,
    QueryFilterError,
    apply_list_query,
    compile_filter,
    parse_iso8601,
    parse_list_query,
)


def group(*children: dict[str, Any], join: str = "and") -> dict[str, Any]:
    """An audience/event filter root."""
    return {"type": "group", "join": join, "children": list(children)}


def attr(key: str, operator: str, *values: Any) -> dict[str, Any]:
    """An attribute condition."""
    return {"type": "attribute_condition", "key": key, "operator": operator, "values": list(values)}


NOW = dt.datetime(2024, 6, 15, 12, 0, tzinfo=dt.timezone.utc).timestamp()
DAY = 86400.0

CONTACTS = [
    {
        "id": "a1",
        "_user_id": "u1",
        "_email": "ana@yahoo.com",
        "plan": "pro",
        "score": 10,
        "_client_tags": ["vip", "tag-5", "tag-csv-2"],
        "_date_updated": "2024-06-14T10:00:00Z",
    },
    {
        "id": "a2",
        "_user_id": "u2",
        "_email": "bob@gmail.com",
        "plan": "free",
        "score": "25",
        "_client_tags": ["tag-5"],
        "_date_updated": "2024-05-01T10:00:00Z",
    },
    {"id": "a3", "_user_id": "u3", "plan": "", "score": None},
]


@attrs.frozen
class Ev:
    """A minimal EventView."""

    user_id: str
    event_type: str
    timestamp: float
    parameters: Mapping[str, Any] = attrs.field(factory=dict)

    def field(self, key: str) -> Any:
        return {"_user_id": self.user_id}.get(key)


EVENTS = [
    Ev("u1", "ecommerce_order_create", NOW - 2 * DAY, {"order-euro-amount": 30}),
    Ev("u1", "page_view", NOW - 40 * DAY, {"url": "/home"}),
    Ev("u2", "ecommerce_order_create", NOW - 10 * DAY, {"order-euro-amount": "5.5"}),
]


def context(segments: dict[str, set[str]] | None = None) -> FilterContext:
    members = segments or {}
    by_user = {c["_user_id"]: c for c in CONTACTS}
    return FilterContext(
        now=NOW,
        segment_contains=lambda uid, contact: contact["id"] in members.get(uid, set()),
        events_of=lambda contact: [e for e in EVENTS if e.user_id == contact["_user_id"]],
        contact_of=lambda event: by_user.get(event.user_id),
    )


def audience(root: Any, segments: dict[str, set[str]] | None = None) -> list[str]:
    predicate = compile_filter(root, target="audience")
    ctx = context(segments)
    return [c["id"] for c in CONTACTS if predicate(c, ctx)]


def events(root: Any) -> list[Ev]:
    predicate = compile_filter(root, target="event")
    ctx = context()
    return [e for e in EVENTS if predicate(e, ctx)]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (attr("_email", "contains", "YAHOO"), ["a1"]),
        (attr("_email", "contains", "yahoo", "gmail"), ["a1", "a2"]),
        (attr("plan", "matches-string", "PRO"), ["a1"]),
        (attr("plan", "eq", "free"), ["a2"]),
        (attr("plan", "equals", "pro", "free"), ["a1", "a2"]),
        (attr("score", "eq", 25), ["a2"]),
        (attr("_email", "exists"), ["a1", "a2"]),
        (attr("plan", "exists"), ["a1", "a2"]),
        (attr("_email", "not-exists"), ["a3"]),
        (attr("_client_tags", "matches-string", "tag-5"), ["a1", "a2"]),
        (attr("_client_tags", "matches-string", "&&", "tag-5", "tag-csv-2"), ["a1"]),
        (attr("_client_tags", "contains", "&&", "tag", "vip"), ["a1"]),
    ],
)
def test_attribute_operators(condition: dict[str, Any], expected: list[str]) -> None:
    assert audience(group(condition)) == expected


def test_range_number_is_inclusive_and_coerces_numeric_strings() -> None:
    condition = {
        "type": "attribute_condition",
        "key": "score",
        "operator": "range-number",
        "values": {"lowerNumber": 10, "upperNumber": 25},
    }
    assert audience(group(condition)) == ["a1", "a2"]
    condition["values"] = {"lowerNumber": 11}
    assert audience(group(condition)) == ["a2"]
    condition["values"] = {"upperNumber": 10, "upperExcludeEquals": True}
    assert audience(group(condition)) == []


def test_range_date_relative_uses_the_server_clock() -> None:
    last_7_days = {"lowerOffset": -7, "lowerOffsetPeriod": "day"}
    condition = {
        "type": "attribute_condition",
        "key": "_date_updated",
        "operator": "range-date-relative",
        "values": last_7_days,
    }
    assert audience(group(condition)) == ["a1"]
    older = {"upperOffset": -7, "upperOffsetPeriod": "days"}
    condition["values"] = older
    assert audience(group(condition)) == ["a2"]


def test_range_date_relative_rounding_covers_whole_periods() -> None:
    # Yesterday, rounded: [yesterday 00:00, today 00:00).
    yesterday = {
        "lowerOffset": -1,
        "upperOffset": -1,
        "lowerRounding": True,
        "upperRounding": True,
        "lowerOffsetPeriod": "day",
        "upperOffsetPeriod": "day",
    }
    condition = {
        "type": "event_condition",
        "key": "created-at",
        "operator": "range-date-relative",
        "values": yesterday,
    }
    at = [NOW - 0.5 * DAY, NOW - 1.4 * DAY, NOW - 1.6 * DAY]  # today, yesterday, 2 days ago
    probe = [Ev("u", "x", stamp) for stamp in at]
    predicate = compile_filter(condition, target="event")
    assert [predicate(e, context()) for e in probe] == [False, True, False]


def test_groups_nest_with_and_or() -> None:
    root = group(
        attr("plan", "eq", "pro"),
        group(attr("_email", "contains", "gmail"), attr("_email", "not-exists"), join="or"),
        join="or",
    )
    assert audience(root) == ["a1", "a2", "a3"]
    assert audience(group(attr("plan", "eq", "pro"), attr("_email", "contains", "gmail"))) == []
    assert audience(group()) == ["a1", "a2", "a3"]
    assert audience(None) == ["a1", "a2", "a3"]


def test_segment_condition_and_its_negation() -> None:
    segments = {"seg_vip": {"a2", "a3"}}
    is_member = {"type": "segment_condition", "key": "seg_vip"}
    not_member = {"type": "segment_condition", "key": "seg_vip", "operator": "not-in"}
    assert audience(group(is_member), segments) == ["a2", "a3"]
    assert audience(group(not_member), segments) == ["a1"]
    assert audience(group({"type": "segment_condition", "key": "unknown"}), segments) == []


def test_event_conditions_on_contacts_match_any_of_their_events() -> None:
    ordered = {
        "type": "event_condition",
        "key": "event-type",
        "operator": "matches-string",
        "values": ["ecommerce_order_create"],
    }
    assert audience(group(ordered)) == ["a1", "a2"]
    big_order = {
        "type": "event_condition",
        "key": "ecommerce_order_create.order-euro-amount",
        "operator": "range-number",
        "values": {"lowerNumber": 20},
    }
    assert audience(group(big_order)) == ["a1"]


def test_group_event_needs_one_event_to_satisfy_every_child() -> None:
    recent = {
        "type": "event_condition",
        "key": "created-at",
        "operator": "range-date-relative",
        "values": {"lowerOffset": -30, "lowerOffsetPeriod": "day"},
    }
    page_view = {
        "type": "event_condition",
        "key": "event-type",
        "operator": "matches-string",
        "values": ["page_view"],
    }
    # u1 has a recent order and an old page view: no single recent page view.
    assert audience(group({"type": "group_event", "children": [recent, page_view]})) == []
    assert audience(group(recent, page_view)) == ["a1"]
    typed = {"type": "group_event", "key": "ecommerce_order_create", "children": [recent]}
    assert audience(group(typed)) == ["a1", "a2"]


def test_event_filters_apply_to_events() -> None:
    amount = {
        "type": "event_condition",
        "key": "ecommerce_order_create.order-euro-amount",
        "operator": "range-number",
        "values": {"upperNumber": 10},
    }
    assert events(group(amount)) == [EVENTS[2]]
    owner_is_pro = attr("plan", "eq", "pro")
    assert events(group(owner_is_pro)) == EVENTS[:2]
    # A parameter condition never matches events of another type, even "not-exists".
    missing = {
        "type": "event_condition",
        "key": "page_view.url",
        "operator": "not-exists",
        "values": [],
    }
    assert events(group(missing)) == []


@pytest.mark.parametrize(
    "root",
    [
        "not a node",
        {"type": "nope"},
        group(attr("plan", "greater-than", "x")),
        group(attr("plan", "eq")),
        group({"type": "attribute_condition", "operator": "exists", "values": []}),
        {"type": "group", "join": "xor", "children": []},
        {"type": "group", "children": "x"},
        group(
            {
                "type": "attribute_condition",
                "key": "score",
                "operator": "range-number",
                "values": ["1", "2"],
            }
        ),
        group(
            {
                "type": "event_condition",
                "key": "created-at",
                "operator": "range-date-relative",
                "values": {"lowerOffset": -1, "lowerOffsetPeriod": "fortnight"},
            }
        ),
        group({"type": "group_event", "children": [attr("plan", "eq", "x")]}),
    ],
)
def test_malformed_filters_are_rejected(root: Any) -> None:
    with pytest.raises(QueryFilterError):
        compile_filter(root, target="audience")


def test_parse_iso8601_accepts_the_reference_formats() -> None:
    expected = dt.datetime(2024, 10, 28, 0, 10, 2, 471000, tzinfo=dt.timezone.utc).timestamp()
    assert parse_iso8601("2024-10-28T00:10:02.471Z") == pytest.approx(expected)
    assert parse_iso8601("2024-10-28T02:10:02.471+02:00") == pytest.approx(expected)
    assert parse_iso8601("2024-10-28") == pytest.approx(expected - 602.471)
    assert parse_iso8601("28/10/2024") is None
    assert parse_iso8601("2024-13-01") is None


ITEMS = [
    {
        "id": 1,
        "title": "Spring sale",
        "status": "sent",
        "campaignAt": "2024-03-01",
        "attributes": {"drink": "beer"},
    },
    {
        "id": 2,
        "title": "Summer",
        "status": "draft",
        "campaignAt": "2024-06-01",
        "attributes": {"drink": "wine"},
    },
    {
        "id": 3,
        "title": "Autumn sale",
        "status": "sent",
        "campaignAt": "2024-09-01",
        "attributes": {},
    },
]


def listed(*params: tuple[str, str]) -> list[Any]:
    return [item["id"] for item in apply_list_query(ITEMS, parse_list_query(params))]


def test_list_query_url_operators() -> None:
    assert listed(("status_eq", "sent")) == [1, 3]
    assert listed(("status", "draft")) == [2]
    assert listed(("status_ne", "sent")) == [2]
    assert listed(("id_gte", "2")) == [2, 3]
    assert listed(("id_lt", "2")) == [1]
    assert listed(("id_in", "1,3")) == [1, 3]
    assert listed(("status_in", '["draft", ["sent"]]')) == [1, 2, 3]
    assert listed(("status_nin", "draft")) == [1, 3]
    assert listed(("title_like", "%SALE%")) == [1, 3]
    assert listed(("campaignAt_gt", "2024-05-01")) == [2, 3]
    assert listed(("attributes*drink_eq", "beer")) == [1]
    assert listed(("status_eq", "sent"), ("id_gt", "1")) == [3]


def test_list_query_sort_and_paging() -> None:
    assert listed(("_sort", "status,id:-")) == [2, 3, 1]
    assert listed(("_sort", "title:+")) == [3, 1, 2]
    assert listed(("_sort", "id:-"), ("_start", "1"), ("_limit", "1")) == [2]
    assert listed(("_start", "5"), ("_limit", "10")) == []


def test_list_query_json_form() -> None:
    document = (
        '{"filter": [{"field": "status", "operator": "eq", "value": "sent"}],'
        ' "paging": {"start": 0, "limit": 1}, "sort": [["id", "desc"]]}'
    )
    assert listed(("_q", document)) == [3]
    either = (
        '{"filter": [{"or": [{"field": "id", "operator": "eq", "value": 1},'
        ' {"field": "attributes.drink", "operator": "eq", "value": "wine"}]}]}'
    )
    assert listed(("_q", either)) == [1, 2]


def test_list_query_expression_form_of_n8n() -> None:
    assert listed(("_q", 'status in ["draft","sent"]')) == [1, 2, 3]
    assert listed(("_q", 'status in ["draft"] or id >= 3')) == [2, 3]
    assert listed(("_q", 'status = "sent" and (id < 2 or title contains "autumn")')) == [1, 3]
    assert listed(("_q", 'status not in ["sent"]')) == [2]


@pytest.mark.parametrize(
    "params",
    [
        [("_start", "0")],
        [("_limit", "10")],
        [("_start", "0"), ("_limit", "101")],
        [("_start", "-1"), ("_limit", "10")],
        [("_start", "x"), ("_limit", "10")],
        [("_q", "{not json")],
        [("_q", "status ~ 1")],
        [
            ("_q", 'status in ["a"'),
        ],
        [("_unknown", "1")],
    ],
)
def test_malformed_list_queries_are_rejected(params: list[tuple[str, str]]) -> None:
    with pytest.raises(QueryFilterError):
        parse_list_query(params)
