"""The bulk engine's accounting, without I/O: a scripted ``send`` stands in for the API."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from instasent_async import errors
from instasent_async._http.transport import RequestStats, Response
from instasent_async.bulk import MISSING_EVENT_ID, report_of, run_ingest
from instasent_async.models import Event

Send = Callable[[bytes, bool, RequestStats], Any]


def response(status: int, body: Any) -> Response:
    raw = b"" if body is None else orjson.dumps(body)
    return Response(status, CIMultiDictProxy(CIMultiDict()), raw)


def documented(items: list[dict[str, Any]], bad: Callable[[dict[str, Any]], bool]) -> Any:
    answers = [
        {"status": "error", "errors": {"_email": ["Invalid format"]}}
        if bad(i)
        else {"status": "success"}
        for i in items
    ]
    ok = sum(a["status"] == "success" for a in answers)
    return {"entity": {"successful": ok, "failed": len(items) - ok, "items": answers}}


class Recorder:
    """A send() that answers like the API: 202 with per-item outcomes (or 422 if all fail)."""

    def __init__(self, bad: Callable[[dict[str, Any]], bool] = lambda i: False) -> None:
        self.bad = bad
        self.batches: list[list[dict[str, Any]]] = []
        self.idempotent: list[bool] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, body: bytes, idempotent: bool, stats: RequestStats) -> Response:
        stats.requests += 1
        items = orjson.loads(body)
        self.batches.append(items)
        self.idempotent.append(idempotent)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        answer = documented(items, self.bad)
        if answer["entity"]["successful"] == 0:
            raise errors.UnprocessableEntityError(422, "Unprocessable Entity", answer)
        return response(202, answer)


def contacts(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"_user_id": f"u{i}", "_email": f"u{i}@example.com" if i % 7 else "broken"}


def accounted(report: Any, total: int) -> None:
    positions = [r.position for r in report.rejected] + [f.position for f in report.failed]
    assert len(positions) == len(set(positions))
    assert (report.rejected_count, report.failed_count) == (
        len(report.rejected),
        len(report.failed),
    )
    assert report.accepted + report.rejected_count + report.failed_count == total == report.total
    assert report.consumed == total


async def test_every_item_ends_in_exactly_one_bucket() -> None:
    send = Recorder(bad=lambda i: "@" not in i["_email"])
    report = await run_ingest(send, contacts(1050), kind="contacts", concurrency=3)
    accounted(report, 1050)
    assert [len(b) for b in send.batches].count(100) == 10
    assert sum(len(b) for b in send.batches) == 1050
    expected_bad = [i for i in range(1050) if i % 7 == 0]
    assert [r.position for r in report.rejected] == expected_bad
    assert report.rejected[1].item == {"_user_id": "u7", "_email": "broken"}
    assert report.rejected[1].errors == {"_email": ["Invalid format"]}
    assert report.requests == 11
    assert not report.ok


async def test_async_sources_work_and_memory_stays_bounded() -> None:
    send = Recorder()
    produced = 0

    async def source() -> AsyncIterator[dict[str, Any]]:
        nonlocal produced
        for i in range(5000):
            produced += 1
            # never more than (2 * concurrency + 1) batches read ahead of what was sent
            assert produced - sum(len(b) for b in send.batches) <= (2 * 2 + 2) * 100
            yield {"_user_id": f"u{i}"}

    report = await run_ingest(send, source(), kind="contacts", concurrency=2)
    accounted(report, 5000)
    assert report.accepted == 5000 and report.ok
    assert send.max_in_flight <= 2


async def test_a_batch_that_fails_after_retries_is_reported_failed_with_the_reason() -> None:
    calls = 0

    async def send(body: bytes, idempotent: bool, stats: RequestStats) -> Response:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise errors.ServerError(503, "Service Unavailable", None, None, "POST", "/x")
        items = orjson.loads(body)
        return response(202, documented(items, lambda i: False))

    report = await run_ingest(send, contacts(300), kind="contacts", concurrency=1)
    accounted(report, 300)
    assert [f.position for f in report.failed] == list(range(100, 200))
    assert "503" in report.failed[0].reason
    assert report.failed[0].item == {"_user_id": "u100", "_email": "u100@example.com"}


async def test_a_400_rejects_the_batch_with_the_server_message() -> None:
    async def send(body: bytes, idempotent: bool, stats: RequestStats) -> Response:
        raise errors.BadRequestError(400, "Body should be an array", None, None, "POST", "/x")

    report = await run_ingest(send, contacts(5), kind="contacts")
    accounted(report, 5)
    assert len(report.rejected) == 5
    assert all(r.errors == {"_": ["Body should be an array"]} for r in report.rejected)


async def test_an_auth_error_stops_reading_and_carries_the_partial_report() -> None:
    read = 0

    def source() -> Iterator[dict[str, Any]]:
        nonlocal read
        for i in range(100_000):
            read += 1
            yield {"_user_id": f"u{i}"}

    async def send(body: bytes, idempotent: bool, stats: RequestStats) -> Response:
        raise errors.AuthenticationError(401, "Invalid token", None, None, "POST", "/x")

    with pytest.raises(errors.AuthenticationError) as info:
        await run_ingest(send, source(), kind="contacts", concurrency=2)
    report = info.value.report  # type: ignore[attr-defined]
    assert read < 2000  # stopped reading long before the end
    accounted(report, report.total)
    assert report.accepted == 0 and len(report.failed) == report.total


async def test_an_exception_from_the_source_is_raised_with_everything_accounted() -> None:
    def source() -> Iterator[dict[str, Any]]:
        yield from ({"_user_id": f"u{i}"} for i in range(250))
        raise OSError("disk gone")

    send = Recorder()
    with pytest.raises(OSError, match="disk gone") as info:
        await run_ingest(send, source(), kind="contacts", concurrency=2)
    report = info.value.report  # type: ignore[attr-defined]
    accounted(report, 250)
    sent = sum(len(b) for b in send.batches)
    assert report.accepted == sent
    assert all("not sent" in f.reason for f in report.failed)


async def test_events_without_event_id_are_rejected_unsent_unless_opted_out() -> None:
    events = [
        {"_user_id": "u", "_event_type": "t", "_event_id": "e0"},
        {"_user_id": "u", "_event_type": "t"},
        {"_user_id": "u", "_event_type": "t", "_event_id": "e2"},
    ]
    send = Recorder()
    report = await run_ingest(send, events, kind="events")
    accounted(report, 3)
    assert [r.position for r in report.rejected] == [1]
    assert report.rejected[0].errors == {"_event_id": [MISSING_EVENT_ID]}
    assert send.batches == [[events[0], events[2]]]
    assert send.idempotent == [True]

    send = Recorder()
    report = await run_ingest(send, events, kind="events", require_event_id=False)
    assert report.accepted == 3
    assert send.idempotent == [False]  # a retry could duplicate the event without an id


async def test_positions_stay_exact_when_items_are_set_aside_mid_batch() -> None:
    events: list[Any] = [
        {
            "_user_id": "u",
            "_event_type": "t",
            "_event_id": f"e{i}",
            "_email": "x" if i == 4 else "a@b",
        }
        for i in range(6)
    ]
    events[1] = 42  # not an item at all
    events[2] = {"_user_id": "u", "_event_type": "t"}  # no _event_id
    events[3] = {"_user_id": "u", "_event_type": "t", "_event_id": "e3", "v": {1, 2}}  # not JSON
    send = Recorder(bad=lambda i: i.get("_email") == "x")
    report = await run_ingest(send, events, kind="events")
    accounted(report, 6)
    assert report.accepted == 2
    assert report.failed == []
    assert [r.position for r in report.rejected] == [1, 2, 3, 4]
    assert report.rejected[0].item == 42  # no wire form: the caller's object
    assert report.rejected[0].errors == {"_": ["not a mapping or a model: int"]}
    assert report.rejected[1].errors == {"_event_id": [MISSING_EVENT_ID]}
    assert report.rejected[2].errors["_"][0].startswith("cannot be sent as JSON")
    assert report.rejected[3].item == events[4]  # as sent
    assert report.rejected[3].errors == {"_email": ["Invalid format"]}
    assert [b[0]["_event_id"] for b in send.batches] == ["e0"]
    assert [i["_event_id"] for i in send.batches[0]] == ["e0", "e4", "e5"]


async def test_models_are_converted_and_rejections_report_the_item_as_sent() -> None:
    models = [Event(user_id="u", event_id=f"e{i}", event_type="t") for i in range(3)]
    send = Recorder(bad=lambda i: i["_event_id"] == "e1")
    report = await run_ingest(send, models, kind="events")
    assert send.batches[0][0] == {"_user_id": "u", "_event_id": "e0", "_event_type": "t"}
    # The caller's objects are let go once a batch is encoded: the report holds the wire form.
    assert report.rejected[0].item == {"_user_id": "u", "_event_id": "e1", "_event_type": "t"}
    assert report.rejected[0].position == 1


async def test_a_batch_is_encoded_when_cut_so_later_item_changes_are_not_sent() -> None:
    send = Recorder()
    first = {"_user_id": "u0", "_email": "before@example.com"}

    def source() -> Iterator[dict[str, Any]]:
        yield first
        for i in range(1, 150):
            if i == 101:  # the first batch was cut at item 100 and is not sent yet
                first["_email"] = "after@example.com"
            yield {"_user_id": f"u{i}", "_email": "a@b"}

    report = await run_ingest(send, source(), kind="contacts", concurrency=1)
    assert report.accepted == 150
    assert send.batches[0][0] == {"_user_id": "u0", "_email": "before@example.com"}


async def test_rejected_models_and_their_dead_letters_hold_what_was_sent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dead.ndjson"
    date = dt.datetime(2024, 5, 1, 10, 20, 30, 120000, tzinfo=dt.timezone.utc)
    models = [
        Event(user_id="u", event_id=f"e{i}", event_type="t", event_date=date) for i in range(3)
    ]
    send = Recorder(bad=lambda i: i["_event_id"] == "e2")
    report = await run_ingest(send, models, kind="events", dead_letter=path)
    assert report.accepted == 2
    sent = {
        "_user_id": "u",
        "_event_id": "e2",
        "_event_type": "t",
        "_event_date": "2024-05-01T10:20:30.120Z",
    }
    assert report.rejected[0].item == sent
    (line,) = path.read_bytes().splitlines()
    assert orjson.loads(line)["item"] == sent


async def test_dead_letter_file_holds_rejected_and_failed_items(tmp_path: Path) -> None:
    path = tmp_path / "dead.ndjson"
    calls = 0

    async def send(body: bytes, idempotent: bool, stats: RequestStats) -> Response:
        nonlocal calls
        calls += 1
        items = orjson.loads(body)
        if calls == 1:
            raise errors.APIConnectionError("connection reset")
        return response(202, documented(items, lambda i: "@" not in i["_email"]))

    report = await run_ingest(send, contacts(150), kind="contacts", concurrency=1, dead_letter=path)
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert len(lines) == len(report.failed) + len(report.rejected) == 100 + 7
    failed = [x for x in lines if x["reason"] is not None]
    rejected = [x for x in lines if x["errors"] is not None]
    assert failed[0] == {
        "position": 0,
        "line": None,
        "status": None,
        "errors": None,
        "reason": "connection reset",
        "item": {"_user_id": "u0", "_email": "broken"},
    }
    assert rejected[0]["errors"] == {"_email": ["Invalid format"]}
    assert rejected[0]["status"] == 202
    assert rejected[0]["reason"] is None
    assert rejected[0]["item"]["_user_id"] == "u105"


async def test_progress_callback_sees_running_counts_and_its_errors_are_contained() -> None:
    seen: list[int] = []

    def progress(report: Any) -> None:
        seen.append(report.done)
        if len(seen) == 2:
            raise RuntimeError("bad callback")

    report = await run_ingest(
        Recorder(), contacts(350), kind="contacts", concurrency=1, on_progress=progress
    )
    assert report.accepted == 350
    assert seen[:4] == [100, 200, 300, 350]


async def test_cancellation_lets_in_flight_batches_finish_and_accounts_for_the_rest() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def send(body: bytes, idempotent: bool, stats: RequestStats) -> Response:
        started.set()
        await release.wait()
        return response(202, documented(orjson.loads(body), lambda i: False))

    def source() -> Iterator[dict[str, Any]]:
        for i in range(10_000):
            yield {"_user_id": f"u{i}"}

    task = asyncio.ensure_future(run_ingest(send, source(), kind="contacts", concurrency=2))
    await started.wait()
    task.cancel()
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError) as info:
        await task
    report = report_of(info.value)  # Python 3.10: a new CancelledError
    assert report is not None
    accounted(report, report.total)
    assert report.accepted == 200  # the two in-flight batches finished
    assert report.total < 10_000
    assert all("not sent" in f.reason for f in report.failed)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"concurrency": 0}, "concurrency must be a positive integer"),
        ({"batch_size": 101}, "batch_size must be an integer from 1 to 100"),
    ],
)
async def test_bad_arguments_are_named(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        await run_ingest(Recorder(), [], kind="contacts", **kwargs)


async def test_a_string_is_not_a_source() -> None:
    with pytest.raises(TypeError, match="source must be an iterable"):
        await run_ingest(Recorder(), "contacts.ndjson", kind="contacts")


async def test_a_second_cancellation_stops_in_flight_batches_and_reports_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = asyncio.Event()

    async def send(body: bytes, idempotent: bool, stats: RequestStats) -> Response:
        started.set()
        await asyncio.Event().wait()  # never answers
        raise AssertionError("unreachable")

    task = asyncio.ensure_future(run_ingest(send, contacts(1000), kind="contacts", concurrency=2))
    await started.wait()
    task.cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as info:
        await task
    report = report_of(info.value)  # Python 3.10: a new CancelledError
    assert report is not None
    accounted(report, report.total)
    in_flight = [f for f in report.failed if "in flight" in f.reason]
    assert len(in_flight) == 200
    gc.collect()
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


@pytest.mark.parametrize("call", ["ingest", "add", "upsert"])
async def test_a_client_without_a_project_refuses_before_reading_anything(call: str) -> None:
    from instasent_async import Instasent

    read: list[int] = []

    def source() -> Iterator[dict[str, Any]]:
        for i in range(3):
            read.append(i)
            yield {"_user_id": f"u{i}", "_event_id": f"e{i}", "_event_type": "x"}

    async with Instasent("tok", base_url="http://127.0.0.1:9/v1") as client:
        ds = client.datasource("ds_1")
        if call == "ingest":
            pending = ds.events.ingest(source())
        elif call == "add":
            pending = ds.events.add(list(source()))
        else:
            pending = ds.contacts.upsert([{"_user_id": "u1"}])
        with pytest.raises(errors.ConfigurationError, match="needs a project"):
            await pending
    # ingest() never started reading its source (add() got a list built beforehand).
    assert read == ([0, 1, 2] if call == "add" else [])
