"""Bounded reports, source lines, ``consumed``, and the dead letter's life cycle."""

from __future__ import annotations

import asyncio
import errno
import gc
import inspect
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from instasent_async import ConfigurationError, Event, Instasent, RetryPolicy
from instasent_async._http.transport import RequestStats, Response
from instasent_async.bulk import IngestOptions, run_ingest
from instasent_async.testing import FakeInstasent


def contact(i: int) -> dict[str, Any]:
    return {"_user_id": f"u{i}", "_email": "broken" if i % 3 == 0 else f"u{i}@example.com"}


def answer(body: bytes) -> Response:
    """202 with a per-item answer: contacts whose email has no "@" are rejected."""
    answers = [
        {"status": "success"}
        if "@" in item.get("_email", "@")
        else {"status": "error", "errors": {"_email": ["Invalid format"]}}
        for item in orjson.loads(body)
    ]
    raw = orjson.dumps({"entity": {"items": answers}})
    return Response(202, CIMultiDictProxy(CIMultiDict()), raw)


async def send(*, body: bytes, idempotent: bool, stats: RequestStats) -> Response:
    stats.requests += 1
    await asyncio.sleep(0)
    return answer(body)


async def test_kept_items_are_capped_while_counts_and_the_dead_letter_stay_exact(
    tmp_path: Path,
) -> None:
    dead = tmp_path / "dead.ndjson"
    report = await run_ingest(
        send, (contact(i) for i in range(3000)), kind="contacts", keep_items=10, dead_letter=dead
    )
    assert report.rejected_count == 1000
    assert len(report.rejected) == 10
    assert report.accepted == 2000
    assert report.done == report.total == report.consumed == 3000
    assert not report.ok
    lines = dead.read_bytes().splitlines()
    assert len(lines) == 1000
    assert sorted(orjson.loads(line)["position"] for line in lines) == list(range(0, 3000, 3))


async def test_keep_items_none_keeps_everything_and_zero_keeps_nothing() -> None:
    every = await run_ingest(
        send, [contact(i) for i in range(30)], kind="contacts", keep_items=None
    )
    assert len(every.rejected) == every.rejected_count == 10
    nothing = await run_ingest(send, [contact(i) for i in range(30)], kind="contacts", keep_items=0)
    assert nothing.rejected == [] and nothing.rejected_count == 10


async def test_locate_gives_source_lines_to_the_report_and_the_dead_letter(tmp_path: Path) -> None:
    dead = tmp_path / "dead.ndjson"
    asked: list[int] = []

    def locate(position: int) -> int:
        asked.append(position)
        return 2 * position + 5  # e.g. a file with a blank line after each record

    report = await run_ingest(
        send, [contact(i) for i in range(7)], kind="contacts", locate=locate, dead_letter=dead
    )
    assert [(r.position, r.line) for r in report.rejected] == [(0, 5), (3, 11), (6, 17)]
    assert sorted(asked) == [0, 3, 6]  # asked for rejected and failed items only
    lines = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert [(x["position"], x["line"], x["status"]) for x in lines] == [
        (0, 5, 202),
        (3, 11, 202),
        (6, 17, 202),
    ]
    assert "line 11" in str(report)


async def test_consumed_grows_as_a_prefix_and_ends_at_the_total() -> None:
    seen: list[int] = []
    release = asyncio.Event()
    calls = 0

    async def out_of_order(*, body: bytes, idempotent: bool, stats: RequestStats) -> Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await release.wait()  # the first batch answers last
        elif calls == 3:
            release.set()
        return answer(body)

    report = await run_ingest(
        out_of_order,
        (contact(i) for i in range(450)),
        kind="contacts",
        concurrency=3,
        batch_size=100,
        on_progress=lambda r: seen.append(r.consumed),
    )
    # Batches 2 and 3 finished first: nothing is consumed until batch 1 is.
    assert seen[:2] == [0, 0]
    assert seen == sorted(seen)
    assert seen[-1] == report.consumed == 450


async def test_a_dead_letter_that_cannot_be_written_is_refused_before_reading(
    tmp_path: Path, counting_source: Any
) -> None:
    source = counting_source(10, contact)

    for path, match in [
        (tmp_path / "missing" / "dead.ndjson", "does not exist"),
        (tmp_path, "is a directory"),
    ]:
        with pytest.raises(ConfigurationError, match=match):
            await run_ingest(send, source, kind="contacts", dead_letter=path)
    assert source.read == 0


