"""The governor and the retry policy end to end: the real client against FakeInstasent.

The rules themselves are proved on a virtual clock (``tests/core``); these tests
check that the real transport, headers and server fit together. Windows are scaled
down to one second (aligned to whole seconds, so the integer ``X-RateLimit-Reset``
is exact) and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from instasent_async import (
    AmbiguousOutcomeError,
    APIConnectionError,
    Instasent,
    RateLimitError,
    RateLimitEvent,
    RateLimitGovernor,
    RetryPolicy,
    ServerError,
)
from instasent_async._core.headers import AnswerInfo
from instasent_async._ratelimit import BucketKey, Permit
from instasent_async.models import Project
from instasent_async.testing import FakeInstasent, RecordedRequest

if TYPE_CHECKING:
    from tests.conftest import ScriptedServer

PROJECT = "/project/proj_demo"
FAST_RETRY = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.05)


@pytest.fixture
async def fake() -> AsyncIterator[FakeInstasent]:
    async with FakeInstasent(rate_limit=10, window=1.0) as server:
        yield server


def client(fake: FakeInstasent, **kwargs: object) -> Instasent:
    options: dict[str, object] = {"retry": FAST_RETRY}
    options.update(kwargs)
    return Instasent(fake.product_token, project="proj_demo", base_url=fake.base_url, **options)  # type: ignore[arg-type]


def per_window(requests: list[RecordedRequest], status: int, window: float = 1.0) -> Counter[int]:
    return Counter(math.floor(r.time / window) for r in requests if r.status == status)


class RefuseFirst:
    """A handler that answers the first request 429 with ``headers``, the rest 200."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.calls = 0

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        if self.calls == 1:
            return web.Response(status=429, headers=self.headers)
        return web.json_response({"entity": {"uid": "proj_demo", "id": 1, "name": "Demo"}})


async def until(condition: object, what: str, timeout: float = 10.0) -> None:
    """Poll ``condition()`` on the event loop (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.005)


# -- throughput without 429s ---------------------------------------------------------------


async def test_one_client_far_above_the_limit_gets_no_429(fake: FakeInstasent) -> None:
    events: list[RateLimitEvent] = []
    async with client(fake, on_event=events.append) as api:
        results = await asyncio.wait_for(
            asyncio.gather(*(api.project.get() for _ in range(32))), 20
        )
        assert len(results) == 32
        (bucket,) = api.rate_limits
    requests = fake.requests
    assert fake.count(status=429) == 0
    ok = per_window(requests, 200)
    assert max(ok.values()) <= 10  # never more than the limit in any server window
    assert len(ok) >= 3
    assert bucket.key.scope == "org" and bucket.key.rate_class == "default"
    assert bucket.key.token != fake.product_token and len(bucket.key.token) == 12
    assert (bucket.limit, bucket.in_flight, bucket.waiters, bucket.closed) == (10, 0, 0, False)
    waits = [e for e in events if e.kind == "wait"]
    assert waits and all(e.bucket == "org/default" and e.delay >= 0 for e in waits)


class SpyGovernor(RateLimitGovernor):
    """A governor that logs every grant and release, in order."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.log: list[tuple[str, bool, int | None]] = []

    def try_acquire(self, key: BucketKey) -> Permit | None:
        permit = super().try_acquire(key)
        if permit is not None:
            self.log.append(("grant", permit.probe, None))
        return permit

    async def acquire(self, key: BucketKey, *, max_wait: float | None = 120.0) -> Permit:
        permit = await super().acquire(key, max_wait=max_wait)
        self.log.append(("grant", permit.probe, None))
        return permit

    def release(self, permit: Permit, status: int | None, info: AnswerInfo | None) -> None:
        self.log.append(("release", permit.probe, status))
        super().release(permit, status, info)


