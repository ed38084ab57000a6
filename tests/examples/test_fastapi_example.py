"""examples/fastapi_app.py against the fake server, through httpx's ASGI transport."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import httpx
import pytest

from instasent_async import RetryPolicy
from instasent_async.testing import FakeInstasent


@pytest.fixture
async def fake() -> AsyncIterator[FakeInstasent]:
    async with FakeInstasent() as fake:
        yield fake


@asynccontextmanager
async def serve(example: ModuleType, **client_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The example's app, its lifespan running, behind an httpx client."""
    app = example.create_app(**client_options)
    async with app.router.lifespan_context(app):
        client = app.state.instasent
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            yield http
    assert client.closed  # the lifespan closed the one client


@pytest.fixture
def example(
    fake: FakeInstasent,
    load_example: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
) -> ModuleType:
    # Configured as in production: from the environment.
    monkeypatch.setenv("INSTASENT_TOKEN", fake.product_token)
    monkeypatch.setenv("INSTASENT_PROJECT", "proj_demo")
    monkeypatch.setenv("INSTASENT_BASE_URL", fake.base_url)
    return load_example("fastapi_app")


@pytest.fixture
async def http(example: ModuleType) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(example, retry=RetryPolicy(backoff_base=0.0, backoff_max=0.0)) as http:
        yield http


async def test_a_contact_is_written_then_returned_as_json(
    http: httpx.AsyncClient, fake: FakeInstasent
) -> None:
    posted = await http.post(
        "/contacts", json={"user_id": "u-1", "email": "a@example.com", "plan": "pro"}
    )
    assert (posted.status_code, posted.json()) == (202, {"accepted": 1})
    answer = await http.get("/contacts/u-1")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    assert body["_user_id"] == "u-1"
    assert (body["_email"], body["plan"]) == ("a@example.com", "pro")
    assert body["id"] == fake.contacts()[0]["id"]
    summary = await http.get("/contacts/u-1/summary")
    assert summary.json() == {"user_id": "u-1", "email": "a@example.com", "plan": "pro"}


async def test_sdk_errors_become_http_answers(http: httpx.AsyncClient, fake: FakeInstasent) -> None:
    missing = await http.get("/contacts/nobody")
    assert (missing.status_code, missing.json()) == (404, {"detail": "not found"})
    rejected = await http.post("/contacts", json={"user_id": "u-2", "email": "not-an-email"})
    assert rejected.status_code == 422
    assert rejected.json()["detail"] == {"rejected": {"_email": ["Invalid format"]}}
    fake.fail_next(4, 500, path_contains="/audience/user/")
    failing = await http.get("/contacts/u-1")
    assert (failing.status_code, failing.json()) == (502, {"detail": "upstream error"})


async def test_a_rate_limited_call_answers_503_with_retry_after(
    example: ModuleType, fake: FakeInstasent
) -> None:
    # One request an hour, the fake's clock just past the start of a window: after the
    # first request the window stays spent far longer than the app's max_wait (5 s).
    fake.set_rate_limit(limit=1, window=3600.0)
    now = time.time()
    fake.clock_offset = math.ceil((now + 1) / 3600) * 3600 - now + 0.001
    async with serve(example) as http:
        assert (await http.get("/contacts/u-1")).status_code == 404  # the one request
        busy = await http.get("/contacts/u-1")
    assert busy.status_code == 503
    assert 3000 < int(busy.headers["Retry-After"]) <= 3600
