"""Scroll and list iterators as pure objects, and input validation before any request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import orjson
import pytest
from aioresponses import aioresponses
from yarl import URL

from instasent_async import Instasent
from instasent_async._pagination import OffsetPager, ScrollIterator, next_cursor
from instasent_async.errors import ConfigurationError
from instasent_async.query import AudienceQuery, EventQuery, Q

BASE = "https://api.example.test/v1"


# --- next_cursor ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "cursor"),
    [
        ({"entities": [], "cursor": "c1"}, "c1"),
        ({"meta": {"cursor": "m1"}}, "m1"),
        ({"scrollId": "s1"}, "s1"),
        ({"cursor": 42}, "42"),
        ({"cursor": "c1", "meta": {"cursor": "m1"}, "scrollId": "s1"}, "c1"),
        ({"cursor": None, "meta": {"cursor": "m1"}}, "m1"),
        ({"cursor": "", "scrollId": "s1"}, "s1"),
        ({"cursor": None}, None),
        ({"cursor": True}, None),
        ({"meta": "not-a-dict"}, None),
        ({}, None),
        ([{"id": 1}], None),
        (None, None),
    ],
)
def test_next_cursor_reads_cursor_meta_cursor_or_scroll_id(payload: Any, cursor: Any) -> None:
    assert next_cursor(payload) == cursor


# --- ScrollIterator ---------------------------------------------------------------------


class ScrollServer:
    """A fetch function over ``total`` numbered items, recording every call."""

    def __init__(self, total: int, *, cursor_key: str = "cursor") -> None:
        self.total = total
        self.cursor_key = cursor_key
        self.calls: list[tuple[str | None, int]] = []
        self.in_flight = 0
        self.fail_next = 0

    async def fetch(self, cursor: str | None, size: int) -> Any:
        self.in_flight += 1
        try:
            self.calls.append((cursor, size))
            assert len(self.calls) <= 50, "the iterator does not stop"
            if self.fail_next:
                self.fail_next -= 1
                raise RuntimeError("page failed")
            start = int(cursor) if cursor is not None else 0
            items = [{"n": n} for n in range(start, min(start + size, self.total))]
            end = start + len(items)
            following = str(end) if end < self.total else None
            return {"entities": items, self.cursor_key: following}
        finally:
            self.in_flight -= 1


def entities(payload: Any) -> list[Any]:
    return list(payload["entities"])


def number(item: Any) -> int:
    return int(item["n"])


def scroll(server: ScrollServer, page_size: int, cursor: str | None = None) -> ScrollIterator[int]:
    return ScrollIterator(server.fetch, entities, number, page_size=page_size, cursor=cursor)


async def test_scroll_yields_every_item_over_more_than_three_pages() -> None:
    server = ScrollServer(23)
    iterator = scroll(server, 5)
    assert [n async for n in iterator] == list(range(23))
    assert server.calls == [(None, 5), ("5", 5), ("10", 5), ("15", 5), ("20", 5)]
    assert (iterator.pages_fetched, iterator.done, iterator.cursor) == (5, True, None)
    assert [n async for n in iterator] == []  # exhausted: no further request
    assert len(server.calls) == 5


@pytest.mark.parametrize("cursor_key", ["cursor", "scrollId"])
async def test_scroll_pages_expose_the_cursor_of_the_next_page(cursor_key: str) -> None:
    server = ScrollServer(10, cursor_key=cursor_key)
    iterator = scroll(server, 4)
    seen: list[tuple[list[int], str | None]] = []
    async for page in iterator.pages():
        seen.append((page, iterator.cursor))
    assert seen == [([0, 1, 2, 3], "4"), ([4, 5, 6, 7], "8"), ([8, 9], None)]


async def test_scroll_resumes_from_a_saved_cursor() -> None:
    server = ScrollServer(12)
    first = scroll(server, 3)
    pages = first.pages()
    assert await pages.__anext__() == [0, 1, 2]
    assert await pages.__anext__() == [3, 4, 5]
    saved = first.cursor
    await pages.aclose()
    assert saved == "6"
    resumed = scroll(server, 3, cursor=saved)
    assert resumed.cursor == "6"
    assert [n async for n in resumed] == [6, 7, 8, 9, 10, 11]
    assert server.calls[2:] == [("6", 3), ("9", 3)]


async def test_scroll_early_break_sends_no_further_request() -> None:
    server = ScrollServer(1000)
    iterator = scroll(server, 10)
    async for n in iterator:
        if n == 14:
            break
    assert len(server.calls) == 2
    assert server.in_flight == 0
    assert iterator.cursor == "20"  # the page after the one being consumed


async def test_scroll_ends_on_an_empty_page_even_with_a_cursor() -> None:
    calls: list[str | None] = []

    async def fetch(cursor: str | None, size: int) -> Any:
        calls.append(cursor)
        assert len(calls) <= 10, "the iterator does not stop"
        return {"entities": [{"n": 1}] if cursor is None else [], "cursor": "again"}

    iterator = ScrollIterator(fetch, entities, number, page_size=5)
    assert [n async for n in iterator] == [1]
    assert calls == [None, "again"]
    assert iterator.done


async def test_scroll_ends_when_the_server_repeats_the_cursor() -> None:
    calls: list[str | None] = []

    async def fetch(cursor: str | None, size: int) -> Any:
        calls.append(cursor)
        assert len(calls) <= 10, "the iterator does not stop"
        return {"entities": [{"n": len(calls)}], "cursor": "stuck"}

    iterator = ScrollIterator(fetch, entities, number, page_size=5)
    assert [n async for n in iterator] == [1, 2]
    assert calls == [None, "stuck"]


async def test_a_failed_page_keeps_the_cursor_so_it_can_be_retried() -> None:
    server = ScrollServer(9)
    iterator = scroll(server, 3)
    got = [await iterator.__anext__() for _ in range(3)]
    server.fail_next = 1
    with pytest.raises(RuntimeError, match="page failed"):
        await iterator.__anext__()
    assert iterator.cursor == "3"
    got += [n async for n in iterator]
    assert got == list(range(9))
    assert server.calls == [(None, 3), ("3", 3), ("3", 3), ("6", 3)]


async def test_scroll_pages_after_some_items_start_with_the_rest_of_the_page() -> None:
    server = ScrollServer(8)
    iterator = scroll(server, 4)
    assert await iterator.__anext__() == 0
    assert [page async for page in iterator.pages()] == [[1, 2, 3], [4, 5, 6, 7]]


# --- OffsetPager ------------------------------------------------------------------------


class ListServer:
    def __init__(self, total: int, *, ignore_limit: bool = False) -> None:
        self.total = total
        self.ignore_limit = ignore_limit
        self.calls: list[tuple[int, int]] = []

    async def fetch(self, start: int, limit: int) -> Any:
        self.calls.append((start, limit))
        assert len(self.calls) <= 50, "the pager does not stop"
        if self.ignore_limit:
            return {"entities": [{"n": n} for n in range(self.total)]}
        return {"entities": [{"n": n} for n in range(start, min(start + limit, self.total))]}


def pager(server: ListServer, *, start: int = 0, limit: int) -> OffsetPager[int]:
    return OffsetPager(server.fetch, entities, number, start=start, limit=limit)


async def test_awaiting_a_list_call_fetches_only_the_first_page() -> None:
    server = ListServer(10)
    assert await pager(server, limit=3) == [0, 1, 2]
    assert server.calls == [(0, 3)]


async def test_iterating_a_list_call_pages_with_start_and_limit() -> None:
    server = ListServer(11)
    assert [n async for n in pager(server, limit=3)] == list(range(11))
    assert server.calls == [(0, 3), (3, 3), (6, 3), (9, 3)]


async def test_a_list_of_an_exact_multiple_of_the_page_ends_on_an_empty_page() -> None:
    server = ListServer(6)
    assert [n async for n in pager(server, start=2, limit=2)] == [2, 3, 4, 5]
    assert server.calls == [(2, 2), (4, 2), (6, 2)]


async def test_a_server_ignoring_the_limit_is_read_once() -> None:
    server = ListServer(7, ignore_limit=True)
    assert [n async for n in pager(server, limit=3)] == list(range(7))
    assert server.calls == [(0, 3)]


async def test_list_pages_and_early_break() -> None:
    server = ListServer(100)
    assert [page async for page in pager(ListServer(5), limit=2).pages()] == [[0, 1], [2, 3], [4]]
    async for n in pager(server, limit=10):
        if n == 12:
            break
    assert server.calls == [(0, 10), (10, 10)]


# --- validation before sending ----------------------------------------------------------


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


@pytest.fixture
async def client() -> AsyncIterator[Instasent]:
    async with Instasent("tok", project="proj_demo", base_url=BASE, rate_limit=None) as c:
        yield c


Call = Callable[[Instasent], Any]


async def _run(call: Call, client: Instasent) -> None:
    result = call(client)
    if isinstance(result, Awaitable):
        await result


LONG_UTM = "x" * 41

ASYNC_INVALID: list[tuple[str, Call, str]] = [
    # utm terms over 40 characters
    (
        "send_direct utm>40",
        lambda c: c.sms.send_direct("+34600000000", "hi", utm_term=LONG_UTM),
        "utm_term must be at most 40 characters, got 41",
    ),
    (
        "send_direct empty utm",
        lambda c: c.sms.send_direct("+34600000000", "hi", utm_term=""),
        "utm_term must be a non-empty string",
    ),
    # empty SMS text, empty sender, empty recipient
    (
        "send_direct empty text",
        lambda c: c.sms.send_direct("+34600000000", ""),
        "text must be a non-empty string",
    ),
    (
        "send_direct blank text",
        lambda c: c.sms.send_direct("+34600000000", " \n\t"),
        "text must be a non-empty string",
    ),
    (
        "send_direct empty sender",
        lambda c: c.sms.send_direct("+34600000000", "hi", sender=""),
        "sender must be a sender id",
    ),
    ("send_direct empty to", lambda c: c.sms.send_direct("", "hi"), "to must not be empty"),
    # search sizes above 50, negative offsets
    (
        "audience.search 51",
        lambda c: c.audience.search(None, limit=51),
        "limit must be an integer from 1 to 50, got 51",
    ),
    ("audience.search 0", lambda c: c.audience.search(None, limit=0), "limit must be an integer"),
    (
        "audience.search query limit 80",
        lambda c: c.audience.search({"root": {}, "limit": 80}),
        r"limit \(the query's limit\) must be an integer from 1 to 50, got 80",
    ),
    (
        "audience.search offset -1",
        lambda c: c.audience.search(None, offset=-1),
        "offset must be a non-negative integer",
    ),
    (
        "events.search 51",
        lambda c: c.events.search(EventQuery(), limit=51),
        "limit must be an integer from 1 to 50",
    ),
    (
        "events.search limit True",
        lambda c: c.events.search(None, limit=True),
        "limit must be an integer",
    ),
    # empty ids
    ("audience.get", lambda c: c.audience.get(""), "audience_id must not be empty"),
    (
        "audience.get_by_user_id",
        lambda c: c.audience.get_by_user_id("  "),
        "user_id must not be empty",
    ),
    (
        "audience.search_by_phone",
        lambda c: c.audience.search_by_phone(""),
        "phone must not be empty",
    ),
    (
        "audience.search_by_email",
        lambda c: c.audience.search_by_email(""),
        "email must not be empty",
    ),
    ("audience.events", lambda c: c.audience.events(""), "audience_id must not be empty"),
    ("audience.sms_subscribe", lambda c: c.audience.sms_subscribe(""), "audience_id"),
    ("audience.sms_unsubscribe", lambda c: c.audience.sms_unsubscribe(" "), "audience_id"),
    ("audience.email_subscribe", lambda c: c.audience.email_subscribe(""), "audience_id"),
    ("audience.email_unsubscribe", lambda c: c.audience.email_unsubscribe(""), "audience_id"),
    ("audience.delete", lambda c: c.audience.delete(""), "audience_id"),
    (
        "specs.event_parameters",
        lambda c: c.specs.event_parameters(""),
        "event_type must not be empty",
    ),
    ("segments.get", lambda c: c.segments.get(""), "segment_uid must not be empty"),
    (
        "segments.get parameter",
        lambda c: c.segments.get("s1", parameter=""),
        "parameter must not be empty",
    ),
    ("campaigns.get", lambda c: c.campaigns.get(""), "campaign_id must not be empty"),
    ("automations.get", lambda c: c.automations.get(""), "automation_id must not be empty"),
    ("sms.get", lambda c: c.sms.get(""), "sms_id must not be empty"),
    (
        "datasource.contacts.get",
        lambda c: c.datasource("ds").contacts.get(""),
        "user_id must not be empty",
    ),
    (
        "datasource.contacts.delete",
        lambda c: c.datasource("ds").contacts.delete(""),
        "user_id must not be empty",
    ),
    (
        "datasource.specs.event_parameters",
        lambda c: c.datasource("ds").specs.event_parameters(""),
        "event_type must not be empty",
    ),
]


@pytest.mark.parametrize(
    ("call", "message"),
    [pytest.param(call, message, id=name) for name, call, message in ASYNC_INVALID],
)
async def test_invalid_input_raises_value_error_before_any_request(
    mocked: aioresponses, client: Instasent, call: Call, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await _run(call, client)
    assert mocked.requests == {}


SYNC_INVALID: list[tuple[str, Call, str]] = [
    # scroll page sizes above 100
    (
        "audience.scroll 101",
        lambda c: c.audience.scroll(None, page_size=101),
        "page_size must be an integer from 1 to 100, got 101",
    ),
    (
        "audience.scroll query limit 101",
        lambda c: c.audience.scroll(AudienceQuery(limit=101)),
        r"page_size \(the query's limit\) must be an integer from 1 to 100, got 101",
    ),
    ("events.scroll 500", lambda c: c.events.scroll(None, page_size=500), "page_size"),
    ("events.scroll 0", lambda c: c.events.scroll(None, page_size=0), "page_size"),
    ("segments.scroll 101", lambda c: c.segments.scroll("s1", page_size=101), "page_size"),
    ("audience.scroll empty cursor", lambda c: c.audience.scroll(None, cursor=""), "cursor"),
    ("segments.scroll empty uid", lambda c: c.segments.scroll(""), "segment uid"),
    (
        "segments.scroll empty parameter",
        lambda c: c.segments.scroll("s1", parameter=[]),
        "parameter must not be empty",
    ),
    # list page sizes above 100 and negative starts
    (
        "segments.list 101",
        lambda c: c.segments.list(limit=101),
        "limit must be an integer from 1 to 100, got 101",
    ),
    ("segments.dynamic 101", lambda c: c.segments.dynamic(limit=101), "limit"),
    ("campaigns.list 101", lambda c: c.campaigns.list(limit=101), "limit"),
    ("automations.list 0", lambda c: c.automations.list(limit=0), "limit"),
    ("sms.senders 101", lambda c: c.sms.senders(limit=101), "limit"),
    ("sms.list_direct 101", lambda c: c.sms.list_direct(limit=101), "limit"),
    (
        "segments.list start -1",
        lambda c: c.segments.list(start=-1),
        "start must be a non-negative integer",
    ),
    (
        "campaigns.list reserved filter",
        lambda c: c.campaigns.list(filters={"_limit": 5}),
        "reserved parameter '_limit'",
    ),
    (
        "segments.list q paging",
        lambda c: c.segments.list(q={"paging": {"start": 0, "limit": 2}}),
        "q must not carry 'paging'",
    ),
    # negative indexes
    (
        "sms.list_by_campaign -1",
        lambda c: c.sms.list_by_campaign("c1", -1),
        "option_idx must be a non-negative integer",
    ),
    (
        "sms.list_by_automation -1",
        lambda c: c.sms.list_by_automation("a1", -1),
        "message_idx must be a non-negative integer",
    ),
    # utm terms and empty ids of list calls
    (
        "sms.list_direct utm>40",
        lambda c: c.sms.list_direct(LONG_UTM),
        "utm_term must be at most 40 characters",
    ),
    (
        "sms.list_by_audience empty",
        lambda c: c.sms.list_by_audience(""),
        "audience_id_or_phone must not be empty",
    ),
    ("sms.list_by_send empty", lambda c: c.sms.list_by_send(" "), "send_id must not be empty"),
    (
        "sms.list_by_campaign empty",
        lambda c: c.sms.list_by_campaign(""),
        "campaign_id must not be empty",
    ),
    (
        "sms.list_by_automation empty",
        lambda c: c.sms.list_by_automation(""),
        "automation_id must not be empty",
    ),
]


@pytest.mark.parametrize(
    ("call", "message"),
    [pytest.param(call, message, id=name) for name, call, message in SYNC_INVALID],
)
def test_list_and_scroll_calls_check_their_arguments_when_called(call: Call, message: str) -> None:
    # No event loop, no session: the error comes from the call itself, not from a request.
    client = Instasent("tok", project="proj_demo", base_url=BASE, rate_limit=None)
    with pytest.raises(ValueError, match=message):
        call(client)


async def test_the_boundaries_are_accepted(mocked: aioresponses, client: Instasent) -> None:
    client.sms.list_direct("x" * 40)
    client.segments.list(limit=100)
    client.audience.scroll(None, page_size=100)
    client.sms.list_by_campaign("c1", 0)
    mocked.post(f"{BASE}/project/proj_demo/audience/search", payload={"entities": []})
    assert await client.audience.search(Q.attr("plan").exists(), limit=50) == []
    assert len(mocked.requests) == 1


async def test_a_project_operation_without_a_project_is_a_configuration_error(
    mocked: aioresponses,
) -> None:
    async with Instasent("tok", base_url=BASE, rate_limit=None) as client:
        with pytest.raises(ConfigurationError, match="needs a project"):
            client.segments.list()
        with pytest.raises(ConfigurationError, match="needs a project"):
            await client.audience.get("a1")
    assert mocked.requests == {}


async def test_batches_over_100_are_chunked_not_refused(
    mocked: aioresponses, client: Instasent
) -> None:
    url = f"{BASE}/project/proj_demo/datasource/ds_demo/stream/events"
    for _ in range(3):
        mocked.post(url, status=202, body="")  # an empty 202: the whole batch was taken
    events = [
        {"_user_id": "u1", "_event_id": f"e{i}", "_event_type": "page_view"} for i in range(201)
    ]
    report = await client.datasource("ds_demo").events.add(events)
    calls = mocked.requests[("POST", URL(url))]
    assert [len(orjson.loads(call.kwargs["data"])) for call in calls] == [100, 100, 1]
    assert (report.total, report.accepted, report.requests) == (201, 201, 3)


def test_the_iterators_are_public_names() -> None:
    import instasent_async
    import instasent_async.pagination

    assert instasent_async.ScrollIterator is ScrollIterator
    assert instasent_async.OffsetPager is OffsetPager
    assert instasent_async.pagination.ScrollIterator is ScrollIterator
    assert instasent_async.pagination.OffsetPager is OffsetPager
    assert {"ScrollIterator", "OffsetPager"} <= set(instasent_async.__all__)
