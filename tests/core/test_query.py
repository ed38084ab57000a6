"""The query builder emits exactly the documented wire dicts; list-endpoint params."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from instasent_async.query import (
    AudienceQuery,
    Condition,
    EventQuery,
    Group,
    Q,
    query_to_dict,
)
from instasent_async.resources._params import list_params

# the audience query filter's example
AUDIENCE_REFERENCE = {
    "version": "0.0.1",
    "root": {
        "type": "group",
        "join": "and",
        "children": [
            {
                "type": "attribute_condition",
                "key": "_email",
                "operator": "contains",
                "values": ["yahoo"],
            }
        ],
    },
    "limit": 10,
    "offset": 0,
    "sortField": "_email",
    "sortAsc": True,
    "includeAllData": False,
}

# Audience query filter docs: email contains ".com" AND specific tags
AUDIENCE_TAGS_REFERENCE = {
    "version": "0.0.1",
    "root": {
        "type": "group",
        "join": "and",
        "children": [
            {
                "type": "attribute_condition",
                "key": "_email",
                "operator": "contains",
                "values": [".com"],
            },
            {
                "type": "attribute_condition",
                "key": "_client_tags",
                "operator": "matches-string",
                "values": ["&&", "tag-5", "tag-csv-2"],
            },
        ],
    },
    "limit": 100,
    "offset": 0,
    "sortField": "_email",
    "sortAsc": False,
}

# n8n node defaults (no version key)
N8N_AUDIENCE_DEFAULT = {
    "root": {
        "type": "group",
        "join": "and",
        "children": [
            {
                "type": "attribute_condition",
                "key": "_phone_mobile",
                "operator": "exists",
                "values": [],
            }
        ],
    },
    "sortField": "_date_updated",
    "sortAsc": False,
}
N8N_EVENT_DEFAULT = {
    "root": {
        "type": "group",
        "join": "and",
        "children": [
            {
                "type": "event_condition",
                "key": "event-type",
                "operator": "matches-string",
                "values": ["update"],
            }
        ],
    },
    "sortField": "created-at",
    "sortAsc": False,
}

# Event query filter docs: all "create" events from the last 30 days
EVENT_LAST_30_DAYS = {
    "version": "0.0.1",
    "root": {
        "type": "group",
        "join": "and",
        "children": [
            {
                "type": "event_condition",
                "key": "event-type",
                "operator": "matches-string",
                "values": ["create"],
            },
            {
                "type": "event_condition",
                "key": "created-at",
                "operator": "range-date-relative",
                "values": {
                    "lowerOffset": -30,
                    "upperOffset": None,
                    "lowerExcludeEquals": False,
                    "upperExcludeEquals": False,
                    "lowerRounding": False,
                    "upperRounding": False,
                    "lowerOffsetPeriod": "day",
                    "upperOffsetPeriod": "day",
                },
            },
        ],
    },
    "limit": 10,
    "offset": 0,
}

# Event query filter docs: ecommerce orders between 100 and 200 euros
EVENT_ORDER_RANGE = {
    "version": "0.0.1",
    "root": {
        "type": "group",
        "join": "and",
        "children": [
            {
                "type": "event_condition",
                "key": "event-type",
                "operator": "matches-string",
                "values": ["ecommerce_order_create"],
            },
            {
                "type": "event_condition",
                "key": "ecommerce_order_create.order-euro-amount",
                "operator": "range-number",
                "values": {"lowerNumber": 100.0, "upperNumber": 200.0},
            },
        ],
    },
    "limit": 10,
    "offset": 0,
}


def test_audience_reference_example() -> None:
    query = AudienceQuery(
        Q.attr("_email").contains("yahoo"),
        limit=10,
        offset=0,
        sort_field="_email",
        sort_asc=True,
        include_all_data=False,
    )
    assert query.to_dict() == AUDIENCE_REFERENCE
    assert list(query.to_dict()) == list(AUDIENCE_REFERENCE)  # same key order too


def test_audience_tags_example() -> None:
    query = AudienceQuery(
        Q.attr("_email").contains(".com"),
        Q.attr("_client_tags").has_all("tag-5", "tag-csv-2"),
        limit=100,
        offset=0,
        sort_field="_email",
        sort_asc=False,
    )
    assert query.to_dict() == AUDIENCE_TAGS_REFERENCE


def test_n8n_defaults() -> None:
    audience = AudienceQuery(
        Q.attr("_phone_mobile").exists(), sort_field="_date_updated", sort_asc=False, version=None
    )
    assert audience.to_dict() == N8N_AUDIENCE_DEFAULT
    event = EventQuery(
        Q.event("event-type").matches("update"),
        sort_field="created-at",
        sort_asc=False,
        version=None,
    )
    assert event.to_dict() == N8N_EVENT_DEFAULT
    with_version = EventQuery(
        Q.event("event-type").matches("update"), sort_field="created-at", sort_asc=False
    )
    assert with_version.to_dict() == {"version": "0.0.1", **N8N_EVENT_DEFAULT}


def test_event_reference_examples() -> None:
    last_30 = EventQuery(
        Q.event("event-type").matches("create"),
        Q.event("created-at").in_last(30, "day"),
        limit=10,
        offset=0,
    )
    assert last_30.to_dict() == EVENT_LAST_30_DAYS
    orders = EventQuery(
        Q.event("event-type").matches("ecommerce_order_create"),
        Q.event("ecommerce_order_create.order-euro-amount").between(100.0, 200.0),
        limit=10,
        offset=0,
    )
    assert orders.to_dict() == EVENT_ORDER_RANGE


def test_nested_groups_and_segments() -> None:
    query = AudienceQuery(
        Q.all(
            Q.attr("_email").contains("yahoo"),
            Q.any(Q.attr("plan").eq("pro"), Q.segment("seg_1")),
        ),
        sort_field="_date_updated",
        sort_asc=False,
        include_all_data=True,
    )
    assert query.to_dict() == {
        "version": "0.0.1",
        "root": {
            "type": "group",
            "join": "and",
            "children": [
                {
                    "type": "attribute_condition",
                    "key": "_email",
                    "operator": "contains",
                    "values": ["yahoo"],
                },
                {
                    "type": "group",
                    "join": "or",
                    "children": [
                        {
                            "type": "attribute_condition",
                            "key": "plan",
                            "operator": "matches-string",
                            "values": ["pro"],
                        },
                        {
                            "type": "segment_condition",
                            "key": "seg_1",
                            "operator": "in",
                            "values": [],
                        },
                    ],
                },
            ],
        },
        "sortField": "_date_updated",
        "sortAsc": False,
        "includeAllData": True,
    }


def test_a_single_or_group_is_the_root_itself() -> None:
    query = AudienceQuery(Q.any(Q.attr("a").exists(), Q.attr("b").exists()))
    assert query.to_dict()["root"]["join"] == "or"
    assert query.to_dict()["root"]["children"][1]["key"] == "b"


def test_no_condition_matches_everything_and_sends_no_root() -> None:
    assert AudienceQuery().to_dict() == {"version": "0.0.1"}
    assert EventQuery(limit=5).to_dict() == {"version": "0.0.1", "limit": 5}
    assert AudienceQuery(Q.all()).to_dict() == {"version": "0.0.1"}
    # An empty "or" matches nothing: it is a filter, and it is sent.
    assert AudienceQuery(Q.any()).to_dict()["root"] == {
        "type": "group",
        "join": "or",
        "children": [],
    }


def test_condition_helpers() -> None:
    field = Q.attr("age")
    assert field.eq(30).to_dict()["operator"] == "range-number"
    assert field.eq(30).to_dict()["values"] == {"lowerNumber": 30, "upperNumber": 30}
    assert field.gte(18).to_dict()["values"] == {"lowerNumber": 18, "upperNumber": None}
    assert field.lte(65).to_dict()["values"] == {"lowerNumber": None, "upperNumber": 65}
    assert Q.attr("x").not_exists().to_dict() == {
        "type": "attribute_condition",
        "key": "x",
        "operator": "not-exists",
        "values": [],
    }
    assert Q.attr("_client_tags").has_any("a", "b").to_dict()["values"] == ["a", "b"]
    assert Q.attr("flag").eq(True).to_dict()["values"] == [True]
    custom = Q.attr("x").op("starts-with", ["ab"]).to_dict()
    assert custom == {
        "type": "attribute_condition",
        "key": "x",
        "operator": "starts-with",
        "values": ["ab"],
    }
    assert Q.attr("x").op("weird", {"k": 1}).to_dict()["values"] == {"k": 1}


def test_date_relative_with_every_knob() -> None:
    condition = Q.event("created-at").date_relative(
        lower=-7,
        upper=-1,
        period="week",
        upper_period="day",
        lower_exclude=True,
        upper_rounding=True,
    )
    assert condition.to_dict()["values"] == {
        "lowerOffset": -7,
        "upperOffset": -1,
        "lowerExcludeEquals": True,
        "upperExcludeEquals": False,
        "lowerRounding": False,
        "upperRounding": True,
        "lowerOffsetPeriod": "week",
        "upperOffsetPeriod": "day",
    }


def test_group_event_and_raw_children() -> None:
    raw = {"type": "attribute_condition", "key": "k", "operator": "exists", "values": []}
    group = Q.group_event("order", Q.event("order.amount").gte(10), raw)
    as_dict = group.to_dict()
    assert as_dict == {
        "type": "group_event",
        "key": "order",
        "join": "and",
        "children": [
            {
                "type": "event_condition",
                "key": "order.amount",
                "operator": "range-number",
                "values": {"lowerNumber": 10, "upperNumber": None},
            },
            raw,
        ],
    }
    assert as_dict["children"][1] is not raw


def test_segment_membership() -> None:
    assert Q.not_in_segment("seg_2").to_dict() == {
        "type": "segment_condition",
        "key": "seg_2",
        "operator": "not-in",
        "values": [],
    }


def test_to_dict_returns_fresh_dicts() -> None:
    query = AudienceQuery(Q.attr("a").contains("x"), limit=5)
    first = query.to_dict()
    first["root"]["children"][0]["values"].append("mutated")
    first["limit"] = 99
    assert query.to_dict()["root"]["children"][0]["values"] == ["x"]
    assert query.to_dict()["limit"] == 5


def test_cursor_is_sent_when_given() -> None:
    assert EventQuery(cursor="abc").to_dict()["cursor"] == "abc"
    assert AudienceQuery(cursor="abc", include_all_data=False).to_dict()["cursor"] == "abc"


def test_builders_are_immutable_values() -> None:
    a = Q.attr("_email").contains("x")
    assert a == Q.attr("_email").contains("x")
    assert isinstance(a, Condition)
    assert isinstance(Q.all(a), Group)
    assert AudienceQuery(a, limit=1) == AudienceQuery(a, limit=1)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Q.attr(""), "key must be a non-empty string"),
        (lambda: Q.event(3), "key must be a non-empty string"),
        (lambda: AudienceQuery(limit=0), "limit must be an int >= 1"),
        (lambda: AudienceQuery(limit=True), "limit must be an int"),
        (lambda: EventQuery(offset=-1), "offset must be an int >= 0"),
        (lambda: EventQuery(sort_asc="yes"), "sort_asc must be a bool"),
        (lambda: AudienceQuery(include_all_data=1), "include_all_data must be a bool"),
        (lambda: AudienceQuery(sort_field=""), "sort_field must be a non-empty string"),
        (lambda: Q.attr("x").has_all(), "has_all\\(\\) needs at least one value"),
        (lambda: Q.attr("x").between(), "needs a lower or an upper bound"),
        (lambda: Q.attr("x").between("1", 2), "lower must be a number"),
        (lambda: Q.event("created-at").in_last(0), "amount must be a positive int"),
        (lambda: Q.event("created-at").in_last(3, "days"), "period must be one of"),
        (lambda: Q.event("created-at").date_relative(), "needs a lower or an upper offset"),
        (lambda: Q.segment(""), "segment uid must be a non-empty string"),
        (lambda: Q.group_event(""), "event_type must be a non-empty string"),
        (lambda: Q.attr("x").op("", []), "operator must be a non-empty string"),
        (lambda: Q.attr("x").op("eq", "abc"), "not a string"),
    ],
)
def test_builder_validation(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# --- query_to_dict -----------------------------------------------------------------------


def test_query_to_dict_copies_mappings_shallowly() -> None:
    original = {"root": {"type": "group", "join": "and", "children": []}, "limit": 5}
    result = query_to_dict(original)
    assert result == original
    assert result is not original
    result["cursor"] = "c"
    result["limit"] = 100
    assert original == {"root": {"type": "group", "join": "and", "children": []}, "limit": 5}


def test_query_to_dict_of_every_form() -> None:
    assert query_to_dict(None) == {}  # no filter: no root (the resource adds the limit)
    assert query_to_dict(Q.all()) == {"version": "0.0.1"}
    condition = Q.attr("_email").contains("yahoo")
    assert query_to_dict(condition) == {
        "version": "0.0.1",
        "root": {"type": "group", "join": "and", "children": [condition.to_dict()]},
    }
    group = Q.any(condition)
    assert query_to_dict(group) == {"version": "0.0.1", "root": group.to_dict()}
    event_group = Q.group_event("order", condition)
    assert query_to_dict(event_group)["root"] == {
        "type": "group",
        "join": "and",
        "children": [event_group.to_dict()],
    }
    assert (
        query_to_dict(AudienceQuery(condition, limit=3))
        == AudienceQuery(condition, limit=3).to_dict()
    )
    assert query_to_dict(EventQuery(limit=3))["limit"] == 3
    with pytest.raises(TypeError, match="query must be a dict"):
        query_to_dict("root")  # type: ignore[arg-type]


def test_raw_dict_root_is_kept() -> None:
    root = {"type": "group", "join": "or", "children": []}
    assert AudienceQuery(root).to_dict()["root"] == root


# --- list_params ---------------------------------------------------------------------------


def test_list_params_nothing() -> None:
    assert list_params() == {}


def test_list_params_paging_is_both_or_neither() -> None:
    assert list_params(start=20, limit=10) == {"_start": "20", "_limit": "10"}
    assert list_params(limit=50) == {"_start": "0", "_limit": "50"}
    with pytest.raises(ValueError, match="start needs a limit"):
        list_params(start=10)
    with pytest.raises(ValueError, match="limit must be an int >= 1"):
        list_params(limit=0)
    with pytest.raises(ValueError, match="start must be an int >= 0"):
        list_params(start=-1, limit=5)
    with pytest.raises(ValueError, match="limit must be an int"):
        list_params(limit="10")  # type: ignore[arg-type]


def test_list_params_sort() -> None:
    assert list_params(sort="name") == {"_sort": "name"}
    assert list_params(sort=["name", "-surname"]) == {"_sort": "name,surname:-"}
    assert list_params(sort="name,surname:-") == {"_sort": "name,surname:-"}
    assert list_params(sort=["+a", "b:+"]) == {"_sort": "a,b:+"}
    for bad in ("", ["-"], [3], ["a:b"]):
        with pytest.raises(ValueError, match="sort"):
            list_params(sort=bad)  # type: ignore[arg-type]


def test_list_params_json_query() -> None:
    q = {"filter": [{"field": "status", "operator": "in", "value": ["draft", "sent"]}]}
    params = list_params(q=q, limit=20)
    assert orjson.loads(params["_q"]) == q
    assert (
        params["_q"] == '{"filter":[{"field":"status","operator":"in","value":["draft","sent"]}]}'
    )
    with pytest.raises(ValueError, match="q must be a mapping"):
        list_params(q="status=sent")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="q is not JSON-serialisable"):
        list_params(q={"x": object()})


def test_list_params_filters() -> None:
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    params = list_params(
        filters={
            "status": "sent",
            "age_gte": 35,
            "number_eq": "34600000000",
            "status_in": ["draft", "sent"],
            "tags": ("a", "b"),
            "active": True,
            "created_at_gte": when,
            "day": dt.date(2024, 1, 2),
            "attributes*drink": "beer",
            "ratio_lt": 0.5,
        }
    )
    assert params == {
        "status_eq": "sent",
        "age_gte": "35",
        "number_eq": "34600000000",
        "status_in": '["draft","sent"]',
        "tags_in": '["a","b"]',
        "active_eq": "true",
        "created_at_gte": "2024-01-02T03:04:05.000Z",
        "day_eq": "2024-01-02",
        "attributes*drink_eq": "beer",
        "ratio_lt": "0.5",
    }


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"_sort": "x"}, "reserved parameter '_sort': use the sort= argument"),
        ({"_group": "daily"}, "reserved parameter '_group'"),
        ({"": "x"}, "filter names must be non-empty strings"),
        ({"status": None}, "filter 'status_eq': unsupported value None"),
        ({"status": {"a": 1}}, "unsupported value"),
        ({"status": [object()]}, "not JSON-serialisable"),
    ],
)
def test_list_params_bad_filters(filters: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        list_params(filters=filters)


def test_list_params_filters_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match="filters must be a mapping"):
        list_params(filters=[("status", "sent")])  # type: ignore[arg-type]


# --- the builder and the fake server agree ---------------------------------------------


def test_fake_server_filter_understands_builder_output() -> None:
    from instasent_async.testing._query import FilterContext, compile_filter

    contacts = [
        {
            "_user_id": "a",
            "_email": "a@yahoo.com",
            "_client_tags": ["t1", "t2"],
            "plan": "pro",
            "age": 30,
        },
        {
            "_user_id": "b",
            "_email": "b@gmail.com",
            "_client_tags": ["t1"],
            "plan": "free",
            "age": 70,
        },
        {"_user_id": "c", "_client_tags": [], "plan": "pro"},
    ]
    members = {("seg_1", "b")}
    ctx = FilterContext(now=0.0, segment_contains=lambda uid, c: (uid, c["_user_id"]) in members)

    def matching(*conditions: Any) -> list[str]:
        root = AudienceQuery(*conditions).to_dict()["root"]
        predicate = compile_filter(root, target="audience")
        return [c["_user_id"] for c in contacts if predicate(c, ctx)]

    assert matching(Q.attr("_email").contains("yahoo")) == ["a"]
    assert matching(Q.attr("_client_tags").has_all("t1", "t2")) == ["a"]
    assert matching(Q.attr("_email").not_exists()) == ["c"]
    assert matching(Q.attr("age").between(18, 65)) == ["a"]
    assert matching(Q.any(Q.attr("plan").eq("free"), Q.segment("seg_1"))) == ["b"]
    assert matching(Q.attr("plan").eq("pro"), Q.not_in_segment("seg_1")) == ["a", "c"]
