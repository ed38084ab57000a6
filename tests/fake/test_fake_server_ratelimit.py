"""Fixed-window rate limits: buckets, headers, 429 bodies and the offset clock."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from instasent_async.testing import UNLIMITED, FakeInstasent

if TYPE_CHECKING:
    from tests.fake.conftest import Client

P = "/project/proj_demo"
DS = P + "/datasource/ds_demo"
OTHER_DS = P + "/datasource/ds_other"


def align_to_window_start(fake: FakeInstasent, window: float) -> float:
    """Move the fake's clock just past a window boundary; return that window's start.

    The test then has almost a whole window before the next boundary, so counting
    requests never races a window change.
    """
    now = time.time()
    start = math.ceil((now + 1.0) / window) * window
    fake.clock_offset = start - now + 0.001
    return start


WINDOW = 60.0


@pytest.fixture
async def limited() -> AsyncIterator[FakeInstasent]:
    async with FakeInstasent(rate_limit=3, window=WINDOW) as server:
        yield server


@pytest.fixture
async def api(limited: FakeInstasent, client_for: type[Client]) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield client_for(session, limited)


def limits(reply_headers: dict[str, str]) -> tuple[int, int, int]:
    return (
        int(reply_headers["X-RateLimit-Limit"]),
        int(reply_headers["X-RateLimit-Remaining"]),
        int(reply_headers["X-RateLimit-Reset"]),
    )


async def test_product_requests_count_down_then_429_with_a_message(
    limited: FakeInstasent, api: Client
) -> None:
    start = align_to_window_start(limited, WINDOW)
    reset = int(start + WINDOW)
    seen = [limits((await api.get(P)).headers) for _ in range(3)]
    assert seen == [(3, 2, reset), (3, 1, reset), (3, 0, reset)]
    refused = await api.get(P + "/segment")  # same "default" class bucket
    assert refused.status == 429
    assert refused.json == {"message": "You exceeded the rate limit"}
    assert limits(refused.headers) == (3, 0, reset)
    assert float(refused.headers["X-RateLimit-Reset-Precise"]) == pytest.approx(start + WINDOW)
    # Other classes have their own budget.
    assert (await api.post(P + "/audience/search", {})).status == 200
    assert (await api.post(P + "/audience/scroll", {})).status == 200
    # The next window starts afresh.
    limited.clock_offset += WINDOW
    again = await api.get(P)
    assert again.status == 200
    assert limits(again.headers) == (3, 2, reset + int(WINDOW))


async def test_ingest_429_has_an_empty_body_and_buckets_are_per_endpoint(
    limited: FakeInstasent, api: Client, event: Callable[..., dict[str, Any]]
) -> None:
    align_to_window_start(limited, WINDOW)
    for i in range(3):
        assert (await api.add_events(event(f"e{i}"))).status == 202
    refused = await api.add_events(event("e-refused"))
    assert (refused.status, refused.body) == (429, b"")
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    # Another endpoint of the same datasource, and another datasource: fresh buckets.
    assert (await api.upsert({"_user_id": "u1"})).status == 202
    assert (await api.add_events(event("o1"), datasource=OTHER_DS)).status == 202
    # dsapi is the same datasource as ds_demo, so the same bucket.
    dsapi = P + "/datasource/dsapi/stream/events"
    assert (await api.post(dsapi, [event("e-dsapi")])).status == 429
    # The Product API default budget is separate from the datasource budgets.
    assert (await api.get(P)).status == 200
    assert len(limited.events()) == 4


async def test_tokens_of_one_organization_share_budgets(
    limited: FakeInstasent, api: Client, event: Callable[..., dict[str, Any]]
) -> None:
    align_to_window_start(limited, WINDOW)
    limited.add_project("proj_b")
    limited.add_project("proj_foreign", organization="org_foreign")
    sibling = limited.add_token(kind="product")
    foreign = limited.add_token(kind="product", organization="org_foreign")
    assert (await api.get(P)).status == 200
    assert (await api.get(P, token=sibling)).status == 200
    assert (await api.get("/project/proj_b")).status == 200
    assert (await api.get(P, token=sibling)).status == 429
    assert (await api.get("/project/proj_foreign", token=foreign)).status == 200
    # The datasource token draws from the same ingest bucket as the product token.
    for i in range(2):
        await api.add_events(event(f"e{i}"))
    await api.add_events(event("e2"), token=limited.datasource_token)
    assert (await api.add_events(event("e3"), token=limited.datasource_token)).status == 429


async def test_401_consumes_nothing_but_404_and_403_do(limited: FakeInstasent, api: Client) -> None:
    start = align_to_window_start(limited, WINDOW)
    for _ in range(5):
        denied = await api.get(P, token="bad")
        assert denied.status == 401
        assert limits(denied.headers) == (3, 3, int(start + WINDOW))
    assert (await api.get("/project/nope")).status == 404
    weak = limited.add_token(kind="product", scopes=[])
    assert (await api.get(P + "/campaign", token=weak)).status == 403
    assert (await api.get(P)).headers["X-RateLimit-Remaining"] == "0"
    assert (await api.get(P)).status == 429


async def test_set_rate_limit_per_class_and_unlimited(limited: FakeInstasent, api: Client) -> None:
    align_to_window_start(limited, WINDOW)
    limited.set_rate_limit(1, rate_class="search")
    assert (await api.post(P + "/event/search", {})).status == 200
    assert (await api.get(P + "/audience/search/email/a%40b.co")).status == 429
    limited.set_rate_limit(None)
    reply = await api.get(P + "/audience/search/phone/%2B34600000001")
    assert reply.status == 200
    assert int(reply.headers["X-RateLimit-Limit"]) == UNLIMITED
    for _ in range(5):
        assert (await api.get(P)).status == 200
    with pytest.raises(ValueError, match="rate class"):
        limited.set_rate_limit(1, rate_class="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window"):
        limited.set_rate_limit(1, 0)
    with pytest.raises(ValueError, match="rate_limit"):
        FakeInstasent(rate_limit=0)


async def test_reset_rate_limits_empties_every_bucket(limited: FakeInstasent, api: Client) -> None:
    align_to_window_start(limited, WINDOW)
    for _ in range(3):
        await api.get(P)
    assert (await api.get(P)).status == 429
    limited.reset_rate_limits()
    assert (await api.get(P)).status == 200


async def test_short_windows_round_reset_up_and_send_the_precise_end(
    client_for: type[Client],
) -> None:
    async with FakeInstasent(rate_limit=1, window=0.25) as server:
        start = align_to_window_start(server, 10.0)  # a whole second, on a 0.25 s grid
        async with aiohttp.ClientSession() as session:
            reply = await client_for(session, server).get(P)
        precise = float(reply.headers["X-RateLimit-Reset-Precise"])
        assert precise == pytest.approx(start + 0.25, abs=0.3)
        assert int(reply.headers["X-RateLimit-Reset"]) == int(start) + 1


async def test_clock_offset_moves_date_and_reset(client_for: type[Client]) -> None:
    hour = 3600.0
    async with FakeInstasent(clock_offset=hour) as server, aiohttp.ClientSession() as session:
        reply = await client_for(session, server).get(P)
    server_date = email.utils.parsedate_to_datetime(reply.headers["Date"]).timestamp()
    assert server_date == pytest.approx(time.time() + hour, abs=30)
    reset = int(reply.headers["X-RateLimit-Reset"])
    assert time.time() + hour - 1 <= reset <= time.time() + hour + WINDOW + 1
    # The reset is in the server's future as the server's own Date tells it.
    assert 0 < reset - server_date <= WINDOW + 1


async def test_every_response_carries_the_headers(limited: FakeInstasent, api: Client) -> None:
    align_to_window_start(limited, WINDOW)
    replies = [
        await api.get(P, token=None),
        await api.get("/project/nope"),
        await api.get(P + "/no/route"),
        await api.upsert({"_user_id": "u1"}),
        await api.call("DELETE", DS + "/stream/contacts/u1"),
    ]
    for reply in replies:
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Date"} <= set(
            reply.headers
        ), reply.status
