"""A lying server: every status and every body shape maps to a documented outcome.

Statuses that are not a success of the operation (3xx included) are errors, never
results; bodies without the operation's shape raise ``APIResponseValidationError``
(never a bare ``TypeError`` or an empty list); a direct SMS answered with success
was sent, whatever its body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from instasent_async import (
    APIResponseValidationError,
    APIStatusError,
    BadRequestError,
    Instasent,
    NotFoundError,
    RedirectError,
    ServerError,
)
from instasent_async.models import SmsMessage

TOKEN = "tok-scripted-0123456789"  # the scripted_client fixture's token too
Call = Callable[[Instasent], Awaitable[Any]]


def answering(
    status: int, body: bytes | str = b"", headers: dict[str, str] | None = None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    data = body.encode() if isinstance(body, str) else body

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=status, body=data, headers=headers, content_type="application/json"
        )

    return handler


async def _list_segments(c: Instasent) -> Any:
    return await c.segments.list()


CALLS: dict[str, Call] = {
    "sms.send_direct": lambda c: c.sms.send_direct("+34600000000", "hi"),
    "audience.delete": lambda c: c.audience.delete("aud-1"),
    "audience.email_subscribe": lambda c: c.audience.email_subscribe("aud-1"),
    "segments.list": _list_segments,
    "audience.search_by_phone": lambda c: c.audience.search_by_phone("+34600000000"),
    "project.get": lambda c: c.project.get(),
}


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("status", [301, 302, 307])
async def test_a_redirect_is_an_error_never_followed_never_a_result(
    scripted: Any, scripted_client: Instasent, name: str, status: int
) -> None:
    async def to_itself(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": str(request.url)})

    scripted.handler = to_itself
    with pytest.raises(RedirectError) as info:
        await CALLS[name](scripted_client)
    assert info.value.status == status
    location = info.value.location
    assert location is not None and location.endswith(scripted.requests[0].raw_path)
    assert len(scripted.requests) == 1  # not followed, not retried


@pytest.mark.parametrize("status", [203, 206, 299])
async def test_a_2xx_that_is_not_a_success_of_the_read_is_an_error(
    scripted: Any, scripted_client: Instasent, status: int
) -> None:
    scripted.handler = answering(status, b'{"entity": {"id": "1"}}')
    with pytest.raises(APIStatusError) as info:
        await scripted_client.sms.get("1")
    assert info.value.status == status


WRONG_ENTITIES = [
    b'{"entity": null}',
    b"42",
    b"null",
    b"",
    b"<html>oops</html>",
    b'{"entity": "text"}',
    b"[]",
    b'{"entity": {"truncated": ',
]


@pytest.mark.parametrize("body", WRONG_ENTITIES)
@pytest.mark.parametrize("call", ["project", "audience", "campaign", "datasource"])
async def test_a_get_answered_with_the_wrong_shape_raises_a_validation_error(
    scripted: Any, scripted_client: Instasent, body: bytes, call: str
) -> None:
    scripted.handler = answering(200, body)
    gets: dict[str, Call] = {
        "project": lambda c: c.project.get(),
        "audience": lambda c: c.audience.get("aud-1"),
        "campaign": lambda c: c.campaigns.get(7),
        "datasource": lambda c: c.datasource("ds_1").contacts.get("U1"),
    }
    with pytest.raises(APIResponseValidationError) as info:
        await gets[call](scripted_client)
    err = info.value
    assert err.status == 200 and err.method == "GET"
    assert "/v1" + err.path == scripted.requests[0].raw_path
    assert err.excerpt == body[:500].decode("utf-8", "replace")


WRONG_COLLECTIONS = [
    b'{"entity": null}',
    b"42",
    b"null",
    b"",
    b"{}",
    b'{"entities": "x"}',
    b'{"entities": [1, 2]}',
    b'"text"',
]


async def _first_scrolled(c: Instasent) -> Any:
    async for contact in c.audience.scroll():
        return contact
    return None


COLLECTIONS: dict[str, Call] = {
    "segments.list": _list_segments,
    "search_by_email": lambda c: c.audience.search_by_email("a@example.com"),
    "audience.search": lambda c: c.audience.search(),
    "events.search": lambda c: c.events.search(),
    "specs.attributes": lambda c: c.specs.attributes(),
    "audience.events": lambda c: c.audience.events("aud-1"),
    "audience.scroll": _first_scrolled,
}


@pytest.mark.parametrize("body", WRONG_COLLECTIONS)
@pytest.mark.parametrize("name", list(COLLECTIONS))
async def test_a_list_answered_with_the_wrong_shape_raises_instead_of_returning_nothing(
    scripted: Any, scripted_client: Instasent, body: bytes, name: str
) -> None:
    scripted.handler = answering(200, body)
    with pytest.raises(APIResponseValidationError):
        await COLLECTIONS[name](scripted_client)


async def test_an_empty_list_is_still_an_empty_list(
    scripted: Any, scripted_client: Instasent
) -> None:
    scripted.handler = answering(200, b'{"entities": []}')
    assert await scripted_client.audience.search_by_email("a@example.com") == []
    assert await scripted_client.segments.list() == []


@pytest.mark.parametrize("status", [200, 201])
@pytest.mark.parametrize("body", [b"<html>sent</html>", b'{"entity": null}', b"42", b'{"ent'])
async def test_a_direct_sms_answered_with_success_was_sent_even_if_the_body_is_unreadable(
    scripted: Any, scripted_client: Instasent, status: int, body: bytes
) -> None:
    scripted.handler = answering(status, body)
    message = await scripted_client.sms.send_direct("+34600000000", "hi")
    assert isinstance(message, SmsMessage)
    assert message.id is None
    assert message.extra == {"raw_body": body.decode()}
    assert len(scripted.requests) == 1


async def test_a_direct_sms_answered_with_no_body_returns_none(
    scripted: Any, scripted_client: Instasent
) -> None:
    scripted.handler = answering(204)
    assert await scripted_client.sms.send_direct("+34600000000", "hi") is None


@pytest.fixture
async def strict_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        yield session


async def test_a_borrowed_sessions_raise_for_status_changes_no_error(
    scripted: Any, strict_session: aiohttp.ClientSession
) -> None:
    async with Instasent(
        TOKEN, project="proj_demo", base_url=scripted.url, session=strict_session, rate_limit=None
    ) as client:
        scripted.handler = answering(404, b'{"message": "no such project"}')
        with pytest.raises(NotFoundError, match="no such project"):
            await client.project.get()
        assert len(scripted.requests) == 1  # a 404 is not retried
        assert await client.audience.search_by_email("a@example.com") == []
        scripted.handler = answering(400, b'{"message": "bad sender"}')
        with pytest.raises(BadRequestError, match="bad sender"):
            await client.sms.send_direct("+34600000000", "hi")


async def test_a_status_error_carries_headers_request_id_attempts_and_elapsed(
    scripted: Any, scripted_client: Instasent
) -> None:
    scripted.handler = answering(
        503,
        b'{"message": "down"}',
        headers={"x-request-id": "req-42", "X-Echo": f"Bearer {TOKEN}"},
    )
    with pytest.raises(ServerError) as info:
        await scripted_client.project.get()
    err = info.value
    assert (err.status, err.request_id, err.attempts) == (503, "req-42", 2)
    assert err.elapsed > 0
    assert err.headers["x-request-id"] == "req-42"
    assert "X-Echo" not in err.headers  # a header echoing the token is dropped
    text = repr(err)
    assert "request_id='req-42'" in text and "attempts=2" in text and "elapsed=" in text
    assert TOKEN not in text and TOKEN not in str(err)


async def test_a_status_error_repr_hides_credential_headers(
    scripted: Any, scripted_client: Instasent
) -> None:
    scripted.handler = answering(
        404, b"{}", headers={"Set-Cookie": "session=abc", "Request-Id": "r-1"}
    )
    with pytest.raises(NotFoundError) as info:
        await scripted_client.project.get()
    assert info.value.request_id == "r-1"
    assert "session=abc" not in repr(info.value)


async def test_json_bodies_of_other_errors_stay_readable(
    scripted: Any, scripted_client: Instasent
) -> None:
    scripted.handler = answering(422, orjson.dumps({"message": "invalid", "errors": ["x"]}))
    with pytest.raises(APIStatusError) as info:
        await scripted_client.project.get()
    assert info.value.body == {"message": "invalid", "errors": ["x"]}


async def test_the_fake_server_can_answer_a_redirect_or_a_wrong_shape(fake_instasent: Any) -> None:
    async with Instasent(
        fake_instasent.product_token,
        project="proj_demo",
        base_url=fake_instasent.base_url,
        rate_limit=None,
    ) as client:
        fake_instasent.fail_next(1, 302, body=b"")
        with pytest.raises(RedirectError):
            await client.project.get()
        fake_instasent.fail_next(1, 200, body={"entity": None})
        with pytest.raises(APIResponseValidationError):
            await client.project.get()
        fake_instasent.fail_next(1, 200, body={"message": "Database unavailable"})
        with pytest.raises(APIResponseValidationError):
            await client.segments.list()
        assert (await client.project.get()).uid == "proj_demo"
