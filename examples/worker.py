"""A long-running ingestion worker: events from an NDJSON file into a datasource.

    export INSTASENT_TOKEN=<token> INSTASENT_PROJECT=proj_xxx
    python examples/worker.py events.ndjson --datasource ds_xxx
    python examples/worker.py events.ndjson --datasource ds_xxx --skip 120000   # resume

- One ``Instasent`` client for the life of the process (configured from the environment).
- Progress is logged every ``--log-every`` seconds (items read, accepted, rejected,
  failed, rate-limit waits).
- SIGTERM (or Ctrl-C) stops it gracefully: no new line is read, everything already
  read is still sent and accounted for, and the last log line says where to resume
  (``--skip N``). Exit status: 0 when every item sent was accepted, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from instasent_async import IngestReport, Instasent

log = logging.getLogger("worker")


def read_ndjson(path: str, skip: int) -> Iterator[Any]:
    """The events of an NDJSON file (one object a line; blank lines ignored), after ``skip``."""
    with open(path, "rb") as lines:
        records = (line for line in lines if line.strip())
        for number, line in enumerate(records):
            if number >= skip:
                yield orjson.loads(line)


def until(stop: asyncio.Event, items: Iterable[Any]) -> Iterator[Any]:
    """``items`` until ``stop`` is set (checked before each item is taken)."""
    for item in items:
        if stop.is_set():
            return
        yield item


class ProgressLog:
    """An ``on_progress`` callback that logs at most once every ``every`` seconds."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.next_at = 0.0

    def __call__(self, report: IngestReport) -> None:
        now = time.monotonic()
        if now >= self.next_at:
            self.next_at = now + self.every
            log.info(
                "progress: %d read, %d accepted, %d rejected, %d failed, %d rate-limit waits",
                report.total,
                report.accepted,
                len(report.rejected),
                len(report.failed),
                report.rate_limit_waits,
            )


async def run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with Instasent() as client:  # INSTASENT_TOKEN, _PROJECT, _BASE_URL
            events = client.datasource(args.datasource).events
            report = await events.ingest(
                until(stop, read_ndjson(args.path, args.skip)),
                concurrency=args.concurrency,
                on_progress=ProgressLog(args.log_every),
                dead_letter=args.dead_letter,
            )
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    done = args.skip + report.consumed  # every record up to here is accounted for
    log.info(
        "%s: %d read, %d accepted, %d rejected, %d failed in %.1f s; resume with --skip %d",
        "stopped by signal" if stop.is_set() else "finished",
        report.total,
        report.accepted,
        len(report.rejected),
        len(report.failed),
        report.elapsed,
        done,
    )
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ingest an NDJSON file of events.")
    parser.add_argument("path", help="NDJSON file, one event a line")
    parser.add_argument("--datasource", required=True, help="datasource id (ds_xxx)")
    parser.add_argument("--skip", type=int, default=0, help="events already ingested")
    parser.add_argument("--concurrency", type=int, default=8, help="batches in flight")
    parser.add_argument("--log-every", type=float, default=10.0, help="seconds between logs")
    parser.add_argument("--dead-letter", help="write rejected and failed items here (NDJSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
