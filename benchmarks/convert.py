"""Model conversion: the generated hooks against the reference implementation.

``instasent_async._convert`` keeps generated (straight-line) hooks beside a plain
reference implementation of the same rules; a generated hook stays only while it
is clearly cheaper. This measures, in one process and alternating rounds, the CPU
per object of each public conversion path and of the reference it shortcuts:

- reading a contact (``from_dict(CONTACT, Contact)``, what every ``audience.get*``
  does with the 15-key contact of ``_server.py``);
- writing an ``Event`` built in Python (``to_dict(event)``);
- writing a batch of 100 events (``to_wire_items``, what ``events.add/ingest`` does
  with models), with one shared whole-second date, distinct millisecond dates and
  sub-millisecond dates (``datetime.now()``).

Reports the median of the rounds' per-object microseconds and the ratio
reference / generated (higher: the generated hook earns more). No network.

    python benchmarks/convert.py            # about 15 seconds
    python benchmarks/convert.py --quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import timeit
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _server import CONTACT

from instasent_async import Contact, Event, from_dict, to_dict
from instasent_async._convert import reference_hooks, to_wire_items

UTC = dt.timezone.utc
DAY = dt.datetime(2024, 5, 1, tzinfo=UTC)
DATES: dict[str, Callable[[int], dt.datetime]] = {
    "one whole-second date": lambda i: DAY.replace(hour=10, minute=20, second=30),
    "distinct ms dates": lambda i: DAY + dt.timedelta(milliseconds=37 * i + 1),
    "sub-ms dates": lambda i: DAY + dt.timedelta(microseconds=1237 * i + 1),
}


def events(date: Callable[[int], dt.datetime]) -> list[Event]:
    return [
        Event(
            user_id=f"USER-{i:06d}",
            event_id=f"evt-{i:09d}",
            event_type="purchase",
            event_date=date(i),
            event_parameters={"amount": 19.99, "currency": "EUR", "sku": f"SKU-{i % 997}"},
        )
        for i in range(100)
    ]


def cases() -> list[tuple[str, Callable[[], Any], Callable[[], Any], int]]:
    """(name, generated path, reference path, objects per call)."""
    read_contact, _ = reference_hooks(Contact)
    _, write_event = reference_hooks(Event)
    one = events(DATES["one whole-second date"])[7]
    out: list[tuple[str, Callable[[], Any], Callable[[], Any], int]] = [
        (
            "read a 15-key contact",
            lambda: from_dict(CONTACT, Contact),
            lambda: read_contact(CONTACT),
            1,
        ),
        ("write one Event", lambda: to_dict(one), lambda: write_event(one), 1),
    ]
    for label, date in DATES.items():
        batch = events(date)
        out.append(
            (
                f"write 100 Events, {label}",
                lambda batch=batch: to_wire_items(batch),
                lambda batch=batch: [write_event(e) for e in batch],
                len(batch),
            )
        )
    return out


def per_object_us(call: Callable[[], Any], objects: int, seconds: float) -> float:
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    number = max(1, int(number * seconds / 0.2))
    return timer.timeit(number) / number / objects * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (7)")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    seconds = 0.1 if args.quick else 0.3
    rows = []
    for name, fast, reference, objects in cases():
        assert fast() == reference(), name  # the two paths agree before they are timed
        fast_us: list[float] = []
        ref_us: list[float] = []
        for _ in range(rounds):
            fast_us.append(per_object_us(fast, objects, seconds))
            ref_us.append(per_object_us(reference, objects, seconds))
        ratio = statistics.median(r / f for r, f in zip(ref_us, fast_us, strict=True))
        rows.append((name, statistics.median(fast_us), statistics.median(ref_us), ratio))
    print(f"Python {sys.version.split()[0]}, {rounds} alternating rounds, medians, us per object")
    header = f"{'path':<44} {'generated':>9} {'reference':>9} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for name, fast, ref, ratio in rows:
        print(f"{name:<44} {fast:>9.3f} {ref:>9.3f} {ratio:>6.2f}")
    print("\nratio: reference / generated per object (higher: the generated hook saves more)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
