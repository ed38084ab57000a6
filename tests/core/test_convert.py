"""The converter: structure/unstructure of every model, round trips, pass-through."""

from __future__ import annotations

import datetime as dt
import types
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import instasent_async
from instasent_async._convert import (
    _REFERENCE_STRUCTURERS,
    _STRUCTURERS,
    converter,
    structure,
    to_wire_items,
    unstructure,
)
from instasent_async.models import (
    WIRE_MODELS,
    AttributeSpec,
    AudienceEvent,
    Automation,
    Campaign,
    Contact,
    DatasourceStats,
    Event,
    EventParameterSpec,
    EventTypeSpec,
    Organization,
    Project,
    Segment,
    SmsMessage,
    SmsSender,
    StreamInfo,
)
from instasent_async.models._base import WIRE

UTC = dt.timezone.utc

CONTACT_WIRE: dict[str, Any] = {
    "id": "uQTuHNBKLdwTxzGldW5pocUNqzyz-066",
    "_user_id": "USER-1",
    "_first_name": "Ann",
    "_last_name": "Lee",
    "_email": "ann@example.com",
    "_phone_mobile": "+34600000000",
    "_client_tags": ["vip", "newsletter"],
    "_date_updated": "2024-10-28T00:10:02.471Z",
    "_email_verified": True,
    "_phone_mobile_verified": False,
    "plan": "pro",
    "signup_source": "landing-a",
    "score": 7,
    "_country": "ES",
    "_gender": None,
}

# One realistic wire dict per model, each with an unknown key and an explicit null.
SAMPLES: list[tuple[type, dict[str, Any]]] = [
    (Contact, CONTACT_WIRE),
    (
        Event,
        {
            "_user_id": "USER-1",
            "_event_id": "ord-1",
            "_event_type": "ecommerce_order_create",
            "_event_date": "2024-10-28T00:10:02.471Z",
            "_event_parameters": {"order-euro-amount": 120.5, "items": [1, 2]},
            "_new_reserved": {"x": 1},
            "source": None,
        },
    ),
    (
        AudienceEvent,
        {
            "id": "ev-1",
            "_user_id": "USER-1",
            "event-type": "update",
            "created-at": "2024-10-28T00:10:02+02:00",
            "parameters": {"a": 1},
            "later": None,
        },
    ),
    (
        AttributeSpec,
        {
            "uid": "_email",
            "displayLabel": "Email",
            "description": "Primary email",
            "dataType": "text",
            "multivalue": 1,
            "requiredInWebhook": False,
            "readOnly": False,
            "visible": True,
            "custom": False,
            "important": True,
            "group": "basic",
            "placeholder": None,
        },
    ),
    (
        EventTypeSpec,
        {
            "uid": "ecommerce_order_create",
            "name": "Order created",
            "emoji": "🛒",
            "description": "An order",
            "category": "ecommerce",
            "attribution": True,
            "automation": True,
            "icon": "cart",
            "important": False,
            "since": "2023",
            "deprecated": None,
        },
    ),
    (
        EventParameterSpec,
        {
            "parameter": "order-euro-amount",
            "title": "Amount",
            "description": "In euros",
            "icon": "euro",
            "dataType": "float",
            "visualType": "currency",
            "maxLength": 12,
            "required": True,
            "multiValue": 1,
            "unit": "EUR",
            "hint": None,
        },
    ),
    (Project, {"uid": "proj_1", "id": "123", "name": "Shop", "region": "eu", "logo": None}),
    (
        Organization,
        {
            "id": "org-1",
            "name": "ACME",
            "projects": [{"uid": "proj_1", "name": "Shop", "new": True}],
            "funds": {"amount": 10},
            "uid": None,
        },
    ),
    (
        StreamInfo,
        {
            "organization": {"id": "org-1"},
            "project": {"uid": "proj_1"},
            "datasource": {"id": "ds_1"},
            "stream": {"status": "active"},
            "usage": [{"day": "2024-10-28", "hits": 3}],
            "version": 2,
            "notes": None,
        },
    ),
    (Segment, {"uid": "seg_1", "name": "VIP", "type": "static", "size": 10, "parameter": None}),
    (
        Campaign,
        {
            "id": "c-1",
            "title": "Black Friday",
            "campaignAt": "2024-11-29T09:00:00.000Z",
            "status": "sent",
            "stats": {"sent": 10},
            "template": None,
        },
    ),
    (Automation, {"id": "a-1", "title": "Welcome", "status": "active", "steps": 3, "x": None}),
    (SmsSender, {"id": "s-1", "from": "ACME", "status": "approved", "country": "ES", "y": None}),
    (
        SmsMessage,
        {
            "id": "m-1",
            "to": "+34600000000",
            "from": "ACME",
            "text": "Hi",
            "status": "delivered",
            "utmTerm": "promo",
            "audienceId": "aud-1",
            "createdAt": "2024-10-28T00:10:02Z",
            "parts": 1,
            "deliveredAt": None,
        },
    ),
]


