"""The governor with a Redis store, end to end: a fleet of processes, a store that dies, keys."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import subprocess
import sys
import textwrap
import time
from collections import Counter
from typing import Any

import pytest

from instasent_async import Instasent, RateLimitGovernor, RetryPolicy
from instasent_async._redis_store import RedisBucketStore
from instasent_async.testing import FakeInstasent

LIMIT = 20  # per window
WINDOW = 1.0

# One process of the fleet: say "ready", read the start time, keep WORKERS calls
# going until the end, print how many calls were answered and the longest one.
FLEET_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from instasent_async import Instasent, RateLimitGovernor, RetryPolicy
    from instasent_async._redis_store import RedisBucketStore

    url, token, redis_url, duration, workers = sys.argv[1:6]

    async def main():
        store = RedisBucketStore(redis_url, prefix="fleet")
        governor = RateLimitGovernor(store=store)
        answered, longest = 0, 0.0
        async with Instasent(token, project="proj_demo", base_url=url, rate_limit=governor,
                             retry=RetryPolicy(max_attempts=50)) as client:
            await store.ping()
            print("ready", flush=True)
            start_at = float(await asyncio.to_thread(sys.stdin.readline))
            await asyncio.sleep(max(0.0, start_at - time.time()))
            end = start_at + float(duration)

            async def loop():
                nonlocal answered, longest
                while time.time() < end:
                    started = time.monotonic()
                    await client.project.get()
                    answered += 1
                    longest = max(longest, time.monotonic() - started)

            await asyncio.gather(*(loop() for _ in range(int(workers))))
        print(json.dumps({"answered": answered, "longest": longest,
                          "round_trips": store.round_trips}), flush=True)

    asyncio.run(main())
    """
)


