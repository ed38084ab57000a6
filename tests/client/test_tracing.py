"""OpenTelemetry: one span per SDK operation, with no token and no raw id in any attribute."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from instasent_async import Instasent, NotFoundError, RetryPolicy, _tracing
from instasent_async._core.endpoints import OPERATIONS
from instasent_async._http.transport import RequestStats
from instasent_async.testing import FakeInstasent

NO_WAIT = RetryPolicy(backoff_base=0.0, backoff_max=0.0)


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Spans go to an in-memory exporter (a provider of the test's own, not the global one)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    monkeypatch.setattr(_tracing, "tracer", None)
    yield exporter
    provider.shutdown()


@pytest.fixture
async def fake() -> Any:
    async with FakeInstasent() as fake:
        yield fake


def _secrets(fake: FakeInstasent) -> list[str]:
    return [fake.product_token, "proj_demo", "ds_demo", "USER-1", "ghost", "api/v1", "127.0.0.1"]


def _check_clean(span: ReadableSpan, secrets: list[str]) -> None:
    texts = [str(value) for value in (span.attributes or {}).values()]
    texts += [span.name, str(span.status.description)]
    texts += [str(event.attributes) for event in span.events]
    for text in texts:
        for secret in secrets:
            assert secret not in text, (span.name, text)


async def test_each_operation_is_one_span_with_its_route_and_bucket(
    spans: InMemorySpanExporter, fake: FakeInstasent
) -> None:
    async with Instasent(
        fake.product_token, project="proj_demo", base_url=fake.base_url, retry=NO_WAIT
    ) as client:
        assert _tracing.tracer is not None  # a provider is configured: on
        ds = client.datasource("ds_demo")
        assert (await ds.contacts.upsert([{"_user_id": "USER-1"}])).ok
        fake.fail_next(1, 503, path_contains="/audience/user/")
        await client.audience.get_by_user_id("USER-1")
        with pytest.raises(NotFoundError):
            await client.audience.get_by_user_id("ghost")
    upsert, get, missing = spans.get_finished_spans()
    assert upsert.name == "instasent datasource.contacts.upsert"
    assert upsert.kind == trace.SpanKind.CLIENT
    assert dict(upsert.attributes or {}) == {
        "http.request.method": "POST",
        "url.template": "/project/{project}/datasource/{datasource}/stream/contacts",
        "instasent.operation": "datasource.contacts.upsert",
        "instasent.bucket": "datasource/POST stream/contacts",
        "http.response.status_code": 202,
        "instasent.retries": 0,
        "instasent.rate_limit_waits": 0,
    }
    assert get.name == "instasent audience.get_by_user_id"
    assert get.attributes is not None
    assert get.attributes["url.template"] == "/project/{project}/audience/user/{user_id}"
    assert get.attributes["instasent.bucket"] == "org/default"
    assert (get.attributes["http.response.status_code"], get.attributes["instasent.retries"]) == (
        200,
        1,
    )
    assert get.status.status_code == trace.StatusCode.UNSET
    assert missing.attributes is not None
    assert missing.attributes["http.response.status_code"] == 404
    assert missing.attributes["error.type"] == "NotFoundError"
    assert missing.status.status_code == trace.StatusCode.ERROR
    assert missing.events == ()  # the exception (its message holds the path) is not recorded
    for span in (upsert, get, missing):
        _check_clean(span, _secrets(fake))


async def test_rate_limit_waits_and_retries_are_the_operations_own(
    spans: InMemorySpanExporter,
) -> None:
    _tracing.refresh()
    stats = RequestStats()
    stats.retries, stats.rate_limit_waits = 5, 7  # counted before: not this operation's

    class Answer:
        status = 200

    async def send(op: Any, path: str, *, stats: RequestStats, scope: str) -> Answer:
        assert _tracing.inside.get()  # the transport's own call is not traced again
        stats.retries += 2
        stats.rate_limit_waits += 3
        return Answer()

    op = OPERATIONS["audience.search"]
    result = await _tracing.traced(send, op, "/project/p/audience/search", stats, scope="org")
    assert isinstance(result, Answer)
    assert not _tracing.inside.get()
    (span,) = spans.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["instasent.retries"] == 2
    assert span.attributes["instasent.rate_limit_waits"] == 3
    assert span.attributes["instasent.bucket"] == "org/search"


async def test_spans_made_during_the_request_are_its_children(
    spans: InMemorySpanExporter, fake: FakeInstasent
) -> None:
    # What aiohttp's client instrumentation does: a span per HTTP attempt from trace configs.
    async def on_start(session: Any, context: Any, params: Any) -> None:
        assert _tracing.tracer is not None
        _tracing.tracer.start_span("HTTP attempt").end()

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_start)
    async with Instasent(
        fake.product_token, project="proj_demo", base_url=fake.base_url, trace_configs=[config]
    ) as client:
        await client.project.get()
    attempt, operation = spans.get_finished_spans()
    assert operation.name == "instasent project.get"
    assert attempt.parent is not None and operation.context is not None
    assert attempt.parent.span_id == operation.context.span_id


async def test_without_a_configured_provider_nothing_is_traced(
    monkeypatch: pytest.MonkeyPatch, fake: FakeInstasent
) -> None:
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    monkeypatch.setattr(_tracing, "tracer", object())
    async with Instasent(fake.product_token, project="proj_demo", base_url=fake.base_url) as c:
        assert _tracing.tracer is None
        await c.project.get()