@pytest.mark.parametrize(("cls", "data"), SAMPLES, ids=[c.__name__ for c, _ in SAMPLES])
def test_every_model_round_trips_unknown_keys_and_nulls(cls: type, data: dict[str, Any]) -> None:
    obj = structure(data, cls)
    assert isinstance(obj, cls)
    assert unstructure(obj) == data
    assert converter.unstructure(converter.structure(data, cls)) == data


def test_every_wire_model_has_a_sample() -> None:
    assert {cls for cls, _ in SAMPLES} == set(WIRE_MODELS)


def test_contact_fields_attributes_and_extra() -> None:
    contact = structure(CONTACT_WIRE, Contact)
    assert contact.id == "uQTuHNBKLdwTxzGldW5pocUNqzyz-066"
    assert contact.user_id == "USER-1"
    assert contact.first_name == "Ann"
    assert contact.last_name == "Lee"
    assert contact.email == "ann@example.com"
    assert contact.phone_mobile == "+34600000000"
    assert contact.client_tags == ["vip", "newsletter"]
    assert contact.date_updated == dt.datetime(2024, 10, 28, 0, 10, 2, 471000, tzinfo=UTC)
    assert contact.email_verified is True
    assert contact.phone_mobile_verified is False
    assert contact.attributes == {"plan": "pro", "signup_source": "landing-a", "score": 7}
    assert contact.extra == {"_country": "ES", "_gender": None}


def test_contact_write_item_flattens_attributes() -> None:
    contact = Contact(
        user_id="USER-1",
        email="ann@example.com",
        client_tags=["vip"],
        attributes={"plan": "pro", "signup_source": "landing-a"},
    )
    assert unstructure(contact) == {
        "_user_id": "USER-1",
        "_email": "ann@example.com",
        "_client_tags": ["vip"],
        "plan": "pro",
        "signup_source": "landing-a",
    }


def test_event_write_item_wire_form_and_parameters_pass_through() -> None:
    parameters = {"order-euro-amount": 120.5}
    event = Event(
        user_id="USER-1",
        event_id="ord-1",
        event_type="ecommerce_order_create",
        event_date=dt.datetime(2024, 10, 28, 0, 10, 2, 471000, tzinfo=UTC),
        event_parameters=parameters,
    )
    wire = unstructure(event)
    assert wire == {
        "_user_id": "USER-1",
        "_event_id": "ord-1",
        "_event_type": "ecommerce_order_create",
        "_event_date": "2024-10-28T00:10:02.471Z",
        "_event_parameters": {"order-euro-amount": 120.5},
    }
    assert wire["_event_parameters"] is parameters


def test_dict_fields_are_not_copied_when_structuring() -> None:
    parameters = {"a": {"deep": [1, 2]}}
    event = structure({"_event_id": "e", "_event_parameters": parameters}, Event)
    assert event.event_parameters is parameters
    info = structure({"stream": parameters}, StreamInfo)
    assert info.stream is parameters


