"""When going on cannot help, ingest stops reading and raises with the partial report.

The server gone (FakeInstasent stopped mid-run, then a resume that sends exactly
the rest), a closed client, a failing token provider, a token the wire cannot
carry: each stops at once, with ``.report`` and no flood of tracebacks.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from instasent_async import (
    APIConnectionError,
    ConfigurationError,
    Instasent,
    RateLimitError,
    RetryPolicy,
    bulk,
)
from instasent_async._http.transport import RequestStats, Response
from instasent_async.bulk import run_ingest
from instasent_async.testing import FakeInstasent

FAST_RETRY = RetryPolicy(max_attempts=2, backoff_base=0.001, backoff_max=0.002)


def event(i: int) -> dict[str, Any]:
    return {"_user_id": f"u{i % 7}", "_event_id": f"ev-{i}", "_event_type": "page_view"}


async def test_the_server_gone_mid_run_stops_the_run_and_a_resume_sends_exactly_the_rest(
    tmp_path: Path,
) -> None:
    n = 3000
    dead = tmp_path / "dead.ndjson"
    fake = FakeInstasent()
    await fake.start()
    try:

        async def source() -> AsyncIterator[dict[str, Any]]:
            for i in range(n):
                if i == 1000:
                    await fake.close()  # the server goes away 1000 records in
                yield event(i)

        async with Instasent(
            fake.product_token, project="proj_demo", base_url=fake.base_url, retry=FAST_RETRY
        ) as client:
            events = client.datasource("ds_demo").events
            with pytest.raises(APIConnectionError, match="unreachable") as info:
                await events.ingest(
                    source(), concurrency=2, dead_letter=dead, unreachable_batches=3
                )
        report = info.value.report  # type: ignore[attr-defined]
        assert report.total < n  # reading stopped
        assert report.accepted + report.rejected_count + report.failed_count == report.total
        assert report.consumed == report.total
        assert report.failed_count > 0 and report.rejected_count == 0
        stored = {e["_event_id"] for e in fake.events()}
        assert len(stored) == report.accepted
        dead_items = [orjson.loads(line)["item"] for line in dead.read_bytes().splitlines()]
        assert len(dead_items) == report.failed_count

        # Resume: skip what was consumed, resend the dead letter; the server is back.
        await fake.start()
        async with Instasent(
            fake.product_token, project="proj_demo", base_url=fake.base_url
        ) as client:
            events = client.datasource("ds_demo").events
            rest = await events.ingest(event(i) for i in range(report.consumed, n))
            resent = await events.add(dead_items)
        assert rest.ok and resent.ok
        assert rest.total == n - report.consumed  # exactly the records never read
        assert resent.total == report.failed_count
        stored_ids = [e["_event_id"] for e in fake.events()]
        assert sorted(stored_ids) == sorted(f"ev-{i}" for i in range(n))  # each once
    finally:
        await fake.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _ok(body: bytes) -> Response:
    answers = [{"status": "success"} for _ in orjson.loads(body)]
    raw = orjson.dumps({"entity": {"items": answers}})
    return Response(202, CIMultiDictProxy(CIMultiDict()), raw)


async def test_the_run_stops_once_the_api_was_unreachable_for_the_configured_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(bulk, "_clock", clock)
    sends: list[float] = []
    read = 0

    async def send(*, body: bytes, idempotent: bool, stats: RequestStats) -> Response:
        sends.append(clock.now)
        clock.now += 5.0  # every batch spends 5 s failing to connect
        if len(sends) == 2:
            return _ok(body)  # an answer: the streak starts again after it
        raise APIConnectionError("connection refused")

    def source() -> Iterator[dict[str, Any]]:
        nonlocal read
        for i in range(100_000):
            read += 1
            yield event(i)

    with pytest.raises(APIConnectionError) as info:
        await run_ingest(send, source(), kind="events", concurrency=1, unreachable_for=12.0)
    # Batch 1 fails (5 s), batch 2 answers, then 3 and 4 fail (10 s), 5 fails at 15 s >= 12.
    assert sends == [0.0, 5.0, 10.0, 15.0, 20.0]
    assert "unreachable for 15.0 s (3 batch(es) in a row" in str(info.value)
    assert isinstance(info.value.__cause__, APIConnectionError)
    report = info.value.report  # type: ignore[attr-defined]
    assert report.accepted == 100
    assert report.total == read < 1000  # at most a queued batch and a pending one beyond
    assert report.failed_count == report.total - 100
    assert report.consumed == report.total
    not_sent = [f for f in report.failed if f.reason.startswith("not sent")]
    assert len(not_sent) == report.total - 500


async def test_unreachable_limits_can_be_switched_off() -> None:
    calls = 0

    async def send(*, body: bytes, idempotent: bool, stats: RequestStats) -> Response:
        nonlocal calls
        calls += 1
        raise APIConnectionError("connection refused")

    report = await run_ingest(
        send,
        (event(i) for i in range(2000)),
        kind="events",
        concurrency=2,
        unreachable_for=None,
        unreachable_batches=None,
    )
    assert calls == 20
    assert report.failed_count == 2000


async def test_a_closed_client_stops_at_once_with_the_report(
    fake_instasent: FakeInstasent, caplog: pytest.LogCaptureFixture, counting_source: Any
) -> None:
    source = counting_source(5000, event)

    client = Instasent(
        fake_instasent.product_token, project="proj_demo", base_url=fake_instasent.base_url
    )
    events = client.datasource("ds_demo").events
    await client.close()
    with pytest.raises(ConfigurationError, match="closed") as info:
        await events.ingest(source, concurrency=2)
    report = info.value.report  # type: ignore[attr-defined]
    assert source.read <= 600  # a handful of batches, not the whole source
    assert report.total == source.read == report.failed_count == report.consumed
    assert fake_instasent.request_count == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("provider_result", "match"),
    [
        (RuntimeError("vault unreachable"), "RuntimeError: vault unreachable"),
        ("tok\r\nX-Injected: 1", "line break"),
    ],
    ids=["raises", "crlf"],
)
async def test_a_bad_token_provider_stops_at_once_with_the_report(
    fake_instasent: FakeInstasent,
    caplog: pytest.LogCaptureFixture,
    counting_source: Any,
    provider_result: Any,
    match: str,
) -> None:
    source = counting_source(5000, event)

    async def token() -> str:
        if isinstance(provider_result, Exception):
            raise provider_result
        return str(provider_result)

    async with Instasent(token, project="proj_demo", base_url=fake_instasent.base_url) as client:
        with pytest.raises(ConfigurationError, match=match) as info:
            await client.datasource("ds_demo").events.ingest(source, concurrency=2)
    report = info.value.report  # type: ignore[attr-defined]
    assert source.read <= 600
    assert report.total == source.read == report.failed_count
    assert fake_instasent.request_count == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) <= 1  # one line saying why, not one traceback per batch


async def test_a_rate_limit_longer_than_the_client_waits_stops_the_run(
    counting_source: Any,
) -> None:
    async def send(*, body: bytes, idempotent: bool, stats: RequestStats) -> Response:
        raise RateLimitError(429, "the rate limit reopens in 300 s, beyond max_wait")

    source = counting_source(100_000, event)
    with pytest.raises(RateLimitError) as info:
        await run_ingest(send, source, kind="events", concurrency=2)
    report = info.value.report  # type: ignore[attr-defined]
    assert source.read <= 600  # not the whole source failed batch after batch
    assert report.total == source.read == report.failed_count == report.consumed
    assert "beyond max_wait" in report.failed[0].reason
