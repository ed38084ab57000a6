"""The converter's fast paths agree with the general code they shortcut.

- the structure hooks build objects by setting slots (``_direct_init``): the
  result equals, slot for slot, what the general hook (``cls(...)``) builds;
- the unstructure hooks format UTC datetimes inline: the text is what
  ``format_datetime`` writes, which is the documented ``YYYY-MM-DDTHH:MM:SS.sssZ``;
- ``parse_datetime`` reads strings with ``fromisoformat`` first (3.11+): the
  result is what the strip/"Z"-replace/regex route gives;
- ``to_wire_items`` converts a batch of one kind in one step: the result is
  what converting each item gives, including the datetimes it writes for the
  whole batch at once (one ``orjson.dumps`` and a replace on its bytes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from instasent_async._convert import (
    _BATCH_UNSTRUCTURERS,
    _REFERENCE_STRUCTURERS,
    _REFERENCE_UNSTRUCTURERS,
    _STRUCTURERS,
    _UNSTRUCTURERS,
    _direct_init,
    _fast_structurer,
    _plan,
    structure,
    to_wire_items,
    unstructure,
)
from instasent_async.models import WIRE_MODELS, Contact, Event
from instasent_async.models._base import (
    WIRE,
    _format_slow,
    _parse_iso_slow,
    format_datetime,
    parse_datetime,
    to_aware,
    wire,
)

UTC = dt.timezone.utc


# --- structure: slots set directly ------------------------------------------------------


def _slots(obj: Any) -> list[tuple[str, Any]]:
    return [(f.name, getattr(obj, f.name)) for f in attrs.fields(type(obj))]


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.text(max_size=5)
    | st.lists(st.text(max_size=3), max_size=2)
)
_dates = st.sampled_from(
    [
        "2024-10-28T00:10:02.471Z",
        "2024-10-28T00:10:02.471z",
        " 2024-10-28T00:10:02Z ",
        "2024-10-28T02:10:02.471+02:00",
        "2024-10-28 00:10:02",
        "2024-10-28",
        "20241028T001002",
        "2024-10-28T00:10:02.1234567Z",
        "not a date",
        1730074202,
    ]
)


def _payload(cls: type, data: st.DataObject, *more_keys: str) -> dict[str, Any]:
    """A wire dict for ``cls``: its keys, a few others, values of every kind and dates."""
    keys = [f.metadata[WIRE].key for f in attrs.fields(cls) if WIRE in f.metadata]
    keys += ["plan", "_custom", "city", *more_keys]
    payload: dict[str, Any] = data.draw(
        st.dictionaries(st.sampled_from(keys), _scalars | _dates, max_size=12)
    )
    return payload


@pytest.mark.parametrize("cls", WIRE_MODELS, ids=[c.__name__ for c in WIRE_MODELS])
@given(data=st.data())
def test_direct_init_builds_what_init_builds(cls: type, data: st.DataObject) -> None:
    payload = _payload(cls, data, "_user_id")
    fast = _STRUCTURERS[cls](payload)
    general = _REFERENCE_STRUCTURERS[cls](payload)
    assert type(fast) is cls
    assert _slots(fast) == _slots(general)
    assert fast._wire == general._wire
    for (name, a), (_, b) in zip(_slots(fast), _slots(general), strict=True):
        if isinstance(a, dict):
            assert list(a) == list(b), name  # same key order
        if isinstance(a, dt.datetime):
            assert a.tzinfo is not None and a.utcoffset() == b.utcoffset(), name


def test_every_wire_model_is_built_directly() -> None:
    for cls in WIRE_MODELS:
        assert "new" in _STRUCTURERS[cls].__globals__, cls.__name__


def _positive(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and not value.startswith("ok"):
        raise ValueError("must start with ok")


@attrs.define(slots=True, kw_only=True)
class WithValidator:
    name: str | None = attrs.field(default=None, validator=_positive, metadata=wire("_name"))
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)


@attrs.define(slots=True, kw_only=True)
class WithPostInit:
    name: str | None = attrs.field(default=None, metadata=wire("_name"))
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)
    seen: list[str] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        self.seen.append("post_init")


@attrs.define(slots=True, kw_only=True)
class WithConverter:
    name: str | None = attrs.field(default=None, converter=str.upper, metadata=wire("_name"))
    when: dt.datetime | None = attrs.field(
        default=None, converter=to_aware, metadata=wire("_when", "datetime")
    )
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)


@attrs.define(slots=True, kw_only=True)
class OnlyDatetimeConverter:
    when: dt.datetime | None = attrs.field(
        default=None, converter=to_aware, metadata=wire("_when", "datetime")
    )
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)


def test_models_with_more_than_plain_fields_go_through_init() -> None:
    for cls in (WithValidator, WithPostInit, WithConverter):
        assert not _direct_init(_plan(cls)), cls.__name__
    assert _direct_init(_plan(OnlyDatetimeConverter))
    # ...and their hooks still run the validator, the post-init and the converter.
    hook = _fast_structurer(_plan(WithValidator), _REFERENCE_STRUCTURERS[Contact])
    assert hook({"_name": "ok-1"}).name == "ok-1"
    with pytest.raises(ValueError, match="must start with ok"):
        hook({"_name": "bad"})
    hook = _fast_structurer(_plan(WithPostInit), _REFERENCE_STRUCTURERS[Contact])
    assert hook({"_name": "x"}).seen == ["post_init"]
    hook = _fast_structurer(_plan(WithConverter), _REFERENCE_STRUCTURERS[Contact])
    built = hook({"_name": "abc", "_when": "2024-01-02T03:04:05"})
    assert built.name == "ABC"
    assert built.when == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


# --- datetimes: inline formatting, format_datetime, parse_datetime -----------------------


class SubDatetime(dt.datetime):
    """A datetime subclass (what freezegun and pendulum hand out)."""


def _reference_format(value: dt.datetime) -> str:
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    plain = dt.datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond
    )
    return plain.isoformat(timespec="milliseconds") + "Z"


_offsets = st.sampled_from(
    [
        None,
        UTC,
        dt.timezone(dt.timedelta(hours=2)),
        dt.timezone(dt.timedelta(hours=-5, minutes=-30)),
    ]
)
_micros = st.sampled_from([0, 1000, 471000, 999000, 6, 471123, 999999]) | st.integers(0, 999_999)


@st.composite
def datetimes(draw: st.DrawFn) -> dt.datetime:
    naive = draw(
        st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))
    ).replace(microsecond=draw(_micros))
    value = naive.replace(tzinfo=draw(_offsets))
    if draw(st.booleans()):
        return SubDatetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tzinfo=value.tzinfo,
        )
    return value


@given(value=datetimes())
def test_datetimes_are_written_in_the_documented_form(value: dt.datetime) -> None:
    expected = _reference_format(value)
    assert format_datetime(value) == expected
    assert unstructure(Event(event_date=value)) == {"_event_date": expected}
    assert unstructure(Contact(date_updated=value))["_date_updated"] == expected
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    # Three fraction digits: what is written reads back cut to the millisecond.
    assert parse_datetime(expected) == aware.replace(microsecond=value.microsecond // 1000 * 1000)


def test_documented_form_examples() -> None:
    assert format_datetime(SubDatetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)) == (
        "2024-05-01T10:20:30.000Z"
    )
    event = Event(event_date=dt.datetime(2024, 5, 1, 10, 20, 30, 471000, tzinfo=UTC))
    assert unstructure(event)["_event_date"] == "2024-05-01T10:20:30.471Z"
    event.event_date = dt.datetime(1, 1, 1, tzinfo=UTC)
    assert unstructure(event)["_event_date"] == "0001-01-01T00:00:00.000Z"


def _reference_parse(value: str) -> dt.datetime:
    """parse_datetime's string route without the fromisoformat-first shortcut."""
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(
            text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
        )
    except ValueError:
        return _parse_iso_slow(value, text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


_iso_parts = st.sampled_from(
    [
        "2024",
        "-05",
        "-01",
        "T",
        " ",
        "10",
        ":20",
        ":30",
        ".471",
        ".1234567",
        ",5",
        "Z",
        "z",
        "+00:00",
        "-05:30",
        "+0200",
        "+02",
        "W01",
        "0501",
        "\n",
        "24:00",
        "x",
    ]
)


@given(text=st.lists(_iso_parts, max_size=9).map("".join), dated=st.booleans())
def test_parse_datetime_reads_strings_as_the_reference_route_does(text: str, dated: bool) -> None:
    if dated:
        text = "2024-05-01" + text
    try:
        expected: Any = _reference_parse(text)
    except ValueError:
        expected = ValueError
    try:
        got: Any = parse_datetime(text)
    except ValueError:
        got = ValueError
    assert got == expected
    if expected is not ValueError:
        assert got.utcoffset() == expected.utcoffset()
        fast = _STRUCTURERS[Contact]({"_date_updated": text})
        assert fast.date_updated == expected
        assert fast.date_updated.utcoffset() == expected.utcoffset()
        assert unstructure(fast) == {"_date_updated": text}


# --- to_wire_items: one kind of item in one step ----------------------------------------


_items = st.sampled_from(
    ["dict", "event", "bare event", "odd event", "contact", "read contact", "mapping"]
).map(
    lambda kind: {
        "dict": lambda: {"_user_id": "u", "_event_id": "e"},
        "event": lambda: Event(user_id="u", event_id="e", event_date=dt.datetime(2024, 1, 1)),
        "bare event": lambda: Event(),
        "odd event": lambda: Event(
            event_id="e",
            event_date=dt.datetime(2024, 1, 1, 3, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            extra={"_source": "x"},
        ),
        "contact": lambda: Contact(user_id="u", attributes={"plan": "pro"}),
        # Read from the wire: it carries the memory of what it was read from.
        "read contact": lambda: structure(
            {"_user_id": "r", "_date_updated": "2024-01-01 00:00:00+00:00", "plan": 1}, Contact
        ),
        "mapping": lambda: MappingProxyType({"_user_id": "m"}),
    }[kind]()
)


@given(items=st.lists(_items, max_size=6) | st.lists(_items, max_size=1).map(lambda x: x * 5))
def test_to_wire_items_of_one_kind_is_each_item_converted(items: list[Any]) -> None:
    out = to_wire_items(items)
    assert out is not items
    assert out == [unstructure(item) for item in items]
    for item, wire_item in zip(items, out, strict=True):
        if isinstance(item, Mapping):
            assert wire_item is item  # mappings pass through by identity
    assert to_wire_items(iter(items)) == out  # any iterable, same result


_zones = st.sampled_from(
    [
        None,
        UTC,
        dt.timezone(dt.timedelta(hours=2)),
        dt.timezone(dt.timedelta(hours=-5, minutes=-30)),
    ]
)
# Whole seconds, whole milliseconds and sub-millisecond fractions, equally often.
_micros = st.one_of(
    st.just(0), st.integers(1, 999).map(lambda ms: ms * 1000), st.integers(0, 999_999)
)
_batch_dates = st.builds(
    lambda day, micro, zone: day.replace(microsecond=micro, tzinfo=zone),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    _micros,
    _zones,
)


@given(
    dates=st.lists(st.none() | _batch_dates, max_size=40),
    read=st.sets(st.integers(0, 39), max_size=3),
)
def test_a_batch_of_events_writes_each_date_as_format_datetime_does(
    dates: list[dt.datetime | None], read: set[int]
) -> None:
    events = [
        Event(event_id=f"e{i}", event_date=date, event_parameters={"i": i})
        for i, date in enumerate(dates)
    ]
    for i in read & set(range(len(events))):  # read from the wire: the general path
        events[i] = structure(unstructure(events[i]), Event)
    out = to_wire_items(events)
    assert out == [unstructure(event) for event in events]
    for event, wire_item in zip(events, out, strict=True):
        assert list(wire_item) == list(unstructure(event))  # the same key order
        date = event.event_date
        if date is None:
            assert "_event_date" not in wire_item
        else:
            text = _format_slow(date.astimezone(UTC))  # the pure-Python reference
            assert wire_item["_event_date"] == text == format_datetime(date)


@given(dates=st.lists(_batch_dates, min_size=1, max_size=20))
def test_a_batch_of_contacts_writes_each_date_as_format_datetime_does(
    dates: list[dt.datetime],
) -> None:
    contacts = [Contact(user_id=f"u{i}", date_updated=d) for i, d in enumerate(dates)]
    out = to_wire_items(contacts)
    assert out == [unstructure(contact) for contact in contacts]
    assert [w["_date_updated"] for w in out] == [format_datetime(d) for d in dates]


# --- unstructure: the generated hooks against the reference -----------------------------


@pytest.mark.parametrize("cls", WIRE_MODELS, ids=[c.__name__ for c in WIRE_MODELS])
@given(data=st.data(), date=datetimes())
def test_generated_unstructure_writes_what_the_reference_writes(
    cls: type, data: st.DataObject, date: dt.datetime
) -> None:
    read = _REFERENCE_STRUCTURERS[cls](_payload(cls, data))
    built = attrs.evolve(read)  # the same values, built in Python: no wire memory
    for field in attrs.fields(cls):
        if field.metadata.get(WIRE) is not None and field.metadata[WIRE].kind == "datetime":
            setattr(built, field.name, date)  # every kind of datetime, not only parsed ones
    objects = [read, built]
    reference = _REFERENCE_UNSTRUCTURERS[cls]
    for obj in objects:
        fast = _UNSTRUCTURERS[cls](obj)
        assert fast == reference(obj)
        assert list(fast) == list(reference(obj))  # the same key order
    batch = _BATCH_UNSTRUCTURERS[cls]([built, read, built])
    assert batch == [reference(built), reference(read), reference(built)]


@pytest.mark.parametrize("cls", WIRE_MODELS, ids=[c.__name__ for c in WIRE_MODELS])
@given(data=st.data())
def test_the_reference_pair_round_trips_any_dict(cls: type, data: st.DataObject) -> None:
    payload = _payload(cls, data, "extra")
    obj = _REFERENCE_STRUCTURERS[cls](payload)
    assert _REFERENCE_UNSTRUCTURERS[cls](obj) == payload