def test_none_fields_are_omitted_when_writing() -> None:
    assert unstructure(Event(user_id="u", event_id="e")) == {"_user_id": "u", "_event_id": "e"}
    assert unstructure(Contact()) == {}


def test_explicit_null_is_kept_in_extra_and_round_trips() -> None:
    contact = structure({"_user_id": "u", "_email": None}, Contact)
    assert contact.email is None
    assert contact.extra == {"_email": None}
    assert unstructure(contact) == {"_user_id": "u", "_email": None}


def test_setting_a_field_read_as_null_wins_over_the_null() -> None:
    contact = structure({"_user_id": "u", "_email": None}, Contact)
    contact.email = "new@example.com"
    assert unstructure(contact) == {"_user_id": "u", "_email": "new@example.com"}


def test_sending_an_explicit_null_through_extra() -> None:
    contact = Contact(user_id="u", extra={"_phone_mobile": None})
    assert unstructure(contact) == {"_user_id": "u", "_phone_mobile": None}


def test_datetimes_are_timezone_aware() -> None:
    z = structure({"_date_updated": "2024-10-28T00:10:02.471Z"}, Contact).date_updated
    offset = structure({"_date_updated": "2024-10-28T02:10:02.471+02:00"}, Contact).date_updated
    naive = structure({"_date_updated": "2024-10-28T00:10:02.471"}, Contact).date_updated
    date_only = structure({"_date_updated": "2024-10-28"}, Contact).date_updated
    epoch = structure({"_date_updated": 1730074202}, Contact).date_updated
    epoch_ms = structure({"_date_updated": 1730074202471}, Contact).date_updated
    expected = dt.datetime(2024, 10, 28, 0, 10, 2, 471000, tzinfo=UTC)
    for value in (z, offset, naive, date_only, epoch, epoch_ms):
        assert value is not None
        assert value.tzinfo is not None
    assert z == offset == naive == epoch_ms == expected
    assert naive is not None and naive.utcoffset() == dt.timedelta(0)
    assert date_only == dt.datetime(2024, 10, 28, tzinfo=UTC)
    assert epoch == expected.replace(microsecond=0)


def test_naive_datetimes_given_in_python_are_taken_as_utc() -> None:
    event = Event(event_date=dt.datetime(2024, 1, 2, 3, 4, 5))
    assert event.event_date == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    event.event_date = dt.datetime(2025, 1, 1)
    assert event.event_date is not None and event.event_date.tzinfo is not None
    assert unstructure(event) == {"_event_date": "2025-01-01T00:00:00.000Z"}


def test_datetime_written_in_utc_with_milliseconds() -> None:
    madrid = dt.timezone(dt.timedelta(hours=2))
    event = Event(event_date=dt.datetime(2024, 10, 28, 2, 10, 2, 471000, tzinfo=madrid))
    assert unstructure(event)["_event_date"] == "2024-10-28T00:10:02.471Z"
    # Three fraction digits always (as JavaScript's toISOString): the rest is cut.
    event.event_date = dt.datetime(2024, 10, 28, 0, 10, 2, 471999, tzinfo=UTC)
    assert unstructure(event)["_event_date"] == "2024-10-28T00:10:02.471Z"
    assert to_wire_items([event])[0]["_event_date"] == "2024-10-28T00:10:02.471Z"


def test_unchanged_values_keep_their_wire_form_changed_ones_are_canonical() -> None:
    wire = {"_user_id": "u", "_date_updated": "2024-10-28T02:10:02+02:00", "_email_verified": "1"}
    contact = structure(wire, Contact)
    assert contact.email_verified is True
    assert unstructure(contact) == wire
    contact.date_updated = dt.datetime(2025, 1, 1, tzinfo=UTC)
    contact.email_verified = False
    assert unstructure(contact) == {
        "_user_id": "u",
        "_date_updated": "2025-01-01T00:00:00.000Z",
        "_email_verified": False,
    }


