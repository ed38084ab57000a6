"""The demo's data set: realistic contacts and events from a seeded ``random.Random``.

Contacts have names, emails, phones and custom attributes; events are orders, page views
and updates, each with an ``_event_id``. A few items of each are invalid on purpose
(:func:`expected_invalid` says how many), so the demo can show how rejections look.
"""

from __future__ import annotations

import datetime as _dt
import random
from collections.abc import Iterator
from typing import Any

__all__ = [
    "CONTACT_SHARE",
    "DATASOURCE",
    "EVENT_SHARE",
    "PROJECT",
    "SEGMENT_QUERY",
    "SEGMENT_UID",
    "expected_invalid",
    "generate_contacts",
    "generate_events",
    "invalid_positions",
]

CONTACT_SHARE = 1000
"""About one contact in this many has an invalid email."""
EVENT_SHARE = 5000
"""About one event in this many lacks its ``_event_type``."""

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
    return set(rng.sample(range(count), expected_invalid(count, share)))


def _user_id(index: int) -> str:
    return f"USER-{index:06d}"


def generate_contacts(count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``count`` contact items; about one in 1,000 has an invalid ``_email`` (no ``@``).

    Contact ``i`` has ``_user_id`` ``USER-{i:06d}``; the same ``seed`` gives the same data.
    """
    rng = random.Random(f"contacts-{seed}")
    bad = invalid_positions(count, CONTACT_SHARE, rng)
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
    bad = invalid_positions(count, EVENT_SHARE, rng)
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


def expected_invalid(count: int, share: int) -> int:
    """How many of ``count`` generated items are invalid on purpose (one in ``share``)."""
    return max(1, count // share) if count > 0 else 0
