"""Batch answers from a hostile server: nothing is counted accepted that it did not confirm.

Each case runs ``events.ingest`` against a loopback aiohttp server that answers
every batch with one bad answer, and checks that every item read is accounted
for (accepted + rejected + failed == input) and that only what the server said
succeeded is counted accepted.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp import web

from instasent_async import Instasent, RetryPolicy

N = 250  # three batches: 100, 100, 50


def events(n: int = N) -> list[dict[str, Any]]:
    return [
        {"_user_id": f"u{i}", "_event_id": f"e{i}", "_event_type": "page_view"} for i in range(n)
    ]


async def ingest(url: str, **options: Any) -> Any:
    retry = RetryPolicy(max_attempts=1)
    async with Instasent("tok", project="p", base_url=url, retry=retry, rate_limit=None) as client:
        return await client.datasource("ds").events.ingest(events(), **options)


def accounted(report: Any) -> None:
    assert report.accepted + report.rejected_count + report.failed_count == N == report.total
    assert report.consumed == N


def answering(status: int, body: bytes, content_type: str = "application/json") -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, content_type=content_type)

    return handler


@pytest.mark.parametrize(
    ("body", "content_type", "seen"),
    [
        (b'{"error": "Internal server error"}', "application/json", "Internal server error"),
        (b'{"message": "Database unavailable, nothing stored"}', "application/json", "nothing"),
        (b'{"status": "error"}', "application/json", '"status":"error"'),
        (b'{"entity": null}', "application/json", '{"entity":null}'),
        (b"<html><body>502 Bad Gateway</body></html>", "text/html", "502 Bad Gateway"),
        (b'{"entity": {"successful": 100, "failed": 0, "it', "application/json", "successful"),
        (b'{"success": true}', "application/json", '{"success":true}'),
        (b"", "application/json", "empty body"),
    ],
    ids=["error", "message", "status-error", "entity-null", "html", "truncated", "bare", "empty"],
)
async def test_a_2xx_that_does_not_say_success_fails_every_item(
    scripted: Any, body: bytes, content_type: str, seen: str
) -> None:
    scripted.handler = answering(200, body, content_type)
    report = await ingest(scripted.url)
    accounted(report)
    assert report.accepted == 0
    assert report.rejected_count == 0
    assert report.failed_count == N
    assert not report.ok
    reason = report.failed[0].reason
    assert reason.startswith("outcome unknown: the server answered 200")
    assert seen in reason  # the reason carries an excerpt of the body
    assert report.failed[0].item == events()[0]  # as sent


async def test_an_empty_202_accepts_the_batch(scripted: Any) -> None:
    scripted.handler = answering(202, b"")
    report = await ingest(scripted.url)
    accounted(report)
    assert report.accepted == N and report.ok


async def test_per_item_answers_for_some_items_leave_the_rest_failed(scripted: Any) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        items = orjson.loads(await request.read())
        half = items[: len(items) // 2]
        answers = [{"status": "success", "_event_id": i["_event_id"]} for i in half]
        # The totals say only the mentioned half succeeded.
        body = {"entity": {"successful": len(half), "items": answers}}
        return web.json_response(body, status=202)

    scripted.handler = handler
    report = await ingest(scripted.url)
    accounted(report)
    assert report.accepted == 125
    assert report.failed_count == 125
    unmentioned = [*range(50, 100), *range(150, 200), *range(225, 250)]
    assert [f.position for f in report.failed] == unmentioned
    assert report.failed[0].reason.startswith(
        "outcome unknown: the server answered 202 without saying whether this item was accepted"
    )


async def test_totals_that_prove_the_rest_accepted_are_believed(scripted: Any) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        items = orjson.loads(await request.read())
        answers = [{"status": "error", "_event_id": items[0]["_event_id"], "errors": ["bad"]}]
        body = {"entity": {"successful": len(items) - 1, "failed": 1, "items": answers}}
        return web.json_response(body, status=202)

    scripted.handler = handler
    report = await ingest(scripted.url)
    accounted(report)
    assert (report.accepted, report.rejected_count, report.failed_count) == (247, 3, 0)
    assert [r.position for r in report.rejected] == [0, 100, 200]


async def test_a_207_with_per_item_results_is_read_item_by_item(scripted: Any) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        items = orjson.loads(await request.read())
        answers = [
            {"status": "error", "errors": {"_event_type": ["unknown"]}}
            if i % 10 == 0
            else {"status": "success"}
            for i in range(len(items))
        ]
        return web.json_response({"entity": {"items": answers}}, status=207)

    scripted.handler = handler
    report = await ingest(scripted.url)
    accounted(report)
    assert report.accepted == N - 25
    assert report.rejected_count == 25
    assert report.rejected[0].errors == {"_event_type": ["unknown"]}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_never_read_as_success(scripted: Any, status: int) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": str(request.url)})

    scripted.handler = handler
    report = await ingest(scripted.url)
    accounted(report)
    assert report.accepted == 0
    assert report.failed_count == N
    assert str(status) in report.failed[0].reason


async def test_raw_bodies_are_capped_like_the_items(scripted: Any) -> None:
    scripted.handler = answering(200, b'{"unexpected": "shape"}')
    report = await ingest(scripted.url, keep_items=2)
    accounted(report)
    assert report.failed_count == N
    assert len(report.failed) == 2
    assert report.raw == [{"unexpected": "shape"}] * 2