def test_coerced_list_changed_in_place_is_written_as_changed() -> None:
    contact = structure({"_client_tags": "vip"}, Contact)
    assert contact.client_tags == ["vip"]
    assert unstructure(contact) == {"_client_tags": "vip"}
    assert contact.client_tags is not None
    contact.client_tags.append("new")
    assert unstructure(contact) == {"_client_tags": ["vip", "new"]}


def test_values_that_do_not_fit_their_field_are_kept_in_extra() -> None:
    wire = {"_user_id": "u", "_date_updated": "yesterday", "_client_tags": 5, "_email": ["x"]}
    contact = structure(wire, Contact)
    assert contact.date_updated is None
    assert contact.client_tags is None
    assert contact.email is None
    assert contact.extra == {"_date_updated": "yesterday", "_client_tags": 5, "_email": ["x"]}
    assert unstructure(contact) == wire
    spec = structure({"multivalue": "many", "readOnly": "maybe"}, AttributeSpec)
    assert spec.multivalue is None and spec.read_only is None
    assert spec.extra == {"multivalue": "many", "readOnly": "maybe"}


def test_scalar_coercions_keep_the_original_for_the_round_trip() -> None:
    wire = {"multivalue": "3", "readOnly": "0", "visible": 1, "uid": 42}
    spec = structure(wire, AttributeSpec)
    assert spec.multivalue == 3
    assert spec.read_only is False
    assert spec.visible is True
    assert spec.uid == "42"
    assert unstructure(spec) == wire


def test_audience_event_reads_either_key_and_writes_back_the_one_it_read() -> None:
    event = structure({"_event_type": "order", "createdAt": "2024-01-01T00:00:00Z"}, AudienceEvent)
    assert event.event_type == "order"
    assert event.created_at == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert unstructure(event) == {"_event_type": "order", "createdAt": "2024-01-01T00:00:00Z"}
    event.event_type = "update"
    assert unstructure(event)["_event_type"] == "update"
    both = {"event-type": "a", "_event_type": "b"}
    read = structure(both, AudienceEvent)
    assert read.event_type == "a"
    assert read.extra == {"_event_type": "b"}
    assert unstructure(read) == both


def test_organization_projects_are_models_and_absent_lists_stay_absent() -> None:
    org = structure({"name": "ACME", "projects": [{"uid": "p1", "name": "Shop"}]}, Organization)
    assert org.projects == [Project(uid="p1", name="Shop")]
    assert structure({"name": "ACME"}, Organization).projects == []
    assert unstructure(structure({"name": "ACME"}, Organization)) == {"name": "ACME"}
    assert unstructure(structure({"projects": []}, Organization)) == {"projects": []}
    org.projects[0].name = "Renamed"
    assert unstructure(org) == {"name": "ACME", "projects": [{"uid": "p1", "name": "Renamed"}]}
    built = Organization(name="X", projects=[Project(uid="p")])
    assert unstructure(built) == {"name": "X", "projects": [{"uid": "p"}]}


def test_sms_wire_names() -> None:
    sender = structure({"id": "s", "from": "ACME"}, SmsSender)
    assert sender.from_ == "ACME"
    message = SmsMessage(to="+34600000000", from_="ACME", utm_term="t", audience_id="a")
    assert unstructure(message) == {
        "to": "+34600000000",
        "from": "ACME",
        "utmTerm": "t",
        "audienceId": "a",
    }


def test_datasource_stats_keeps_the_body_whole() -> None:
    body = {"contacts": 10, "events": {"today": 3}}
    stats = structure(body, DatasourceStats)
    assert stats.data is body
    assert unstructure(stats) is body
    assert structure([1, 2], DatasourceStats).data == {"value": [1, 2]}
    proxy = types.MappingProxyType({"a": 1})
    assert structure(proxy, DatasourceStats).data == {"a": 1}