async def run_fleet(
    fake: FakeInstasent, redis_url: str, processes: int, windows: int, workers: int
) -> tuple[float, list[dict[str, Any]]]:
    """Start the fleet on a window boundary once every process is ready."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            FLEET_WORKER,
            fake.base_url,
            fake.product_token,
            redis_url,
            str(windows * WINDOW),
            str(workers),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line.strip() == b"ready"
        start_at = math.ceil((time.time() + 0.3) / WINDOW) * WINDOW
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start_at!r}\n".encode())
            await proc.stdin.drain()
            proc.stdin.close()
        results = []
        for proc in procs:
            out, _ = await asyncio.wait_for(proc.communicate(), windows * WINDOW + 60)
            assert proc.returncode == 0
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
        return start_at, results
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_a_fleet_of_processes_shares_the_window_without_429s(redis_url: str) -> None:
    windows = 5
    async with FakeInstasent(rate_limit=LIMIT, window=WINDOW) as fake:
        start_at, results = await run_fleet(fake, redis_url, 3, windows, 4)
    ok: Counter[int] = Counter()
    refused: Counter[int] = Counter()
    for request in fake.requests:
        index = math.floor((request.time - start_at) / WINDOW)
        if 0 <= index < windows:
            (refused if request.status == 429 else ok)[index] += 1
    assert sum(refused[i] for i in range(1, windows)) == 0
    assert sum(ok.values()) >= 0.97 * LIMIT * windows
    # Every process got its share, and the store was asked far less than once a request.
    answered = [r["answered"] for r in results]
    assert min(answered) >= 0.8 * sum(answered) / len(answered)
    assert sum(r["round_trips"] for r in results) < 0.5 * sum(answered)


# -- one process: the store fails, slows down, comes back -------------------------------------


def fleet_client(fake: FakeInstasent, store: RedisBucketStore) -> Instasent:
    return Instasent(
        fake.product_token,
        project="proj_demo",
        base_url=fake.base_url,
        rate_limit=RateLimitGovernor(store=store),
        retry=RetryPolicy(max_attempts=50),
    )


async def test_a_store_killed_mid_run_costs_only_the_fallback_and_is_used_again_when_back(
    redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisBucketStore(redis_server.url, prefix="fleet", timeout=0.2)
    latencies: list[float] = []
    phase = "store"
    trips: Counter[str] = Counter()
    async with (
        FakeInstasent(rate_limit=LIMIT, window=WINDOW) as fake,
        fleet_client(fake, store) as client,
    ):
        end = time.monotonic() + 6 * WINDOW

        async def loop() -> None:
            while time.monotonic() < end:
                started = time.monotonic()
                before = store.round_trips
                await client.project.get()
                latencies.append(time.monotonic() - started)
                trips[phase] += store.round_trips - before

        with caplog.at_level(logging.WARNING, logger="instasent_async.ratelimit"):
            workers = asyncio.gather(*(loop() for _ in range(4)))
            await asyncio.sleep(2 * WINDOW)
            await asyncio.to_thread(redis_server.kill)
            phase = "down"
            await asyncio.sleep(2 * WINDOW)
            await asyncio.to_thread(redis_server.start)
            phase = "back"
            await workers
            keys = await client_keys(redis_server.url)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "unavailable" in warnings[0].getMessage()
    # Every call was answered, none waited for the dead store beyond its timeout,
    # and the store was used again once back (its keys were written anew).
    assert len(latencies) >= 5 * LIMIT
    assert max(latencies) < WINDOW + 2 * 0.2 + 0.5
    assert trips["back"] > 0
    assert any(key.startswith("fleet:rl:") for key in keys)
    refused = fake.count(status=429)
    assert refused <= 2  # at most the fallback's first guesses


async def client_keys(url: str) -> list[str]:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url, decode_responses=True)
    try:
        return [key async for key in client.scan_iter()]
    finally:
        await client.aclose()


async def test_an_unreachable_or_stalled_store_never_fails_or_stalls_a_request(
    broken_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisBucketStore(broken_redis_url, timeout=0.2)
    async with (
        FakeInstasent(rate_limit=LIMIT, window=WINDOW) as fake,
        fleet_client(fake, store) as client,
    ):
        with caplog.at_level(logging.WARNING, logger="instasent_async.ratelimit"):
            started = time.monotonic()
            results = await asyncio.gather(*(client.project.get() for _ in range(10)))
            elapsed = time.monotonic() - started
    assert len(results) == 10
    assert elapsed < 0.2 + 0.5
    assert [r.levelno for r in caplog.records].count(logging.WARNING) == 1


async def test_closing_the_client_gives_unused_permits_back(redis_url: str, redis_raw: Any) -> None:
    store = RedisBucketStore(redis_url, prefix="fleet")
    async with FakeInstasent(rate_limit=50, window=60.0) as fake:
        client = fleet_client(fake, store)
        async with client:
            await client.project.get()  # the probe
            await client.project.get()  # the first lease: a block, one used
            keys = [k async for k in redis_raw.scan_iter("fleet:rl:*") if "holders" not in k]
            assert len(keys) == 1
            left = int(await redis_raw.hget(keys[0], "left"))
            assert left < 48
        assert int(await redis_raw.hget(keys[0], "left")) == 48  # 50 - probe - one call


async def test_keys_name_the_token_by_fingerprint_hold_no_token_and_expire(
    redis_url: str, redis_raw: Any
) -> None:
    store = RedisBucketStore(redis_url, prefix="fleet")
    async with FakeInstasent(rate_limit=LIMIT, window=WINDOW) as fake:
        async with fleet_client(fake, store) as client:
            for _ in range(3):
                await client.project.get()
        token = fake.product_token
        fingerprint = fake.requests[0].token_fingerprint
    keys = [key async for key in redis_raw.scan_iter()]
    assert keys
    for key in keys:
        assert token not in key
        assert fingerprint is not None and fingerprint in key
        values = (
            await redis_raw.hgetall(key)
            if await redis_raw.type(key) == "hash"
            else {"": await redis_raw.get(key)}
        )
        assert all(token not in f"{k}{v}" for k, v in values.items())
        assert 0 < await redis_raw.pttl(key) <= (2 * WINDOW + 5 + 1) * 1000


def test_importing_the_package_does_not_import_redis() -> None:
    code = (
        "import sys, instasent_async\n"
        "assert instasent_async.RedisBucketStore.__name__ == 'RedisBucketStore'\n"
        "print('redis' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- scripted servers: what the store does with odd answers -----------------------------------

PROJECT_BODY = {"entity": {"uid": "proj_demo", "id": 1, "name": "Demo"}}


def scripted_client(url: str, store: RedisBucketStore, attempts: int = 4) -> Instasent:
    return Instasent(
        "scripted-token-0123456789",
        project="proj_demo",
        base_url=url,
        rate_limit=RateLimitGovernor(store=store),
        retry=RetryPolicy(max_attempts=attempts),
    )


async def test_answers_without_rate_limit_headers_are_not_queued_through_the_store(
    scripted: Any, redis_url: str
) -> None:
    from aiohttp import web

    in_flight = 0
    most = 0

    async def slow(request: web.Request) -> web.StreamResponse:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return web.json_response(PROJECT_BODY)

    scripted.handler = slow
    store = RedisBucketStore(redis_url, prefix="fleet")
    async with scripted_client(scripted.url, store) as client:
        await client.project.get()  # the probe: no headers, nothing to share
        await asyncio.gather(*(client.project.get() for _ in range(8)))
    assert len(scripted.requests) == 9
    assert most >= 4  # not one at a time
    assert store.round_trips <= 2  # the probe's lease and the word that it ended


async def test_a_429_seen_by_one_process_holds_every_process_until_its_retry_after(
    scripted: Any, redis_url: str, redis_raw: Any
) -> None:
    from email.utils import formatdate

    from aiohttp import web

    from instasent_async import RateLimitError

    refuse = False
    sent_at: list[float] = []

    async def limited(request: web.Request) -> web.StreamResponse:
        sent_at.append(time.monotonic())
        now = time.time()
        headers = {
            "X-RateLimit-Limit": "100",
            "X-RateLimit-Remaining": str(100 - len(sent_at)),
            "X-RateLimit-Reset": str(int(now) + 60),
            "Date": formatdate(now, usegmt=True),
        }
        if refuse:
            return web.json_response({}, status=429, headers={**headers, "Retry-After": "1"})
        return web.json_response(PROJECT_BODY, headers=headers)

    scripted.handler = limited
    first, second = (RedisBucketStore(redis_url, prefix="fleet") for _ in range(2))
    async with (
        scripted_client(scripted.url, first, attempts=1) as one,
        scripted_client(scripted.url, second) as other,
    ):
        await one.project.get()  # the probe opens the shared window
        refuse = True
        with pytest.raises(RateLimitError):
            await one.project.get()
        refused_at = sent_at[-1]
        refuse = False
        keys = [k async for k in redis_raw.scan_iter("fleet:rl:*") if "holders" not in k]
        key = keys[0]
        for _ in range(100):  # the closing script runs in the background: wait for it
            if await redis_raw.hget(key, "cu"):
                break
            await asyncio.sleep(0.01)
        call = asyncio.ensure_future(other.project.get())
        await asyncio.sleep(0.3)
        assert len(sent_at) == 2  # the other process holds its request
        await call
    # It went once the closure ended (the probe after it), not before.
    assert len(sent_at) == 3
    assert sent_at[2] - refused_at >= 0.95


async def test_a_bucket_is_shared_again_once_its_answers_carry_rate_limit_headers(
    scripted: Any, redis_url: str
) -> None:
    from email.utils import formatdate

    from aiohttp import web

    with_headers = False

    async def handler(request: web.Request) -> web.StreamResponse:
        now = time.time()
        headers = {
            "X-RateLimit-Limit": "100",
            "X-RateLimit-Remaining": "90",
            "X-RateLimit-Reset": str(int(now) + 60),
            "Date": formatdate(now, usegmt=True),
        }
        return web.json_response(PROJECT_BODY, headers=headers if with_headers else {})

    scripted.handler = handler
    store = RedisBucketStore(redis_url, prefix="fleet")
    async with scripted_client(scripted.url, store) as client:
        for _ in range(3):
            await client.project.get()
        unshared = store.round_trips
        with_headers = True
        await client.project.get()  # read by the governor alone: the headers are back
        await client.project.get()
        assert store.round_trips > unshared
    assert unshared <= 2
