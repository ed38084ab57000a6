"""Bulk ingestion cost of the SDK against hand-written raw aiohttp batchers.

Runs the benchmark server (``_server.py``) in a separate process and, in the same run,
sends the same events four ways, alternating (raw dicts, SDK dicts, raw models, SDK
models, ...), at each size of ``--sizes`` (10k, 100k and 1M events by default; every
round runs every size, so a change of the machine's load weighs on all sizes alike):

- raw dicts: the minimal batcher: an async generator of dicts -> lists of 100 ->
  ``orjson.dumps`` -> ``session.post`` with ``concurrency`` workers, each answer
  read, its status checked and its ``successful`` total counted;
- SDK dicts: ``client.datasource(ds).events.ingest(gen(), concurrency=C)`` fed by the
  same generator of dicts;
- raw models: the same batcher fed by a generator of ``instasent_async.models.Event``,
  writing each one as a hand-written dict literal (what a user without the SDK would
  do: ``{"_user_id": e.user_id, ..., "_event_date": e.event_date.isoformat(...)}``);
- SDK models: ``events.ingest`` fed by the same generator of ``Event`` models.

Every figure is gross: each side's wall time and client CPU (``time.process_time()``)
include generating its input, and nothing is subtracted. The ratio is SDK items/s
over raw items/s of the same kind in the same round (median of the rounds); targets:
0.95 from dicts, 0.85 from models. "gc us" is the CPU the garbage collector's
automatic collections took (``gc.callbacks``), part of the client CPU; the client CPU per
event at each size is printed for information.

The cost per event must stay flat as a run grows (at most 10% apart, both kinds):
checked on the engine alone (``run_ingest``, what ``events.ingest`` runs, with a
``send`` that answers at once), one run of the largest size cut into segments of
10,000 events, the first tenth of the run against the last tenth (each by its least
segment: on a shared machine other work only adds, and short runs and long runs do
not see the same load).

Memory: a child process ingests 1,000,000 generated events (``--memory-items``)
through ``events.ingest`` and samples its RSS (``/proc/self/status`` VmRSS every 5 ms,
and ``ru_maxrss``); the figure is the peak above its baseline taken after imports and
client creation (target: <= 100 MB). Kinds: ``dicts`` (all accepted), ``models`` (all
accepted) and ``rejected`` (every event rejected by the server, with a dead letter
file that receives every one).

    python benchmarks/ingest.py                       # a few minutes
    python benchmarks/ingest.py --quick               # under a minute
    python benchmarks/ingest.py --sizes 100000 --skip-memory
    python benchmarks/ingest.py --skip-speed --memory-kind rejected
    python benchmarks/ingest.py --dates distinct      # a date per event, not one for all
    python benchmarks/ingest.py --skip-speed --skip-memory   # the engine alone
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _server import REJECTING_DATASOURCE, Server, serve

from instasent_async import Instasent
from instasent_async.models import Event

TOKEN = "bench-datasource-token-0123456789"
# The raw batchers' own token (same length): the server keeps one rate-limit window
# per token, so the SDK's governor sees only its own requests.
RAW_TOKEN = "rawcl-datasource-token-0123456789"
PROJECT = "proj_bench"
DATASOURCE = "ds_bench"
BATCH = 100
TARGETS = {"dicts": 0.95, "models": 0.85}
FLAT_TARGET = 1.10
MEMORY_TARGET_MB = 100.0

_DATE_TEXT = "2024-05-01T10:20:30.000Z"
_DATE = dt.datetime(2024, 5, 1, 10, 20, 30, tzinfo=dt.timezone.utc)
_DAY = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
# ``--dates distinct`` sets this: every event gets its own date instead of one shared.
DISTINCT_DATES = False


def _distinct_date_text(i: int) -> str:
    """Event ``i``'s date with ``--dates distinct``: ``i`` milliseconds into the day."""
    seconds, ms = divmod(i % 86_400_000, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"2024-05-01T{hour:02d}:{minute:02d}:{second:02d}.{ms:03d}Z"


def _distinct_date(i: int) -> dt.datetime:
    """The same as a datetime."""
    return _DAY + dt.timedelta(milliseconds=i % 86_400_000)


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


SOURCES = {"dicts": dict_events, "models": model_events}


async def raw_ingest(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    source: AsyncIterator[Any],
    concurrency: int,
    models: bool,
) -> int:
    """A hand-written batcher: returns how many items the server accepted."""
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
            if status != 202:
                raise RuntimeError(f"unexpected status {status}")
            accepted += orjson.loads(body)["entity"]["successful"]

    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    batch: list[Any] = []
    if models:
        async for e in source:
            batch.append(
                {
                    "_user_id": e.user_id,
                    "_event_id": e.event_id,
                    "_event_type": e.event_type,
                    "_event_date": e.event_date.isoformat(timespec="milliseconds").replace(
                        "+00:00", "Z"
                    ),
                    "_event_parameters": e.event_parameters,
                }
            )
            if len(batch) == BATCH:
                await queue.put(batch)
                batch = []
    else:
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


class GcClock:
    """CPU seconds the garbage collector's automatic collections take (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started
            self.collections += 1


GC_CLOCK = GcClock()


async def timed(run: Callable[[int], Awaitable[int]], n: int) -> tuple[float, float, float, int]:
    """Wall, client CPU, GC CPU seconds and GC runs of ``run(n)``; checks all were accepted."""
    gc.collect()
    GC_CLOCK.seconds, GC_CLOCK.collections = 0.0, 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    accepted = await run(n)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if accepted != n:
        raise RuntimeError(f"{accepted} of {n} items accepted")
    return wall, cpu, GC_CLOCK.seconds, GC_CLOCK.collections


Contender = tuple[str, str, bool, Callable[[int], Awaitable[int]]]  # name, kind, is_sdk, run


async def bench(server: Server, args: argparse.Namespace) -> list[dict[str, Any]]:
    url = f"{server.base_url}/project/{PROJECT}/datasource/{DATASOURCE}/stream/events"
    headers = {"Authorization": f"Bearer {RAW_TOKEN}", "Content-Type": "application/json"}
    concurrency = args.concurrency
    async with (
        aiohttp.ClientSession() as session,
        Instasent(TOKEN, project=PROJECT, base_url=server.base_url) as client,
    ):
        events = client.datasource(DATASOURCE).events

        def raw(kind: str) -> Callable[[int], Awaitable[int]]:
            async def run(count: int) -> int:
                source = SOURCES[kind](count)
                return await raw_ingest(
                    session, url, headers, source, concurrency, kind == "models"
                )

            return run

        def sdk(kind: str) -> Callable[[int], Awaitable[int]]:
            async def run(count: int) -> int:
                report = await events.ingest(SOURCES[kind](count), concurrency=concurrency)
                assert report.ok and report.total == count, report
                return report.accepted

            return run

        contenders: list[Contender] = [
            ("raw batcher, dicts", "dicts", False, raw("dicts")),
            ("SDK events.ingest, dicts", "dicts", True, sdk("dicts")),
            ("raw batcher, models -> literals", "models", False, raw("models")),
            ("SDK events.ingest, models", "models", True, sdk("models")),
        ]
        for _, _, _, run in contenders:  # warm up: connections, caches, governor buckets
            await timed(run, 20_000)
        # Every round runs every size (while it has rounds left), so that a change in the
        # machine's load over the run weighs on all sizes alike.
        rounds = {n: args.rounds if n < 1_000_000 else max(1, args.rounds_1m) for n in args.sizes}
        samples: dict[int, dict[str, list[tuple[float, float, float, int, float]]]] = {
            n: {c[0]: [] for c in contenders} for n in args.sizes
        }
        gc.callbacks.append(GC_CLOCK)
        try:
            for round_no in range(max(rounds.values())):
                for n in args.sizes:
                    if round_no >= rounds[n]:
                        continue
                    for name, _, _, run in contenders:
                        srv0 = server.cpu_seconds()
                        wall, cpu, gc_cpu, gc_runs = await timed(run, n)
                        samples[n][name].append(
                            (wall, cpu, gc_cpu, gc_runs, server.cpu_seconds() - srv0)
                        )
                print(
                    f"  round {round_no + 1}/{max(rounds.values())} done",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            gc.callbacks.remove(GC_CLOCK)
    return [row for n in args.sizes for row in _rows(n, contenders, samples[n])]


def _rows(
    n: int,
    contenders: list[Contender],
    samples: dict[str, list[tuple[float, float, float, int, float]]],
) -> list[dict[str, Any]]:
    raw_of = {kind: name for name, kind, is_sdk, _ in contenders if not is_sdk}
    rows = []
    for name, kind, is_sdk, _ in contenders:
        mine, base = samples[name], samples[raw_of[kind]]
        rows.append(
            {
                "n": n,
                "name": name,
                "kind": kind,
                "sdk": is_sdk,
                "items_s": statistics.median(n / m[0] for m in mine),
                "ratio": statistics.median(b[0] / m[0] for m, b in zip(mine, base, strict=True)),
                "cpu_us": statistics.median(m[1] / n * 1e6 for m in mine),
                "cpu_us_least": min(m[1] / n * 1e6 for m in mine),
                "cpu_ratio": statistics.median(
                    b[1] / m[1] for m, b in zip(mine, base, strict=True)
                ),
                "gc_us": statistics.median(m[2] / n * 1e6 for m in mine),
                "gc_runs": statistics.median(m[3] for m in mine),
                "server_us": statistics.median(m[4] / n * 1e6 for m in mine),
            }
        )
    return rows


# --- the engine alone ----------------------------------------------------------------------


class _Answer:
    """What the engine reads of a response: ``status`` and ``body``."""

    __slots__ = ("body", "status")

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


_ALL_ACCEPTED = _Answer(
    202,
    orjson.dumps(
        {
            "entity": {
                "successful": BATCH,
                "failed": 0,
                "items": [{"status": "success", "_user_id": "u", "_event_id": "e"}] * BATCH,
            }
        }
    ),
)


async def _stub_send(*, body: bytes, idempotent: bool, stats: Any) -> Any:
    stats.requests += 1
    await asyncio.sleep(0)  # a turn of the loop, as a request takes
    return _ALL_ACCEPTED


class _Marks:
    """An ``on_progress`` callback noting the client CPU every ``segment`` events done."""

    def __init__(self, segment: int) -> None:
        self.segment = segment
        self.at: list[tuple[int, float]] = [(0, time.process_time())]

    def __call__(self, report: Any) -> None:
        if report.done >= self.at[-1][0] + self.segment:
            self.at.append((report.done, time.process_time()))


async def engine_only(args: argparse.Namespace) -> list[dict[str, Any]]:
    """CPU per event of the engine with the network stubbed out, early and late in a run.

    ``instasent_async.bulk.run_ingest`` (what ``events.ingest`` runs) with a ``send``
    that answers every batch at once with the all-accepted body: no aiohttp, no
    server, so what remains is the engine and the input generator. One run of the
    largest size is cut into segments of 10,000 events (the client CPU at each
    segment's end, from ``on_progress``); the first tenth of the run is compared
    with the last tenth, each by its least segment (other work on the machine only
    adds, and both windows have as many segments of the same length).
    """
    from instasent_async.bulk import run_ingest

    n = max(args.sizes)
    segment = 10_000
    rows = []
    for kind in SOURCES:
        await run_ingest(_stub_send, SOURCES[kind](20_000), kind="events")  # warm up
        for round_no in range(args.rounds_1m):
            gc.collect()
            marks = _Marks(segment)
            report = await run_ingest(
                _stub_send,
                SOURCES[kind](n),
                kind="events",
                concurrency=args.concurrency,
                on_progress=marks,
            )
            if report.accepted != n:
                raise RuntimeError(f"{report.accepted} of {n} events accepted")
            costs = [
                (t1 - t0) / (d1 - d0) * 1e6 for (d0, t0), (d1, t1) in itertools.pairwise(marks.at)
            ]
            tenth = max(1, len(costs) // 10)
            rows.append(
                {
                    "kind": kind,
                    "n": n,
                    "early": min(costs[:tenth]),
                    "late": min(costs[-tenth:]),
                    "median": statistics.median(costs),
                }
            )
            print(
                f"  engine {kind} round {round_no + 1}/{args.rounds_1m} done",
                file=sys.stderr,
                flush=True,
            )
    return rows


def print_engine(rows: list[dict[str, Any]]) -> bool:
    """The engine-only figures; True when the cost per event stays flat over the run."""
    ok = True
    print()
    print(
        "events.ingest's engine with the network stubbed out (run_ingest and a send that "
        "answers at once),\nclient CPU us/event including generating the input, per "
        "segment of 10,000 events of one run:"
    )
    for kind in SOURCES:
        mine = [r for r in rows if r["kind"] == kind]
        early = statistics.median(r["early"] for r in mine)
        late = statistics.median(r["late"] for r in mine)
        spread = late / early
        flag = ""
        if spread > FLAT_TARGET:
            flag, ok = "  < target", False
        print(
            f"  {kind:<6} {mine[0]['n']:,} events: first tenth {early:.2f}, last tenth "
            f"{late:.2f}, all segments (median) "
            f"{statistics.median(r['median'] for r in mine):.2f}; last/first {spread:.3f} "
            f"(target <= {FLAT_TARGET:.2f}){flag}"
        )
    return ok


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
    datasource = REJECTING_DATASOURCE if kind == "rejected" else DATASOURCE
    events = client.datasource(datasource).events
    workdir = tempfile.TemporaryDirectory(prefix="ingest-bench-")
    dead_letter = os.path.join(workdir.name, "dead.ndjson") if kind == "rejected" else None
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
        source = model_events(n) if kind == "models" else dict_events(n)
        report = await events.ingest(source, concurrency=concurrency, dead_letter=dead_letter)
    finally:
        stop.set()
        sampler.join(timeout=5)
        await client.close()
    elapsed = time.perf_counter() - started
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    peak = max(peak, maxrss)
    dead_lines = _count_lines(dead_letter) if dead_letter is not None else 0
    workdir.cleanup()
    expected = (0, n) if kind == "rejected" else (n, 0)
    return {
        "items": n,
        "kind": kind,
        "accepted": report.accepted,
        "rejected": report.rejected_count,
        "kept": len(report.rejected),
        "dead_lines": dead_lines,
        "ok": (report.accepted, report.rejected_count) == expected
        and report.failed_count == 0
        and dead_lines == report.rejected_count,
        "elapsed": elapsed,
        "baseline_mb": baseline / 1024,
        "peak_mb": peak / 1024,
        "delta_mb": (peak - baseline) / 1024,
    }


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def run_memory_child(server: Server, args: argparse.Namespace, kind: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--memory-child",
        server.base_url,
        "--memory-items",
        str(args.memory_items),
        "--memory-kind",
        kind,
        "--concurrency",
        str(args.concurrency),
        "--dates",
        args.dates,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --- output ----------------------------------------------------------------------------


def print_speed(rows: list[dict[str, Any]], args: argparse.Namespace) -> bool:
    """The table per size and the flatness check; True when every target is met."""
    ok = True
    print()
    print(
        f"batches of {BATCH}, concurrency {args.concurrency}, {args.dates} event dates, "
        f"{args.rounds} rounds ({args.rounds_1m} at 1M), each running every size and variant in "
        f"turn; medians; gross figures (generation included, nothing "
        f"subtracted).\nPython {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, "
        f"{os.cpu_count()} CPUs."
    )
    header = (
        f"{'events':>9} {'variant':<32} {'items/s':>8} {'ratio':>6} {'target':>6} "
        f"{'CPU us/ev':>9} {'CPU ratio':>9} {'gc us':>6} {'gc runs':>7} {'server us':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        target = TARGETS[r["kind"]] if r["sdk"] else None
        flag = ""
        if target is not None and r["ratio"] < target:
            flag, ok = "  < target", False
        print(
            f"{r['n']:>9,} {r['name']:<32} {r['items_s']:>8.0f} {r['ratio']:>6.3f} "
            f"{'' if target is None else f'{target:.2f}':>6} {r['cpu_us']:>9.2f} "
            f"{r['cpu_ratio']:>9.3f} {r['gc_us']:>6.2f} {r['gc_runs']:>7.0f} "
            f"{r['server_us']:>9.2f}{flag}"
        )
    print()
    print(
        "ratio: SDK items/s / raw items/s of the same kind (raw rows: 1); CPU us/ev: client CPU"
        " per event;\nCPU ratio: raw CPU / SDK CPU; gc us, gc runs: the garbage collector's share"
        " of the client CPU and its\nautomatic collections per run; server us: the server"
        " process's CPU per event."
    )
    sizes = sorted({r["n"] for r in rows})
    if len(sizes) > 1:
        print()
        print(
            "cost per event as the run grows (client CPU us/event, the least of the rounds: "
            "other work\non the machine only adds to it):"
        )
        for name in dict.fromkeys(r["name"] for r in rows):
            costs = [
                next(r["cpu_us_least"] for r in rows if r["name"] == name and r["n"] == n)
                for n in sizes
            ]
            spread = max(costs) / min(costs)
            shown = ", ".join(f"{n:,}: {c:.2f}" for n, c in zip(sizes, costs, strict=True))
            print(f"  {name:<32} {shown}; max/min {spread:.3f}")
        print(
            "  (for information: on a shared machine the load differs between short and long "
            "runs; the\n  flatness target is checked on segments of one run, with the network "
            "stubbed out, below)"
        )
    return ok


def print_memory(memory: list[dict[str, Any]]) -> bool:
    ok = True
    for m in memory:
        good = m["delta_mb"] <= MEMORY_TARGET_MB and m["ok"]
        ok = ok and good
        print()
        print(
            f"memory: {m['items']:,} events ({m['kind']}) through events.ingest in "
            f"{m['elapsed']:.1f} s: {m['accepted']:,} accepted, {m['rejected']:,} rejected "
            f"({m['kept']:,} kept on the report, {m['dead_lines']:,} dead-letter lines); "
            f"RSS baseline {m['baseline_mb']:.1f} MB, peak {m['peak_mb']:.1f} MB, "
            f"peak above baseline {m['delta_mb']:.1f} MB "
            f"(target <= {MEMORY_TARGET_MB:.0f} MB){'' if good else '  < target'}"
        )
    return ok


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer rounds")
    parser.add_argument(
        "--sizes", type=_sizes, default=None, help="events per run (default 10000,100000,1000000)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 5)")
    parser.add_argument(
        "--rounds-1m", type=int, default=None, help="rounds at sizes >= 1M (default 3)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="batches in flight (8)")
    parser.add_argument(
        "--memory-items", type=int, default=None, help="events of the memory runs (1,000,000)"
    )
    parser.add_argument(
        "--memory-kind",
        choices=("dicts", "models", "rejected"),
        action="append",
        help="memory runs (default: dicts and rejected; repeat the option for several)",
    )
    parser.add_argument(
        "--dates",
        choices=("shared", "distinct"),
        default="shared",
        help="one date for every event (default) or a date per event",
    )
    parser.add_argument(
        "--skip-engine",
        action="store_true",
        help="no engine-alone run (network stubbed out; checks the cost stays flat)",
    )
    parser.add_argument("--skip-memory", action="store_true", help="no memory run")
    parser.add_argument("--skip-speed", action="store_true", help="memory runs only")
    parser.add_argument("--memory-child", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global DISTINCT_DATES
    DISTINCT_DATES = args.dates == "distinct"
    if args.memory_items is None:
        args.memory_items = 200_000 if args.quick else 1_000_000
    if args.memory_child:
        (kind,) = args.memory_kind
        result = asyncio.run(
            memory_child(args.memory_child, args.memory_items, args.concurrency, kind)
        )
        print(json.dumps(result))
        return 0
    if args.sizes is None:
        args.sizes = [10_000, 30_000] if args.quick else [10_000, 100_000, 1_000_000]
    if args.rounds is None:
        args.rounds = 3 if args.quick else 5
    if args.rounds_1m is None:
        args.rounds_1m = 3
    kinds = args.memory_kind or ["dicts", "rejected"]
    if min(args.rounds, args.concurrency, args.memory_items, *args.sizes) < 1:
        parser.error("counts must be positive")
    rows: list[dict[str, Any]] = []
    memory: list[dict[str, Any]] = []
    with serve(max_seconds=7200) as server:
        if not args.skip_speed:
            rows = asyncio.run(bench(server, args))
        if not args.skip_memory:
            for kind in kinds:
                print(f"  memory run ({kind}) ...", file=sys.stderr, flush=True)
                memory.append(run_memory_child(server, args, kind))
    engine_rows = [] if args.skip_engine else asyncio.run(engine_only(args))
    ok = print_speed(rows, args) if rows else True
    ok = (print_engine(engine_rows) if engine_rows else True) and ok
    ok = print_memory(memory) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