def test_structure_of_a_non_mapping_names_the_model() -> None:
    with pytest.raises(TypeError, match="cannot build Contact from list"):
        structure([1, 2], Contact)
    with pytest.raises(TypeError, match="cannot build Event from NoneType"):
        structure(None, Event)


def test_structure_through_the_converter_for_containers() -> None:
    segments = structure([{"uid": "a"}, {"uid": "b", "x": 1}], list[Segment])
    assert segments == [Segment(uid="a"), Segment(uid="b", extra={"x": 1})]
    assert isinstance(converter, cattrs.Converter)


def test_structure_accepts_any_mapping() -> None:
    proxy = types.MappingProxyType({"_user_id": "u", "plan": "pro"})
    contact = structure(proxy, Contact)
    assert contact.user_id == "u"
    assert contact.attributes == {"plan": "pro"}


def test_models_take_keyword_arguments_only() -> None:
    with pytest.raises(TypeError):
        Contact("USER-1")  # type: ignore[misc]


def test_equality_ignores_wire_memory() -> None:
    read = structure({"_event_id": "e", "_event_date": "2024-01-01T00:00:00+00:00"}, Event)
    built = Event(event_id="e", event_date=dt.datetime(2024, 1, 1, tzinfo=UTC))
    assert read == built
    assert "_wire" not in repr(read)


def test_unstructure_passes_mappings_through_untouched(
    frozen_mapping: type[Mapping[str, Any]],
) -> None:
    plain = {"_user_id": "u"}
    proxy = types.MappingProxyType({"_user_id": "u"})
    custom = frozen_mapping({"_user_id": "u"})
    assert unstructure(plain) is plain
    assert unstructure(proxy) is proxy
    assert unstructure(custom) is custom


def test_unstructure_of_other_attrs_classes_goes_through_the_converter() -> None:
    @attrs.define
    class Point:
        x: int
        y: int

    assert unstructure(Point(1, 2)) == {"x": 1, "y": 2}


def test_to_wire_items_passes_mappings_by_identity_and_converts_models() -> None:
    first = {"_user_id": "a"}
    proxy = types.MappingProxyType({"_user_id": "b"})
    items = [first, Contact(user_id="c", attributes={"plan": "pro"}), proxy]
    wire = to_wire_items(items)
    assert wire[0] is first
    assert wire[1] == {"_user_id": "c", "plan": "pro"}
    assert wire[2] is proxy
    assert len(wire) == 3


def test_to_wire_items_takes_any_iterable() -> None:
    wire = to_wire_items(Event(event_id=str(i)) for i in range(3))
    assert wire == [{"_event_id": "0"}, {"_event_id": "1"}, {"_event_id": "2"}]


def test_to_wire_items_names_the_position_and_type_of_a_bad_item() -> None:
    with pytest.raises(TypeError, match=r"item at position 2 is a int: expected a mapping"):
        to_wire_items([{"_user_id": "a"}, Contact(user_id="b"), 42])
    with pytest.raises(TypeError, match=r"item at position 0 is a str"):
        to_wire_items(["_user_id"])


# --- property: unstructure(structure(d)) == d for any dict d ----------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_json = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
_date_like = st.sampled_from(
    [
        "2024-10-28T00:10:02.471Z",
        "2024-10-28T00:10:02Z",
        "2024-10-28T02:10:02.471+02:00",
        "2024-10-28 00:10:02",
        "2024-10-28",
        "2024-10-28T00:10",
        "not a date",
        "",
        "1",
        "0",
        "true",
        1730074202,
        1730074202471,
        3.0,
    ]
)


def _wire_keys(cls: type) -> list[str]:
    keys = ["extra", "attributes", "id", "_unknown", "custom_attr"]
    for field in attrs.fields(cls):
        spec = field.metadata.get(WIRE)
        if spec is not None:
            keys.append(spec.key)
            keys.extend(spec.aliases)
    return keys


