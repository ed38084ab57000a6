"""Fault injection: fail, fail after processing, drop, delay, latency, malformed bodies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import pytest

from instasent_async.testing import FakeInstasent

if TYPE_CHECKING:
    from tests.fake.conftest import Client

P = "/project/proj_demo"
DS = P + "/datasource/ds_demo"


async def _wait_for(condition: object, seconds: float = 5.0) -> None:
    """Poll a server-side condition (a callable) with a bounded number of checks."""
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_fail_next_answers_without_processing(
    fake: FakeInstasent, api: Client, event: Callable[..., dict[str, Any]]
) -> None:
    fake.fail_next(2, 503, path_contains="/stream/events")
    assert (await api.get(P)).status == 200  # does not match: untouched
    first = await api.add_events(event("e1"))
    assert (first.status, first.json) == (503, {"message": "Injected failure"})
    assert "X-RateLimit-Remaining" in first.headers
    assert (await api.add_events(event("e1"))).status == 503
    assert fake.events() == []
    assert (await api.add_events(event("e1"))).status == 202
    assert len(fake.events()) == 1


async def test_fail_next_filters_by_method_and_custom_body(
    fake: FakeInstasent, api: Client
) -> None:
    fake.fail_next(1, 429, method="post", body={"message": "slow down"})
    fake.fail_next(1, 502, method="GET", body=b"<html>bad gateway</html>")
    gateway = await api.get(P)
    assert (gateway.status, gateway.body) == (502, b"<html>bad gateway</html>")
    throttled = await api.upsert({"_user_id": "u1"})
    assert (throttled.status, throttled.json) == (429, {"message": "slow down"})
    assert (await api.upsert({"_user_id": "u1"})).status == 202


async def test_fail_after_processing_changes_state_and_retries_do_not_duplicate(
    fake: FakeInstasent, api: Client, event: Callable[..., dict[str, Any]]
) -> None:
    fake.fail_after_processing_next(1, 500, path_contains="/stream/events")
    batch = [event("e1"), event("e2")]
    failed = await api.add_events(*batch)
    assert failed.status == 500
    assert len(fake.events()) == 2
    retried = await api.add_events(*batch)
    assert retried.status == 202
    assert [e["_event_id"] for e in fake.events()] == ["e1", "e2"]


async def test_drop_next_closes_the_connection_before_processing(
    fake: FakeInstasent, api: Client
) -> None:
    fake.drop_next(1, path_contains="/stream/contacts")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.upsert({"_user_id": "u1"})
    assert fake.contacts() == []
    assert fake.requests[-1].status is None
    assert fake.count(path_contains="/stream/contacts", status=None) == 1
    assert (await api.upsert({"_user_id": "u1"})).status == 202


async def test_drop_after_processing_keeps_the_state_change(
    fake: FakeInstasent, api: Client
) -> None:
    fake.drop_next(1, after_processing=True, method="POST", path_contains="/sms/direct/")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post(P + "/channel/sms/sms/direct/default/%2B34600000001", {"text": "hi"})
    assert len(fake.sent_sms()) == 1


async def test_delay_next_slows_the_matching_request(fake: FakeInstasent, api: Client) -> None:
    fake.delay_next(1, 0.5, path_contains="/segment")
    started = time.monotonic()
    assert (await api.get(P + "/segment")).status == 200
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    assert (await api.get(P + "/segment")).status == 200
    assert time.monotonic() - started < 0.5  # a second delay would take 0.5 s at least


async def test_a_client_timing_out_on_a_delay_still_gets_processed(
    fake: FakeInstasent, event: Callable[..., dict[str, Any]], client_for: type[Client]
) -> None:
    fake.delay_next(1, 0.5)
    timeout = aiohttp.ClientTimeout(total=0.05)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(asyncio.TimeoutError):
            await client_for(session, fake).add_events(event("e1"))
    await _wait_for(lambda: len(fake.events()) == 1)


async def test_latency_applies_to_every_response(fake: FakeInstasent, api: Client) -> None:
    fake.latency = 0.2
    started = time.monotonic()
    assert (await api.get(P, token=None)).status == 401
    assert (await api.get(P)).status == 200
    assert time.monotonic() - started >= 0.4


async def test_malformed_next_sends_a_body_that_is_not_json(
    fake: FakeInstasent, api: Client
) -> None:
    fake.malformed_next(1, path_contains="/stream/contacts")
    reply = await api.upsert({"_user_id": "u1"})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(reply.body)
    assert fake.contacts() == []
    fake.malformed_next(1, after_processing=True)
    assert (await api.upsert({"_user_id": "u1"})).status == 200
    assert len(fake.contacts()) == 1


async def test_faults_skip_requests_refused_before_processing(
    fake: FakeInstasent, api: Client
) -> None:
    fake.fail_next(1, 503)
    assert (await api.get(P, token="bad")).status == 401
    assert (await api.get("/project/nope")).status == 404
    assert (await api.get(P)).status == 503
    assert (await api.get(P)).status == 200


async def test_clear_faults_and_argument_checks(fake: FakeInstasent, api: Client) -> None:
    fake.fail_next(5, 500)
    fake.delay_next(5, 10.0)
    fake.clear_faults()
    assert (await api.get(P)).status == 200
    fake.fail_next(0)
    assert (await api.get(P)).status == 200
    with pytest.raises(ValueError, match="n must be"):
        fake.fail_next(-1)


async def test_requests_are_recorded_and_counted(fake: FakeInstasent, api: Client) -> None:
    await api.upsert({"_user_id": "u1"})
    await api.get(P + "/campaign", params={"status_eq": "sent"})
    await api.get(P, token=None)
    upsert, listing, denied = fake.requests
    assert (upsert.method, upsert.path, upsert.json) == (
        "POST",
        "/v1" + DS + "/stream/contacts",
        [{"_user_id": "u1"}],
    )
    assert listing.query == {"status_eq": "sent"}
    assert denied.token_fingerprint is None
    assert fake.request_count == 3
    assert fake.count(method="get") == 2
    assert fake.count(status=401) == 1
    assert fake.count(path_contains="/campaign", status=200) == 1
    fake.clear_requests()
    assert fake.request_count == 0
