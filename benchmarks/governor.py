"""Rate-limit behaviour against real limits: the SDK, a naive client and aiolimiter.

Starts a scripted rate-limited server in its own process (``--serve``, aiohttp on
127.0.0.1: ``GET /v1/project/{p}`` with ``X-RateLimit-*``, ``Date`` and 429s) for
each of three servers, and runs clients against it one after the other, in the same
run and each for ``--duration`` seconds starting on a window boundary:

- ``fixed``: L requests per W-second window (default 50 per 2 s);
- ``two-limiters``: 10 per second and 50 per 5 s at once; answers carry the 5 s
  window's headers, a 429 those of the limiter that refused (its own Reset);
- ``limit-change``: L per W whose limit changes between windows, L -> L/5 -> L
  (three windows each).

Clients (each process keeps ``--concurrency`` requests going with an endless
backlog): ``sdk`` (``Instasent`` with its default governor and retries), ``naive``
(raw aiohttp that fires everything and retries a 429 after exponential backoff with
full jitter, 0.1 s doubling, capped at 4 s) and ``aiolimiter`` (the raw client
behind ``AsyncLimiter(L, W)``: what a user would set from the documented limit; a
429 is retried through the limiter). The fixed server also runs the SDK and the
others in ``--processes`` (3) processes on one token.

The server counts successes and 429s by when it answered them; the table shows
successes as a share of the ideal (what the limits allow in the measured windows),
429s per success and the longest hold after a 429 (seconds from a 429 to the next
request of that process that succeeded, measured on the client). Targets for the
SDK: on ``fixed`` >= 0.98 with no 429 after the first window in 1 process, >= 0.95
and <= 0.04 429s per success in 3; on ``limit-change`` >= 0.95 with no 429 after the
first window; on ``two-limiters`` >= 0.95 and no hold longer than 2 s (the 1 s
limiter's reset, plus one second of Reset resolution). Exits with status 1 when one
is missed. About four minutes with the defaults.

    python benchmarks/governor.py
    python benchmarks/governor.py --duration 10 --servers fixed --clients sdk,naive
    python benchmarks/governor.py --store redis   # fleets on one token: benchmarks/fleet.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from pathlib import Path
from types import SimpleNamespace

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOKEN = "bench-governor-token-0123456789"
PROJECT = "proj_demo"
SERVERS = ("fixed", "two-limiters", "limit-change")
CLIENTS = ("sdk", "naive", "aiolimiter")
BODY = json.dumps({"entity": {"uid": PROJECT, "id": 1, "name": "Demo"}})
# The naive client retries a 429 after full jitter over min(cap, base * 2**attempt).
BACKOFF_BASE = 0.1
BACKOFF_CAP = 4.0


# -- the scripted server (its own process) ----------------------------------------------------


class Window:
    """One fixed-window limiter on the server's clock; ``limit_of`` may change per window."""

    def __init__(self, window: float, limit_of: Callable[[int], int]) -> None:
        self.window = window
        self.limit_of = limit_of
        self.index = -1
        self.count = 0

    def take(self, now: float) -> tuple[bool, dict[str, str]]:
        index = math.floor(now / self.window)
        if index != self.index:
            self.index, self.count = index, 0
        limit = self.limit_of(index)
        allowed = self.count < limit
        self.count += allowed
        return allowed, {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - self.count)),
            "X-RateLimit-Reset": str(math.ceil(round((index + 1) * self.window, 6))),
        }


