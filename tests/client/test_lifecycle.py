"""Session lifecycle: one pool, clean close, borrowed sessions, event loops, security."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import warnings
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web

from instasent_async import ConfigurationError, Instasent
from instasent_async.errors import APITimeoutError, AuthenticationError

if TYPE_CHECKING:
    from tests.conftest import ScriptedServer

TOKEN = "secret-token-value-123"


async def test_one_session_is_shared_by_all_resources_and_siblings(
    scripted: ScriptedServer,
) -> None:
    async with Instasent(TOKEN, project="proj_demo", base_url=scripted.url) as client:
        await client.project.get()
        session = client._transport.pool.session()
        await client.audience.get("aud_1")
        sibling = client.with_options(token="other-token", project="proj_other")
        await sibling.project.get()
        assert sibling._transport.pool.session() is session
        assert sibling.governor is client.governor
        assert scripted.requests[-1].path == "/v1/project/proj_other"
        assert scripted.requests[-1].headers["Authorization"] == "Bearer other-token"
    assert session.closed


async def test_no_unclosed_session_warning_and_close_is_idempotent(
    scripted: ScriptedServer,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client = Instasent(TOKEN, project="proj_demo", base_url=scripted.url)
        await client.project.get()
        await client.close()
        await client.close()
        assert client.closed
        del client
        gc.collect()


async def test_a_closed_client_refuses_new_requests(scripted: ScriptedServer) -> None:
    client = Instasent(TOKEN, project="proj_demo", base_url=scripted.url)
    await client.close()
    with pytest.raises(ConfigurationError, match="closed"):
        await client.project.get()


async def test_borrowed_session_is_never_closed(scripted: ScriptedServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with Instasent(
            TOKEN, project="proj_demo", base_url=scripted.url, session=session
        ) as client:
            await client.project.get()
        assert not session.closed
        async with session.get(scripted.url + "/project/proj_demo") as resp:
            assert resp.status == 200


async def test_closing_a_sibling_keeps_the_pool_open(scripted: ScriptedServer) -> None:
    async with Instasent(TOKEN, project="proj_demo", base_url=scripted.url) as client:
        sibling = client.with_options(project="proj_2")
        await sibling.close()
        await client.project.get()
        assert not client.closed


def test_using_a_client_from_another_event_loop_raises_a_clear_error(
    scripted_in_thread: str,
) -> None:
    client = Instasent(TOKEN, project="proj_demo", base_url=scripted_in_thread)

    async def use() -> None:
        await client.project.get()

    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(use())
        with pytest.raises(ConfigurationError, match="another event loop"):
            asyncio.run(use())
        first.run_until_complete(client.close())
    finally:
        first.close()
    assert client.closed


@pytest.fixture
def scripted_in_thread() -> object:
    """A server running in its own thread and loop, for tests that run asyncio.run."""
    ready = threading.Event()
    state: dict[str, object] = {}

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"entity": {"uid": "proj_demo", "id": 1, "name": "Demo"}})

    def run() -> None:
        loop = asyncio.new_event_loop()
        state["loop"] = loop
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        state["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        state["runner"] = runner
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield state["url"]
    loop = state["loop"]
    assert isinstance(loop, asyncio.AbstractEventLoop)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_plain_http_is_refused_for_non_loopback_hosts() -> None:
    with pytest.raises(ConfigurationError, match="allow_insecure"):
        Instasent(TOKEN, base_url="http://api.example.com/v1")
    Instasent(TOKEN, base_url="http://api.example.com/v1", allow_insecure=True)
    Instasent(TOKEN, base_url="http://localhost:8080/v1")
    Instasent(TOKEN, base_url="http://[::1]:8080/v1")
    Instasent(TOKEN, base_url="https://api.example.com/v1")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"token": ""}, "token must not be empty"),
        ({"token": 12}, "token must be a string or an async callable"),
        ({"project": ""}, "project must be a non-empty string"),
        ({"max_connections": 0}, "max_connections must be >= 1"),
        ({"timeout": -1}, "timeout must be positive"),
        ({"rate_limit": "fast"}, "rate_limit must be"),
        ({"base_url": "ftp://x/v1"}, "absolute http"),
    ],
)
def test_bad_configuration_is_named(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"token": TOKEN, **kwargs}
    token = args.pop("token")
    with pytest.raises(ConfigurationError, match=match):
        Instasent(token, **args)  # type: ignore[arg-type]


async def test_project_operations_without_a_project_say_so(scripted: ScriptedServer) -> None:
    async with Instasent(TOKEN, base_url=scripted.url) as client:
        with pytest.raises(ConfigurationError, match="needs a project"):
            await client.project.get()


async def test_token_never_appears_in_repr_logs_or_errors(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def unauthorized(request: web.Request) -> web.Response:
        return web.json_response({"message": "Invalid token"}, status=401)

    scripted.handler = unauthorized
    caplog.set_level(logging.DEBUG)
    async with Instasent(TOKEN, project="proj_demo", base_url=scripted.url) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.project.get()
        texts = [
            repr(client),
            str(client),
            repr(client.audience),
            repr(client.datasource("ds_1")),
            repr(client._transport),
            str(info.value),
            repr(info.value),
            repr(info.value.__dict__),
        ]
    texts.extend(record.getMessage() for record in caplog.records)
    assert all(TOKEN not in text for text in texts)
    assert scripted.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(scripted.requests[0].url)


async def test_token_provider_is_read_per_request_and_again_after_a_401(
    scripted: ScriptedServer,
) -> None:
    tokens = ["old-token", "new-token"]
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return tokens[0]

    async def handler(request: web.Request) -> web.Response:
        if request.headers["Authorization"] == "Bearer old-token":
            tokens[0] = "new-token"  # the token was rotated meanwhile
            return web.json_response({"message": "revoked"}, status=401)
        return web.json_response({"entity": {"uid": "proj_demo", "id": 1, "name": "Demo"}})

    scripted.handler = handler
    async with Instasent(provider, project="proj_demo", base_url=scripted.url) as client:
        project = await client.project.get()
    assert project.uid == "proj_demo"
    assert [r.headers["Authorization"] for r in scripted.requests] == [
        "Bearer old-token",
        "Bearer new-token",
    ]
    assert calls == 2


async def test_a_401_with_an_unchanged_token_is_raised_once(scripted: ScriptedServer) -> None:
    async def provider() -> str:
        return "same-token"

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"message": "revoked"}, status=401)

    scripted.handler = handler
    async with Instasent(provider, project="proj_demo", base_url=scripted.url) as client:
        with pytest.raises(AuthenticationError, match="revoked"):
            await client.project.get()
    assert len(scripted.requests) == 1


async def test_user_agent_names_sdk_python_and_aiohttp(scripted: ScriptedServer) -> None:
    async with Instasent(TOKEN, project="proj_demo", base_url=scripted.url) as client:
        await client.project.get()
    agent = scripted.requests[0].headers["User-Agent"]
    assert agent.startswith("instasent-async/")
    assert "Python/" in agent and f"aiohttp/{aiohttp.__version__}" in agent


async def test_waiting_for_a_free_connection_counts_against_the_deadline_only(
    scripted: ScriptedServer,
) -> None:
    from instasent_async import APITimeoutError, RetryPolicy

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.1)
        return web.json_response({"entity": {"uid": "proj_demo"}})

    scripted.handler = slow
    async with Instasent(
        TOKEN,
        project="proj_demo",
        base_url=scripted.url,
        max_connections=1,
        timeout=0.25,
        attempt_timeout=30,  # the deadline set apart: timeout then bounds connecting only
    ) as client:
        # Five requests through one connection take ~0.5 s in all: longer than the
        # timeout, but connecting took far less.
        projects = await asyncio.gather(*(client.project.get() for _ in range(5)))
    assert [p.uid for p in projects] == ["proj_demo"] * 5

    async with Instasent(
        TOKEN,
        project="proj_demo",
        base_url=scripted.url,
        max_connections=1,
        timeout=0.5,  # also the deadline: the last in the queue (~0.8 s) wait longer than that
        retry=RetryPolicy.none(),
    ) as client:
        outcomes = await asyncio.gather(
            *(client.project.get() for _ in range(8)), return_exceptions=True
        )
    assert outcomes[0].uid == "proj_demo"  # type: ignore[union-attr]
    assert isinstance(outcomes[-1], APITimeoutError)


async def test_a_server_that_does_not_answer_in_time_raises_a_timeout(
    scripted: ScriptedServer,
) -> None:
    from instasent_async import APITimeoutError, RetryPolicy

    async def stuck(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    scripted.handler = stuck
    async with Instasent(
        TOKEN,
        project="proj_demo",
        base_url=scripted.url,
        timeout=0.2,
        retry=RetryPolicy(max_attempts=2, backoff_base=0.01),
    ) as client:
        with pytest.raises(APITimeoutError, match="timed out"):
            await client.project.get()
    assert len(scripted.requests) == 2  # retried once (a GET is idempotent), then gave up


async def test_max_concurrency_caps_requests_in_flight(scripted: ScriptedServer) -> None:
    in_flight = 0
    peak = 0

    async def counting(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return web.json_response({"entity": {"uid": "proj_demo"}})

    scripted.handler = counting
    async with Instasent(
        TOKEN, project="proj_demo", base_url=scripted.url, max_concurrency=3
    ) as client:
        await asyncio.gather(*(client.project.get() for _ in range(20)))
    assert peak == 3


async def test_requests_cancelled_under_max_concurrency_hold_nothing(
    scripted: ScriptedServer,
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response({"entity": {"uid": "proj_demo"}})

    scripted.handler = held
    async with Instasent(
        TOKEN, project="proj_demo", base_url=scripted.url, max_concurrency=1
    ) as client:
        in_flight = asyncio.ensure_future(client.project.get())
        await asyncio.wait_for(arrived.wait(), 5)
        queued = asyncio.ensure_future(client.project.get())
        await asyncio.sleep(0.05)  # waiting behind the cap: never sent
        for call in (queued, in_flight):
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        release.set()
        # Neither the cap's slot nor a rate-limit permit was kept by the cancelled calls.
        assert (await asyncio.wait_for(client.project.get(), 5)).uid == "proj_demo"
        assert [b.in_flight for b in client.rate_limits] == [0]
    assert len(scripted.requests) == 2


async def test_an_unexpected_error_inside_a_request_leaves_no_permit_held(
    scripted: ScriptedServer,
) -> None:
    armed = True

    async def explode(*args: object) -> None:
        if armed:
            raise RuntimeError("boom in a trace hook")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(explode)
    async with Instasent(
        TOKEN, project="proj_demo", base_url=scripted.url, trace_configs=[trace]
    ) as client:
        with pytest.raises(RuntimeError, match="boom"):
            await client.project.get()
        assert client.governor is not None
        assert [b.in_flight for b in client.rate_limits] == [0]
        armed = False
        assert (await client.project.get()).uid == "proj_demo"


async def test_a_token_with_a_line_break_is_refused_before_sending(
    scripted: ScriptedServer,
) -> None:
    async def provider() -> str:
        return "abc\r\nX-Injected: 1"

    with pytest.raises(ConfigurationError, match="line break"):
        Instasent("abc\ndef")
    async with Instasent(provider, project="proj_demo", base_url=scripted.url) as client:
        with pytest.raises(ConfigurationError, match="line break"):
            await client.project.get()
        assert all(b.in_flight == 0 for b in client.rate_limits)
    assert scripted.requests == []


async def test_closing_a_client_unregisters_its_event_callback_from_a_shared_governor(
    scripted: ScriptedServer,
) -> None:
    from instasent_async import RateLimitGovernor

    shared = RateLimitGovernor()
    seen: list[object] = []
    first = Instasent(TOKEN, base_url=scripted.url, rate_limit=shared, on_event=seen.append)
    await first.close()
    async with Instasent(TOKEN, base_url=scripted.url, rate_limit=shared):
        shared.emit(object())  # type: ignore[arg-type]
    assert seen == []


@pytest.mark.parametrize("max_concurrency", [None, 2], ids=["pool", "capped"])
async def test_siblings_with_their_own_token_agent_or_timeout_send_their_own(
    scripted: ScriptedServer, max_concurrency: int | None
) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/slow"):
            await asyncio.sleep(0.5)
        return web.json_response({"entity": {"uid": "proj_demo", "id": 1, "name": "Demo"}})

    scripted.handler = slow

    async def rotating() -> str:
        return "provided-token"

    async with Instasent(
        TOKEN, project="proj_demo", base_url=scripted.url, max_concurrency=max_concurrency
    ) as root:
        agent = root.with_options(user_agent="tenant-app/2")
        provided = root.with_options(token=rotating)
        hasty = root.with_options(project="slow", timeout=0.1)
        for client in (root, agent, provided):
            await client.project.get()
        sent = [r.headers for r in scripted.requests]
        assert [h["Authorization"] for h in sent] == [
            f"Bearer {TOKEN}",
            f"Bearer {TOKEN}",
            "Bearer provided-token",
        ]
        assert [h["User-Agent"].split("/")[0] for h in sent] == [
            "instasent-async",
            "tenant-app",
            "instasent-async",
        ]
        assert all(h["Accept"] == "application/json" for h in sent)
        # The root's 30 s is the session's default; the sibling's 0.1 s applies to it alone.
        with pytest.raises(APITimeoutError):
            await hasty.project.get()
        assert (await root.with_options(project="slow").project.get()).uid == "proj_demo"


async def test_a_borrowed_sessions_own_headers_never_replace_the_clients(
    scripted: ScriptedServer,
) -> None:
    async with (
        aiohttp.ClientSession(
            headers={"Authorization": "Bearer someone-else", "User-Agent": "theirs/1"}
        ) as session,
        Instasent(TOKEN, project="proj_demo", base_url=scripted.url, session=session) as client,
    ):
        await client.project.get()
    headers = scripted.requests[-1].headers
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["User-Agent"].startswith("instasent-async/")
