"""Model classes: defaults, datetime helpers, and the ingest report types."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest

import instasent_async.models as models
from instasent_async.models import (
    WIRE_MODELS,
    Contact,
    Event,
    FailedItem,
    IngestReport,
    Organization,
    RejectedItem,
)
from instasent_async.models._base import (
    WireSpec,
    _parse_iso_slow,
    format_datetime,
    parse_datetime,
    wire,
)

UTC = dt.timezone.utc

EXPORTED = {
    "AttributeSpec",
    "AudienceEvent",
    "Automation",
    "Campaign",
    "Contact",
    "DatasourceStats",
    "Event",
    "EventParameterSpec",
    "EventTypeSpec",
    "FailedItem",
    "IngestReport",
    "Organization",
    "Project",
    "RejectedItem",
    "Segment",
    "SmsMessage",
    "SmsSender",
    "StreamInfo",
}


def test_models_package_exports_every_model() -> None:
    assert set(models.__all__) >= EXPORTED
    for name in EXPORTED:
        assert attrs.has(getattr(models, name)), name


@pytest.mark.parametrize("cls", WIRE_MODELS, ids=[c.__name__ for c in WIRE_MODELS])
def test_wire_models_are_slotted_and_default_to_empty(cls: type) -> None:
    obj = cls()
    assert not hasattr(obj, "__dict__")
    assert obj.extra == {}
    for field in attrs.fields(cls):
        if field.name in ("extra", "attributes", "projects", "_wire"):
            continue
        assert getattr(obj, field.name) is None, field.name


def test_default_containers_are_not_shared() -> None:
    a, b = Contact(), Contact()
    a.attributes["x"] = 1
    a.extra["_y"] = 2
    assert b.attributes == {} and b.extra == {}
    assert Organization().projects is not Organization().projects


def test_wire_metadata_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="unknown wire kind"):
        wire("_x", "decimal")
    with pytest.raises(ValueError, match="'models' kind needs a model"):
        WireSpec("_x", "models")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-10-28T00:10:02.471Z", dt.datetime(2024, 10, 28, 0, 10, 2, 471000, tzinfo=UTC)),
        ("2024-10-28T00:10:02.471z", dt.datetime(2024, 10, 28, 0, 10, 2, 471000, tzinfo=UTC)),
        ("2024-10-28T00:10:02Z", dt.datetime(2024, 10, 28, 0, 10, 2, tzinfo=UTC)),
        ("2024-10-28T00:10:02", dt.datetime(2024, 10, 28, 0, 10, 2, tzinfo=UTC)),
        ("2024-10-28 00:10", dt.datetime(2024, 10, 28, 0, 10, tzinfo=UTC)),
        ("2024-10-28", dt.datetime(2024, 10, 28, tzinfo=UTC)),
        ("2024-10-28T02:10:02+02:00", dt.datetime(2024, 10, 28, 0, 10, 2, tzinfo=UTC)),
        ("2024-10-28T02:10:02+0200", dt.datetime(2024, 10, 28, 0, 10, 2, tzinfo=UTC)),
        ("2024-10-28T02:10:02.5+02", dt.datetime(2024, 10, 28, 0, 10, 2, 500000, tzinfo=UTC)),
        ("2024-10-28T00:10:02.123456789Z", dt.datetime(2024, 10, 28, 0, 10, 2, 123456, tzinfo=UTC)),
        (" 2024-10-28T00:10:02Z ", dt.datetime(2024, 10, 28, 0, 10, 2, tzinfo=UTC)),
        (1730074202, dt.datetime(2024, 10, 28, 0, 10, 2, tzinfo=UTC)),
        (1730074202.5, dt.datetime(2024, 10, 28, 0, 10, 2, 500000, tzinfo=UTC)),
        (1730074202471, dt.datetime(2024, 10, 28, 0, 10, 2, 471000, tzinfo=UTC)),
        (dt.datetime(2024, 10, 28), dt.datetime(2024, 10, 28, tzinfo=UTC)),
    ],
)
def test_parse_datetime_forms(text: Any, expected: dt.datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.tzinfo is not None


@pytest.mark.parametrize(
    "text",
    [
        "2024-10-28T00:10:02.471Z",
        "2024-10-28T00:10:02.471z",
        "2024-10-28T00:10:02",
        "2024-10-28 00:10",
        "2024-10-28",
        "2024-10-28T02:10:02+02:00",
        "2024-10-28T02:10:02+0200",
        "2024-10-28T02:10:02.5+02",
        "2024-10-28T02:10:02.47-03:30",
        "2024-10-28T00:10:02,25Z",
    ],
)
def test_iso_fallback_parser_agrees(text: str) -> None:
    # Python 3.10's fromisoformat knows few of these forms: the fallback must.
    assert _parse_iso_slow(text, text) == parse_datetime(text)


@pytest.mark.parametrize("bad", ["", "yesterday", "2024-13-45", "28/10/2024", True, None, [], 1e30])
def test_parse_datetime_rejects_non_dates(bad: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the input
        parse_datetime(bad)


def test_format_datetime() -> None:
    assert (
        format_datetime(dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2024-01-02T03:04:05.000Z"
    )
    assert format_datetime(dt.datetime(2024, 1, 2, 3, 4, 5, 6000)) == "2024-01-02T03:04:05.006Z"
    minus5 = dt.timezone(dt.timedelta(hours=-5))
    assert (
        format_datetime(dt.datetime(2024, 1, 1, 22, 0, tzinfo=minus5)) == "2024-01-02T03:00:00.000Z"
    )
    # Always three fraction digits (JavaScript's toISOString): sub-milliseconds are cut.
    assert (
        format_datetime(dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
        == "2024-01-02T03:04:05.000Z"
    )
    assert (
        format_datetime(dt.datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
        == "2024-12-31T23:59:59.999Z"
    )


def test_format_then_parse_is_the_identity() -> None:
    value = dt.datetime(2031, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert parse_datetime(format_datetime(value)) == value


# --- ingest report types -----------------------------------------------------------------


def test_ok_and_done_follow_the_exact_counts() -> None:
    report = IngestReport(total=2, accepted=2)
    assert report.ok and report.done == 2
    # Counts are exact; the kept lists may be capped (here: nothing kept at all).
    capped = IngestReport(total=5, accepted=2, rejected_count=2, failed_count=1)
    assert not capped.ok
    assert capped.done == 5
    assert not IngestReport(total=1, failed_count=1).ok


def test_sort_orders_by_position() -> None:
    report = IngestReport(
        rejected=[RejectedItem("b", 7, {}), RejectedItem("a", 1, {})],
        failed=[FailedItem("d", 9, "x"), FailedItem("c", 3, "x")],
    )
    report.sort()
    assert [r.position for r in report.rejected] == [1, 7]
    assert [f.position for f in report.failed] == [3, 9]


def test_str_is_a_readable_summary() -> None:
    report = IngestReport(
        total=10,
        accepted=2,
        rejected_count=7,
        failed_count=1,
        requests=3,
        retries=1,
        rate_limit_waits=2,
        rate_limited=1,
        elapsed=1.234,
    )
    report.rejected.extend(RejectedItem({}, i, {"_email": ["Invalid format"]}) for i in range(7))
    report.failed.append(FailedItem({}, 9, "timeout", line=11))
    report.raw.append({})
    text = str(report)
    first = text.splitlines()[0]
    assert first == (
        "10 items: 2 accepted, 7 rejected, 1 failed "
        "(3 requests, 1 retries, 2 paced, 1 rate-limited (429), 1.23s)"
    )
    assert "rejected #0: _email: Invalid format" in text
    assert "rejected #4:" in text and "rejected #5:" not in text
    assert "... and 2 more rejected" in text
    assert "failed #9 (line 11): timeout" in text
    assert "1 response bodies kept in .raw" in text


def test_report_items_are_records() -> None:
    rejected = RejectedItem(item={"a": 1}, position=3, errors={"_": ["x"]})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        rejected.position = 4  # type: ignore[misc]
    assert rejected.line is None
    assert FailedItem("x", 1, "timeout", 7).line == 7


def test_event_model_equality_and_repr() -> None:
    event = Event(user_id="u", event_id="e", event_parameters={"a": 1})
    assert event == Event(user_id="u", event_id="e", event_parameters={"a": 1})
    assert "event_id='e'" in repr(event)
