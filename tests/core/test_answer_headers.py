"""parse_answer: one parse of an answer's rate-limit headers, and what is believed."""

from __future__ import annotations

import email.utils

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from instasent_async._core.headers import AnswerInfo, parse_answer

NOW = 1_750_000_000.0  # the local wall clock when the answer arrived
SERVER = NOW + 3600.0  # the server's clock, an hour ahead: nothing may depend on it


def headers(**values: str) -> CIMultiDictProxy[str]:
    names = {
        "limit": "X-RateLimit-Limit",
        "remaining": "x-ratelimit-remaining",  # case must not matter
        "reset": "X-RateLimit-Reset",
        "retry_after": "Retry-After",
        "date": "Date",
    }
    return CIMultiDictProxy(CIMultiDict({names[k]: v for k, v in values.items()}))


def date(epoch: float) -> str:
    return email.utils.formatdate(int(epoch), usegmt=True)


def test_no_rate_limit_headers_is_an_empty_answer() -> None:
    info = parse_answer(headers(date=date(SERVER)), NOW)
    assert not info.has_rate_limit_headers
    assert info.announced_wait is None
    assert (info.limit, info.remaining, info.reset_in, info.implausible) == (None, None, None, None)


def test_an_absolute_reset_is_read_against_the_server_date() -> None:
    info = parse_answer(
        headers(limit="600", remaining="587", reset=str(int(SERVER) + 30), date=date(SERVER)), NOW
    )
    assert (info.limit, info.remaining) == (600, 587)
    assert info.reset_epoch == int(SERVER) + 30
    assert info.reset_in == 30.0
    assert info.server_date == int(SERVER)
    assert info.received_at == NOW
    assert info.implausible is None
    assert info.announced_wait == 30.0


def test_an_absolute_reset_without_a_date_is_read_against_the_local_clock() -> None:
    info = parse_answer(headers(remaining="1", reset=str(int(NOW) + 10)), NOW)
    assert info.reset_in == 10.0 and info.server_date is None


def test_a_small_reset_is_seconds_from_now() -> None:
    info = parse_answer(headers(remaining="5", reset="2.5"), NOW)
    assert (info.reset_epoch, info.reset_in) == (None, 2.5)


def test_retry_after_wins_as_seconds_or_as_an_http_date() -> None:
    both = headers(remaining="0", reset=str(int(SERVER) + 40), date=date(SERVER), retry_after="7")
    assert parse_answer(both, NOW).announced_wait == 7.0
    as_date = headers(retry_after=date(SERVER + 12), date=date(SERVER))
    assert parse_answer(as_date, NOW).retry_after == 12.0
    past = headers(retry_after=date(SERVER - 12), date=date(SERVER))
    assert parse_answer(past, NOW).retry_after == 0.0


def test_integral_floats_are_counts() -> None:
    info = parse_answer(headers(limit="10.0", remaining="7.0"), NOW)
    assert (info.limit, info.remaining, info.implausible) == (10, 7, None)


def test_a_reset_at_the_date_second_is_now_not_garbage() -> None:
    info = parse_answer(headers(remaining="0", reset=str(int(SERVER)), date=date(SERVER)), NOW)
    assert (info.reset_in, info.implausible) == (0.0, None)


@pytest.mark.parametrize(
    ("values", "why"),
    [
        ({"remaining": "lots"}, "unreadable X-RateLimit-Remaining"),
        ({"limit": "many", "remaining": "3"}, "unreadable X-RateLimit-Limit"),
        ({"remaining": "-4"}, "unreadable X-RateLimit-Remaining"),
        ({"remaining": "7.5"}, "unreadable X-RateLimit-Remaining"),
        ({"remaining": str(2**60)}, "unreadable X-RateLimit-Remaining"),
        ({"remaining": "1", "reset": "soon"}, "unreadable X-RateLimit-Reset"),
        ({"remaining": "1", "reset": "nan"}, "unreadable X-RateLimit-Reset"),
        ({"remaining": "1", "reset": "1e999"}, "unreadable X-RateLimit-Reset"),
        ({"remaining": "1", "reset": "5", "date": "yesterday"}, "unreadable Date"),
        ({"retry_after": "soon"}, "unreadable Retry-After"),
        ({"limit": "10", "remaining": "11"}, "Remaining above X-RateLimit-Limit"),
        ({"remaining": "1", "reset": "90000"}, "more than a day ahead"),
        ({"retry_after": "31536000"}, "Retry-After more than a day ahead"),
        ({"remaining": "1", "reset": str(int(SERVER) + 365 * 86400)}, "more than a day ahead"),
        ({"remaining": "1", "reset": str(int(SERVER) - 5)}, "in the past"),
    ],
)
def test_garbage_or_implausible_headers_are_flagged_and_not_believed(
    values: dict[str, str], why: str
) -> None:
    values.setdefault("date", date(SERVER))
    info = parse_answer(headers(**values), NOW)
    assert info.implausible is not None and why in info.implausible
    assert info.has_rate_limit_headers
    assert info.announced_wait is None


def test_a_garbage_value_is_quoted_short_in_the_reason() -> None:
    info = parse_answer(headers(remaining="x" * 500), NOW)
    assert info.implausible is not None and len(info.implausible) < 80


def test_the_value_is_immutable() -> None:
    info = parse_answer(headers(remaining="1", reset="2"), NOW)
    assert isinstance(info, AnswerInfo)
    with pytest.raises(AttributeError):
        info.remaining = 5  # type: ignore[misc]


def test_plain_dicts_work_too() -> None:
    info = parse_answer({"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "9"}, NOW)
    assert (info.remaining, info.reset_in) == (3, 9.0)