def limiters(server: str, limit: int, window: float) -> list[Window]:
    """The limiters of a server, the one whose headers every answer carries last."""
    if server == "two-limiters":
        return [Window(1.0, lambda i: 10), Window(5.0, lambda i: 50)]
    if server == "limit-change":
        return [Window(window, lambda i: limit if (i // 3) % 2 == 0 else max(1, limit // 5))]
    return [Window(window, lambda i: limit)]


def ideal(server: str, limit: int, window: float, start: float, end: float) -> float:
    """Successes the server allows between two window boundaries."""
    if server == "two-limiters":
        return min(10 * (end - start), 50 * (end - start) / 5.0)
    (only,) = limiters(server, limit, window)
    first, last = round(start / window), round(end / window)
    return float(sum(only.limit_of(i) for i in range(first, last)))


def serve(args: argparse.Namespace) -> int:
    """Run the scripted server until SIGTERM; print its URL first."""
    chain = limiters(args.serve, args.limit, args.window)
    answered: list[tuple[float, int]] = []

    async def project(request: web.Request) -> web.Response:
        now = time.time()
        headers: dict[str, str] = {}
        status = 200
        taken: list[Window] = []
        for limiter in chain:
            allowed, headers = limiter.take(now)
            if not allowed:
                status = 429
                for earlier in taken:  # a refused request uses nothing
                    earlier.count -= 1
                break
            taken.append(limiter)
        headers["Date"] = formatdate(now, usegmt=True)
        answered.append((now, status))
        if status == 429:
            return web.Response(status=429, headers=headers)
        return web.Response(body=BODY, content_type="application/json", headers=headers)

    async def stats(request: web.Request) -> web.Response:
        start, end = float(request.query["start"]), float(request.query["end"])
        first_window_ends = float(request.query["after"])
        ok = sum(1 for t, s in answered if start <= t < end and s == 200)
        refused = [t for t, s in answered if start <= t < end and s == 429]
        after = sum(1 for t in refused if t >= first_window_ends)
        return web.json_response({"ok": ok, "refused": len(refused), "refused_after": after})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/v1/project/{p}", project)
        app.router.add_get("/stats", stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(f"listening on http://127.0.0.1:{port}/v1", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await asyncio.wait_for(stop.wait(), args.max_seconds)
        await runner.cleanup()

    with contextlib.suppress(asyncio.TimeoutError):
        asyncio.run(main())
    return 0


# -- client processes ---------------------------------------------------------------------------


class Holds:
    """The longest time from a 429 to the next request sent that succeeded, per process."""

    def __init__(self) -> None:
        self.refused_at: float | None = None
        self.longest = 0.0

    def sent(self) -> float:
        return time.monotonic()

    def answered(self, sent_at: float, status: int) -> None:
        now = time.monotonic()
        if status == 429:
            if self.refused_at is None:
                self.refused_at = now
        elif status < 400 and self.refused_at is not None and sent_at >= self.refused_at:
            self.longest = max(self.longest, sent_at - self.refused_at)
            self.refused_at = None


async def _run_until(end: float, workers: list[Callable[[], Awaitable[None]]]) -> None:
    tasks = [asyncio.create_task(w()) for w in workers]
    try:
        await asyncio.sleep(max(0.0, end - time.time()))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def worker_sdk(args: argparse.Namespace, holds: Holds) -> None:
    from instasent_async import Instasent, InstasentError, RetryPolicy

    async def on_start(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        ctx.sent_at = holds.sent()

    async def on_end(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        holds.answered(ctx.sent_at, params.response.status)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    end = args.start_at + args.duration
    async with Instasent(
        args.token,
        project=PROJECT,
        base_url=args.url,
        trace_configs=[trace],
        retry=RetryPolicy(max_attempts=20),
    ) as client:
        await asyncio.sleep(max(0.0, args.start_at - time.time()))

        async def loop() -> None:
            while time.time() < end:
                try:
                    await client.project.get()
                except InstasentError:
                    await asyncio.sleep(0.01)

        await _run_until(end, [loop] * args.concurrency)


async def worker_raw(args: argparse.Namespace, holds: Holds, *, limited: bool) -> None:
    limiter = None
    if limited:
        from aiolimiter import AsyncLimiter

        limit, window = (50, 5.0) if args.server == "two-limiters" else (args.limit, args.window)
        limiter = AsyncLimiter(limit, window)
    url = f"{args.url}/project/{PROJECT}"
    headers = {"Authorization": f"Bearer {args.token}", "Accept": "application/json"}
    end = args.start_at + args.duration
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.sleep(max(0.0, args.start_at - time.time()))

        async def send() -> int:
            sent_at = holds.sent()
            async with session.get(url, headers=headers) as resp:
                await resp.read()
            holds.answered(sent_at, resp.status)
            return resp.status

        async def loop() -> None:
            while time.time() < end:
                attempt = 0
                while time.time() < end:
                    try:
                        if limiter is not None:
                            async with limiter:
                                status = await send()
                        else:
                            status = await send()
                    except aiohttp.ClientError:
                        status = 0
                    if status != 429:
                        break
                    if limiter is not None:
                        continue  # the limiter is the pacing: retry through it
                    attempt += 1
                    cap = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
                    await asyncio.sleep(random.uniform(0, cap))

        await _run_until(end, [loop] * args.concurrency)


def worker_main(args: argparse.Namespace) -> int:
    holds = Holds()
    if args.worker == "sdk":
        coro = worker_sdk(args, holds)
    else:
        coro = worker_raw(args, holds, limited=args.worker == "aiolimiter")
    asyncio.run(coro)
    print(json.dumps({"hold": holds.longest}), flush=True)
    return 0


# -- the harness ------------------------------------------------------------------------------


def start_server(server: str, args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve", server]
    argv += ["--limit", str(args.limit), "--window", str(args.window)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError("the scripted server did not start")
    return proc, line.rsplit(" ", 1)[-1].strip()


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def run_clients(
    server: str, client: str, processes: int, url: str, args: argparse.Namespace
) -> dict[str, float]:
    """Start ``processes`` clients on the next boundary of every window; return the figures."""
    period = (
        5.0 if server == "two-limiters" else args.window * (6 if server == "limit-change" else 1)
    )
    lead = 1.5 + 0.4 * processes  # time for the workers to import and connect
    start_at = math.ceil((time.time() + lead) / period) * period
    duration = max(period, math.floor(args.duration / period) * period)
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", client]
    argv += ["--url", url, "--token", TOKEN, "--server", server]
    argv += ["--start-at", repr(start_at), "--duration", str(duration)]
    argv += ["--limit", str(args.limit), "--window", str(args.window)]
    argv += ["--concurrency", str(args.concurrency)]
    procs = [
        subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    holds = []
    for proc in procs:
        out, _ = proc.communicate(timeout=lead + duration + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"a {client} worker failed with status {proc.returncode}")
        holds.append(json.loads(out.strip().splitlines()[-1])["hold"])
    first_window = 5.0 if server == "two-limiters" else args.window
    query = f"start={start_at}&end={start_at + duration}&after={start_at + first_window}"
    stats_url = url.rsplit("/v1", 1)[0] + f"/stats?{query}"

    async def fetch() -> dict[str, int]:
        async with aiohttp.ClientSession() as session, session.get(stats_url) as resp:
            result: dict[str, int] = await resp.json()
            return result

    counted = asyncio.run(fetch())
    allowed = ideal(server, args.limit, args.window, start_at, start_at + duration)
    return {
        "share": counted["ok"] / allowed,
        "refused_per_ok": counted["refused"] / max(1, counted["ok"]),
        "refused_after": counted["refused_after"],
        "ok": counted["ok"],
        "refused": counted["refused"],
        "hold": max(holds),
    }


def plan(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    runs = []
    for server in servers:
        for client in clients:
            runs.append((server, client, 1))
            if server == "fixed" and args.processes > 1:
                runs.append((server, client, args.processes))
    return [r for r in runs if not (r[1] != "sdk" and r[2] == 1 and r[0] == "fixed")]


def check(rows: list[tuple[str, str, int, dict[str, float]]]) -> list[str]:
    missed = []
    for server, client, processes, s in rows:
        if client != "sdk":
            continue
        name = f"{server}/sdk x{processes}"
        target = 0.98 if server == "fixed" else 0.95
        alone = server in ("fixed", "limit-change") and processes == 1
        if alone and (s["share"] < target or s["refused_after"] > 0):
            missed.append(
                f"{name}: want >= {target} of the ideal and no 429 after the first window"
            )
        if (
            server == "fixed"
            and processes > 1
            and (s["share"] < 0.95 or s["refused_per_ok"] > 0.04)
        ):
            missed.append(f"{name}: want >= 0.95 of the ideal and <= 0.04 429s per success")
        if server == "two-limiters" and (s["share"] < 0.95 or s["hold"] > 2.0):
            missed.append(f"{name}: want >= 0.95 of the ideal and no hold beyond 2 s")
    return missed


def main(argv: list[str] | None = None) -> int:
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", choices=("redis",))
    chosen, rest = store.parse_known_args(argv)
    if chosen.store == "redis":
        from fleet import main as fleet_main  # the fleet benchmark takes the other options

        return fleet_main(rest)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    parser.add_argument("--limit", type=int, default=50, help="requests per window (L)")
    parser.add_argument("--window", type=float, default=2.0, help="window in seconds (W)")
    parser.add_argument("--processes", type=int, default=3, help="processes on one token")
    parser.add_argument("--concurrency", type=int, default=100, help="requests per process")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated")
    parser.add_argument(
        "--store", choices=("redis",), help="run benchmarks/fleet.py (RedisBucketStore) instead"
    )
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--max-seconds", type=float, default=3600.0, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--server", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args)
    if args.worker:
        return worker_main(args)
    if args.window != int(args.window):
        parser.error("--window must be whole seconds (the Reset header has 1 s resolution)")
    for name, known in (("servers", SERVERS), ("clients", CLIENTS)):
        unknown = {s.strip() for s in getattr(args, name).split(",")} - set(known) - {""}
        if unknown:
            parser.error(f"unknown {name}: {', '.join(sorted(unknown))}")
    print(
        f"L={args.limit} per {args.window:g} s (two-limiters: 10 per 1 s and 50 per 5 s), "
        f"{args.duration:g} s per run, {args.concurrency} requests going per process, "
        f"cpus={os.cpu_count()}"
    )
    rows = []
    for server in dict.fromkeys(s for s, _, _ in plan(args)):
        proc, url = start_server(server, args)
        try:
            for _, client, processes in [r for r in plan(args) if r[0] == server]:
                stats = run_clients(server, client, processes, url, args)
                rows.append((server, client, processes, stats))
                print(
                    f"  {server} {client} x{processes}: {stats['ok']} ok, {stats['refused']} 429",
                    flush=True,
                )
        finally:
            stop_server(proc)
    print()
    header = (
        f"{'server':<14}{'client':<12}{'procs':>6}{'share of ideal':>16}{'429/success':>13}"
        f"{'429 after 1st':>15}{'longest hold after 429':>24}"
    )
    print(header)
    print("-" * len(header))
    for server, client, processes, s in rows:
        print(
            f"{server:<14}{client:<12}{processes:>6}{s['share']:>16.3f}"
            f"{s['refused_per_ok']:>13.3f}{s['refused_after']:>15d}{s['hold']:>22.2f} s"
        )
    missed = check(rows)
    for line in missed:
        print(f"MISSED {line}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
