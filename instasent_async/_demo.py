"""``instasent-async demo``: the whole SDK against an in-process fake server.

It starts :class:`~instasent_async.testing.FakeInstasent` on 127.0.0.1 (a free port) with
a scaled-down rate limit, generates a realistic data set from a seeded
``random.Random`` (contacts with names, emails, phones and custom attributes; order,
page-view and update events, each with an ``_event_id``; a few invalid items of each),
ingests both from generators with a progress display, scrolls a segment of "pro plan"
contacts, sends one direct SMS, and prints the reports, the rate-limit buckets and what
the server stored. No token, no network, no files.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import random
import time
from collections.abc import Iterator
from typing import Any

from . import Instasent
from .cli import (
    EXIT_API,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REJECTED,
    Interrupts,
    describe_error,
    make_progress,
    print_report,
)
from .errors import InstasentError
from .testing import FakeInstasent

__all__ = [
    "DATASOURCE",
    "PROJECT",
    "SEGMENT_QUERY",
    "SEGMENT_UID",
    "generate_contacts",
    "generate_events",
    "invalid_positions",
    "run_demo",
]

PROJECT = "proj_demo"
DATASOURCE = "ds_demo"
SEGMENT_UID = "seg_pro"
SEGMENT_QUERY: dict[str, Any] = {
    "version": "0.0.1",
    "root": {
        "type": "group",
        "join": "and",
        "children": [
            {
                "type": "attribute_condition",
                "key": "plan",
                "operator": "matches-string",
                "values": ["pro"],
            }
        ],
    },
}
"""The demo segment: contacts whose ``plan`` custom attribute is ``pro``."""

_FIRST_TEXT = (
    "Lucía Sofía María Martina Paula Julia Daniela Valeria Alba Emma Carla Sara Noa Olivia "
    "Hugo Martín Lucas Mateo Leo Daniel Alejandro Pablo Manuel Álvaro Adrián David Mario "
    "Diego Javier Marc Laura Elena Irene Andrea Marta Ana Carmen Jorge Sergio Iker"
)
_FIRST = tuple(_FIRST_TEXT.split())
_LAST_TEXT = (
    "García Rodríguez González Fernández López Martínez Sánchez Pérez Gómez Martín Jiménez "
    "Ruiz Hernández Díaz Moreno Muñoz Álvarez Romero Alonso Gutiérrez Navarro Torres "
    "Domínguez Vázquez Ramos Gil Ramírez Serrano Blanco Molina Morales Suárez Ortega "
    "Delgado Castro Ortiz Rubio Marín Sanz Iglesias"
)
_LAST = tuple(_LAST_TEXT.split())
_DOMAINS = ("gmail.com", "hotmail.com", "yahoo.es", "outlook.com", "icloud.com", "example.org")
_CITIES = ("Madrid", "Barcelona", "Valencia", "Sevilla", "Zaragoza", "Málaga", "Bilbao", "Vigo")
_PLANS = ("free", "free", "free", "basic", "basic", "pro", "enterprise")
_SOURCES = ("landing-a", "landing-b", "referral", "ads", "store", "newsletter")
_TAGS = ("vip", "newsletter", "beta", "wholesale", "churn-risk", "app-user")
_PAGES = ("/", "/pricing", "/product/shoes", "/product/bags", "/cart", "/blog/summer", "/faq")
_ASCII = str.maketrans("áéíóúüñÁÉÍÓÚÜÑ", "aeiouunAEIOUUN")
_EPOCH = _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)
_DATE_SPAN = 180 * 24 * 3600


def invalid_positions(count: int, share: int, rng: random.Random) -> set[int]:
    """About one position in ``share`` (at least one when ``count`` > 0), drawn from ``rng``."""
    if count <= 0:
        return set()
    return set(rng.sample(range(count), max(1, count // share)))


def _user_id(index: int) -> str:
    return f"USER-{index:06d}"


def generate_contacts(count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``count`` contact items; about one in 1,000 has an invalid ``_email`` (no ``@``).

    Contact ``i`` has ``_user_id`` ``USER-{i:06d}``; the same ``seed`` gives the same data.
    """
    rng = random.Random(f"contacts-{seed}")
    bad = invalid_positions(count, 1000, rng)
    for index in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        local = f"{first}.{last}".lower().translate(_ASCII)
        domain = rng.choice(_DOMAINS)
        email = f"{local}{index}@{domain}" if index not in bad else f"{local}{index}.{domain}"
        contact: dict[str, Any] = {
            "_user_id": _user_id(index),
            "_first_name": first,
            "_last_name": last,
            "_email": email,
            "_phone_mobile": f"+346{rng.randrange(10**8):08d}",
            "plan": rng.choice(_PLANS),
            "city": rng.choice(_CITIES),
            "signup_source": rng.choice(_SOURCES),
            "lifetime_value": round(rng.lognormvariate(3.5, 1.0), 2),
        }
        if rng.random() < 0.3:
            contact["_client_tags"] = rng.sample(_TAGS, rng.randint(1, 3))
        yield contact


