"""Fleet benchmark: many processes on one token, with the Redis store, headers only and aiolimiter.

Starts the fake server in its own process enforcing L requests per W-second
window (default 50 per 2 s) and a ``redis-server`` on a free loopback port with a
temporary directory, then for each fleet size (``--processes``, default 3, 6 and
12) runs, one after the other and each for ``--duration`` seconds starting on a
window boundary:

- ``store``: the SDK with ``RateLimitGovernor(store=RedisBucketStore(...))``;
- ``headers``: the SDK with its default governor (header-driven, no shared store);
- ``aiolimiter``: a raw aiohttp client behind ``aiolimiter.AsyncLimiter(L / N, W)``
  in each of the N processes (the fleet split by hand); a 429 is retried through
  the limiter.

Every process runs ``--workers`` (16) loops of ``GET /project/{p}`` (the ``default``
bucket), each wanting as much as it can get, so all processes want the same.
Responses are counted on the wire by the server window they landed in (their
``X-RateLimit-Reset``). Per scenario the table shows: successes as a share of the
ideal (L per window), 429s per success, the longest call (a call waits for its
permit, and is retried after a 429, inside the SDK or the aiolimiter loop), the
longest call beyond the fleet's fair queue (N x workers / L windows: what a
perfect fleet-wide FIFO makes every call wait), the largest deviation of one
process's successes from the mean, and, with the store, Redis round trips per
request sent.

Targets for ``store``: >= 0.97 of the ideal, <= 0.005 429s per success, the
longest call at most one window + 0.5 s beyond the fair queue, every process
within 20% of the mean. Exits with status 1 when one is missed. Needs
``redis-server`` on PATH (Debian/Ubuntu: ``apt-get install redis-server``).
Takes about (duration + 6 s) x modes x fleet sizes: 4 minutes with the defaults.

    .venv/bin/python benchmarks/fleet.py
    .venv/bin/python benchmarks/fleet.py --processes 3 --duration 10 --modes store,headers
    .venv/bin/python benchmarks/governor.py --store redis      # the same
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOKEN = "bench-fleet-token-0123456789"
PROJECT = "proj_demo"
MODES = ("store", "headers", "aiolimiter")
TARGET_SHARE = 0.97
TARGET_REJECTED = 0.005
TARGET_EXTRA_WAIT = 0.5  # beyond one window past the fair queue
TARGET_SPREAD = 0.20


# -- worker processes ------------------------------------------------------------------------


class Tally:
    """Answers seen on the wire, per server window (their X-RateLimit-Reset)."""

    def __init__(self) -> None:
        self.ok: Counter[int] = Counter()
        self.rejected: Counter[int] = Counter()

    def record(self, status: int, headers: Any) -> None:
        try:
            window = int(headers.get("X-RateLimit-Reset", "0"))
        except ValueError:
            window = 0
        if status == 429:
            self.rejected[window] += 1
        elif status < 400:
            self.ok[window] += 1


class Calls:
    """Per-call latencies of one process and the requests it sent."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.sent = 0


