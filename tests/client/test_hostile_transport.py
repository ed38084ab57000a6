"""A hostile server on the wire: huge, endless, compressed and trickled bodies, garbage
status lines, a client closed mid-flight, proxies. Each ends in a documented error."""

from __future__ import annotations

import asyncio
import gzip
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from instasent_async import (
    AmbiguousOutcomeError,
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    Instasent,
    InstasentError,
    RateLimitEvent,
    ResponseTooLargeError,
    RetryPolicy,
)

TOKEN = "tok-secret-0123456789"
LIMIT = 64 * 1024
PROJECT = b'{"entity": {"uid": "proj_demo", "id": 1, "name": "Demo"}}'


def client_for(url: str, **options: Any) -> Instasent:
    options.setdefault("rate_limit", None)
    options.setdefault("retry", RetryPolicy(max_attempts=2, backoff_base=0, backoff_max=0))
    return Instasent(TOKEN, project="proj_demo", base_url=url, **options)


async def test_a_body_announced_over_the_limit_is_refused_and_not_retried(scripted: Any) -> None:
    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (LIMIT * 4), content_type="application/json")

    scripted.handler = huge
    async with client_for(scripted.url, max_response_bytes=LIMIT) as client:
        with pytest.raises(ResponseTooLargeError) as info:
            await client.project.get()
    assert info.value.limit == LIMIT and "max_response_bytes" in str(info.value)
    assert len(scripted.requests) == 1


async def test_an_endless_body_stops_at_the_limit_and_drops_the_connection(scripted: Any) -> None:
    written = 0
    total = 64 * 1024 * 1024

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal written
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b"[" + b"0," * 8191
        try:
            while written < total:
                await response.write(chunk)
                written += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up: what this test expects
        return response

    scripted.handler = endless
    async with client_for(scripted.url, max_response_bytes=LIMIT) as client:
        with pytest.raises(ResponseTooLargeError):
            await client.project.get()
    assert written < total