def _date(rng: random.Random) -> str:
    moment = _EPOCH + _dt.timedelta(seconds=rng.randrange(_DATE_SPAN))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def generate_events(count: int, contacts: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``count`` events of ``contacts`` users; about one in 5,000 lacks ``_event_type``.

    Every event has a unique ``_event_id`` (``EVT-{i:07d}``), so a retried batch can
    never store an event twice.
    """
    rng = random.Random(f"events-{seed}")
    bad = invalid_positions(count, 5000, rng)
    users = max(contacts, 1)
    for index in range(count):
        kind = rng.choices(("page_view", "ecommerce_order_create", "update"), (70, 20, 10))[0]
        parameters: dict[str, Any]
        if kind == "page_view":
            parameters = {"url": rng.choice(_PAGES)}
        elif kind == "ecommerce_order_create":
            parameters = {
                "order-id": f"ORD-{index:07d}",
                "order-euro-amount": round(rng.uniform(5, 400), 2),
            }
        else:
            parameters = {"source": rng.choice(("app", "web", "store"))}
        event: dict[str, Any] = {
            "_user_id": _user_id(rng.randrange(users)),
            "_event_id": f"EVT-{index:07d}",
            "_event_type": kind,
            "_event_date": _date(rng),
            "_event_parameters": parameters,
        }
        if index in bad:
            del event["_event_type"]
        yield event


def _say(text: str = "") -> None:
    print(text, flush=True)


def _summary(report: Any) -> str:
    return str(report).splitlines()[0]


def _print_rejected(label: str, report: Any, limit: int = 20) -> None:
    if not report.rejected:
        return
    _say(f"{label} the server rejected ({len(report.rejected)}):")
    for entry in report.rejected[:limit]:
        item = entry.item
        who = item.get("_event_id") or item.get("_user_id") if isinstance(item, dict) else None
        errors = "; ".join(f"{field}: {', '.join(msgs)}" for field, msgs in entry.errors.items())
        _say(f"  #{entry.position} {who or ''}: {errors}")
    if len(report.rejected) > limit:
        _say(f"  ... and {len(report.rejected) - limit} more")


def _print_buckets(client: Instasent) -> None:
    snapshots = client.rate_limits
    _say(f"rate-limit buckets ({len(snapshots)}):")
    for bucket in sorted(snapshots, key=lambda b: (b.key.scope, b.key.rate_class)):
        reset = bucket.reset_at.astimezone().strftime("%H:%M:%S") if bucket.reset_at else "-"
        _say(
            f"  {bucket.key.scope:<8} {bucket.key.rate_class:<22} limit {bucket.limit}, "
            f"remaining {bucket.remaining}, reset {reset}"
        )


async def _ingest(
    interrupts: Interrupts,
    label: str,
    target: Any,
    items: Iterator[dict[str, Any]],
    total: int,
    concurrency: int,
    progress: bool,
) -> Any:
    display = make_progress(label, total, style="auto" if progress else "none")
    try:
        return await interrupts.run(
            target.ingest(items, concurrency=concurrency, on_progress=display.update)
        )
    except asyncio.CancelledError as exc:
        display.close()
        report = getattr(exc, "report", None)
        if report is not None:
            print_report(f"{label} (interrupted)", report)
        raise
    finally:
        display.close()


async def run_demo(
    *,
    contacts: int = 20_000,
    events: int = 100_000,
    seed: int = 7,
    rate_limit: int = 250,
    window: float = 1.0,
    concurrency: int = 8,
    progress: bool = True,
) -> int:
    """Run the demo and print its reports; return the exit code.

    0 when the run completed and exactly the invalid items it generates on purpose were
    rejected; 1 if other items were rejected or failed; 3 on an API error; 130 when
    interrupted by Ctrl-C.
    """
    started = time.perf_counter()
    throttled = 0

    def on_event(event: Any) -> None:
        nonlocal throttled
        if event.kind == "throttled":
            throttled += 1

    async with FakeInstasent(rate_limit=rate_limit, window=window) as fake:
        fake.add_segment(PROJECT, SEGMENT_UID, "Pro plan", query=SEGMENT_QUERY)
        _say("instasent-async demo: a fake Instasent server in this process (no token, no network)")
        _say(f"server {fake.base_url}, rate limit {rate_limit} requests / {window:g}s per bucket")
        _say(f"data: {contacts} contacts and {events} events generated with seed {seed}")
        _say()
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
                    events_report = await _ingest(
                        interrupts,
                        "events",
                        writer.events,
                        generate_events(events, contacts, seed),
                        events,
                        concurrency,
                        progress,
                    )
                    _say(f"contacts: {_summary(contacts_report)}")
                    _say(f"events: {_summary(events_report)}")
                    _print_rejected("contacts", contacts_report)
                    _print_rejected("events", events_report)
                    _say()

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
                    _say(
                        f'segment {SEGMENT_UID} "{segment.name}": {members} contacts scrolled '
                        f"in {scroll.pages_fetched} pages"
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
                            _say(
                                f"direct SMS {sms.id} to {sms.to or first.phone_mobile} "
                                f"({name}): {sms.status}"
                            )
                        else:
                            _say(f"direct SMS sent to {first.phone_mobile} ({name})")
                    _say()
                    _print_buckets(client)
            except asyncio.CancelledError:
                _say("interrupted")
                return EXIT_INTERRUPTED
            except InstasentError as exc:
                message, code = describe_error(exc, fake.base_url)
                _say(f"error: {message}")
                return code if code != EXIT_OK else EXIT_API
        _say(f"429 responses: {throttled}")
        _say(
            f"the fake server stored {len(fake.contacts())} contacts, "
            f"{len(fake.events())} events, {len(fake.sent_sms())} SMS"
        )
    _say(f"done in {time.perf_counter() - started:.1f}s")
    expected = _expected_invalid(contacts, 1000) + _expected_invalid(events, 5000)
    surprises = len(contacts_report.rejected) + len(events_report.rejected) != expected
    return EXIT_REJECTED if surprises or contacts_report.failed or events_report.failed else EXIT_OK


def _expected_invalid(count: int, share: int) -> int:
    return max(1, count // share) if count > 0 else 0
