"""The exact request of each core operation (method, URL, query, headers, JSON body).

Cases the per-operation tests of ``test_requests_product.py`` do not pin: a nested
organization name, attributes read by user id, an empty search by email on 404,
chunking of large upserts, both ingest flags at once, dicts sent untouched as events,
and events refused before any request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from instasent_async import Instasent

if TYPE_CHECKING:
    from tests.client.conftest import MockedAPI

P = "/v1/project/proj_demo"
DS = f"{P}/datasource/ds_demo"


async def test_organization_name_may_sit_in_a_nested_object(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route(
        "GET",
        "/v1/",
        payload={"entity": {"organization": {"uid": "org_1", "name": "Acme"}, "projects": []}},
    )
    org = await client.organization.get()
    assert (org.uid, org.name, org.projects) == ("org_1", "Acme", [])
    mocked.check(mocked.only(), "GET", "/v1/")


async def test_audience_get_by_user_id(mocked: MockedAPI, client: Instasent) -> None:
    mocked.route(
        "GET",
        f"{P}/audience/user/USER-1",
        payload={"entity": {"id": "a1", "_user_id": "USER-1", "plan": "pro"}},
    )
    contact = await client.audience.get_by_user_id("USER-1")
    assert contact.user_id == "USER-1"
    assert contact.attributes == {"plan": "pro"}
    mocked.check(mocked.only(), "GET", f"{P}/audience/user/USER-1")


async def test_search_by_email_is_empty_on_404(mocked: MockedAPI, client: Instasent) -> None:
    path = f"{P}/audience/search/email/nobody@example.com"
    mocked.route("GET", path, status=404, payload={"message": "Not found"})
    assert await client.audience.search_by_email("nobody@example.com") == []
    mocked.check(mocked.only(), "GET", path)


async def test_contacts_upsert_chunks_to_100_and_sends_mappings_untouched(
    mocked: MockedAPI, client: Instasent
) -> None:
    items = [{"_user_id": f"u{i}", "plan": "pro"} for i in range(250)]
    for _ in range(3):
        # An empty 202: the whole batch was taken.
        mocked.route("POST", f"{DS}/stream/contacts", status=202, body="")
    report = await client.datasource("ds_demo").contacts.upsert(items)
    requests = mocked.sent()
    for request, chunk in zip(requests, (items[:100], items[100:200], items[200:]), strict=True):
        mocked.check(request, "POST", f"{DS}/stream/contacts", body=chunk)
    assert request.data is not None
    assert orjson.loads(request.data)[-1] == {"_user_id": "u249", "plan": "pro"}
    assert (report.total, report.accepted, report.requests, report.ok) == (250, 250, 3, True)


async def test_contacts_upsert_with_sync_and_dry_run_flags(
    mocked: MockedAPI, client: Instasent
) -> None:
    mocked.route("POST", f"{DS}/stream/contacts", status=202, payload={})
    await client.datasource("ds_demo").contacts.upsert(
        [{"_user_id": "u1"}], sync=True, dry_run=True
    )
    mocked.check(
        mocked.only(),
        "POST",
        f"{DS}/stream/contacts",
        {"_sync": "", "_dryRun": ""},  # bare flags (the exact form: test_wire_forms)
        body=[{"_user_id": "u1"}],
    )


async def test_events_add_sends_the_wire_array(mocked: MockedAPI, client: Instasent) -> None:
    events = [
        {
            "_user_id": "u1",
            "_event_id": "e1",
            "_event_type": "page_view",
            "_event_parameters": {"url": "/"},
        },
    ]
    mocked.route(
        "POST",
        f"{DS}/stream/events",
        status=202,
        payload={
            "entity": {
                "successful": 1,
                "failed": 0,
                "items": [{"status": "success", "_event_id": "e1"}],
            }
        },
    )
    report = await client.datasource("ds_demo").events.add(events)
    mocked.check(mocked.only(), "POST", f"{DS}/stream/events", body=events)
    assert report.accepted == 1 and report.ok


async def test_events_without_event_id_are_rejected_before_sending(
    mocked: MockedAPI, client: Instasent
) -> None:
    events = [
        {"_user_id": "u1", "_event_id": "e1", "_event_type": "t"},
        {"_user_id": "u1", "_event_type": "t"},
    ]
    mocked.route("POST", f"{DS}/stream/events", status=202, body="")
    report = await client.datasource("ds_demo").events.add(events)
    assert (report.accepted, report.rejected_count) == (1, 1)
    assert report.rejected[0].position == 1
    assert "missing _event_id" in report.rejected[0].errors["_event_id"][0]
    (request,) = mocked.sent()
    mocked.check(request, "POST", f"{DS}/stream/events", body=[events[0]])