@pytest.mark.parametrize("cls", WIRE_MODELS, ids=[c.__name__ for c in WIRE_MODELS])
@given(data=st.data())
def test_any_dict_round_trips(cls: type, data: st.DataObject) -> None:
    keys = st.sampled_from(_wire_keys(cls)) | st.text(max_size=6)
    values = _json | _date_like
    wire = data.draw(st.dictionaries(keys, values, max_size=10))
    obj = structure(wire, cls)
    assert unstructure(obj) == wire
    # A second trip through a copy of the output gives the same again.
    assert unstructure(structure(dict(unstructure(obj)), cls)) == wire


@pytest.mark.parametrize("cls", WIRE_MODELS, ids=[c.__name__ for c in WIRE_MODELS])
@given(data=st.data())
def test_fast_path_builds_what_the_general_hook_builds(cls: type, data: st.DataObject) -> None:
    keys = st.sampled_from(_wire_keys(cls)) | st.text(max_size=6)
    wire = data.draw(st.dictionaries(keys, _json | _date_like, max_size=10))
    fast = _STRUCTURERS[cls](wire)
    general = _REFERENCE_STRUCTURERS[cls](wire)
    assert fast == general
    assert fast._wire == general._wire
    assert list(fast.extra) == list(general.extra)  # same key order


def test_fast_path_handles_the_common_contact() -> None:
    calls: list[Any] = []
    hook = _STRUCTURERS[Contact]
    general = hook.__globals__["reference"]
    hook.__globals__["reference"] = lambda data: calls.append(data) or general(data)
    try:
        contact = hook(CONTACT_WIRE | {"_gender": "x"})
        assert calls == []
        assert contact.attributes == {"plan": "pro", "signup_source": "landing-a", "score": 7}
        hook({"_user_id": None})
        assert calls == [{"_user_id": None}]
    finally:
        hook.__globals__["reference"] = general


# --- the public entry: instasent_async.to_dict / from_dict ------------------------------


@pytest.mark.parametrize(("cls", "data"), SAMPLES, ids=[c.__name__ for c, _ in SAMPLES])
def test_to_dict_and_from_dict_are_the_wire_round_trip(cls: type, data: dict[str, Any]) -> None:
    model = instasent_async.from_dict(data, cls)
    assert type(model) is cls
    wire = instasent_async.to_dict(model)
    assert wire == data
    assert wire is not data
    assert instasent_async.from_dict(wire, cls) == model


def test_to_dict_is_json_ready_and_uses_the_wire_keys() -> None:
    contact = Contact(
        user_id="u-1",
        email="a@example.com",
        date_updated=dt.datetime(2024, 5, 1, 10, 20, 30, 123456, tzinfo=UTC),
        attributes={"plan": "pro"},
    )
    wire = instasent_async.to_dict(contact)
    assert wire == {
        "_user_id": "u-1",
        "_email": "a@example.com",
        "_date_updated": "2024-05-01T10:20:30.123Z",
        "plan": "pro",
    }
    assert orjson.loads(orjson.dumps(wire)) == wire
    wire["plan"] = "free"  # a new dict: changing it leaves the model alone
    assert contact.attributes == {"plan": "pro"}


def test_to_dict_of_nested_models_and_reports() -> None:
    org = instasent_async.from_dict({"id": "o", "projects": [{"uid": "p1"}]}, Organization)
    assert instasent_async.to_dict(org) == {"id": "o", "projects": [{"uid": "p1"}]}
    report = instasent_async.to_dict(instasent_async.IngestReport())
    assert report["accepted"] == 0
    assert isinstance(report["rejected"], list)
    orjson.dumps(report)


def test_from_dict_of_a_container_and_refusals() -> None:
    contacts = instasent_async.from_dict([{"_user_id": "a"}, {"_user_id": "b"}], list[Contact])
    assert [c.user_id for c in contacts] == ["a", "b"]
    with pytest.raises(TypeError, match="Contact"):
        instasent_async.from_dict(["not", "a", "mapping"], Contact)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="to_dict"):
        instasent_async.to_dict({"_user_id": "a"})