async def test_a_429_storm_makes_the_whole_bucket_wait_then_one_probe_then_the_rest(
    fake: FakeInstasent,
) -> None:
    fake.set_rate_limit(20, 1.0)
    closed_at_throttle: list[bool] = []
    api = client(fake, rate_limit=SpyGovernor(pacing="burst"))

    def on_event(event: RateLimitEvent) -> None:
        if event.kind == "throttled":
            closed_at_throttle.append(api.rate_limits[0].closed)

    assert api.governor is not None
    api.governor.add_listener(on_event)
    async with api:
        await api.project.get()  # the bucket is known and open
        fake.fail_next(6, 429)  # the next six to arrive are refused
        results = await asyncio.wait_for(
            asyncio.gather(*(api.project.get() for _ in range(15))), 20
        )
        assert (api.rate_limits[0].in_flight, api.rate_limits[0].waiters) == (0, 0)
    assert len(results) == 15
    assert fake.count(status=429) == 6
    assert fake.count(status=200) == 16
    # One throttle for the whole bucket, not one per coroutine.
    assert closed_at_throttle == [True]
    log = api.governor.log  # type: ignore[attr-defined]
    first_429 = log.index(("release", False, 429))
    after = log[first_429:]
    grants = [i for i, entry in enumerate(after) if entry[0] == "grant"]
    # After the close, the first permit is a probe and it is alone until it answers.
    probe_at = grants[0]
    assert after[probe_at] == ("grant", True, None)
    probe_answer = after.index(("release", True, 200))
    assert [i for i in grants if probe_at < i < probe_answer] == []
    # Every 429 answered a request sent before the close: none was sent into it.
    assert sum(1 for entry in after[probe_at:] if entry[2] == 429) == 0
    assert len(grants) == 6  # the six refused requests went again: a probe, then five


# -- cancellation ------------------------------------------------------------------------


async def test_cancelling_100_waiting_and_in_flight_requests_leaks_nothing(
    fake: FakeInstasent,
) -> None:
    fake.latency = 0.5
    async with client(fake, max_connections=4) as api:
        tasks = [asyncio.create_task(api.project.get()) for _ in range(100)]

        def busy() -> bool:
            snapshot = api.rate_limits
            return bool(snapshot) and snapshot[0].in_flight >= 2 and snapshot[0].waiters >= 50

        await until(busy, "requests in flight and waiting")
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
        # The probe (and maybe a few more) completed before the cancellation.
        assert cancelled >= 90
        assert all(isinstance(r, asyncio.CancelledError | Project) for r in results)
        (bucket,) = api.rate_limits
        assert (bucket.in_flight, bucket.waiters) == (0, 0)
        # The client still works, with every pooled connection free again.
        fake.latency = 0.0
        done = await asyncio.wait_for(asyncio.gather(*(api.project.get() for _ in range(8))), 20)
        assert len(done) == 8
        (bucket,) = api.rate_limits
        assert (bucket.in_flight, bucket.waiters) == (0, 0)


# -- retries ---------------------------------------------------------------------------


async def test_get_is_retried_on_503_then_succeeds(fake: FakeInstasent) -> None:
    events: list[RateLimitEvent] = []
    fake.fail_next(2, 503, method="GET")
    async with client(fake, on_event=events.append) as api:
        project = await api.project.get()
    assert project.uid == "proj_demo"
    assert fake.count("GET", PROJECT, status=503) == 2
    assert fake.count("GET", PROJECT, status=200) == 1
    retries = [e for e in events if e.kind == "retry"]
    assert [(e.status, e.attempt) for e in retries] == [(503, 1), (503, 2)]
    assert all(e.bucket == "org/default" and e.reason == "503" for e in retries)


async def test_get_gives_up_after_max_attempts(fake: FakeInstasent) -> None:
    fake.fail_next(5, 503, method="GET")
    async with client(fake, retry=RetryPolicy(max_attempts=3, backoff_base=0.01)) as api:
        with pytest.raises(ServerError) as info:
            await api.project.get()
    assert info.value.status == 503
    assert fake.count("GET", PROJECT) == 3


async def test_events_post_is_retried_on_500_without_a_duplicate(fake: FakeInstasent) -> None:
    fake.fail_after_processing_next(1, 500, path_contains="/stream/events")
    event = {"_user_id": "u1", "_event_id": "order-1", "_event_type": "ecommerce_order_create"}
    async with client(fake) as api:
        report = await api.datasource("ds_demo").events.add([event])
    assert report.ok and report.accepted == 1 and report.retries == 1
    assert fake.count("POST", "/stream/events") == 2  # the server saw it twice...
    assert [e["_event_id"] for e in fake.events()] == ["order-1"]  # ...and kept it once


async def test_direct_sms_with_a_dropped_connection_is_ambiguous_and_sent_once(
    fake: FakeInstasent,
) -> None:
    fake.drop_next(1, after_processing=True, method="POST", path_contains="/sms/direct/")
    async with client(fake) as api:
        with pytest.raises(AmbiguousOutcomeError) as info:
            await api.sms.send_direct("+34600000000", "Your code is 1234")
        assert isinstance(info.value.__cause__, APIConnectionError)
        assert fake.product_token not in str(info.value)
    assert fake.count("POST", "/sms/direct/") == 1
    assert len(fake.sent_sms()) == 1


