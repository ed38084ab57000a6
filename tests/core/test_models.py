"""Model classes: defaults, datetime helpers, and the ingest report types."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest

import instasent_async.models as models
from instasent_async.models import (
    WIRE_MODELS,
    BatchOutcome,
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
from instasent_async.models.ingest import UNKNOWN_OUTCOME

UTC = dt.timezone.utc

EXPORTED = {
    "AttributeSpec",
    "AudienceEvent",
    "Automation",
    "BatchOutcome",
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


def test_ok_means_nothing_rejected_or_failed() -> None:
    report = IngestReport(total=2, accepted=2)
    assert report.ok
    report.rejected.append(RejectedItem({"_user_id": "x"}, 0, {"_email": ["bad"]}))
    assert not report.ok
    only_failed = IngestReport(total=1, failed=[FailedItem({}, 0, "timeout")])
    assert not only_failed.ok


def test_add_outcome_maps_wire_items_back_to_the_callers_items() -> None:
    callers = [Contact(user_id=f"u{i}") for i in range(5)]
    batch = callers[2:5]
    wire = [{"_user_id": c.user_id} for c in batch]
    outcome = BatchOutcome(
        accepted=1,
        rejected=[RejectedItem(wire[1], 3, {"_email": ["Invalid format"]})],
        unknown=[4],
        raw={"weird": True},
    )
    report = IngestReport(total=5)
    report.add_outcome(outcome, batch, offset=2)
    assert report.accepted == 1
    assert report.rejected == [RejectedItem(callers[3], 3, {"_email": ["Invalid format"]})]
    assert report.rejected[0].item is callers[3]
    assert report.failed == [FailedItem(callers[4], 4, UNKNOWN_OUTCOME)]
    assert report.raw == [{"weird": True}]
    assert report.done == 3


def test_add_outcome_keeps_the_rejected_entry_when_items_are_the_same() -> None:
    items = [{"_user_id": "a"}]
    entry = RejectedItem(items[0], 0, {"_": ["no"]})
    report = IngestReport()
    report.add_outcome(BatchOutcome(rejected=[entry]), items)
    assert report.rejected[0] is entry
    assert report.raw == []


def test_add_failed_numbers_positions_from_the_offset() -> None:
    report = IngestReport()
    report.add_failed(["a", "b"], 10, "connection reset")
    assert report.failed == [
        FailedItem("a", 10, "connection reset"),
        FailedItem("b", 11, "connection reset"),
    ]


def test_merge_sums_counts_and_concatenates_items() -> None:
    a = IngestReport(total=3, accepted=2, requests=1, retries=1, rate_limit_waits=0, elapsed=1.5)
    a.failed.append(FailedItem("x", 2, "timeout"))
    b = IngestReport(total=2, accepted=1, requests=2, retries=0, rate_limit_waits=3, elapsed=0.5)
    b.rejected.append(RejectedItem("y", 4, {"_": ["bad"]}))
    b.raw.append("body")
    merged = a.merge(b)
    assert merged is a
    assert (a.total, a.accepted, a.requests, a.retries, a.rate_limit_waits) == (5, 3, 3, 1, 3)
    assert a.elapsed == 1.5
    assert [f.position for f in a.failed] == [2]
    assert [r.position for r in a.rejected] == [4]
    assert a.raw == ["body"]


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
        total=10, accepted=2, requests=3, retries=1, rate_limit_waits=2, elapsed=1.234
    )
    report.rejected.extend(RejectedItem({}, i, {"_email": ["Invalid format"]}) for i in range(7))
    report.failed.append(FailedItem({}, 9, "timeout"))
    report.raw.append({})
    text = str(report)
    first = text.splitlines()[0]
    assert first == (
        "10 items: 2 accepted, 7 rejected, 1 failed "
        "(3 requests, 1 retries, 2 rate-limit waits, 1.23s)"
    )
    assert "rejected #0: _email: Invalid format" in text
    assert "rejected #4:" in text and "rejected #5:" not in text
    assert "... and 2 more rejected" in text
    assert "failed #9: timeout" in text
    assert "1 response bodies kept in .raw" in text


def test_report_items_are_records() -> None:
    rejected = RejectedItem(item={"a": 1}, position=3, errors={"_": ["x"]})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        rejected.position = 4  # type: ignore[misc]
    assert BatchOutcome() == BatchOutcome(0, [], [], None)


def test_event_model_equality_and_repr() -> None:
    event = Event(user_id="u", event_id="e", event_parameters={"a": 1})
    assert event == Event(user_id="u", event_id="e", event_parameters={"a": 1})
    assert "event_id='e'" in repr(event)
