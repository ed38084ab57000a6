"""Requests as Instasent's own clients send them: bare flags, no default paging or empty root.

The exact bytes are read on a loopback server (``scripted``); the fake server accepts
these forms and refuses the old ones.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest
from aiohttp import web

from instasent_async import BadRequestError, Event, Instasent
from instasent_async.query import AudienceQuery, Q
from instasent_async.testing import FakeInstasent

UTC = dt.timezone.utc


async def _answer(request: web.Request) -> web.StreamResponse:
    path = request.path
    if path.endswith(("/stream/contacts", "/stream/events")):
        return web.json_response({}, status=202)
    if "/audience/stream/" in path:
        return web.Response(status=204)
    if path.endswith(("/search", "/scroll", "/segment/dynamic")):
        return web.json_response({"entities": []})
    return web.json_response({"entity": {}})


@pytest.fixture
async def client(scripted: Any) -> Any:
    scripted.handler = _answer
    async with Instasent("t0ken", project="proj_demo", base_url=scripted.url) as client:
        yield client


async def test_sync_and_dry_run_are_bare_flags(scripted: Any, client: Instasent) -> None:
    ds = client.datasource("ds_demo")
    await ds.contacts.upsert([{"_user_id": "u1"}], sync=True, dry_run=True)
    await ds.events.add([{"_user_id": "u1", "_event_id": "e1", "_event_type": "x"}], sync=True)
    await ds.contacts.upsert([{"_user_id": "u1"}])
    await client.audience.sms_subscribe("aud-1", sync=True)
    await client.audience.delete("aud-1", sync=True)
    queries = [request.rel_url.raw_query_string for request in scripted.requests]
    assert queries == ["_sync&_dryRun", "_sync", "", "_sync", "_sync"]


async def test_dynamic_segments_send_paging_only_when_asked(
    scripted: Any, client: Instasent
) -> None:
    assert await client.segments.dynamic() == []
    await client.segments.dynamic(limit=20)
    await client.segments.dynamic(start=40)
    queries = [dict(request.rel_url.query) for request in scripted.requests]
    assert queries == [{}, {"_start": "0", "_limit": "20"}, {"_start": "40", "_limit": "100"}]


async def test_no_filter_sends_no_root(scripted: Any, client: Instasent) -> None:
    await client.audience.search(None)
    await client.audience.search(AudienceQuery())
    _ = [c async for c in client.audience.scroll(None, page_size=10)]
    _ = [e async for e in client.events.scroll(Q.all())]
    bodies = [orjson.loads(body) for body in scripted.bodies]
    assert bodies == [
        {"limit": 50},
        {"version": "0.0.1", "limit": 50},
        {"limit": 10},
        {"version": "0.0.1", "limit": 100},
    ]


async def test_every_date_written_has_three_fraction_digits(
    scripted: Any, client: Instasent
) -> None:
    dates = [
        dt.datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC),
        dt.datetime(2024, 5, 1, 10, 20, 30, 123000, tzinfo=UTC),
        dt.datetime(2024, 5, 1, 10, 20, 30, 123456, tzinfo=UTC),
        dt.datetime(2024, 5, 1, 12, 20, 30, 999999, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    ]
    events = [Event(user_id="u", event_id=f"e{i}", event_date=d) for i, d in enumerate(dates)]
    await client.datasource("ds_demo").events.add(events)
    await client.datasource("ds_demo").events.add(events[2:3])  # one alone: the other path
    sent = [item["_event_date"] for body in scripted.bodies for item in orjson.loads(body)]
    assert sent == [
        "2024-05-01T10:20:30.000Z",
        "2024-05-01T10:20:30.123Z",
        "2024-05-01T10:20:30.123Z",
        "2024-05-01T10:20:30.999Z",
        "2024-05-01T10:20:30.123Z",
    ]


async def test_the_fake_accepts_what_the_sdk_sends_and_refuses_the_old_forms() -> None:
    async with FakeInstasent() as fake:
        fake.add_segment("proj_demo", "seg_dyn", "Dynamic", dynamic=True)
        async with Instasent(
            fake.product_token, project="proj_demo", base_url=fake.base_url
        ) as client:
            ds = client.datasource("ds_demo")
            when = dt.datetime(2024, 5, 1, 10, 20, 30, 123456, tzinfo=UTC)
            event = Event(user_id="u1", event_id="e1", event_type="page_view", event_date=when)
            report = await ds.events.add([event], sync=True)
            assert report.ok, report
            assert fake.events()[0]["_event_date"] == "2024-05-01T10:20:30.123Z"
            assert (await ds.contacts.upsert([{"_user_id": "u1"}], dry_run=True)).ok
            assert await client.audience.search(None) == []
            assert [s.uid for s in await client.segments.dynamic()] == ["seg_dyn"]
            old_root = {
                "version": "0.0.1",
                "root": {"type": "group", "join": "and", "children": []},
            }
            with pytest.raises(BadRequestError):
                await client.audience.search(old_root)
