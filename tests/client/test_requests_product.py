"""The exact request of every operation of the endpoint table (aioresponses).

Each test pins the method, the percent-encoded path, the query parameters, the
headers and the JSON body the SDK sends for one operation, and checks that the
answer is decoded. ``@covers`` records which operations a test exercises; the
meta-test at the end fails when an operation of ``OPERATIONS`` has no test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import pytest

from instasent_async import Instasent
from instasent_async._core.endpoints import OPERATIONS
from instasent_async.errors import AmbiguousOutcomeError, NotFoundError
from instasent_async.models import Contact, Event
from instasent_async.query import AudienceQuery, EventQuery, Q

if TYPE_CHECKING:
    from tests.client.conftest import MockedAPI

P = "/v1/project/proj_demo"
DS = f"{P}/datasource/ds_demo"
SMS = f"{P}/channel/sms/sms"

F = TypeVar("F", bound=Callable[..., Any])

COVERED: dict[str, list[str]] = {}
"""Operation name -> names of the tests that pin its request."""


def covers(*names: str) -> Callable[[F], F]:
    """Declare the operations a test pins (checked against ``OPERATIONS``)."""

    def mark(test: F) -> F:
        for name in names:
            COVERED.setdefault(name, []).append(test.__name__)
        return test

    return mark


PAGE = {"_start": "0", "_limit": "100"}
"""The query of a list call with default paging."""


# --- 6.1 organization, 6.2 project and specs --------------------------------------------


@covers("organization.get")
async def test_organization_get_is_a_get_on_the_api_root(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route(
        "GET",
        "/v1/",
        payload={
            "entity": {
                "uid": "org_1",
                "projects": [{"uid": "proj_demo", "id": 1, "name": "Demo"}],
                "account": {"funds": 10},
            }
        },
    )
    org = await client.organization.get()
    assert org.uid == "org_1"
    assert [(p.uid, p.id) for p in org.projects] == [("proj_demo", "1")]
    assert org.extra == {"account": {"funds": 10}}
    mocked.check(mocked.only(), "GET", "/v1/")


@covers("project.get")
async def test_project_get(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("GET", P, payload={"entity": {"uid": "proj_demo", "id": 7, "name": "Demo"}})
    project = await client.project.get()
    assert (project.uid, project.id, project.name) == ("proj_demo", "7", "Demo")
    mocked.check(mocked.only(), "GET", P)


@covers("project.get")
async def test_the_project_uid_is_percent_encoded_in_every_path(mocked: MockedAPI) -> None:
    mocked.route("GET", "/v1/project/a%20b%2Fc", payload={"entity": {"uid": "a b/c"}})
    async with Instasent(
        mocked.token, project="a b/c", base_url=mocked.base_url, rate_limit=None
    ) as c:
        assert (await c.project.get()).uid == "a b/c"
    mocked.check(mocked.only(), "GET", "/v1/project/a%20b%2Fc")


@covers("specs.attributes")
async def test_specs_attributes(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route(
        "GET",
        f"{P}/specs/attributes",
        payload={"entities": [{"uid": "_client_tags", "dataType": "string", "multivalue": 20}]},
    )
    specs = await client.specs.attributes()
    assert [(s.uid, s.data_type, s.multivalue) for s in specs] == [("_client_tags", "string", 20)]
    mocked.check(mocked.only(), "GET", f"{P}/specs/attributes")


@covers("specs.events")
async def test_specs_events(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route(
        "GET",
        f"{P}/specs/events",
        payload={"entities": [{"uid": "page_view", "name": "Page view", "category": "web"}]},
    )
    specs = await client.specs.events()
    assert [(s.uid, s.name, s.category) for s in specs] == [("page_view", "Page view", "web")]
    mocked.check(mocked.only(), "GET", f"{P}/specs/events")


@covers("specs.event_parameters")
async def test_specs_event_parameters_encodes_the_event_type(
    mocked: MockedAPI, client: Instasent
) -> None:
    path = f"{P}/specs/events/order%2Fcreate%20v2"
    mocked.route(
        "GET",
        path,
        payload={"entities": [{"parameter": "amount", "dataType": "number", "multiValue": 1}]},
    )
    specs = await client.specs.event_parameters("order/create v2")
    assert [(s.parameter, s.data_type, s.multi_value) for s in specs] == [("amount", "number", 1)]
    mocked.check(mocked.only(), "GET", path)


# --- 6.3 audience -----------------------------------------------------------------------


@covers("audience.get_by_user_id")
async def test_audience_get_by_user_id_encodes_plus(mocked: MockedAPI, client: Instasent) -> None:
    path = f"{P}/audience/user/%2B34600000000"
    mocked.route("GET", path, payload={"entity": {"id": "a1", "_user_id": "+34600000000"}})
    contact = await client.audience.get_by_user_id("+34600000000")
    assert (contact.id, contact.user_id) == ("a1", "+34600000000")
    mocked.check(mocked.only(), "GET", path)


@covers("audience.get")
async def test_audience_get_encodes_slash(mocked: MockedAPI, client: Instasent) -> None:
    path = f"{P}/audience/aud%2F..%2F1"
    mocked.route("GET", path, payload={"entity": {"id": "aud/../1", "plan": "pro"}})
    contact = await client.audience.get("aud/../1")
    assert contact.id == "aud/../1"
    assert contact.attributes == {"plan": "pro"}
    mocked.check(mocked.only(), "GET", path)


@covers("audience.get")
async def test_audience_get_raises_not_found_on_404(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("GET", f"{P}/audience/missing", status=404, payload={"message": "Not found"})
    with pytest.raises(NotFoundError) as info:
        await client.audience.get("missing")
    assert (info.value.status, info.value.method) == (404, "GET")
    assert info.value.path == "/project/proj_demo/audience/missing"
    mocked.check(mocked.only(), "GET", f"{P}/audience/missing")


@covers("audience.search_by_phone")
async def test_search_by_phone_encodes_plus_and_reads_entity(
    mocked: MockedAPI, client: Instasent
) -> None:
    path = f"{P}/audience/search/phone/%2B34600000000"
    mocked.route("GET", path, payload={"entity": {"id": "a1", "_phone_mobile": "+34600000000"}})
    found = await client.audience.search_by_phone("+34600000000")
    assert [(c.id, c.phone_mobile) for c in found] == [("a1", "+34600000000")]
    mocked.check(mocked.only(), "GET", path)


@covers("audience.search_by_phone")
async def test_search_by_phone_is_empty_on_404(mocked: MockedAPI, client: Instasent) -> None:
    path = f"{P}/audience/search/phone/%2B34699999999"
    mocked.route("GET", path, status=404, payload={"message": "Not found"})
    assert await client.audience.search_by_phone("+34699999999") == []
    mocked.check(mocked.only(), "GET", path)


@covers("audience.search_by_email")
async def test_search_by_email_reads_entities(mocked: MockedAPI, client: Instasent) -> None:
    path = f"{P}/audience/search/email/a%2Bb@example.com"
    mocked.route("GET", path, payload={"entities": [{"id": "a1"}, {"id": "a2"}]})
    found = await client.audience.search_by_email("a+b@example.com")
    assert [c.id for c in found] == ["a1", "a2"]
    mocked.check(mocked.only(), "GET", path)


@covers("audience.events")
async def test_audience_events_flattens_events_grouped_by_type(
    mocked: MockedAPI, client: Instasent
) -> None:
    path = f"{P}/audience/aud%201/events"
    mocked.route(
        "GET",
        path,
        payload={
            "entity": {
                "page_view": [{"event-type": "page_view", "parameters": {"url": "/"}}],
                "update": [{"event-type": "update"}, {"event-type": "update"}],
            }
        },
    )
    events = await client.audience.events("aud 1")
    assert [e.event_type for e in events] == ["page_view", "update", "update"]
    assert events[0].parameters == {"url": "/"}
    mocked.check(mocked.only(), "GET", path)


@covers("audience.events")
async def test_audience_events_reads_a_flat_list(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route(
        "GET",
        f"{P}/audience/a1/events",
        payload={"entities": [{"_event_type": "update", "_event_id": "e1"}]},
    )
    events = await client.audience.events("a1")
    assert [(e.event_type, e.event_id) for e in events] == [("update", "e1")]
    mocked.check(mocked.only(), "GET", f"{P}/audience/a1/events")


@covers("audience.search")
async def test_audience_search_sends_the_builder_dict_with_limit_and_offset(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route("POST", f"{P}/audience/search", payload={"entities": [{"id": "a1"}]})
    query = AudienceQuery(Q.attr("_email").contains("yahoo"), sort_field="_email", sort_asc=True)
    found = await client.audience.search(query, limit=10, offset=20)
    assert [c.id for c in found] == ["a1"]
    mocked.check(
        mocked.only(),
        "POST",
        f"{P}/audience/search",
        body={
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
            "sortField": "_email",
            "sortAsc": True,
            "limit": 10,
            "offset": 20,
        },
    )


@covers("audience.search")
async def test_audience_search_sends_a_wire_dict_untouched_plus_the_limit(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route("POST", f"{P}/audience/search", payload={"entities": []})
    query = {
        "version": "0.0.1",
        "root": {"type": "group", "join": "or", "children": []},
        "includeAllData": False,
    }
    before = dict(query)
    assert await client.audience.search(query) == []
    assert query == before  # the caller's dict is not mutated
    mocked.check(mocked.only(), "POST", f"{P}/audience/search", body={**query, "limit": 50})


@covers("audience.search")
async def test_audience_search_uses_the_limit_of_the_query_when_none_is_given(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route("POST", f"{P}/audience/search", payload={"entities": []})
    await client.audience.search(AudienceQuery(Q.attr("plan").exists(), limit=5, offset=3))
    request = mocked.only()
    assert request.data is not None
    body = orjson.loads(request.data)
    assert (body["limit"], body["offset"]) == (5, 3)


@covers("audience.scroll")
async def test_audience_scroll_sends_limit_then_each_cursor(
    mocked: MockedAPI, client: Instasent
) -> None:
    for page in (
        {"entities": [{"id": "a1"}, {"id": "a2"}], "cursor": "c1"},
        {"entities": [{"id": "a3"}, {"id": "a4"}], "meta": {"cursor": "c2"}},
        {"entities": [{"id": "a5"}], "cursor": None},
    ):
        mocked.route("POST", f"{P}/audience/scroll", payload=page)
    query = AudienceQuery(Q.attr("_phone_mobile").exists(), include_all_data=False)
    ids = [c.id async for c in client.audience.scroll(query, page_size=2)]
    assert ids == ["a1", "a2", "a3", "a4", "a5"]
    requests = mocked.sent()
    assert len(requests) == 3
    wire = query.to_dict()
    for request, cursor in zip(requests, (None, "c1", "c2"), strict=True):
        expected = {**wire, "limit": 2}
        if cursor is not None:
            expected["cursor"] = cursor
        mocked.check(request, "POST", f"{P}/audience/scroll", body=expected)


@covers("audience.scroll")
async def test_audience_scroll_resumes_from_a_saved_cursor(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route("POST", f"{P}/audience/scroll", payload={"entities": [{"id": "a9"}]})
    ids = [c.id async for c in client.audience.scroll(None, cursor="saved-cursor")]
    assert ids == ["a9"]
    mocked.check(
        mocked.only(),
        "POST",
        f"{P}/audience/scroll",
        body={"limit": 100, "cursor": "saved-cursor"},  # no filter: no root, no version
    )


@covers("audience.segment_scroll")
async def test_segment_scroll_sends_parameter_and_cursor(
    mocked: MockedAPI, client: Instasent
) -> None:
    path = f"{P}/audience/segment/seg%2F1/scroll"
    mocked.route("POST", path, payload={"entities": [{"id": "a1"}], "scrollId": "s1"})
    mocked.route("POST", path, payload={"entities": [], "scrollId": "s2"})
    iterator = client.segments.scroll(
        "seg/1", Q.attr("plan").matches("pro"), parameter=["val1", "val2"], page_size=5
    )
    assert [c.id async for c in iterator] == ["a1"]
    first, second = mocked.sent()
    root = {
        "type": "group",
        "join": "and",
        "children": [
            {
                "type": "attribute_condition",
                "key": "plan",
                "operator": "matches-string",
                "values": ["pro"],
            }
        ],
    }
    query = {"parameter": "val1|val2"}
    mocked.check(first, "POST", path, query, body={"version": "0.0.1", "root": root, "limit": 5})
    mocked.check(
        second,
        "POST",
        path,
        query,
        body={"version": "0.0.1", "root": root, "limit": 5, "cursor": "s1"},
    )


@covers("audience.sms_subscribe")
async def test_sms_subscribe(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("POST", f"{P}/audience/stream/sms-subscribe", status=202, payload={})
    assert await client.audience.sms_subscribe("aud-1") is None
    mocked.check(
        mocked.only(), "POST", f"{P}/audience/stream/sms-subscribe", body={"audienceId": "aud-1"}
    )


@covers("audience.sms_subscribe")
async def test_sms_subscribe_sync_adds_the_sync_flag(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("POST", f"{P}/audience/stream/sms-subscribe", status=204)
    await client.audience.sms_subscribe("aud-1", sync=True)
    mocked.check(
        mocked.only(),
        "POST",
        f"{P}/audience/stream/sms-subscribe",
        {"_sync": ""},
        body={"audienceId": "aud-1"},
    )


@covers("audience.sms_unsubscribe")
async def test_sms_unsubscribe_sends_reason_and_utm_fields(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route("POST", f"{P}/audience/stream/sms-unsubscribe", status=202, payload={})
    await client.audience.sms_unsubscribe(
        "aud-1",
        reason="too many messages",
        utm_source="newsletter",
        utm_medium="sms",
        utm_campaign="spring",
        sync=True,
    )
    mocked.check(
        mocked.only(),
        "POST",
        f"{P}/audience/stream/sms-unsubscribe",
        {"_sync": ""},
        body={
            "audienceId": "aud-1",
            "reason": "too many messages",
            "utm-source": "newsletter",
            "utm-medium": "sms",
            "utm-campaign": "spring",
        },
    )


@covers("audience.sms_unsubscribe")
async def test_sms_unsubscribe_omits_fields_not_given(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("POST", f"{P}/audience/stream/sms-unsubscribe", status=202, payload={})
    await client.audience.sms_unsubscribe("aud-1", utm_medium="email")
    mocked.check(
        mocked.only(),
        "POST",
        f"{P}/audience/stream/sms-unsubscribe",
        body={"audienceId": "aud-1", "utm-medium": "email"},
    )


@covers("audience.email_subscribe")
async def test_email_subscribe(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("POST", f"{P}/audience/stream/email-subscribe", status=202, payload={})
    await client.audience.email_subscribe("aud-2")
    mocked.check(
        mocked.only(),
        "POST",
        f"{P}/audience/stream/email-subscribe",
        body={"audienceId": "aud-2"},
    )


@covers("audience.email_unsubscribe")
async def test_email_unsubscribe(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("POST", f"{P}/audience/stream/email-unsubscribe", status=202, payload={})
    await client.audience.email_unsubscribe("aud-2", reason="moved", utm_source="footer")
    mocked.check(
        mocked.only(),
        "POST",
        f"{P}/audience/stream/email-unsubscribe",
        body={"audienceId": "aud-2", "reason": "moved", "utm-source": "footer"},
    )


@covers("audience.delete")
async def test_audience_delete_posts_to_delete_contact(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route("POST", f"{P}/audience/stream/delete-contact", status=204)
    assert await client.audience.delete("aud-3", sync=True) is None
    mocked.check(
        mocked.only(),
        "POST",
        f"{P}/audience/stream/delete-contact",
        {"_sync": ""},
        body={"audienceId": "aud-3"},
    )


# --- 6.4 events -------------------------------------------------------------------------


@covers("events.search")
async def test_events_search(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route(
        "POST",
        f"{P}/event/search",
        payload={
            "entities": [
                {"event-type": "ecommerce_order_create", "created-at": "2024-10-28T00:10:02Z"}
            ]
        },
    )
    query = EventQuery(
        Q.event("event-type").matches("ecommerce_order_create"),
        Q.event("created-at").in_last(7),
        sort_field="created-at",
        sort_asc=False,
    )
    found = await client.events.search(query, limit=5)
    assert [e.event_type for e in found] == ["ecommerce_order_create"]
    assert found[0].created_at is not None and found[0].created_at.tzinfo is not None
    mocked.check(mocked.only(), "POST", f"{P}/event/search", body={**query.to_dict(), "limit": 5})


@covers("events.scroll")
async def test_events_scroll_follows_the_cursor(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route(
        "POST",
        f"{P}/event/scroll",
        payload={"entities": [{"event-type": "update"}], "cursor": "e1"},
    )
    mocked.route("POST", f"{P}/event/scroll", payload={"entities": [{"event-type": "page_view"}]})
    query = {"version": "0.0.1", "root": {"type": "group", "join": "and", "children": []}}
    iterator = client.events.scroll(query, page_size=1)
    assert [e.event_type async for e in iterator] == ["update", "page_view"]
    assert iterator.done and iterator.cursor is None
    first, second = mocked.sent()
    mocked.check(first, "POST", f"{P}/event/scroll", body={**query, "limit": 1})
    mocked.check(second, "POST", f"{P}/event/scroll", body={**query, "limit": 1, "cursor": "e1"})


# --- 6.5 / 6.11 datasource stream -------------------------------------------------------


@covers("datasource.info")
async def test_datasource_info(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route(
        "GET",
        f"{DS}/stream",
        payload={
            "organization": {"uid": "org"},
            "project": {"uid": "proj_demo"},
            "datasource": {"id": "ds_demo"},
            "stream": {"id": "st"},
            "usage": {"contacts": 3},
        },
    )
    info = await client.datasource("ds_demo").info()
    assert (info.datasource, info.usage) == ({"id": "ds_demo"}, {"contacts": 3})
    mocked.check(mocked.only(), "GET", f"{DS}/stream")


@covers("datasource.info")
async def test_datasource_id_dsapi_and_odd_ids_are_sent_encoded(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route("GET", f"{P}/datasource/dsapi/stream", payload={"stream": {}})
    mocked.route("GET", f"{P}/datasource/ds%2F..%2Fx/stream", payload={"stream": {}})
    await client.datasource("dsapi").info()
    await client.datasource("ds/../x").info()
    first, second = mocked.sent()
    mocked.check(first, "GET", f"{P}/datasource/dsapi/stream")
    mocked.check(second, "GET", f"{P}/datasource/ds%2F..%2Fx/stream")


@covers("datasource.specs.attributes")
async def test_datasource_specs_attributes(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route(
        "GET",
        f"{DS}/stream/specs/attributes",
        payload={"specs": [{"uid": "_email", "readOnly": False, "requiredInWebhook": False}]},
    )
    specs = await client.datasource("ds_demo").specs.attributes()
    assert [(s.uid, s.read_only) for s in specs] == [("_email", False)]
    mocked.check(mocked.only(), "GET", f"{DS}/stream/specs/attributes")


@covers("datasource.specs.events")
async def test_datasource_specs_events(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("GET", f"{DS}/stream/specs/events", payload={"specs": [{"uid": "page_view"}]})
    specs = await client.datasource("ds_demo").specs.events()
    assert [s.uid for s in specs] == ["page_view"]
    mocked.check(mocked.only(), "GET", f"{DS}/stream/specs/events")


@covers("datasource.specs.event_parameters")
async def test_datasource_specs_event_parameters(mocked: MockedAPI, client: Instasent) -> None:
    path = f"{DS}/stream/specs/event-parameters/order%20create"
    mocked.route("GET", path, payload={"specs": [{"parameter": "order-id", "required": True}]})
    specs = await client.datasource("ds_demo").specs.event_parameters("order create")
    assert [(s.parameter, s.required) for s in specs] == [("order-id", True)]
    mocked.check(mocked.only(), "GET", path)


@covers("datasource.stats")
async def test_datasource_stats_is_not_under_stream(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("GET", f"{DS}/stats", payload={"entity": {"contacts": 12, "events": 3}})
    stats = await client.datasource("ds_demo").stats()
    assert stats.data == {"contacts": 12, "events": 3}
    mocked.check(mocked.only(), "GET", f"{DS}/stats")


@covers("datasource.contacts.get")
async def test_datasource_contacts_get(mocked: MockedAPI, client: Instasent) -> None:
    path = f"{DS}/stream/contacts/u%2B1"
    mocked.route("GET", path, payload={"entity": {"_user_id": "u+1", "_first_name": "Ana"}})
    contact = await client.datasource("ds_demo").contacts.get("u+1")
    assert (contact.user_id, contact.first_name) == ("u+1", "Ana")
    mocked.check(mocked.only(), "GET", path)


@covers("datasource.contacts.upsert")
async def test_datasource_contacts_upsert_sends_an_array_with_sync(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route(
        "POST",
        f"{DS}/stream/contacts",
        status=202,
        payload={
            "entity": {
                "successful": 2,
                "failed": 0,
                "items": [
                    {"status": "success", "_user_id": "u1"},
                    {"status": "success", "_user_id": "u2"},
                ],
            }
        },
    )
    items = [
        Contact(user_id="u1", email="a@example.com", attributes={"plan": "pro"}),
        {"_user_id": "u2", "signup_source": "landing-a"},
    ]
    report = await client.datasource("ds_demo").contacts.upsert(items, sync=True)
    assert (report.total, report.accepted, report.ok) == (2, 2, True)
    mocked.check(
        mocked.only(),
        "POST",
        f"{DS}/stream/contacts",
        {"_sync": ""},
        body=[
            {"_user_id": "u1", "_email": "a@example.com", "plan": "pro"},
            {"_user_id": "u2", "signup_source": "landing-a"},
        ],
    )


@covers("datasource.events.add")
async def test_datasource_events_add_with_dry_run(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("POST", f"{DS}/stream/events", status=202, body="")
    event = Event(
        user_id="u1",
        event_id="ord-1",
        event_type="ecommerce_order_create",
        event_parameters={"order-id": "1"},
    )
    report = await client.datasource("ds_demo").events.add([event], dry_run=True)
    assert report.accepted == 1
    mocked.check(
        mocked.only(),
        "POST",
        f"{DS}/stream/events",
        {"_dryRun": ""},
        body=[
            {
                "_user_id": "u1",
                "_event_id": "ord-1",
                "_event_type": "ecommerce_order_create",
                "_event_parameters": {"order-id": "1"},
            }
        ],
    )


@covers("datasource.contacts.delete")
async def test_datasource_contacts_delete(mocked: MockedAPI, client: Instasent) -> None:
    path = f"{DS}/stream/contacts/u%2F1"
    mocked.route("DELETE", path, status=204)
    assert await client.datasource("ds_demo").contacts.delete("u/1") is None
    mocked.check(mocked.only(), "DELETE", path)


# --- 6.6 segments -----------------------------------------------------------------------


@covers("segments.list")
async def test_segments_list_sends_the_generic_query_filter(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route("GET", f"{P}/segment", payload={"entities": [{"uid": "s1", "type": "static"}]})
    q = {"filter": [{"field": "status", "operator": "eq", "value": "active"}]}
    segments = await client.segments.list(
        start=40, limit=20, sort=["-name", "uid"], q=q, filters={"type": "dynamic", "size_gte": 3}
    )
    assert [(s.uid, s.type) for s in segments] == [("s1", "static")]
    mocked.check(
        mocked.only(),
        "GET",
        f"{P}/segment",
        {
            "_start": "40",
            "_limit": "20",
            "_sort": "name:-,uid",
            "_q": orjson.dumps(q).decode(),
            "type_eq": "dynamic",
            "size_gte": "3",
        },
    )


@covers("segments.list")
async def test_segments_list_pages_with_start_and_limit(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route("GET", f"{P}/segment", payload={"entities": [{"uid": "s1"}, {"uid": "s2"}]})
    mocked.route("GET", f"{P}/segment", payload={"entities": [{"uid": "s3"}, {"uid": "s4"}]})
    mocked.route("GET", f"{P}/segment", payload={"entities": [{"uid": "s5"}]})
    uids = [s.uid async for s in client.segments.list(limit=2, sort="name")]
    assert uids == ["s1", "s2", "s3", "s4", "s5"]
    requests = mocked.sent()
    assert len(requests) == 3
    for request, start in zip(requests, ("0", "2", "4"), strict=True):
        mocked.check(
            request, "GET", f"{P}/segment", {"_start": start, "_limit": "2", "_sort": "name"}
        )


@covers("segments.dynamic")
async def test_segments_dynamic(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("GET", f"{P}/segment/dynamic", payload={"entities": [{"uid": "d1"}]})
    assert [s.uid for s in await client.segments.dynamic()] == ["d1"]
    mocked.check(mocked.only(), "GET", f"{P}/segment/dynamic")  # no paging unless asked


@covers("segments.get")
async def test_segments_get_with_a_dynamic_parameter(mocked: MockedAPI, client: Instasent) -> None:
    path = f"{P}/segment/seg%201"
    mocked.route("GET", path, payload={"entity": {"uid": "seg 1", "name": "VIP"}})
    segment = await client.segments.get("seg 1", parameter="val1|val2")
    assert (segment.uid, segment.name) == ("seg 1", "VIP")
    mocked.check(mocked.only(), "GET", path, {"parameter": "val1|val2"})


@covers("segments.get")
async def test_segments_get_without_parameter_sends_no_query(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route("GET", f"{P}/segment/s1", payload={"entity": {"uid": "s1"}})
    await client.segments.get("s1")
    mocked.check(mocked.only(), "GET", f"{P}/segment/s1")


# --- 6.7 campaigns, 6.8 automations -----------------------------------------------------


@covers("campaigns.list")
async def test_campaigns_list_with_status_filter(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route(
        "GET",
        f"{P}/campaign",
        payload={"entities": [{"id": 3, "title": "Spring", "status": "sent"}]},
    )
    campaigns = await client.campaigns.list(filters={"status": ["draft", "sent"]}, sort="-id")
    assert [(c.id, c.title) for c in campaigns] == [("3", "Spring")]
    mocked.check(
        mocked.only(),
        "GET",
        f"{P}/campaign",
        {**PAGE, "status_in": '["draft","sent"]', "_sort": "id:-"},
    )


@covers("campaigns.get")
async def test_campaigns_get(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route(
        "GET",
        f"{P}/campaign/42",
        payload={"entity": {"id": 42, "campaignAt": "2024-05-01T10:00:00+02:00"}},
    )
    campaign = await client.campaigns.get(42)
    assert campaign.id == "42"
    assert campaign.campaign_at is not None and campaign.campaign_at.utcoffset() is not None
    mocked.check(mocked.only(), "GET", f"{P}/campaign/42")


@covers("automations.list")
async def test_automations_list_with_q(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("GET", f"{P}/automation", payload={"entities": [{"id": "aut_1"}]})
    q = {"filter": [{"field": "status", "operator": "in", "value": ["active"]}]}
    automations = await client.automations.list(q=q, limit=10)
    assert [a.id for a in automations] == ["aut_1"]
    mocked.check(
        mocked.only(),
        "GET",
        f"{P}/automation",
        {"_start": "0", "_limit": "10", "_q": orjson.dumps(q).decode()},
    )


@covers("automations.get")
async def test_automations_get(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("GET", f"{P}/automation/aut%2F1", payload={"entity": {"id": "aut/1"}})
    assert (await client.automations.get("aut/1")).id == "aut/1"
    mocked.check(mocked.only(), "GET", f"{P}/automation/aut%2F1")


# --- 6.9 senders, 6.10 SMS --------------------------------------------------------------


@covers("sms.senders")
async def test_sms_senders(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route(
        "GET",
        f"{P}/channel/sms/sender",
        payload={"entities": [{"id": "snd_1", "from": "Shop", "status": "active"}]},
    )
    senders = await client.sms.senders(filters={"status": "active"})
    assert [(s.id, s.from_, s.status) for s in senders] == [("snd_1", "Shop", "active")]
    mocked.check(mocked.only(), "GET", f"{P}/channel/sms/sender", {**PAGE, "status_eq": "active"})


@covers("sms.get")
async def test_sms_get(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route(
        "GET",
        f"{SMS}/sms_1",
        payload={"entity": {"id": "sms_1", "utmTerm": "t", "audienceId": "a1"}},
    )
    sms = await client.sms.get("sms_1")
    assert (sms.id, sms.utm_term, sms.audience_id) == ("sms_1", "t", "a1")
    mocked.check(mocked.only(), "GET", f"{SMS}/sms_1")


@covers("sms.list_by_audience")
async def test_sms_list_by_audience_encodes_the_phone(mocked: MockedAPI, client: Instasent) -> None:
    path = f"{SMS}/audience/%2B34600000000"
    mocked.route("GET", path, payload={"entities": [{"id": "sms_1"}]})
    found = await client.sms.list_by_audience("+34600000000", filters={"status": "delivered"})
    assert [m.id for m in found] == ["sms_1"]
    mocked.check(mocked.only(), "GET", path, {**PAGE, "status_eq": "delivered"})


@covers("sms.list_by_send")
async def test_sms_list_by_send(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("GET", f"{SMS}/send/send_1", payload={"entities": []})
    assert await client.sms.list_by_send("send_1", start=100, limit=50) == []
    mocked.check(mocked.only(), "GET", f"{SMS}/send/send_1", {"_start": "100", "_limit": "50"})


@covers("sms.list_by_campaign")
async def test_sms_list_by_campaign_with_option_index(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("GET", f"{SMS}/campaign/cmp_1/2", payload={"entities": [{"id": "m"}]})
    assert [m.id for m in await client.sms.list_by_campaign("cmp_1", 2)] == ["m"]
    mocked.check(mocked.only(), "GET", f"{SMS}/campaign/cmp_1/2", PAGE)


@covers("sms.list_by_automation")
async def test_sms_list_by_automation_defaults_to_message_zero(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route("GET", f"{SMS}/automation/77/0", payload={"entities": [{"id": "m"}]})
    assert [m.id for m in await client.sms.list_by_automation(77)] == ["m"]
    mocked.check(mocked.only(), "GET", f"{SMS}/automation/77/0", PAGE)


@covers("sms.list_direct")
async def test_sms_list_direct(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route("GET", f"{SMS}/direct", payload={"entities": [{"id": "m1"}]})
    assert [m.id for m in await client.sms.list_direct()] == ["m1"]
    mocked.check(mocked.only(), "GET", f"{SMS}/direct", PAGE)


@covers("sms.list_direct_by_utm")
async def test_sms_list_direct_by_utm_term(mocked: MockedAPI, client: Instasent) -> None:
    path = f"{SMS}/direct/spring%20sale"
    mocked.route("GET", path, payload={"entities": [{"id": "m1", "utmTerm": "spring sale"}]})
    found = await client.sms.list_direct("spring sale")
    assert [m.utm_term for m in found] == ["spring sale"]
    mocked.check(mocked.only(), "GET", path, PAGE)


@covers("sms.send_direct")
async def test_send_direct_to_a_phone_with_the_default_sender(
    mocked: MockedAPI, client: Instasent
) -> None:
    path = f"{SMS}/direct/default/%2B34600000000"
    mocked.route(
        "POST",
        path,
        status=201,
        payload={"entity": {"id": "sms_9", "to": "+34600000000", "status": "enqueued"}},
    )
    sms = await client.sms.send_direct("+34600000000", "Hello")
    assert sms is not None and (sms.id, sms.status) == ("sms_9", "enqueued")
    mocked.check(mocked.only(), "POST", path, body={"text": "Hello", "allowUnicode": False})


@covers("sms.send_direct")
async def test_send_direct_accepts_an_empty_answer(mocked: MockedAPI, client: Instasent) -> None:
    path = f"{SMS}/direct/snd_1/aud-1"
    mocked.route("POST", path, status=204)
    assert await client.sms.send_direct("aud-1", "Hi ☺", "snd_1", allow_unicode=True) is None
    mocked.check(mocked.only(), "POST", path, body={"text": "Hi ☺", "allowUnicode": True})


@covers("sms.send_direct")
async def test_send_direct_is_sent_once_even_when_the_server_fails(
    mocked: MockedAPI, client: Instasent
) -> None:
    path = f"{SMS}/direct/default/%2B34600000000"
    mocked.route("POST", path, status=503, payload={"message": "busy"})
    mocked.route("POST", path, status=201, payload={"entity": {"id": "sms_2"}})
    with pytest.raises(AmbiguousOutcomeError):
        await client.sms.send_direct("+34600000000", "Hello")
    mocked.check(mocked.only(), "POST", path, body={"text": "Hello", "allowUnicode": False})


@covers("sms.send_direct_utm")
async def test_send_direct_with_a_utm_term(mocked: MockedAPI, client: Instasent) -> None:
    path = f"{SMS}/direct/default/%2B34600000000/black%2Ffriday"
    mocked.route("POST", path, status=201, payload={"entity": {"id": "sms_3"}})
    sms = await client.sms.send_direct("+34600000000", "Deals", utm_term="black/friday")
    assert sms is not None and sms.id == "sms_3"
    mocked.check(mocked.only(), "POST", path, body={"text": "Deals", "allowUnicode": False})


# --- completeness -----------------------------------------------------------------------


def test_every_operation_of_the_endpoint_table_has_a_request_test() -> None:
    assert set(COVERED) <= set(OPERATIONS), set(COVERED) - set(OPERATIONS)
    missing = sorted(set(OPERATIONS) - set(COVERED))
    assert not missing, f"operations without a request test: {missing}"
    assert len(OPERATIONS) == 46