async def test_direct_sms_answered_500_after_processing_is_ambiguous(fake: FakeInstasent) -> None:
    fake.fail_after_processing_next(1, 500, path_contains="/sms/direct/")
    async with client(fake) as api:
        with pytest.raises(AmbiguousOutcomeError) as info:
            await api.sms.send_direct("+34600000000", "hello")
    assert isinstance(info.value.__cause__, ServerError)
    assert fake.count("POST", "/sms/direct/") == 1
    assert len(fake.sent_sms()) == 1


async def test_direct_sms_rejected_with_429_is_sent_after_the_reset(fake: FakeInstasent) -> None:
    fake.set_rate_limit(1, 1.0)
    async with client(fake, rate_limit=None) as other:
        await other.project.get()  # the window is spent
    async with client(fake) as api:
        message = await asyncio.wait_for(api.sms.send_direct("+34600000000", "hello"), 10)
    assert message is not None
    assert len(fake.sent_sms()) == 1
    assert fake.count("POST", "/sms/direct/", status=429) <= 1


# -- servers without (valid) rate-limit headers --------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"X-RateLimit-Remaining": "lots", "X-RateLimit-Reset": "soon", "Date": "yesterday"},
        {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "-4", "X-RateLimit-Reset": "1e999"},
        {"X-RateLimit-Limit": "10"},
    ],
    ids=["missing", "garbage", "negative", "limit-only"],
)
async def test_missing_or_garbage_headers_never_break_or_serialize_requests(
    scripted: ScriptedServer, extra: dict[str, str]
) -> None:
    active = 0
    peak = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await asyncio.sleep(0.05)
        finally:
            active -= 1
        response = web.json_response({"entity": {"uid": "proj_demo", "id": 1, "name": "Demo"}})
        response.headers.update(extra)
        return response

    scripted.handler = handler
    async with Instasent("tok", project="proj_demo", base_url=scripted.url) as api:
        results = await asyncio.wait_for(
            asyncio.gather(*(api.project.get() for _ in range(20))), 10
        )
        (bucket,) = api.rate_limits
    assert [r.uid for r in results] == ["proj_demo"] * 20
    assert peak > 1  # the unmanaged bucket lets requests run concurrently
    assert bucket.in_flight == 0 and not bucket.closed


async def test_a_429_without_headers_backs_off_and_then_succeeds(scripted: ScriptedServer) -> None:
    scripted.handler = handler = RefuseFirst({})
    async with Instasent("tok", project="proj_demo", base_url=scripted.url) as api:
        project = await asyncio.wait_for(api.project.get(), 10)
    assert project.uid == "proj_demo"
    assert handler.calls == 2


async def test_siblings_and_clients_can_share_one_governor(fake: FakeInstasent) -> None:
    governor = RateLimitGovernor()
    async with client(fake, rate_limit=governor) as a, client(fake, rate_limit=governor) as b:
        sibling = a.with_options(project="proj_demo")
        await asyncio.gather(a.project.get(), b.project.get(), sibling.project.get())
        assert a.governor is governor and b.governor is governor
        (shared,) = a.rate_limits  # one token, one organization bucket
        (seen_by_sibling,) = sibling.rate_limits
        assert (seen_by_sibling.key, seen_by_sibling.remaining) == (shared.key, shared.remaining)
        assert shared.limit == 10 and shared.remaining is not None and shared.remaining <= 7


# -- 429s that announce odd waits, and max_wait ----------------------------------------------


def _project() -> web.Response:
    return web.json_response({"entity": {"uid": "proj_demo", "id": 1, "name": "Demo"}})


async def test_a_short_429_inside_a_long_window_releases_the_queue_after_its_own_reset(
    scripted: ScriptedServer,
) -> None:
    """A burst limiter's 429 with a Reset 2 s ahead, inside a 60 s window of a million."""
    window_ends = math.floor(time.time()) + 60
    count = 0
    refused_at = 0.0
    reset = 0
    arrivals: list[float] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal count, refused_at, reset
        now = time.time()
        response = _project()
        count += 1
        if count == 2:
            refused_at, reset = now, math.ceil(now) + 2
            response = web.Response(status=429)
            response.headers.update({"X-RateLimit-Limit": "20", "X-RateLimit-Reset": str(reset)})
            response.headers["X-RateLimit-Remaining"] = "0"
        else:
            arrivals.append(now)
            response.headers["X-RateLimit-Limit"] = "1000000"
            response.headers["X-RateLimit-Remaining"] = str(1_000_000 - count)
            response.headers["X-RateLimit-Reset"] = str(window_ends)
        response.headers["Date"] = email.utils.formatdate(now, usegmt=True)
        return response

    scripted.handler = handler
    closed = asyncio.Event()

    def on_event(event: RateLimitEvent) -> None:
        if event.kind == "throttled":
            closed.set()

    async with Instasent(
        "tok", project="proj_demo", base_url=scripted.url, on_event=on_event
    ) as api:
        await api.project.get()  # the bucket is open: a million left in the minute
        refused = asyncio.create_task(api.project.get())  # answered 429, retried
        await asyncio.wait_for(closed.wait(), 10)
        queued = [asyncio.create_task(api.project.get()) for _ in range(10)]
        await asyncio.wait_for(asyncio.gather(refused, *queued), 30)
        done_at = time.time()
        (bucket,) = api.rate_limits
    # Nothing went before the 429's own reset, and everything right after it: at most
    # one second later (Reset and Date are whole seconds) plus the probe's round trip.
    after = arrivals[1:]
    assert len(after) == 11 and min(after) >= reset
    assert done_at - refused_at <= (reset - refused_at) + 1.0 + 0.25
    assert (bucket.closed, bucket.remaining) == (False, 1_000_000 - 13)


