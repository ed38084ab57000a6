"""Bulk ingestion cost of the SDK against a hand-written raw aiohttp batcher (issue 5 item 4).

Runs the benchmark server (``_server.py``) in a separate process and, in the same run,
sends the same events three ways, alternating (raw, SDK dicts, SDK models, raw, ...):

- raw: an async generator of dicts -> lists of 100 -> ``orjson.dumps`` ->
  ``session.post`` with ``concurrency`` workers, each answer read, ``orjson.loads``-ed
  and its successes counted (the honest minimum a careful user would write);
- SDK from dicts: ``client.datasource(ds).events.ingest(gen(), concurrency=C)`` fed
  by the same async generator of dicts;
- SDK from models: the same call fed by an async generator that builds
  ``instasent_async.models.Event`` instances the same way.

Generating the inputs is not what is measured: the CPU each generator takes on its
own (``async for`` over it with nothing else, median of 3 runs) is measured
separately and subtracted from each run's client CPU (``time.process_time()``);
"net items/s" likewise takes that time out of the wall time. Ratios are to the raw
batcher (median of the per-round ratios): throughput ratio = variant / raw, CPU
ratio = raw CPU / variant CPU (both: higher is better; targets 0.90 from dicts and
0.60 from models). The "gc us" column is the CPU the garbage collector's automatic
collections took during the run (``gc.callbacks``), part of the client CPU: what a
variant keeps alive while batches are in flight shows there.

Memory: a child process ingests a generator of 1,000,000 events (``--memory-items``)
through ``events.ingest`` and samples its RSS (``/proc/self/status`` VmRSS every 5 ms
plus ``ru_maxrss``); the figure is the peak above its baseline taken after imports and
client creation (target: <= 100 MB).

    python benchmarks/ingest.py           # about a minute
    python benchmarks/ingest.py --quick   # about 20 seconds
    python benchmarks/ingest.py --dates distinct   # a date per event, not one for all
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _server import Server, serve

from instasent_async import Instasent
from instasent_async.models import Event

TOKEN = "bench-datasource-token-0123456789"
# The raw batcher's own token (same length): the server keeps one rate-limit window
# per token, so the SDK's governor sees only its own requests.
RAW_TOKEN = "rawcl-datasource-token-0123456789"
PROJECT = "proj_bench"
DATASOURCE = "ds_bench"
BATCH = 100
DICT_TARGET = 0.90
MODEL_TARGET = 0.60
MEMORY_TARGET_MB = 100.0

_DATE_TEXT = "2024-05-01T10:20:30.000Z"
_DATE = dt.datetime(2024, 5, 1, 10, 20, 30, tzinfo=dt.timezone.utc)


_DAY = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)


def _distinct_date_text(i: int) -> str:
    """Event ``i``'s date with ``--dates distinct``: ``i`` milliseconds into the day."""
    seconds, ms = divmod(i % 86_400_000, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"2024-05-01T{hour:02d}:{minute:02d}:{second:02d}.{ms:03d}Z"


def _distinct_date(i: int) -> dt.datetime:
    """The same as a datetime."""
    return _DAY + dt.timedelta(milliseconds=i % 86_400_000)


# ``--dates distinct`` sets this: every event gets its own date instead of one shared.
DISTINCT_DATES = False


async def dict_events(n: int) -> AsyncIterator[Any]:
    """``n`` events as wire dicts, built lazily."""
    distinct = DISTINCT_DATES
    for i in range(n):
        yield {
            "_user_id": f"USER-{i % 50000:06d}",
            "_event_id": f"evt-{i:09d}",
            "_event_type": "purchase",
            "_event_date": _distinct_date_text(i) if distinct else _DATE_TEXT,
            "_event_parameters": {
                "amount": 19.99,
                "currency": "EUR",
                "sku": f"SKU-{i % 997}",
                "quantity": 1 + i % 3,
            },
        }


async def model_events(n: int) -> AsyncIterator[Any]:
    """The same ``n`` events as ``Event`` models (aware datetimes), built lazily."""
    distinct = DISTINCT_DATES
    for i in range(n):
        yield Event(
            user_id=f"USER-{i % 50000:06d}",
            event_id=f"evt-{i:09d}",
            event_type="purchase",
            event_date=_distinct_date(i) if distinct else _DATE,
            event_parameters={
                "amount": 19.99,
                "currency": "EUR",
                "sku": f"SKU-{i % 997}",
                "quantity": 1 + i % 3,
            },
        )


Source = Callable[[int], AsyncIterator[Any]]


async def raw_ingest(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    source: AsyncIterator[Any],
    concurrency: int,
) -> int:
    """The hand-written batcher: returns how many items the server accepted."""
    queue: asyncio.Queue[list[Any] | None] = asyncio.Queue(maxsize=concurrency)
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        while True:
            batch = await queue.get()
            if batch is None:
                return
            async with session.post(url, data=orjson.dumps(batch), headers=headers) as resp:
                body = await resp.read()
                status = resp.status
            if status not in (200, 202, 422):
                raise RuntimeError(f"unexpected status {status}")
            answer = orjson.loads(body)
            accepted += sum(1 for item in answer["entity"]["items"] if item["status"] == "success")

    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    batch: list[Any] = []
    async for item in source:
        batch.append(item)
        if len(batch) == BATCH:
            await queue.put(batch)
            batch = []
    if batch:
        await queue.put(batch)
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    return accepted


async def generation_cpu(source: Source, n: int) -> float:
    """CPU seconds per item of producing ``source(n)`` alone (median of 3)."""
    samples = []
    for _ in range(3):
        gc.collect()
        cpu0 = time.process_time()
        async for _item in source(n):
            pass
        samples.append((time.process_time() - cpu0) / n)
    return statistics.median(samples)


class GcClock:
    """CPU seconds the garbage collector's automatic collections take (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started


GC_CLOCK = GcClock()


async def timed(run: Callable[[int], Awaitable[int]], n: int) -> tuple[float, float, float]:
    """Wall, client CPU and GC CPU seconds of ``run(n)``; checks every item was accepted."""
    gc.collect()
    GC_CLOCK.seconds = 0.0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    accepted = await run(n)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if accepted != n:
        raise RuntimeError(f"{accepted} of {n} items accepted")
    return wall, cpu, GC_CLOCK.seconds


async def bench(server: Server, args: argparse.Namespace) -> list[dict[str, Any]]:
    n, concurrency = args.items, args.concurrency
    url = f"{server.base_url}/project/{PROJECT}/datasource/{DATASOURCE}/stream/events"
    headers = {"Authorization": f"Bearer {RAW_TOKEN}", "Content-Type": "application/json"}
    gen_cost = {
        "dicts": await generation_cpu(dict_events, n),
        "models": await generation_cpu(model_events, n),
    }
    async with (
        aiohttp.ClientSession() as session,
        Instasent(TOKEN, project=PROJECT, base_url=server.base_url) as client,
    ):
        events = client.datasource(DATASOURCE).events

        async def raw(count: int) -> int:
            return await raw_ingest(session, url, headers, dict_events(count), concurrency)

        async def sdk_dicts(count: int) -> int:
            report = await events.ingest(dict_events(count), concurrency=concurrency)
            assert report.ok and report.total == count, report
            return report.accepted

        async def sdk_models(count: int) -> int:
            report = await events.ingest(model_events(count), concurrency=concurrency)
            assert report.ok and report.total == count, report
            return report.accepted

        contenders: list[tuple[str, str, Callable[[int], Awaitable[int]]]] = [
            ("raw aiohttp batcher (dicts)", "dicts", raw),
            ("SDK events.ingest from dicts", "dicts", sdk_dicts),
            ("SDK events.ingest from models", "models", sdk_models),
        ]
        for _, _, run in contenders:  # warm up: connections, caches, governor buckets
            await timed(run, max(n // 5, BATCH * concurrency))
        # per run: (wall, wall - generation, CPU - generation, server CPU, GC CPU)
        samples: dict[str, list[tuple[float, ...]]] = {c[0]: [] for c in contenders}
        gc.callbacks.append(GC_CLOCK)
        try:
            for round_no in range(args.rounds):
                for name, kind, run in contenders:
                    srv0 = server.cpu_seconds()
                    wall, cpu, gc_cpu = await timed(run, n)
                    srv = server.cpu_seconds() - srv0
                    gen = gen_cost[kind] * n
                    samples[name].append((wall, wall - gen, cpu - gen, srv, gc_cpu))
                print(f"  round {round_no + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        finally:
            gc.callbacks.remove(GC_CLOCK)
    raw_name = contenders[0][0]
    rows = []
    for name, kind, _ in contenders:
        mine, base = samples[name], samples[raw_name]
        rows.append(
            {
                "name": name,
                "kind": kind,
                "items_s": statistics.median(n / m[0] for m in mine),
                "rate_ratio": statistics.median(
                    b[1] / m[1] for m, b in zip(mine, base, strict=True)
                ),
                "cpu_us": statistics.median(m[2] / n * 1e6 for m in mine),
                "cpu_ratio": statistics.median(
                    b[2] / m[2] for m, b in zip(mine, base, strict=True)
                ),
                "gen_us": gen_cost[kind] * 1e6,
                "server_us": statistics.median(m[3] / n * 1e6 for m in mine),
                "gc_us": statistics.median(m[4] / n * 1e6 for m in mine),
            }
        )
    return rows


# --- memory ----------------------------------------------------------------------------


def _rss_kb() -> int:
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def memory_child(base_url: str, n: int, concurrency: int, kind: str) -> dict[str, Any]:
    """Ingest ``n`` generated events and report the peak RSS above the baseline."""
    client = Instasent(TOKEN, project=PROJECT, base_url=base_url)
    events = client.datasource(DATASOURCE).events
    gc.collect()
    baseline = _rss_kb()
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.005):
            rss = _rss_kb()
            if rss > peak:
                peak = rss

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        source = dict_events(n) if kind == "dicts" else model_events(n)
        report = await events.ingest(source, concurrency=concurrency)
    finally:
        stop.set()
        sampler.join(timeout=5)
        await client.close()
    elapsed = time.perf_counter() - started
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    peak = max(peak, maxrss)
    return {
        "items": n,
        "kind": kind,
        "accepted": report.accepted,
        "ok": report.ok,
        "elapsed": elapsed,
        "baseline_mb": baseline / 1024,
        "peak_mb": peak / 1024,
        "delta_mb": (peak - baseline) / 1024,
    }


def run_memory_child(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--memory-child",
        server.base_url,
        "--memory-items",
        str(args.memory_items),
        "--memory-kind",
        args.memory_kind,
        "--concurrency",
        str(args.concurrency),
        "--dates",
        args.dates,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --- output ----------------------------------------------------------------------------


def print_table(
    rows: list[dict[str, Any]], memory: dict[str, Any] | None, args: argparse.Namespace
) -> bool:
    """Print the speed table and the memory figure; True when every target is met."""
    ok = _print_speed(rows, args) if rows else True
    if memory is not None:
        mem_ok = memory["delta_mb"] <= MEMORY_TARGET_MB and memory["ok"]
        ok = ok and mem_ok
        print()
        print(
            f"memory: {memory['items']:,} events ({memory['kind']}) through events.ingest in "
            f"{memory['elapsed']:.1f} s, accepted {memory['accepted']:,}: RSS baseline "
            f"{memory['baseline_mb']:.1f} MB, peak {memory['peak_mb']:.1f} MB, "
            f"peak above baseline {memory['delta_mb']:.1f} MB "
            f"(target <= {MEMORY_TARGET_MB:.0f} MB){'' if mem_ok else '  < target'}"
        )
    return ok


def _print_speed(rows: list[dict[str, Any]], args: argparse.Namespace) -> bool:
    ok = True
    print()
    print(
        f"{args.items} events per run, batches of {BATCH}, concurrency {args.concurrency}, "
        f"{args.rounds} alternating rounds, {args.dates} event dates; medians. "
        f"Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, {os.cpu_count()} CPUs."
    )
    header = (
        f"{'variant':<31} {'items/s':>8} {'net ratio':>9} {'CPU us/item':>11} "
        f"{'CPU ratio':>9} {'target':>6} {'gen us':>6} {'gc us':>6} {'server us':>9}"
    )
    print(header)
    print("-" * len(header))
    for i, r in enumerate(rows):
        target = None if i == 0 else DICT_TARGET if r["kind"] == "dicts" else MODEL_TARGET
        flag = ""
        if target is not None and min(r["rate_ratio"], r["cpu_ratio"]) < target:
            flag, ok = "  < target", False
        print(
            f"{r['name']:<31} {r['items_s']:>8.0f} {r['rate_ratio']:>9.3f} {r['cpu_us']:>11.2f} "
            f"{r['cpu_ratio']:>9.3f} {'' if target is None else f'{target:.2f}':>6} "
            f"{r['gen_us']:>6.2f} {r['gc_us']:>6.2f} {r['server_us']:>9.2f}{flag}"
        )
    print()
    print(
        "items/s: measured, generation included; net ratio: (variant / raw) items/s with each "
        "input's generation time\ntaken out of the wall time; CPU us/item: client CPU minus "
        "generation (gen us, measured alone); CPU ratio: raw / variant;\ngc us: the part of the "
        "client CPU the garbage collector took (included in CPU us/item); server us: the "
        "server\nprocess's CPU per item."
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, items and events")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 7)")
    parser.add_argument("--items", type=int, default=None, help="events per run (default 100000)")
    parser.add_argument("--concurrency", type=int, default=8, help="batches in flight (8)")
    parser.add_argument(
        "--memory-items", type=int, default=None, help="events of the memory run (1,000,000)"
    )
    parser.add_argument("--memory-kind", choices=("dicts", "models"), default="dicts")
    parser.add_argument(
        "--dates",
        choices=("shared", "distinct"),
        default="shared",
        help="one date for every event (default) or a date per event",
    )
    parser.add_argument("--skip-memory", action="store_true", help="no memory run")
    parser.add_argument("--skip-speed", action="store_true", help="memory run only")
    parser.add_argument("--memory-child", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global DISTINCT_DATES
    DISTINCT_DATES = args.dates == "distinct"
    if args.memory_items is None:
        args.memory_items = 200_000 if args.quick else 1_000_000
    if args.memory_child:
        result = asyncio.run(
            memory_child(args.memory_child, args.memory_items, args.concurrency, args.memory_kind)
        )
        print(json.dumps(result))
        return 0
    if args.rounds is None:
        args.rounds = 3 if args.quick else 7
    if args.items is None:
        args.items = 30_000 if args.quick else 100_000
    if min(args.rounds, args.items, args.concurrency, args.memory_items) < 1:
        parser.error("counts must be positive")
    rows: list[dict[str, Any]] = []
    memory = None
    with serve() as server:
        if not args.skip_speed:
            rows = asyncio.run(bench(server, args))
        if not args.skip_memory:
            print("  memory run ...", file=sys.stderr, flush=True)
            memory = run_memory_child(server, args)
    ok = print_table(rows, memory, args) if rows or memory else True
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
