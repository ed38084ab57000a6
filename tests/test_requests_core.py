"""The exact request of each core operation (method, URL, query, headers, JSON body)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aioresponses import aioresponses
from yarl import URL

from instasent_async import Instasent

BASE = "https://api.example.test/v1"
P = f"{BASE}/project/proj_demo"
DS = f"{P}/datasource/ds_demo"
TOKEN = "tok-123"


@pytest.fixture
def mocked() -> Any:
    with aioresponses() as m:
        yield m


@pytest.fixture
async def client() -> AsyncIterator[Instasent]:
    async with Instasent(TOKEN, project="proj_demo", base_url=BASE, rate_limit=None) as c:
        yield c


def only_request(mocked: Any, method: str, url: str) -> Any:
    calls = mocked.requests[(method, URL(url, encoded=True))]
    assert len(calls) == 1
    call = calls[0]
    headers = call.kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/json"
    return call


def sent_json(call: Any) -> Any:
    assert call.kwargs["headers"]["Content-Type"] == "application/json"
    return orjson.loads(call.kwargs["data"])


async def test_organization_get(mocked: Any, client: Instasent) -> None:
    mocked.get(
        f"{BASE}/",
        payload={"entity": {"projects": [{"uid": "proj_demo", "id": 1, "name": "Demo"}]}},
    )
    org = await client.organization.get()
    assert [p.uid for p in org.projects] == ["proj_demo"]
    call = only_request(mocked, "GET", f"{BASE}/")
    assert call.kwargs["data"] is None


async def test_organization_name_may_sit_in_a_nested_object(mocked: Any, client: Instasent) -> None:
    mocked.get(
        f"{BASE}/",
        payload={"entity": {"organization": {"uid": "org_1", "name": "Acme"}, "projects": []}},
    )
    org = await client.organization.get()
    assert (org.uid, org.name, org.projects) == ("org_1", "Acme", [])


async def test_project_get(mocked: Any, client: Instasent) -> None:
    mocked.get(P, payload={"entity": {"uid": "proj_demo", "id": 1, "name": "Demo"}})
    project = await client.project.get()
    assert (project.uid, project.id, project.name) == ("proj_demo", "1", "Demo")
    only_request(mocked, "GET", P)


async def test_audience_get_by_audience_id(mocked: Any, client: Instasent) -> None:
    mocked.get(f"{P}/audience/aud%2F1", payload={"entity": {"id": "aud/1", "_user_id": "u1"}})
    contact = await client.audience.get("aud/1")
    assert (contact.id, contact.user_id) == ("aud/1", "u1")
    only_request(mocked, "GET", f"{P}/audience/aud%2F1")


async def test_audience_get_by_user_id(mocked: Any, client: Instasent) -> None:
    mocked.get(
        f"{P}/audience/user/USER-1",
        payload={"entity": {"id": "a1", "_user_id": "USER-1", "plan": "pro"}},
    )
    contact = await client.audience.get_by_user_id("USER-1")
    assert contact.user_id == "USER-1"
    assert contact.attributes == {"plan": "pro"}
    only_request(mocked, "GET", f"{P}/audience/user/USER-1")


async def test_search_by_phone_encodes_the_plus(mocked: Any, client: Instasent) -> None:
    url = f"{P}/audience/search/phone/%2B34600000000"
    mocked.get(url, payload={"entity": {"id": "a1", "_user_id": "u1"}})
    found = await client.audience.search_by_phone("+34600000000")
    assert [c.id for c in found] == ["a1"]
    only_request(mocked, "GET", url)


async def test_search_by_email_accepts_a_list_envelope(mocked: Any, client: Instasent) -> None:
    url = f"{P}/audience/search/email/me@example.com"
    mocked.get(url, payload={"entities": [{"id": "a1"}, {"id": "a2"}]})
    found = await client.audience.search_by_email("me@example.com")
    assert [c.id for c in found] == ["a1", "a2"]
    only_request(mocked, "GET", url)


async def test_search_by_email_is_empty_on_404(mocked: Any, client: Instasent) -> None:
    url = f"{P}/audience/search/email/nobody@example.com"
    mocked.get(url, status=404, payload={"message": "Not found"})
    assert await client.audience.search_by_email("nobody@example.com") == []


async def test_datasource_info_and_stats(mocked: Any, client: Instasent) -> None:
    mocked.get(
        f"{DS}/stream",
        payload={
            "organization": {"id": "o"},
            "project": {"uid": "proj_demo"},
            "datasource": {"id": "ds_demo"},
            "stream": {"id": "s"},
        },
    )
    mocked.get(f"{DS}/stats", payload={"entity": {"contacts": 3}})
    ds = client.datasource("ds_demo")
    info = await ds.info()
    assert info.datasource == {"id": "ds_demo"}
    stats = await ds.stats()
    assert stats.data == {"contacts": 3}
    only_request(mocked, "GET", f"{DS}/stream")
    only_request(mocked, "GET", f"{DS}/stats")


async def test_contacts_upsert_chunks_to_100_and_sends_mappings_untouched(
    mocked: Any, client: Instasent
) -> None:
    items = [{"_user_id": f"u{i}", "plan": "pro"} for i in range(250)]
    for _ in range(3):
        mocked.post(f"{DS}/stream/contacts", status=202, payload={})
    report = await client.datasource("ds_demo").contacts.upsert(items)
    calls = mocked.requests[("POST", URL(f"{DS}/stream/contacts"))]
    assert [len(sent_json(c)) for c in calls] == [100, 100, 50]
    assert sent_json(calls[2])[-1] == {"_user_id": "u249", "plan": "pro"}
    assert (report.total, report.accepted, report.requests, report.ok) == (250, 250, 3, True)


async def test_contacts_upsert_with_sync_and_dry_run_flags(mocked: Any, client: Instasent) -> None:
    url = f"{DS}/stream/contacts?_sync&_dryRun"
    mocked.post(url, status=202, payload={})
    await client.datasource("ds_demo").contacts.upsert(
        [{"_user_id": "u1"}], sync=True, dry_run=True
    )
    # aioresponses records the query sorted by name, bare flags as empty values
    key = ("POST", URL(f"{DS}/stream/contacts?_dryRun=&_sync="))
    assert len(mocked.requests[key]) == 1


async def test_contacts_get_and_delete(mocked: Any, client: Instasent) -> None:
    mocked.get(f"{DS}/stream/contacts/u%201", payload={"entity": {"_user_id": "u 1"}})
    mocked.delete(f"{DS}/stream/contacts/u%201", status=204)
    ds = client.datasource("ds_demo")
    assert (await ds.contacts.get("u 1")).user_id == "u 1"
    assert await ds.contacts.delete("u 1") is None
    only_request(mocked, "GET", f"{DS}/stream/contacts/u%201")
    only_request(mocked, "DELETE", f"{DS}/stream/contacts/u%201")


async def test_events_add_sends_the_wire_array(mocked: Any, client: Instasent) -> None:
    events = [
        {
            "_user_id": "u1",
            "_event_id": "e1",
            "_event_type": "page_view",
            "_event_parameters": {"url": "/"},
        },
    ]
    mocked.post(
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
    call = only_request(mocked, "POST", f"{DS}/stream/events")
    assert sent_json(call) == events
    assert report.accepted == 1 and report.ok


async def test_events_without_event_id_are_refused_before_sending(
    mocked: Any, client: Instasent
) -> None:
    events = [
        {"_user_id": "u1", "_event_id": "e1", "_event_type": "t"},
        {"_user_id": "u1", "_event_type": "t"},
    ]
    with pytest.raises(ValueError, match="event at position 1: missing _event_id"):
        await client.datasource("ds_demo").events.add(events)
    assert not mocked.requests