async def test_a_first_answer_429_with_reset_now_does_not_jam(scripted: ScriptedServer) -> None:
    scripted.handler = handler = RefuseFirst(
        {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0"}
    )
    async with Instasent("tok", project="proj_demo", base_url=scripted.url) as api:
        project = await asyncio.wait_for(api.project.get(), 10)
        (bucket,) = api.rate_limits
    assert project.uid == "proj_demo" and handler.calls == 2
    assert (bucket.in_flight, bucket.closed) == (0, False)


@pytest.mark.parametrize("governed", [True, False], ids=["governor", "no-governor"])
async def test_a_429_announcing_a_wait_beyond_max_wait_raises_at_once(
    scripted: ScriptedServer, governed: bool
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.Response(status=429)
        response.headers.update(
            {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "Retry-After": "3600"}
        )
        return response

    scripted.handler = handler
    rate_limit = "auto" if governed else None
    async with Instasent(
        "tok", project="proj_demo", base_url=scripted.url, rate_limit=rate_limit, max_wait=5.0
    ) as api:
        started = time.monotonic()
        with pytest.raises(RateLimitError) as info:
            await asyncio.wait_for(api.project.get(), 10)
        waited = time.monotonic() - started
    assert waited < 5.0  # raised instead of sleeping an hour (or until max_wait)
    assert len(scripted.requests) == 1
    assert info.value.reset_at is not None
    assert info.value.reset_at.timestamp() == pytest.approx(time.time() + 3600, abs=5)


async def test_a_retry_after_a_year_ahead_is_not_believed(scripted: ScriptedServer) -> None:
    scripted.handler = handler = RefuseFirst({"Retry-After": "31536000"})
    events: list[RateLimitEvent] = []
    async with Instasent(
        "tok", project="proj_demo", base_url=scripted.url, on_event=events.append
    ) as api:
        project = await asyncio.wait_for(api.project.get(), 10)
    assert project.uid == "proj_demo" and handler.calls == 2
    (throttled,) = [e for e in events if e.kind == "throttled"]
    assert throttled.delay == 0.5  # treated as a 429 announcing no wait: the backoff


async def test_a_request_that_never_left_keeps_its_unit_and_a_dropped_one_spends_it() -> None:
    # An hour's window: no reset falls inside the test (but once in thousands of runs).
    async with FakeInstasent(rate_limit=100, window=3600.0) as server:
        governor = RateLimitGovernor()
        once = RetryPolicy.none()
        common = {"project": "proj_demo", "rate_limit": governor, "retry": once}
        async with (
            Instasent(server.product_token, base_url=server.base_url, **common) as client,
            # The same token on a closed port: the same bucket, a refused connection.
            Instasent(server.product_token, base_url="http://127.0.0.1:9/v1", **common) as down,
        ):
            await client.project.get()
            (bucket,) = client.rate_limits
            left = bucket.remaining
            assert left is not None
            with pytest.raises(APIConnectionError):
                await down.project.get()
            assert client.rate_limits[0].remaining == left  # never reached a server
            # Two drops: aiohttp itself sends a GET again once when a kept-alive
            # connection drops; the server counts both and answers neither.
            server.drop_next(2, after_processing=True)
            with pytest.raises(APIConnectionError):
                await client.project.get()
            # One permit brought no count back: its unit is believed spent.
            assert client.rate_limits[0].remaining == left - 1
            await client.project.get()
            # The next count is the server's, whatever it counted meanwhile.
            assert client.rate_limits[0].remaining == 100 - server.count("GET", PROJECT)
