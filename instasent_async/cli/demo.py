"""``instasent-async demo``: the whole SDK against an in-process fake server.

It starts :class:`~instasent_async.testing.FakeInstasent` on 127.0.0.1 (a free port) with
a scaled-down rate limit, ingests a generated data set (``_demo_data.py``; a few invalid
items planted on purpose) from generators with a progress display, scrolls a segment of
"pro plan" contacts, sends one direct SMS, and prints what happened and where the code
of each step lives, in under 30 lines. No token, no network, no files.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import time
from collections.abc import Iterator
from typing import Any

from .. import Instasent, RateLimitGovernor, bulk
from .._core.bucket import Bucket
from ..errors import InstasentError
from ..testing import FakeInstasent
from ._demo_data import (
    CONTACT_SHARE,
    DATASOURCE,
    EVENT_SHARE,
    PROJECT,
    SEGMENT_QUERY,
    SEGMENT_UID,
    expected_invalid,
    generate_contacts,
    generate_events,
)
from .argtypes import count, positive_float, positive_int
from .codes import EXIT_API, EXIT_INTERRUPTED, EXIT_OK, EXIT_REJECTED
from .ingest import engine_default
from .output import (
    Interrupts,
    describe_error,
    make_progress,
    print_report,
    say,
)

__all__ = ["register", "run", "run_demo"]

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(bulk.__file__)))


def register(commands: Any) -> None:
    """Add the ``demo`` command to the ``commands`` sub-parsers."""
    parser = commands.add_parser(
        "demo",
        help="run a full ingestion, segment scroll and direct SMS against an in-process "
        "fake server (no token, no network)",
        description="Start a fake Instasent server in this process, ingest a generated data "
        "set (with a few invalid items planted on purpose) under a scaled-down rate limit, "
        "scroll a segment, send a direct SMS and say where the code of each step lives.",
    )
    defaults = {name: p.default for name, p in inspect.signature(run_demo).parameters.items()}
    parser.set_defaults(**{k: v for k, v in defaults.items() if k != "progress"})
    parser.add_argument("--contacts", type=count, help="default %(default)s")
    parser.add_argument("--events", type=count, help="default %(default)s")
    parser.add_argument("--seed", type=int, help="data set seed (default %(default)s)")
    parser.add_argument(
        "--rate-limit",
        type=positive_int,
        help="fake server requests per window per bucket (default %(default)s)",
    )
    parser.add_argument(
        "--window", type=positive_float, help="rate-limit window, s (default %(default)s)"
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        help=f"batches in flight (default {engine_default('concurrency')})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo with the parsed options; return the exit code."""
    return asyncio.run(
        run_demo(
            contacts=args.contacts,
            events=args.events,
            seed=args.seed,
            rate_limit=args.rate_limit,
            window=args.window,
            concurrency=args.concurrency,
            progress=not args.no_progress,
        )
    )


def _where(obj: Any) -> str:
    """The file that defines ``obj``, relative to the folder holding the package."""
    path = inspect.getsourcefile(obj) or "?"
    return os.path.relpath(path, _PACKAGE_ROOT)


def _introduce(rate_limit: int, window: float, contacts: int, events: int) -> None:
    bad_contacts = expected_invalid(contacts, CONTACT_SHARE)
    bad_events = expected_invalid(events, EVENT_SHARE)
    say("instasent-async demo: the SDK against a fake Instasent server in this process (no token).")
    say("In Instasent a project holds an audience of contacts and the events they generate. Data")
    say(
        "enters through a datasource, whose stream takes contacts (upserted by _user_id) and events"
    )
    say("(stored once per _event_id). A segment is a saved query over the audience.")
    say(
        f"The fake allows {rate_limit} requests per {window:g}s in each rate-limit bucket "
        "(a counter per"
    )
    say('kind of request); the SDK spreads its requests to stay under it ("paced").')
    say(
        f"Planted on purpose: {_plural(bad_contacts, 'contact')} with an invalid email and "
        f"{_plural(bad_events, 'event')} without a type."
    )
    say()