async def _loops(end: float, workers: int, call: Any, calls: Calls) -> None:
    async def loop() -> None:
        while time.time() < end:
            started = time.monotonic()
            try:
                await call()
            except Exception:
                continue
            calls.latencies.append(time.monotonic() - started)

    tasks = [asyncio.create_task(loop()) for _ in range(workers)]
    try:
        await asyncio.sleep(max(0.0, end - time.time()))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def ready(args: argparse.Namespace) -> None:
    """Say "ready", read the common start time from the harness and sleep until it."""
    print("ready", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    args.start_at = float(line)
    await asyncio.sleep(max(0.0, args.start_at - time.time()))


async def worker_sdk(args: argparse.Namespace, tally: Tally, calls: Calls) -> dict[str, Any]:
    from instasent_async import Instasent, RateLimitGovernor, RetryPolicy

    async def on_end(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        calls.sent += 1
        tally.record(params.response.status, params.response.headers)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    store = None
    if args.worker == "store":
        from instasent_async._redis_store import RedisBucketStore

        store = RedisBucketStore(args.redis_url, prefix=f"bench{args.run}")
        governor = RateLimitGovernor(store=store)
    else:
        governor = RateLimitGovernor()
    async with Instasent(
        args.token,
        project=PROJECT,
        base_url=args.url,
        trace_configs=[trace],
        retry=RetryPolicy(max_attempts=50),
        rate_limit=governor,
    ) as client:
        if store is not None:
            await store.ping()  # connect before the start, not in the first window
        await ready(args)
        await _loops(args.start_at + args.duration, args.workers, client.project.get, calls)
    return {"round_trips": store.round_trips if store is not None else 0}


async def worker_aiolimiter(args: argparse.Namespace, tally: Tally, calls: Calls) -> dict[str, Any]:
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(args.limit / args.processes, args.window)
    url = f"{args.url}/project/{PROJECT}"
    headers = {"Authorization": f"Bearer {args.token}", "Accept": "application/json"}
    connector = aiohttp.TCPConnector(limit=args.workers)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> None:
            while True:
                async with limiter, session.get(url, headers=headers) as resp:
                    await resp.read()
                    calls.sent += 1
                    tally.record(resp.status, resp.headers)
                    if resp.status != 429:
                        return

        await ready(args)
        await _loops(args.start_at + args.duration, args.workers, call, calls)
    return {"round_trips": 0}


def worker_main(args: argparse.Namespace) -> int:
    tally, calls = Tally(), Calls()
    worker = worker_aiolimiter if args.worker == "aiolimiter" else worker_sdk
    extra = asyncio.run(worker(args, tally, calls))
    result = {"ok": tally.ok, "rejected": tally.rejected}
    result.update(extra, latencies=calls.latencies, sent=calls.sent)
    print(json.dumps(result), flush=True)
    return 0


# -- servers ---------------------------------------------------------------------------------


def start_fake(limit: int, window: float) -> tuple[subprocess.Popen[str], str]:
    """Start FakeInstasent in its own process; return it with its base URL."""
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "instasent_async.testing", "--port", "0",
            "--rate-limit", str(limit), "--window", str(window), "--product-token", TOKEN,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "listening on" in line:
            return proc, line.rsplit(" ", 1)[-1].strip()
    proc.kill()
    raise RuntimeError("the fake server did not start")


def stop(proc: subprocess.Popen[Any]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``redis-server`` on a free loopback port; return it with its URL."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit(
            "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)"
        )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


# -- the harness -----------------------------------------------------------------------------


def run_scenario(
    mode: str, processes: int, run: int, url: str, redis_url: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Start ``processes`` workers, all on the first window boundary after they are
    ready (imported, connected); return their results."""
    argv = [
        sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--url", url,
        "--redis-url", redis_url, "--token", TOKEN, "--duration", str(args.duration),
        "--limit", str(args.limit), "--window", str(args.window),
        "--workers", str(args.workers), "--processes", str(processes), "--run", str(run),
    ]  # fmt: skip
    procs = [
        subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a {mode} worker did not start")
        start_at = math.ceil((time.time() + 0.5) / args.window) * args.window
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start_at!r}\n")
            proc.stdin.close()
        results = []
        for proc in procs:
            assert proc.stdout is not None
            out = proc.stdout.read()
            if proc.wait(timeout=60) != 0:
                raise RuntimeError(f"a {mode} worker failed with status {proc.returncode}")
            result = json.loads(out.strip().splitlines()[-1])
            result["start_at"] = start_at
            results.append(result)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def summarize(
    results: list[dict[str, Any]], processes: int, args: argparse.Namespace
) -> dict[str, float]:
    start_at = results[0]["start_at"]
    windows = round(args.duration / args.window)

    def in_run(reset: str) -> bool:
        return 0 <= round((int(reset) - start_at) / args.window) - 1 < windows

    per_process = [sum(n for r, n in res["ok"].items() if in_run(r)) for res in results]
    ok = sum(per_process)
    rejected = sum(n for res in results for r, n in res["rejected"].items() if in_run(r))
    latencies = sorted(x for res in results for x in res["latencies"])
    mean = ok / processes
    fair_queue = processes * args.workers / args.limit * args.window
    longest = latencies[-1] if latencies else math.inf
    sent = sum(res["sent"] for res in results)
    return {
        "share": ok / (args.limit * windows),
        "rejected_per_ok": rejected / max(1, ok),
        "longest": longest,
        "median": latencies[len(latencies) // 2] if latencies else math.inf,
        "fair_queue": fair_queue,
        "beyond": longest - fair_queue,
        "spread": max(abs(n - mean) for n in per_process) / mean if mean else math.inf,
        "per_process": per_process,  # type: ignore[dict-item]
        "round_trips": sum(res["round_trips"] for res in results) / max(1, sent),
        "ok": ok,
        "rejected": rejected,
    }


def flush_redis(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.flushall()
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per scenario")
    parser.add_argument("--limit", type=int, default=50, help="requests per window (L)")
    parser.add_argument("--window", type=float, default=2.0, help="window in seconds")
    parser.add_argument("--processes", default="3,6,12", help="fleet sizes, comma-separated")
    parser.add_argument("--workers", type=int, default=16, help="request loops per process")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--run", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.processes = int(args.processes)
        return worker_main(args)
    if args.window != int(args.window):
        parser.error("--window must be whole seconds (the Reset header has 1 s resolution)")
    if args.duration < 2 * args.window:
        parser.error("--duration must cover at least two windows")
    args.duration = math.floor(args.duration / args.window) * args.window
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    sizes = [int(n) for n in args.processes.split(",") if n.strip()]

    print(
        f"server: L={args.limit} per {args.window:g} s window, {args.duration:g} s per "
        f"scenario, {args.workers} workers per process, cpus={os.cpu_count()}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as redis_dir:
        server, url = start_fake(args.limit, args.window)
        redis_proc, redis_url = start_redis(redis_dir)
        try:
            run = 0
            for processes in sizes:
                for mode in modes:
                    run += 1
                    results = run_scenario(mode, processes, run, url, redis_url, args)
                    stats = summarize(results, processes, args)
                    rows.append((mode, processes, stats))
                    print(
                        f"  {mode} x{processes}: {stats['ok']} ok, {stats['rejected']} 429, "
                        f"per process {stats['per_process']}",
                        flush=True,
                    )
                    if mode == "store":
                        flush_redis(redis_url)
        finally:
            stop(server)
            stop(redis_proc)

    print()
    header = (
        f"{'client':<12}{'procs':>6}{'share':>8}{'429/ok':>9}{'median s':>10}{'longest s':>11}"
        f"{'fair queue s':>14}{'beyond s':>10}{'spread':>8}{'redis/req':>11}"
    )
    print(header)
    print("-" * len(header))
    failed = []
    for mode, processes, s in rows:
        trips = f"{s['round_trips']:.3f}" if mode == "store" else "-"
        print(
            f"{mode:<12}{processes:>6}{s['share']:>8.3f}{s['rejected_per_ok']:>9.4f}"
            f"{s['median']:>10.2f}{s['longest']:>11.2f}{s['fair_queue']:>14.2f}"
            f"{s['beyond']:>10.2f}{s['spread']:>8.2f}{trips:>11}"
        )
        if mode == "store":
            misses = []
            if s["share"] < TARGET_SHARE:
                misses.append(f"share {s['share']:.3f} < {TARGET_SHARE}")
            if s["rejected_per_ok"] > TARGET_REJECTED:
                misses.append(f"429/success {s['rejected_per_ok']:.4f} > {TARGET_REJECTED}")
            if s["beyond"] > args.window + TARGET_EXTRA_WAIT:
                misses.append(
                    f"longest call {s['beyond']:.2f} s beyond the fair queue > "
                    f"{args.window + TARGET_EXTRA_WAIT:g}"
                )
            if s["spread"] > TARGET_SPREAD:
                misses.append(f"a process {s['spread']:.0%} off the mean > {TARGET_SPREAD:.0%}")
            failed.extend(f"store x{processes}: {m}" for m in misses)
    for line in failed:
        print(f"MISSED {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
