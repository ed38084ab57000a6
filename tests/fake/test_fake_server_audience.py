"""Audience and events: lookups, search, scroll cursors, stream actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from instasent_async.testing import FakeInstasent

if TYPE_CHECKING:
    from tests.fake.conftest import Client

P = "/project/proj_demo"


async def _seed_contacts(api: Client, count: int) -> None:
    contacts = [
        {"_user_id": f"u{i:03d}", "score": i, "plan": "pro" if i % 2 else "free"}
        for i in range(count)
    ]
    for start in range(0, count, 100):
        assert (await api.upsert(*contacts[start : start + 100])).status == 202


async def _scroll_all(api: Client, path: str, body: dict[str, Any]) -> list[list[Any]]:
    pages = []
    cursor = None
    for _ in range(100):  # bounded
        reply = await api.post(path, {**body, "cursor": cursor} if cursor else body)
        assert reply.status == 200, reply.json
        pages.append(reply.entities)
        cursor = reply.json["cursor"]
        if cursor is None:
            return pages
    raise AssertionError("the scroll never ended")


async def test_get_contact_by_audience_id_user_id_email_and_phone(
    fake: FakeInstasent, api: Client
) -> None:
    await api.upsert(
        {"_user_id": "u1", "_email": "Ana@Example.com", "_phone_mobile": "+34 600 000 001"}
    )
    audience_id = fake.contacts()[0]["id"]
    for path in (
        "/audience/" + audience_id,
        "/audience/user/u1",
        "/audience/user/ana%40example.com",
        "/audience/user/%2B34600000001",
    ):
        reply = await api.get(P + path)
        assert reply.status == 200, path
        assert reply.entity["id"] == audience_id
    by_phone = await api.get(P + "/audience/search/phone/0034600000001")
    assert [c["id"] for c in by_phone.entities] == [audience_id]
    by_email = await api.get(P + "/audience/search/email/ANA%40example.com")
    assert [c["id"] for c in by_email.entities] == [audience_id]
    nobody = await api.get(P + "/audience/search/email/nobody%40example.com")
    assert (nobody.status, nobody.entities) == (200, [])


async def test_search_filters_sorts_and_pages(
    api: Client, group: Callable[..., dict[str, Any]], attr: Callable[..., dict[str, Any]]
) -> None:
    await _seed_contacts(api, 60)
    body = {
        "root": group(attr("plan", "eq", "pro")),
        "sortField": "score",
        "sortAsc": False,
        "limit": 5,
        "offset": 2,
    }
    reply = await api.post(P + "/audience/search", body)
    assert [c["score"] for c in reply.entities] == [55, 53, 51, 49, 47]
    everyone = await api.post(P + "/audience/search", {"version": "0.0.1"})
    assert len(everyone.entities) == 50  # the cap
    too_many = await api.post(P + "/audience/search", {"limit": 51})
    assert too_many.status == 400


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"root": {"type": "group", "join": "xor", "children": []}},
        {
            "root": {
                "type": "group",
                "join": "and",
                "children": [
                    {
                        "type": "attribute_condition",
                        "key": "plan",
                        "operator": "unknown-operator",
                        "values": ["x"],
                    }
                ],
            }
        },
        {"sortAsc": "yes"},
        {"limit": 0},
    ],
)
async def test_malformed_searches_are_400(api: Client, body: Any) -> None:
    reply = await api.post(P + "/audience/search", body)
    assert reply.status == 400
    assert "message" in reply.json


async def test_invalid_filter_message_matches_the_reference(api: Client) -> None:
    reply = await api.post(P + "/event/search", {"root": {"type": "bogus"}})
    assert reply.status == 400
    assert reply.json["message"] == "Invalid query filter"


async def test_scroll_walks_every_page_with_cursors(api: Client) -> None:
    await _seed_contacts(api, 250)
    pages = await _scroll_all(api, P + "/audience/scroll", {"limit": 60, "sortField": "score"})
    assert [len(page) for page in pages] == [60, 60, 60, 60, 10]
    scores = [c["score"] for page in pages for c in page]
    assert scores == list(range(250))
    default = await api.post(P + "/audience/scroll", {})
    assert len(default.entities) == 100  # default page size


async def test_a_cursor_can_be_replayed_and_bad_cursors_are_400(
    fake: FakeInstasent, api: Client
) -> None:
    await _seed_contacts(api, 5)
    first = await api.post(P + "/audience/scroll", {"limit": 2})
    cursor = first.json["cursor"]
    second = await api.post(P + "/audience/scroll", {"limit": 2, "cursor": cursor})
    replay = await api.post(P + "/audience/scroll", {"limit": 2, "cursor": cursor})
    assert replay.entities == second.entities  # a retried page is the same page
    assert replay.json["cursor"] == second.json["cursor"]
    for bad in ("garbage", "", 42):
        reply = await api.post(P + "/audience/scroll", {"cursor": bad})
        assert reply.status == 400, bad
    # A cursor belongs to its endpoint.
    assert (await api.post(P + "/event/scroll", {"cursor": cursor})).status == 400
    fake.expire_cursors()
    expired = await api.post(P + "/audience/scroll", {"cursor": cursor})
    assert (expired.status, expired.json["message"]) == (400, "Invalid or expired cursor")


async def test_cursors_expire_after_their_ttl(fake: FakeInstasent, api: Client) -> None:
    await _seed_contacts(api, 3)
    fake.cursor_ttl = -1.0  # already expired when issued
    cursor = (await api.post(P + "/audience/scroll", {"limit": 1})).json["cursor"]
    assert (await api.post(P + "/audience/scroll", {"cursor": cursor})).status == 400


async def test_scroll_limit_above_100_is_400(api: Client) -> None:
    reply = await api.post(P + "/audience/scroll", {"limit": 101})
    assert reply.status == 400
    assert "100" in reply.json["message"]


async def test_segment_scroll_uses_static_members_and_queries(
    fake: FakeInstasent,
    api: Client,
    group: Callable[..., dict[str, Any]],
    attr: Callable[..., dict[str, Any]],
) -> None:
    await _seed_contacts(api, 10)
    ids = {c["_user_id"]: c["id"] for c in fake.contacts()}
    fake.add_segment("proj_demo", "seg_static", "Static", static_members=[ids["u001"], ids["u004"]])
    fake.add_segment(
        "proj_demo",
        "seg_pro",
        "Pro",
        dynamic=True,
        query={"root": group(attr("plan", "eq", "pro"))},
    )
    static = await _scroll_all(api, P + "/audience/segment/seg_static/scroll", {"limit": 1})
    assert [c["_user_id"] for page in static for c in page] == ["u001", "u004"]
    at_least_5 = {"type": "attribute_condition", "key": "score", "operator": "range-number"}
    narrowed = {"root": group({**at_least_5, "values": {"lowerNumber": 5}})}
    pro = await _scroll_all(api, P + "/audience/segment/seg_pro/scroll", narrowed)
    assert [c["_user_id"] for page in pro for c in page] == ["u005", "u007", "u009"]
    assert (await api.post(P + "/audience/segment/nope/scroll", {})).status == 404
    # Segment conditions in a search reuse the same membership.
    search = {"root": group({"type": "segment_condition", "key": "seg_static"})}
    found = await api.post(P + "/audience/search", search)
    assert sorted(c["_user_id"] for c in found.entities) == ["u001", "u004"]


async def test_segments_referring_to_each_other_do_not_loop(
    fake: FakeInstasent, api: Client, group: Callable[..., dict[str, Any]]
) -> None:
    await _seed_contacts(api, 2)
    loop = {"root": group({"type": "segment_condition", "key": "seg_b"})}
    fake.add_segment("proj_demo", "seg_a", "A", query=loop)
    fake.add_segment(
        "proj_demo",
        "seg_b",
        "B",
        query={"root": group({"type": "segment_condition", "key": "seg_a"})},
    )
    reply = await api.post(P + "/audience/segment/seg_a/scroll", {})
    assert (reply.status, reply.entities) == (200, [])


async def test_stream_actions_update_and_delete_contacts(fake: FakeInstasent, api: Client) -> None:
    await api.upsert({"_user_id": "u1", "_phone_mobile": "+34600000001"})
    audience_id = fake.contacts()[0]["id"]
    stream = P + "/audience/stream/"
    subscribed = await api.post(stream + "sms-subscribe", {"audienceId": audience_id})
    assert subscribed.status == 202
    assert subscribed.entity["_sms_subscribed"] is True
    unsubscribe = {"audienceId": audience_id, "reason": "too many", "utm-campaign": "spring"}
    reply = await api.post(stream + "sms-unsubscribe", unsubscribe, params="_sync")
    assert reply.status == 200
    contact = fake.contacts()[0]
    assert contact["_sms_subscribed"] is False
    assert contact["_sms_unsubscribe_reason"] == "too many"
    assert contact["_sms_unsubscribe_utm_campaign"] == "spring"
    await api.post(stream + "email-unsubscribe", {"audienceId": audience_id})
    await api.post(stream + "email-subscribe", {"audienceId": audience_id})
    assert fake.contacts()[0]["_email_subscribed"] is True
    assert (await api.post(stream + "sms-subscribe", {})).status == 400
    assert (await api.post(stream + "sms-subscribe", {"audienceId": "aud_x"})).status == 404
    assert (await api.post(stream + "explode", {"audienceId": audience_id})).status == 404
    deleted = await api.post(stream + "delete-contact", {"audienceId": audience_id})
    assert deleted.status == 202
    assert fake.contacts() == []
    assert (await api.get(P + "/audience/user/u1")).status == 404


async def test_contact_events_and_event_search(
    fake: FakeInstasent,
    api: Client,
    event: Callable[..., dict[str, Any]],
    group: Callable[..., dict[str, Any]],
    attr: Callable[..., dict[str, Any]],
) -> None:
    await api.upsert({"_user_id": "u1", "plan": "pro"}, {"_user_id": "u2"})
    await api.add_events(
        event(
            "o1",
            "u1",
            "ecommerce_order_create",
            _event_date="2024-01-01T00:00:00Z",
            _event_parameters={"order-euro-amount": 30},
        ),
        event(
            "o2",
            "u2",
            "ecommerce_order_create",
            _event_date="2024-01-02T00:00:00Z",
            _event_parameters={"order-euro-amount": 5},
        ),
        event("p1", "u1", "page_view", _event_date="2024-01-03T00:00:00Z"),
    )
    audience_id = next(c["id"] for c in fake.contacts() if c["_user_id"] == "u1")
    own = await api.get(P + "/audience/" + audience_id + "/events")
    assert [e["_event_id"] for e in own.entities] == ["p1", "o1"]  # latest first
    orders = {
        "root": group(
            {
                "type": "event_condition",
                "key": "event-type",
                "operator": "matches-string",
                "values": ["ecommerce_order_create"],
            }
        ),
        "sortField": "created-at",
        "sortAsc": False,
    }
    found = await api.post(P + "/event/search", orders)
    assert [e["_event_id"] for e in found.entities] == ["o2", "o1"]
    big = {
        "root": group(
            {
                "type": "event_condition",
                "operator": "range-number",
                "key": "ecommerce_order_create.order-euro-amount",
                "values": {"lowerNumber": 10},
            }
        )
    }
    assert [e["_event_id"] for e in (await api.post(P + "/event/search", big)).entities] == ["o1"]
    by_pro = {"root": group(attr("plan", "eq", "pro"))}
    by_owner = await api.post(P + "/event/search", by_pro)
    assert sorted(e["_event_id"] for e in by_owner.entities) == ["o1", "p1"]


async def test_event_scroll_walks_every_event(
    api: Client, event: Callable[..., dict[str, Any]]
) -> None:
    for batch in range(3):
        events = [event(f"e{batch}-{i}") for i in range(100)]
        assert (await api.add_events(*events)).status == 202
    pages = await _scroll_all(api, P + "/event/scroll", {"limit": 70})
    assert [len(page) for page in pages] == [70, 70, 70, 70, 20]
    ids = [e["_event_id"] for page in pages for e in page]
    assert len(set(ids)) == 300


async def test_contacts_deleted_during_a_scroll_are_skipped_without_empty_pages(
    fake: FakeInstasent, api: Client
) -> None:
    await _seed_contacts(api, 6)
    first = await api.post(P + "/audience/scroll", {"limit": 2, "sortField": "score"})
    assert [c["score"] for c in first.entities] == [0, 1]
    for contact in fake.contacts():
        if contact["score"] in (2, 3, 4):
            await api.post(P + "/audience/stream/delete-contact", {"audienceId": contact["id"]})
    rest = await api.post(P + "/audience/scroll", {"limit": 2, "cursor": first.json["cursor"]})
    assert [c["score"] for c in rest.entities] == [5]
    assert rest.json["cursor"] is None