async def test_the_dead_letter_is_created_only_when_something_goes_into_it(
    tmp_path: Path,
) -> None:
    dead = tmp_path / "dead.ndjson"
    report = await run_ingest(
        send, [{"_user_id": "a", "_email": "a@b"}], kind="contacts", dead_letter=dead
    )
    assert report.ok
    assert not dead.exists()
    await run_ingest(send, [contact(0)], kind="contacts", dead_letter=dead)
    assert len(dead.read_bytes().splitlines()) == 1


async def test_a_dead_letter_write_error_stops_the_run_with_the_report(
    counting_source: Any,
) -> None:
    source = counting_source(100_000, contact)

    # /dev/full takes the open and refuses the write (ENOSPC), like a full disk.
    with pytest.raises(OSError, match="No space left") as info:
        await run_ingest(send, source, kind="contacts", concurrency=2, dead_letter="/dev/full")
    assert info.value.errno == errno.ENOSPC
    report = info.value.report  # type: ignore[attr-defined]
    assert source.read < 2000
    # Every item read is counted once; nothing is consumed whose line is not in the file.
    total = report.accepted + report.rejected_count + report.failed_count
    assert total == report.total == source.read
    assert report.consumed == 0


async def test_a_batch_lets_go_of_the_callers_objects_once_encoded() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    refs: list[weakref.ref[Event]] = []

    async def held(*, body: bytes, idempotent: bool, stats: RequestStats) -> Response:
        started.set()
        await release.wait()
        return answer(body)

    async def models() -> AsyncIterator[Event]:
        for i in range(1000):
            model = Event(user_id="u", event_id=f"e{i}", event_type="t")
            refs.append(weakref.ref(model))
            yield model

    task = asyncio.ensure_future(run_ingest(held, models(), kind="events", concurrency=1))
    await started.wait()
    for _ in range(5):
        await asyncio.sleep(0)
    gc.disable()  # only reference counts free them: nothing waits for a collection
    try:
        # Three batches read (in flight, queued, waiting for the queue): bodies, not models.
        assert len(refs) == 300
        alive = [i for i, r in enumerate(refs) if r() is not None]
        assert alive == [299]  # the generator's own variable holds the last one
    finally:
        gc.enable()
        release.set()
    report = await task
    assert report.accepted == 1000


async def test_429_answers_are_counted_apart_from_pacing(scripted: Any) -> None:
    calls = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=429, headers={"Retry-After": "0"})
        items = orjson.loads(await request.read())
        return web.json_response(
            {"entity": {"items": [{"status": "success"} for _ in items]}}, status=202
        )

    scripted.handler = handler
    retry = RetryPolicy(backoff_base=0.001, backoff_max=0.002)
    async with Instasent("tok", project="p", base_url=scripted.url, retry=retry) as client:
        report = await client.datasource("ds").contacts.ingest([{"_user_id": "u"}])
    assert report.ok
    assert (report.rate_limited, report.retries, report.requests) == (1, 1, 2)
    assert "1 rate-limited (429)" in str(report)


async def test_upsert_add_and_ingest_share_one_contract(fake_instasent: FakeInstasent) -> None:
    events = [
        {"_user_id": "u", "_event_id": "e1", "_event_type": "page_view"},
        {"_user_id": "u", "_event_type": "page_view"},  # no _event_id
    ]
    async with Instasent(
        fake_instasent.product_token, project="proj_demo", base_url=fake_instasent.base_url
    ) as client:
        ds = client.datasource("ds_demo")
        added = await ds.events.add(events)  # rejected per item, not raised
        ingested = await ds.events.ingest(iter(events))
        upserted = await ds.contacts.upsert([contact(1), contact(3)], keep_items=0)
        with pytest.raises(TypeError, match="use ingest"):
            await ds.contacts.upsert(iter([contact(1)]))  # type: ignore[arg-type]
    for report in (added, ingested):
        assert (report.accepted, report.rejected_count) == (1, 1)
        assert report.rejected[0].position == 1
        assert list(report.rejected[0].errors) == ["_event_id"]
    assert (upserted.accepted, upserted.rejected_count, upserted.rejected) == (1, 1, [])


def test_the_shared_options_are_the_engines_own() -> None:
    # upsert/add/ingest take **IngestOptions and pass them to run_ingest: same names.
    engine = inspect.signature(run_ingest).parameters
    own = {"send", "source", "kind", "require_event_id", "batch_size"}
    assert set(IngestOptions.__annotations__) == set(engine) - own