def _plural(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _print_planted(report: Any, planted: int) -> None:
    rejected = report.rejected
    if not rejected:
        return
    entry = rejected[0]
    item = entry.item
    who = (item.get("_event_id") or item.get("_user_id")) if isinstance(item, dict) else None
    errors = "; ".join(f"{field}: {', '.join(msgs)}" for field, msgs in entry.errors.items())
    count = report.rejected_count
    verdict = "as planted" if count == planted else f"but {planted} were planted"
    say(f"  {count} rejected, {verdict}; e.g. #{entry.position} {who or ''}: {errors}")


def _print_where(client: Instasent, ds: Any, scroll: Any) -> None:
    say("where the code of each step lives:")
    say(f"  this demo       {_where(run_demo)}, data set {_where(generate_contacts)}")
    say(f"  ingestion       {_where(type(ds.contacts).ingest)}, engine {_where(bulk)}")
    say(f"  segment scroll  {_where(type(client.segments).scroll)}, {_where(type(scroll))}")
    say(f"  direct SMS      {_where(type(client.sms).send_direct)}")
    say(f"  pacing          {_where(RateLimitGovernor)}, rules {_where(Bucket)}")


async def _ingest(
    interrupts: Interrupts,
    label: str,
    target: Any,
    items: Iterator[dict[str, Any]],
    total: int,
    concurrency: int | None,
    progress: bool,
) -> Any:
    display = make_progress(label, total, style="auto" if progress else "none")
    options = {} if concurrency is None else {"concurrency": concurrency}
    try:
        return await interrupts.run(target.ingest(items, on_progress=display.update, **options))
    except asyncio.CancelledError as exc:
        display.close()
        report = bulk.report_of(exc)
        if report is not None:
            print_report(f"{label} (interrupted)", report, shown=0)
        raise
    finally:
        display.close()


async def _scroll_and_text(client: Instasent, interrupts: Interrupts) -> Any:
    """Scroll the "Pro plan" segment, text its first member with a phone; return the scroll."""
    segment = await interrupts.run(client.segments.get(SEGMENT_UID))
    scroll = client.segments.scroll(SEGMENT_UID, page_size=100)
    members = 0
    first: Any = None

    async def drain() -> None:
        nonlocal members, first
        async for contact in scroll:
            members += 1
            if first is None and contact.phone_mobile:
                first = contact

    await interrupts.run(drain())
    say(
        f'segment {SEGMENT_UID} "{segment.name}" (plan is pro): {members} '
        f"contacts scrolled in {scroll.pages_fetched} pages"
    )
    if first is not None:
        name = first.first_name or first.user_id
        sms = await interrupts.run(
            client.sms.send_direct(
                first.phone_mobile,
                f"Hi {name}, thanks for being a Pro customer!",
                utm_term="demo-pro",
            )
        )
        if sms is not None:
            say(f"direct SMS {sms.id} to {sms.to or first.phone_mobile} ({name}): {sms.status}")
        else:
            say(f"direct SMS sent to {first.phone_mobile} ({name})")
    return scroll


def _print_totals(reports: tuple[Any, ...], throttled: int, fake: FakeInstasent) -> None:
    """What the ingestion cost in requests, and what the fake server holds at the end."""
    paced = sum(r.rate_limit_waits for r in reports)
    say(
        f"requests: {sum(r.requests for r in reports)} ingest requests, {paced} paced "
        f"by the SDK, {throttled} answered 429 (too many requests)"
    )
    say(
        f"the fake server stored {len(fake.contacts())} contacts, "
        f"{len(fake.events())} events, {len(fake.sent_sms())} SMS"
    )
    say()


async def run_demo(
    *,
    contacts: int = 20_000,
    events: int = 100_000,
    seed: int = 7,
    rate_limit: int = 250,
    window: float = 1.0,
    concurrency: int | None = None,
    progress: bool = True,
) -> int:
    """Run the demo and print what it does; return the exit code.

    0 when the run completed and exactly the invalid items it plants were rejected;
    1 if other items were rejected or failed; 3 on an API error; 130 when interrupted
    by Ctrl-C.
    """
    started = time.perf_counter()
    throttled = 0

    def on_event(event: Any) -> None:
        nonlocal throttled
        if event.kind == "throttled":
            throttled += 1

    planted_contacts = expected_invalid(contacts, CONTACT_SHARE)
    planted_events = expected_invalid(events, EVENT_SHARE)
    async with FakeInstasent(rate_limit=rate_limit, window=window) as fake:
        fake.add_segment(PROJECT, SEGMENT_UID, "Pro plan", query=SEGMENT_QUERY)
        _introduce(rate_limit, window, contacts, events)
        async with Instasent(
            fake.product_token, project=PROJECT, base_url=fake.base_url, on_event=on_event
        ) as client:
            # Ingestion with the datasource's own token, on the same pool and governor.
            writer = client.with_options(token=fake.datasource_token).datasource(DATASOURCE)
            try:
                with Interrupts("interrupted: letting in-flight batches finish") as interrupts:
                    contacts_report = await _ingest(
                        interrupts,
                        "contacts",
                        writer.contacts,
                        generate_contacts(contacts, seed),
                        contacts,
                        concurrency,
                        progress,
                    )
                    print_report("contacts", contacts_report, shown=0)
                    _print_planted(contacts_report, planted_contacts)
                    events_report = await _ingest(
                        interrupts,
                        "events",
                        writer.events,
                        generate_events(events, contacts, seed),
                        events,
                        concurrency,
                        progress,
                    )
                    print_report("events", events_report, shown=0)
                    _print_planted(events_report, planted_events)

                    scroll = await _scroll_and_text(client, interrupts)
            except asyncio.CancelledError:
                say("interrupted")
                return EXIT_INTERRUPTED
            except InstasentError as exc:
                message, code = describe_error(exc, fake.base_url)
                say(f"error: {message}")
                return code if code != EXIT_OK else EXIT_API
            _print_totals((contacts_report, events_report), throttled, fake)
            _print_where(client, writer, scroll)
    say(f"done in {time.perf_counter() - started:.1f}s")
    surprises = (
        contacts_report.rejected_count != planted_contacts
        or events_report.rejected_count != planted_events
        or contacts_report.failed_count
        or events_report.failed_count
    )
    return EXIT_REJECTED if surprises else EXIT_OK