async def test_a_gzip_bomb_stops_at_the_limit_counted_decompressed(scripted: Any) -> None:
    bomb = gzip.compress(b"\x20" * (32 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < LIMIT  # small on the wire, 32 MiB once inflated

    async def bombing(request: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    scripted.handler = bombing
    async with client_for(scripted.url, max_response_bytes=LIMIT) as client:
        with pytest.raises(ResponseTooLargeError):
            await client.project.get()
    assert len(scripted.requests) == 1


async def test_a_compressed_body_under_the_limit_reads_as_usual(scripted: Any) -> None:
    async def zipped(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(PROJECT),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    scripted.handler = zipped
    async with client_for(scripted.url, max_response_bytes=LIMIT) as client:
        assert (await client.project.get()).uid == "proj_demo"


async def test_a_direct_sms_answered_with_a_huge_success_body_was_still_sent(
    scripted: Any,
) -> None:
    async def huge(request: web.Request) -> web.Response:
        return web.Response(status=201, body=b"y" * (LIMIT * 2), content_type="text/html")

    scripted.handler = huge
    async with client_for(scripted.url, max_response_bytes=LIMIT) as client:
        message = await client.sms.send_direct("+34600000000", "hi")
    assert message is not None and message.extra["raw_body"] == "y" * LIMIT  # cut at the limit
    assert len(scripted.requests) == 1


async def test_a_trickling_server_is_cut_by_the_attempt_deadline(scripted: Any) -> None:
    sent = 0

    async def trickle(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            for _ in range(200):  # 200 bytes, one every 20 ms: 4 s if nobody stops it
                await response.write(b" ")
                sent += 1
                await asyncio.sleep(0.02)
        except (ConnectionError, RuntimeError):
            pass
        return response

    scripted.handler = trickle
    async with client_for(scripted.url, timeout=0.3, retry=RetryPolicy.none()) as client:
        with pytest.raises(APITimeoutError, match=r"longer than 0\.3s"):
            await client.project.get()
    # A byte every 20 ms: only the deadline of the whole attempt could stop it.
    assert sent < 200


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never met")


async def test_closing_the_client_ends_every_call_in_flight_with_a_documented_error(
    scripted: Any,
) -> None:
    release = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(body=PROJECT, content_type="application/json")

    scripted.handler = held
    client = client_for(scripted.url, retry=RetryPolicy(max_attempts=4, backoff_base=0))
    calls = [asyncio.ensure_future(client.project.get()) for _ in range(20)]
    sms = asyncio.ensure_future(client.sms.send_direct("+34600000000", "hi"))
    try:
        await _until(lambda: len(scripted.requests) == 21)
        await client.close()
        results = await asyncio.gather(*calls, sms, return_exceptions=True)
    finally:
        release.set()
    for result in results[:20]:
        assert isinstance(result, (APIConnectionError, ConfigurationError)), repr(result)
        assert "closed" in str(result)
    assert isinstance(results[20], AmbiguousOutcomeError)
    assert len(scripted.requests) == 21  # nothing was retried after the close


async def test_closing_the_client_stops_a_call_waiting_to_retry(scripted: Any) -> None:
    async def down(request: web.Request) -> web.Response:
        return web.json_response({"message": "down"}, status=503)

    scripted.handler = down
    closing: list[asyncio.Task[None]] = []

    def close_when_retrying(event: RateLimitEvent) -> None:
        # Emitted before the backoff's sleep: the close runs while the call waits,
        # whatever the jitter drew.
        if event.kind == "retry" and not closing:
            closing.append(asyncio.ensure_future(client.close()))

    client = client_for(
        scripted.url,
        retry=RetryPolicy(max_attempts=5, backoff_base=0.2),
        on_event=close_when_retrying,
    )
    with pytest.raises(ConfigurationError, match="closed"):
        await client.project.get()
    await closing[0]
    assert len(scripted.requests) == 1


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[bytes], Awaitable[str]]]:
    """A TCP server on 127.0.0.1 that answers every connection with fixed bytes."""
    servers: list[asyncio.base_events.Server] = []

    async def start(answer: bytes) -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def _everything_said(exc: BaseException) -> str:
    parts = [repr(exc), str(exc), "".join(traceback.format_exception(exc))]
    cause: BaseException | None = exc
    while cause is not None:
        parts.append(repr(cause))
        cause = cause.__cause__ or cause.__context__
    return "\n".join(parts)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 9999 Nope\r\nContent-Length: 0\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000 + b"\r\nContent-Length: 2\r\n\r\n{}",
    ],
)
async def test_no_error_carries_a_cause_that_shows_the_token(
    raw_server: Callable[[bytes], Awaitable[str]], answer: bytes
) -> None:
    url = await raw_server(answer)
    async with client_for(url) as client:
        with pytest.raises(InstasentError) as info:
            await client.project.get()
    assert isinstance(info.value, APIConnectionError)
    assert TOKEN not in _everything_said(info.value)


@pytest.mark.parametrize("bad", ["tok\nen", "tök", "tok\x7f", 42, ""])
async def test_a_provider_token_that_is_not_printable_ascii_is_refused(
    scripted: Any, bad: object
) -> None:
    async def provider() -> Any:
        return bad

    async with Instasent(provider, project="proj_demo", base_url=scripted.url) as client:
        with pytest.raises(ConfigurationError, match="token provider"):
            await client.project.get()
    assert scripted.requests == []


async def test_trust_env_lets_the_session_use_the_environments_proxy(
    scripted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted.handler = lambda request: _project(request)
    proxy = scripted.url.rsplit("/v1", 1)[0]
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    async with client_for(
        "http://api.instasent.invalid/v1", allow_insecure=True, trust_env=True
    ) as client:
        assert (await client.project.get()).uid == "proj_demo"
    assert scripted.requests[0].host == "api.instasent.invalid"


async def _project(request: web.Request) -> web.Response:
    return web.Response(body=PROJECT, content_type="application/json")


async def test_without_trust_env_the_environments_proxy_is_ignored(
    scripted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = scripted.url.rsplit("/v1", 1)[0]
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    async with client_for("http://127.0.0.1:9/v1", retry=RetryPolicy.none(), timeout=2.0) as client:
        with pytest.raises(APIConnectionError):
            await client.project.get()
    assert scripted.requests == []


async def test_every_kind_of_body_gives_its_connection_back(scripted: Any) -> None:
    kinds = ["empty", "chunked", "sized"]

    async def varied(request: web.Request) -> web.StreamResponse:
        kind = kinds[len(scripted.requests) % 3]
        if kind == "empty":
            return web.Response(status=204)
        if kind == "sized":
            return web.Response(status=202, body=b"{}", content_type="application/json")
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b"{}")
        await response.write_eof()
        return response

    scripted.handler = varied
    async with client_for(scripted.url, max_connections=1) as client:
        # One connection: a body that kept it would make the next call wait forever.
        calls = [client.audience.sms_subscribe("aud-1") for _ in range(9)]
        await asyncio.wait_for(asyncio.gather(*calls), 30)
    assert len(scripted.requests) == 9
