"""Every operation round-tripped through FakeInstasent, plus scopes, 404s and paging.

``@covers`` records which operations a test round-trips; the meta-test at the end
fails when an operation of ``OPERATIONS`` has none.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from instasent_async import Instasent
from instasent_async._core.endpoints import OPERATIONS
from instasent_async._pagination import OffsetPager, ScrollIterator
from instasent_async.errors import NotFoundError, PermissionDeniedError
from instasent_async.query import AudienceQuery, EventQuery, Q
from instasent_async.testing import ALL_SCOPES, FakeInstasent

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

COVERED: dict[str, list[str]] = {}
"""Operation name -> names of the tests that round-trip it through the fake."""


def covers(*names: str) -> Callable[[F], F]:
    """Declare the operations a test round-trips (checked against ``OPERATIONS``)."""

    def mark(test: F) -> F:
        for name in names:
            COVERED.setdefault(name, []).append(test.__name__)
        return test

    return mark


@pytest.fixture
async def fake() -> AsyncIterator[FakeInstasent]:
    async with FakeInstasent(rate_limit=None) as server:
        yield server


@pytest.fixture
async def client(fake: FakeInstasent) -> AsyncIterator[Instasent]:
    async with Instasent(fake.product_token, project="proj_demo", base_url=fake.base_url) as c:
        yield c


def contact_item(i: int) -> dict[str, Any]:
    """Contact ``u<i>``: pro when even, yahoo mail when i % 3 == 0, a phone when i < 5."""
    item: dict[str, Any] = {
        "_user_id": f"u{i}",
        "_email": f"user{i}@{'yahoo.com' if i % 3 == 0 else 'example.com'}",
        "_first_name": f"Name{i}",
        "plan": "pro" if i % 2 == 0 else "free",
        "_client_tags": ["a", "b"] if i % 4 == 0 else ["a"],
    }
    if i < 5:
        item["_phone_mobile"] = f"+3460000000{i}"
    return item


async def seed_contacts(client: Instasent, count: int) -> None:
    report = await client.datasource("ds_demo").contacts.upsert(
        [contact_item(i) for i in range(count)]
    )
    assert report.ok and report.accepted == count


def audience_id(fake: FakeInstasent, user_id: str) -> str:
    return next(str(c["id"]) for c in fake.contacts() if c["_user_id"] == user_id)


def last(fake: FakeInstasent) -> Any:
    return fake.requests[-1]


async def collect(iterable: AsyncIterator[T] | Any, at_most: int) -> list[T]:
    """Every item of an async iterable; fails (instead of hanging) past ``at_most``."""
    items: list[T] = []
    async for item in iterable:
        items.append(item)
        assert len(items) <= at_most, "the iteration does not stop"
    return items


# --- organization, project, specs -------------------------------------------------------


@covers("organization.get")
async def test_organization_lists_the_projects(
    fake_instasent: FakeInstasent,
) -> None:
    # The shipped pytest fixture works as well as our own.
    fake = fake_instasent
    async with Instasent(fake.product_token, base_url=fake.base_url) as client:
        org = await client.organization.get()
    assert [p.uid for p in org.projects] == ["proj_demo"]
    assert (org.uid, org.name) == ("org_demo", "Demo organization")
    assert (last(fake).method, last(fake).path) == ("GET", "/v1/")


@covers("project.get")
async def test_project_get(fake: FakeInstasent, client: Instasent) -> None:
    project = await client.project.get()
    assert (project.uid, project.name) == ("proj_demo", "Demo project")
    assert last(fake).path == "/v1/project/proj_demo"


@covers("project.get")
async def test_an_unknown_project_is_not_found(fake: FakeInstasent) -> None:
    async with Instasent(fake.product_token, project="nope", base_url=fake.base_url) as c:
        with pytest.raises(NotFoundError):
            await c.project.get()


@covers("specs.attributes", "specs.events", "specs.event_parameters")
async def test_project_specs(client: Instasent) -> None:
    attributes = {s.uid: s for s in await client.specs.attributes()}
    assert attributes["_client_tags"].multivalue == 20
    assert attributes["plan"].custom is True
    assert attributes["_user_id"].required_in_webhook is True
    assert {"page_view", "ecommerce_order_create", "update"} <= {
        s.uid for s in await client.specs.events()
    }
    params = await client.specs.event_parameters("ecommerce_order_create")
    assert [p.parameter for p in params] == ["order-id", "order-euro-amount"]
    with pytest.raises(NotFoundError):
        await client.specs.event_parameters("no_such_type")


# --- audience reads ---------------------------------------------------------------------


@covers("audience.get", "audience.get_by_user_id")
async def test_audience_get_and_get_by_user_id(fake: FakeInstasent, client: Instasent) -> None:
    await seed_contacts(client, 3)
    aid = audience_id(fake, "u1")
    contact = await client.audience.get(aid)
    assert (contact.id, contact.user_id, contact.attributes["plan"]) == (aid, "u1", "free")
    by_user = await client.audience.get_by_user_id("u1")
    assert by_user.id == aid
    by_email = await client.audience.get_by_user_id("user1@example.com")
    assert by_email.id == aid


@covers("audience.search_by_phone", "audience.search_by_email")
async def test_search_by_phone_and_email(fake: FakeInstasent, client: Instasent) -> None:
    await seed_contacts(client, 3)
    found = await client.audience.search_by_phone("+34600000002")
    assert [c.user_id for c in found] == ["u2"]
    assert last(fake).path == "/v1/project/proj_demo/audience/search/phone/+34600000002"
    assert [c.user_id for c in await client.audience.search_by_email("USER0@yahoo.com")] == ["u0"]
    assert await client.audience.search_by_phone("+34699999999") == []
    assert await client.audience.search_by_email("nobody@example.com") == []


@covers("audience.events", "datasource.events.add")
async def test_audience_events_of_a_contact(fake: FakeInstasent, client: Instasent) -> None:
    await seed_contacts(client, 2)
    report = await client.datasource("ds_demo").events.add(
        [
            {
                "_user_id": "u0",
                "_event_id": "e1",
                "_event_type": "page_view",
                "_event_parameters": {"url": "/"},
            },
            {"_user_id": "u0", "_event_id": "e2", "_event_type": "update"},
            {"_user_id": "u1", "_event_id": "e3", "_event_type": "update"},
        ]
    )
    assert report.ok and report.accepted == 3
    events = await client.audience.events(audience_id(fake, "u0"))
    assert sorted((e.event_id, e.event_type) for e in events) == [
        ("e1", "page_view"),
        ("e2", "update"),
    ]
    assert {e.user_id for e in events} == {"u0"}


@covers("audience.search")
async def test_audience_search_evaluates_builder_queries(
    fake: FakeInstasent, client: Instasent
) -> None:
    await seed_contacts(client, 12)

    async def users(query: Any) -> set[str]:
        return {str(c.user_id) for c in await client.audience.search(query)}

    yahoo_and_pro = Q.all(Q.attr("_email").contains("yahoo"), Q.attr("plan").matches("pro"))
    assert await users(yahoo_and_pro) == {"u0", "u6"}
    yahoo_or_phone = Q.any(Q.attr("_email").contains("yahoo"), Q.attr("_phone_mobile").exists())
    assert await users(AudienceQuery(yahoo_or_phone)) == {"u0", "u1", "u2", "u3", "u4", "u6", "u9"}
    assert await users(Q.attr("_client_tags").has_all("a", "b")) == {"u0", "u4", "u8"}
    assert await users(
        AudienceQuery(
            Q.attr("_phone_mobile").not_exists(),
            Q.any(Q.attr("plan").eq("pro"), Q.attr("_email").contains("yahoo")),
        )
    ) == {"u6", "u8", "u9", "u10"}
    fake.add_segment(
        "proj_demo", "seg_pro", "Pro", query=AudienceQuery(Q.attr("plan").matches("pro")).to_dict()
    )
    assert await users(Q.all(Q.segment("seg_pro"), Q.attr("_email").contains("yahoo"))) == {
        "u0",
        "u6",
    }
    # The builder's dict is exactly what the server received, and a dict does the same.
    query = AudienceQuery(yahoo_and_pro, sort_field="_user_id", sort_asc=False)
    found = await client.audience.search(query, limit=1)
    assert [c.user_id for c in found] == ["u6"]
    assert last(fake).json == {**query.to_dict(), "limit": 1}
    assert [c.user_id for c in await client.audience.search(query.to_dict(), limit=1)] == ["u6"]


# --- audience scroll --------------------------------------------------------------------


@covers("audience.scroll")
async def test_audience_scroll_over_five_pages(fake: FakeInstasent, client: Instasent) -> None:
    await seed_contacts(client, 250)
    fake.clear_requests()
    iterator = client.audience.scroll(page_size=50)
    ids = [c.user_id for c in await collect(iterator, 250)]
    assert sorted(ids) == sorted(f"u{i}" for i in range(250))
    scrolls = [r for r in fake.requests if r.path.endswith("/audience/scroll")]
    assert len(scrolls) == iterator.pages_fetched == 5
    assert [r.json["limit"] for r in scrolls] == [50] * 5
    cursors = [r.json.get("cursor") for r in scrolls]
    assert cursors[0] is None and len(set(cursors[1:])) == 4 and None not in cursors[1:]


@covers("audience.scroll")
async def test_audience_scroll_resumes_from_a_saved_cursor(
    fake: FakeInstasent, client: Instasent
) -> None:
    await seed_contacts(client, 250)
    query = AudienceQuery(Q.attr("_user_id").exists())
    first = client.audience.scroll(query, page_size=50)
    before: list[str] = []
    async with aclosing(first.pages()) as pages:
        async for page in pages:
            before += [str(c.user_id) for c in page]
            if len(before) == 100:
                break
    saved = first.cursor
    assert saved is not None
    # A new client (e.g. a restarted worker) picks up where the first left off.
    async with Instasent(fake.product_token, project="proj_demo", base_url=fake.base_url) as c2:
        after = [
            str(c.user_id) for c in await collect(c2.audience.scroll(query, cursor=saved), 150)
        ]
    assert len(after) == 150
    assert not set(before) & set(after)
    assert set(before) | set(after) == {f"u{i}" for i in range(250)}


@covers("audience.scroll")
async def test_breaking_out_of_a_scroll_leaves_no_request_and_no_connection(
    fake: FakeInstasent,
) -> None:
    connector = aiohttp.TCPConnector(limit=1)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        Instasent(
            fake.product_token, project="proj_demo", base_url=fake.base_url, session=session
        ) as client,
    ):
        await seed_contacts(client, 250)
        before = fake.request_count
        iterator = client.audience.scroll(page_size=50)
        seen = 0
        async for _contact in iterator:
            seen += 1
            if seen == 60:
                break
        assert iterator.pages_fetched == 2
        assert fake.request_count == before + 2
        assert not connector._acquired  # no connection held by the abandoned scroll
        # With a pool of one, a held connection would block this request forever.
        project = await asyncio.wait_for(client.project.get(), timeout=30)
        assert project.uid == "proj_demo"
        assert fake.request_count == before + 3
        assert fake.count("POST", "/audience/scroll") == 2


@covers("audience.segment_scroll")
async def test_segment_scroll_yields_the_members(fake: FakeInstasent, client: Instasent) -> None:
    await seed_contacts(client, 20)
    fake.add_segment(
        "proj_demo",
        "seg_pro",
        "Pro plan",
        query=AudienceQuery(Q.attr("plan").matches("pro")).to_dict(),
    )
    members = [c.user_id for c in await collect(client.segments.scroll("seg_pro", page_size=3), 10)]
    assert sorted(members) == sorted(f"u{i}" for i in range(0, 20, 2))
    assert fake.count("POST", "/audience/segment/seg_pro/scroll") == 4
    yahoo = client.segments.scroll(
        "seg_pro", Q.attr("_email").contains("yahoo"), parameter=["x", "y"]
    )
    assert {c.user_id for c in await collect(yahoo, 4)} == {"u0", "u6", "u12", "u18"}
    assert last(fake).query == {"parameter": "x|y"}
    with pytest.raises(NotFoundError):
        await client.segments.scroll("no_such_segment").__anext__()


# --- audience stream actions ------------------------------------------------------------


def stored(fake: FakeInstasent, user_id: str) -> dict[str, Any]:
    return next(c for c in fake.contacts() if c["_user_id"] == user_id)


@covers("audience.sms_subscribe", "audience.sms_unsubscribe")
async def test_sms_subscription(fake: FakeInstasent, client: Instasent) -> None:
    await seed_contacts(client, 1)
    aid = audience_id(fake, "u0")
    await client.audience.sms_unsubscribe(
        aid, reason="too many", utm_source="sms", utm_medium="link", utm_campaign="spring"
    )
    contact = stored(fake, "u0")
    assert contact["_sms_subscribed"] is False
    assert contact["_sms_unsubscribe_reason"] == "too many"
    assert contact["_sms_unsubscribe_utm_campaign"] == "spring"
    await client.audience.sms_subscribe(aid, sync=True)
    assert stored(fake, "u0")["_sms_subscribed"] is True
    assert last(fake).query == {"_sync": ""}  # the bare flag (the fake refuses a value)
    assert last(fake).status == 200
    with pytest.raises(NotFoundError):
        await client.audience.sms_subscribe("aud_missing")


@covers("audience.email_subscribe", "audience.email_unsubscribe")
async def test_email_subscription(fake: FakeInstasent, client: Instasent) -> None:
    await seed_contacts(client, 1)
    aid = audience_id(fake, "u0")
    await client.audience.email_unsubscribe(aid, reason="moved")
    assert stored(fake, "u0")["_email_subscribed"] is False
    assert stored(fake, "u0")["_email_unsubscribe_reason"] == "moved"
    await client.audience.email_subscribe(aid)
    assert stored(fake, "u0")["_email_subscribed"] is True
    assert last(fake).status == 202


@covers("audience.delete")
async def test_audience_delete(fake: FakeInstasent, client: Instasent) -> None:
    await seed_contacts(client, 2)
    aid = audience_id(fake, "u1")
    await client.audience.delete(aid)
    assert [c["_user_id"] for c in fake.contacts()] == ["u0"]
    with pytest.raises(NotFoundError):
        await client.audience.get(aid)


async def test_a_delete_whose_retry_finds_the_contact_gone_has_done_its_job(
    fake: FakeInstasent, client: Instasent
) -> None:
    await seed_contacts(client, 3)
    ds = client.datasource("ds_demo")
    # Carried out, then answered 500: the retry finds nothing to delete (404).
    fake.fail_after_processing_next(1, 500, method="DELETE")
    await ds.contacts.delete("u1")
    # Carried out, then the connection dropped (a POST: aiohttp does not resend it).
    fake.drop_next(1, after_processing=True, path_contains="delete-contact")
    await client.audience.delete(audience_id(fake, "u2"))
    assert [c["_user_id"] for c in fake.contacts()] == ["u0"]
    statuses = [
        (r.method, r.status) for r in fake.requests if "delete" in r.path or r.method == "DELETE"
    ]
    assert statuses == [("DELETE", 500), ("DELETE", 404), ("POST", None), ("POST", 404)]


async def test_a_delete_answered_404_without_an_uncertain_attempt_raises() -> None:
    # A short window: the injected 429 resets within 0.2 s.
    async with (
        FakeInstasent(rate_limit=None, window=0.2) as fake,
        Instasent(fake.product_token, project="proj_demo", base_url=fake.base_url) as client,
    ):
        await seed_contacts(client, 1)
        ds = client.datasource("ds_demo")
        with pytest.raises(NotFoundError):
            await ds.contacts.delete("nobody")
        # A 429 is never carried out: the 404 that follows is the real answer.
        fake.fail_next(1, 429, method="DELETE")
        with pytest.raises(NotFoundError):
            await ds.contacts.delete("nobody")
        with pytest.raises(NotFoundError):
            await client.audience.delete("aud_nobody")
        assert len(fake.contacts()) == 1
        statuses = [r.status for r in fake.requests if r.method == "DELETE"]
        assert statuses == [404, 429, 404]


# --- events -----------------------------------------------------------------------------


async def seed_events(client: Instasent, count: int) -> None:
    items = [
        {
            "_user_id": f"u{i % 3}",
            "_event_id": f"ord-{i}",
            "_event_type": "ecommerce_order_create" if i % 2 else "page_view",
            "_event_parameters": {"order-euro-amount": i} if i % 2 else {"url": f"/p/{i}"},
        }
        for i in range(count)
    ]
    report = await client.datasource("ds_demo").events.add(items)
    assert report.ok and report.accepted == count


@covers("events.search")
async def test_events_search_evaluates_event_queries(
    fake: FakeInstasent, client: Instasent
) -> None:
    await seed_contacts(client, 3)
    await seed_events(client, 20)
    orders = EventQuery(Q.event("event-type").matches("ecommerce_order_create"))
    assert len(await client.events.search(orders)) == 10
    big = EventQuery(
        Q.event("event-type").matches("ecommerce_order_create"),
        Q.event("ecommerce_order_create.order-euro-amount").gte(15),
    )
    found = await client.events.search(big)
    assert sorted(str(e.event_id) for e in found) == ["ord-15", "ord-17", "ord-19"]
    assert last(fake).json == {**big.to_dict(), "limit": 50}
    assert len(await client.events.search(None, limit=7)) == 7
    recent = EventQuery(
        Q.event("event-type").matches("page_view"), Q.event("created-at").in_last(1)
    )
    assert len(await client.events.search(recent)) == 10
    older = EventQuery(Q.event("created-at").date_relative(upper=-2, period="day"))
    assert await client.events.search(older) == []


@covers("events.scroll")
async def test_events_scroll_over_more_than_three_pages(
    fake: FakeInstasent, client: Instasent
) -> None:
    await seed_contacts(client, 3)
    await seed_events(client, 120)
    iterator = client.events.scroll(EventQuery(Q.event("event-type").exists()), page_size=25)
    ids = [e.event_id for e in await collect(iterator, 120)]
    assert sorted(ids) == sorted(f"ord-{i}" for i in range(120))
    assert fake.count("POST", "/event/scroll") == iterator.pages_fetched == 5


# --- datasource stream (Product token and datasource token) -------------------------------


@covers("datasource.info", "datasource.stats")
async def test_datasource_info_and_stats(fake: FakeInstasent, client: Instasent) -> None:
    await seed_contacts(client, 4)
    info = await client.datasource("dsapi").info()
    assert info.datasource is not None and info.datasource["id"] == "ds_demo"
    stats = await client.datasource("ds_demo").stats()
    assert stats.data["contacts"] == 4
    with pytest.raises(NotFoundError):
        await client.datasource("ds_missing").info()


@covers(
    "datasource.specs.attributes",
    "datasource.specs.events",
    "datasource.specs.event_parameters",
)
async def test_datasource_specs_with_a_datasource_token(fake: FakeInstasent) -> None:
    async with Instasent(
        fake.datasource_token, project="proj_demo", base_url=fake.base_url
    ) as client:
        ds = client.datasource("ds_demo")
        assert "_email" in {s.uid for s in await ds.specs.attributes()}
        assert "page_view" in {s.uid for s in await ds.specs.events()}
        params = await ds.specs.event_parameters("page_view")
        assert [p.parameter for p in params] == ["url"]
        with pytest.raises(NotFoundError):
            await client.datasource("ds_other").info()


@covers("datasource.contacts.upsert", "datasource.contacts.get", "datasource.contacts.delete")
async def test_datasource_contacts_round_trip(fake: FakeInstasent, client: Instasent) -> None:
    ds = client.datasource("ds_demo")
    report = await ds.contacts.upsert(
        [contact_item(i) for i in range(150)] + [{"_user_id": "bad", "_email": "nope"}]
    )
    assert (report.total, report.accepted, len(report.rejected), report.requests) == (
        151,
        150,
        1,
        2,
    )
    assert report.rejected[0].position == 150
    assert report.rejected[0].errors == {"_email": ["Invalid format"]}
    await ds.contacts.upsert([{"_user_id": "u7", "plan": "enterprise"}])
    contact = await ds.contacts.get("u7")
    assert (contact.user_id, contact.attributes["plan"]) == ("u7", "enterprise")
    await ds.contacts.delete("u7")
    with pytest.raises(NotFoundError):
        await ds.contacts.get("u7")
    assert len(fake.contacts()) == 149


@covers(
    "datasource.info",
    "datasource.specs.attributes",
    "datasource.specs.events",
    "datasource.specs.event_parameters",
    "datasource.stats",
    "datasource.contacts.get",
    "datasource.contacts.upsert",
    "datasource.events.add",
    "datasource.contacts.delete",
)
async def test_ingest_operations_with_a_datasource_token(fake: FakeInstasent) -> None:
    # Ingest API I1-I8: the same calls with the datasource's own token.
    async with Instasent(
        fake.datasource_token, project="proj_demo", base_url=fake.base_url
    ) as client:
        ds = client.datasource("ds_demo")
        info = await ds.info()
        assert info.datasource is not None and info.datasource["id"] == "ds_demo"
        assert {"_email", "plan"} <= {s.uid for s in await ds.specs.attributes()}
        assert "update" in {s.uid for s in await ds.specs.events()}
        assert [p.parameter for p in await ds.specs.event_parameters("update")] == ["source"]
        report = await ds.contacts.upsert([contact_item(i) for i in range(3)], sync=True)
        assert report.ok and report.accepted == 3
        events = await ds.events.add(
            [
                {
                    "_user_id": "u1",
                    "_event_id": "e1",
                    "_event_type": "update",
                    "_event_parameters": {"source": "api"},
                }
            ]
        )
        assert events.ok and events.accepted == 1
        assert (await ds.stats()).data["contacts"] == 3
        assert (await ds.contacts.get("u2")).email == "user2@example.com"
        await ds.contacts.delete("u2")
        with pytest.raises(NotFoundError):
            await ds.contacts.get("u2")
        # A datasource token reaches only its own datasource (404, not 403).
        with pytest.raises(NotFoundError):
            await client.datasource("ds_other").contacts.get("u1")
        with pytest.raises(NotFoundError):
            await client.project.get()
    assert sorted(c["_user_id"] for c in fake.contacts()) == ["u0", "u1"]
    assert [e["_event_id"] for e in fake.events()] == ["e1"]


# --- segments ---------------------------------------------------------------------------


@covers("segments.list", "segments.dynamic", "segments.get")
async def test_segments_list_dynamic_and_get(fake: FakeInstasent, client: Instasent) -> None:
    for i in range(5):
        fake.add_segment("proj_demo", f"seg_{i}", f"Segment {i}", dynamic=i >= 3)
    fake.add_segment("proj_demo", "seg_param", "By city", dynamic=True, requires_parameter=True)
    fake.clear_requests()
    first = await client.segments.list(limit=2, sort="uid")
    assert [s.uid for s in first] == ["seg_0", "seg_1"]
    every = [s.uid for s in await collect(client.segments.list(limit=2, sort="uid"), 6)]
    assert every == ["seg_0", "seg_1", "seg_2", "seg_3", "seg_4", "seg_param"]
    assert [r.query["_start"] for r in fake.requests[1:]] == ["0", "2", "4", "6"]
    dynamic = [s.uid for s in await collect(client.segments.dynamic(sort="-uid"), 2)]
    assert dynamic == ["seg_4", "seg_3"]
    assert [s.uid for s in await client.segments.list(filters={"type": "dynamic"})] == [
        "seg_3",
        "seg_4",
        "seg_param",
    ]
    segment = await client.segments.get("seg_param", parameter=["madrid", "bilbao"])
    assert (segment.name, segment.type) == ("By city", "dynamic")
    assert segment.extra["parameter"] == "madrid|bilbao"
    with pytest.raises(NotFoundError):
        await client.segments.get("seg_missing")


# --- campaigns and automations ----------------------------------------------------------


@covers("campaigns.list", "campaigns.get")
async def test_campaigns(fake: FakeInstasent, client: Instasent) -> None:
    for i, status in enumerate(["draft", "sent", "draft", "scheduled"]):
        fake.add_campaign("proj_demo", f"cmp_{i}", f"Campaign {i}", status=status)
    drafts = await client.campaigns.list(filters={"status": "draft"}, sort="-title")
    assert [c.title for c in drafts] == ["Campaign 2", "Campaign 0"]
    q = {"filter": [{"field": "status", "operator": "in", "value": ["sent", "scheduled"]}]}
    assert {c.id for c in await collect(client.campaigns.list(q=q, limit=1), 3)} == {
        "cmp_demo",
        "cmp_1",
        "cmp_3",
    }
    campaign = await client.campaigns.get("cmp_1")
    assert (campaign.title, campaign.status) == ("Campaign 1", "sent")
    assert campaign.campaign_at is not None and campaign.campaign_at.tzinfo is not None
    with pytest.raises(NotFoundError):
        await client.campaigns.get("cmp_missing")


@covers("automations.list", "automations.get")
async def test_automations(fake: FakeInstasent, client: Instasent) -> None:
    fake.add_automation("proj_demo", 42, "Birthday", status="paused")
    assert {a.id for a in await client.automations.list()} == {"aut_demo", "42"}
    paused = await client.automations.list(filters={"status": "paused"})
    assert [a.title for a in paused] == ["Birthday"]
    assert (await client.automations.get(42)).title == "Birthday"
    with pytest.raises(NotFoundError):
        await client.automations.get("missing")


# --- SMS --------------------------------------------------------------------------------


@covers("sms.senders")
async def test_sms_senders(fake: FakeInstasent, client: Instasent) -> None:
    fake.add_sender("proj_demo", "snd_2", "Shop", status="inactive")
    senders = await collect(client.sms.senders(limit=1), 2)
    assert {(s.id, s.from_) for s in senders} == {("snd_demo", "Instasent"), ("snd_2", "Shop")}
    active = await client.sms.senders(filters={"status": "active"})
    assert [s.id for s in active] == ["snd_demo"]


@covers(
    "sms.send_direct", "sms.send_direct_utm", "sms.get", "sms.list_direct", "sms.list_direct_by_utm"
)
async def test_direct_sms(fake: FakeInstasent, client: Instasent) -> None:
    await seed_contacts(client, 2)
    sent = await client.sms.send_direct("+34600000000", "Hello")
    assert sent is not None and sent.to == "+34600000000" and sent.text == "Hello"
    tagged = await client.sms.send_direct(
        audience_id(fake, "u1"), "Olé ☺", sender="snd_demo", utm_term="spring", allow_unicode=True
    )
    assert tagged is not None and tagged.utm_term == "spring"
    assert tagged.extra["allowUnicode"] is True and tagged.extra["encoding"] == "UCS-2"
    assert [m["text"] for m in fake.sent_sms()] == ["Hello", "Olé ☺"]
    assert sent.id is not None
    assert (await client.sms.get(sent.id)).text == "Hello"
    assert {m.id for m in await client.sms.list_direct()} == {sent.id, tagged.id}
    assert [m.id for m in await client.sms.list_direct("spring")] == [tagged.id]
    assert await client.sms.list_direct("autumn") == []
    with pytest.raises(NotFoundError):
        await client.sms.get("sms_missing")


@covers("sms.list_by_audience", "sms.list_by_send")
async def test_sms_by_audience_and_send(fake: FakeInstasent, client: Instasent) -> None:
    await seed_contacts(client, 2)
    aid = audience_id(fake, "u1")
    for text in ("one", "two", "three"):
        fake.add_sms("proj_demo", to="+34600000001", text=text, send_id="send_x")
    fake.add_sms("proj_demo", to="+34600000000", text="other")
    by_id = [m.text for m in await collect(client.sms.list_by_audience(aid, limit=2), 3)]
    assert sorted(by_id) == ["one", "three", "two"]
    by_phone = await client.sms.list_by_audience("+34600000001", filters={"text": "two"})
    assert [m.text for m in by_phone] == ["two"]
    assert sorted(m.text for m in await client.sms.list_by_send("send_x")) == [
        "one",
        "three",
        "two",
    ]


@covers("sms.list_by_campaign", "sms.list_by_automation")
async def test_sms_by_campaign_option_and_automation_message(
    fake: FakeInstasent, client: Instasent
) -> None:
    fake.add_sms("proj_demo", to="+34600000000", text="A", campaign_id="cmp_demo", option_idx=0)
    fake.add_sms("proj_demo", to="+34600000000", text="B", campaign_id="cmp_demo", option_idx=1)
    fake.add_sms("proj_demo", to="+34600000000", text="C", automation_id="aut_demo")
    assert [m.text for m in await client.sms.list_by_campaign("cmp_demo")] == ["A"]
    assert [m.text for m in await client.sms.list_by_campaign("cmp_demo", 1)] == ["B"]
    assert [m.text for m in await client.sms.list_by_automation("aut_demo", 0)] == ["C"]
    assert await client.sms.list_by_automation("aut_demo", 3) == []


# --- scopes and 404s across the surface -------------------------------------------------


async def _drive(result: Any) -> Any:
    """Await a coroutine or a list call, or fetch the first page of a scroll."""
    if isinstance(result, ScrollIterator):
        async for item in result:
            return item
        return None
    if isinstance(result, OffsetPager):
        return await result
    return await result


CALLS: dict[str, Callable[[Instasent], Any]] = {
    "organization.get": lambda c: c.organization.get(),
    "project.get": lambda c: c.project.get(),
    "specs.attributes": lambda c: c.specs.attributes(),
    "specs.events": lambda c: c.specs.events(),
    "specs.event_parameters": lambda c: c.specs.event_parameters("page_view"),
    "audience.get_by_user_id": lambda c: c.audience.get_by_user_id("u0"),
    "audience.get": lambda c: c.audience.get("aud_x"),
    "audience.search_by_phone": lambda c: c.audience.search_by_phone("+34600000000"),
    "audience.search_by_email": lambda c: c.audience.search_by_email("a@example.com"),
    "audience.events": lambda c: c.audience.events("aud_x"),
    "audience.search": lambda c: c.audience.search(),
    "audience.scroll": lambda c: c.audience.scroll(),
    "audience.segment_scroll": lambda c: c.segments.scroll("seg_x"),
    "audience.sms_subscribe": lambda c: c.audience.sms_subscribe("aud_x"),
    "audience.sms_unsubscribe": lambda c: c.audience.sms_unsubscribe("aud_x"),
    "audience.email_subscribe": lambda c: c.audience.email_subscribe("aud_x"),
    "audience.email_unsubscribe": lambda c: c.audience.email_unsubscribe("aud_x"),
    "audience.delete": lambda c: c.audience.delete("aud_x"),
    "events.search": lambda c: c.events.search(),
    "events.scroll": lambda c: c.events.scroll(),
    "datasource.info": lambda c: c.datasource("ds_demo").info(),
    "datasource.specs.attributes": lambda c: c.datasource("ds_demo").specs.attributes(),
    "datasource.specs.events": lambda c: c.datasource("ds_demo").specs.events(),
    "datasource.specs.event_parameters": (
        lambda c: c.datasource("ds_demo").specs.event_parameters("page_view")
    ),
    "datasource.stats": lambda c: c.datasource("ds_demo").stats(),
    "datasource.contacts.get": lambda c: c.datasource("ds_demo").contacts.get("u0"),
    "datasource.contacts.upsert": (
        lambda c: c.datasource("ds_demo").contacts.upsert([{"_user_id": "u0"}])
    ),
    "datasource.events.add": lambda c: c.datasource("ds_demo").events.add(
        [{"_user_id": "u0", "_event_id": "e0", "_event_type": "page_view"}]
    ),
    "datasource.contacts.delete": lambda c: c.datasource("ds_demo").contacts.delete("u0"),
    "segments.list": lambda c: c.segments.list(),
    "segments.dynamic": lambda c: c.segments.dynamic(),
    "segments.get": lambda c: c.segments.get("seg_x"),
    "campaigns.list": lambda c: c.campaigns.list(),
    "campaigns.get": lambda c: c.campaigns.get("cmp_demo"),
    "automations.list": lambda c: c.automations.list(),
    "automations.get": lambda c: c.automations.get("aut_demo"),
    "sms.senders": lambda c: c.sms.senders(),
    "sms.get": lambda c: c.sms.get("sms_x"),
    "sms.list_by_audience": lambda c: c.sms.list_by_audience("+34600000000"),
    "sms.list_by_send": lambda c: c.sms.list_by_send("send_x"),
    "sms.list_by_campaign": lambda c: c.sms.list_by_campaign("cmp_demo", 0),
    "sms.list_by_automation": lambda c: c.sms.list_by_automation("aut_demo", 0),
    "sms.list_direct": lambda c: c.sms.list_direct(),
    "sms.list_direct_by_utm": lambda c: c.sms.list_direct("spring"),
    "sms.send_direct": lambda c: c.sms.send_direct("+34600000000", "Hi"),
    "sms.send_direct_utm": lambda c: c.sms.send_direct("+34600000000", "Hi", utm_term="t"),
}

SCOPED = sorted(name for name, op in OPERATIONS.items() if op.scope is not None)


def test_the_call_table_names_every_operation() -> None:
    assert set(CALLS) == set(OPERATIONS)


@pytest.mark.parametrize("name", SCOPED)
async def test_a_token_without_the_scope_gets_permission_denied_naming_it(
    fake: FakeInstasent, name: str
) -> None:
    scope = OPERATIONS[name].scope
    token = fake.add_token(kind="product", scopes=[s for s in ALL_SCOPES if s != scope])
    async with Instasent(token, project="proj_demo", base_url=fake.base_url) as client:
        with pytest.raises(PermissionDeniedError) as info:
            await _drive(CALLS[name](client))
    assert info.value.status == 403
    assert info.value.required_scope == scope
    assert scope is not None and scope in str(info.value)
    assert token not in str(info.value) and token not in repr(info.value)
    assert fake.sent_sms() == []  # a refused send sent nothing


NOT_FOUND = [
    "audience.get",
    "audience.get_by_user_id",
    "audience.events",
    "specs.event_parameters",
    "segments.get",
    "campaigns.get",
    "automations.get",
    "sms.get",
    "datasource.contacts.get",
    "datasource.specs.event_parameters",
]


@pytest.mark.parametrize("name", NOT_FOUND)
async def test_get_operations_raise_not_found(
    fake: FakeInstasent, client: Instasent, name: str
) -> None:
    calls: dict[str, Callable[[Instasent], Any]] = {
        **CALLS,
        "campaigns.get": lambda c: c.campaigns.get("cmp_missing"),
        "automations.get": lambda c: c.automations.get("aut_missing"),
        "specs.event_parameters": lambda c: c.specs.event_parameters("no_type"),
        "datasource.specs.event_parameters": (
            lambda c: c.datasource("ds_demo").specs.event_parameters("no_type")
        ),
    }
    with pytest.raises(NotFoundError) as info:
        await _drive(calls[name](client))
    assert info.value.status == 404
    assert info.value.method == OPERATIONS[name].method


# --- completeness -----------------------------------------------------------------------


def test_every_operation_of_the_endpoint_table_has_a_fake_round_trip() -> None:
    assert set(COVERED) <= set(OPERATIONS), set(COVERED) - set(OPERATIONS)
    missing = sorted(set(OPERATIONS) - set(COVERED))
    assert not missing, f"operations without a FakeInstasent round trip: {missing}"


OPERATIONS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
SWEEPS = {
    "test_a_token_without_the_scope_gets_permission_denied_naming_it": set(SCOPED),
    "test_get_operations_raise_not_found": set(NOT_FOUND),
}


def _exercises(
    kind: str, test: str, operations: list[str], request_tests: dict[str, list[str]]
) -> bool:
    if kind == "R":
        return any(test in request_tests.get(op, []) for op in operations)
    base, _, param = test.partition("[")
    if param:
        return base in SWEEPS and param.rstrip("]") in SWEEPS[base] & set(operations)
    return any(test in COVERED.get(op, []) for op in operations)


def test_the_operations_page_matches_the_tests(request_tests: dict[str, list[str]]) -> None:
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in OPERATIONS_PAGE.read_text(encoding="utf-8").splitlines()
        if re.match(r"^\| (\d+|I\d) \|", line)
    ]
    refs = [row[0] for row in rows]
    assert refs == [str(n) for n in range(1, 45)] + [f"I{n}" for n in range(1, 9)]
    listed: set[str] = set()
    for ref, method_path, _call, ops_cell, _rate, scope_cell, _idem, tests_cell in rows:
        operations = re.findall(r"`([\w.]+)`", ops_cell)
        assert operations and set(operations) <= set(OPERATIONS), ref
        listed.update(operations)
        for name in operations:
            op = OPERATIONS[name]
            assert f"`{op.method} " in method_path, ref
            assert (f"`{op.scope}`" if op.scope else "—") in scope_cell, ref
        tests = re.findall(r"`([RF]):([^`]+)`", tests_cell)
        for kind in ("R", "F"):
            assert any(k == kind for k, _ in tests), f"row {ref} names no {kind}: test"
        for kind, test in tests:
            assert _exercises(kind, test, operations, request_tests), f"row {ref}: {kind}:{test}"
    assert listed == set(OPERATIONS)
