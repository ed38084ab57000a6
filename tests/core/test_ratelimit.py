"""RateLimitGovernor bookkeeping and header parsing: fake clocks, no I/O."""

from __future__ import annotations

import datetime as dt
import email.utils
import itertools
import logging
import time

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from instasent_async._errors import RateLimitInfo
from instasent_async._ratelimit import (
    BucketKey,
    BucketSnapshot,
    Permit,
    RateLimitEvent,
    RateLimitGovernor,
    _Bucket,
    parse_rate_limit,
    reset_delay,
)

KEY = BucketKey("0123456789ab", "org", "default")
SCROLL = BucketKey("0123456789ab", "org", "scroll")

# The server's clock, one hour ahead of the client's wall clock: nothing may depend on it.
WALL0 = 1_750_000_000.0
SERVER0 = WALL0 + 3600.0


class FakeClock:
    """A monotonic clock and a wall clock that move together when advanced."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = WALL0

    def __call__(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def http_date(epoch: float) -> str:
    return email.utils.formatdate(int(epoch), usegmt=True)


def rl_headers(
    remaining: int | str | None,
    *,
    limit: int | str | None = 10,
    reset: float | str | None = None,
    date: float | str | None = None,
    retry_after: str | None = None,
) -> CIMultiDictProxy[str]:
    """Response headers as aiohttp hands them over (case-insensitive)."""
    h: CIMultiDict[str] = CIMultiDict()
    if limit is not None:
        h["X-RateLimit-Limit"] = str(limit)
    if remaining is not None:
        h["x-ratelimit-remaining"] = str(remaining)  # case must not matter
    if reset is not None:
        h["X-RateLimit-Reset"] = reset if isinstance(reset, str) else str(round(reset))
    if date is not None:
        h["Date"] = date if isinstance(date, str) else http_date(date)
    if retry_after is not None:
        h["Retry-After"] = retry_after
    return CIMultiDictProxy(h)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def governor(clock: FakeClock, **kwargs: object) -> RateLimitGovernor:
    return RateLimitGovernor(clock=clock, wall_clock=clock.time, **kwargs)  # type: ignore[arg-type]


def server_headers(
    clock: FakeClock, remaining: int, *, limit: int = 10, left: float = 10.0
) -> CIMultiDictProxy[str]:
    """Headers of a server one hour ahead whose window ends ``left`` seconds from now.

    The server's second boundary is aligned with the client's, so the Date header
    is exact and so is the deadline.
    """
    server_now = SERVER0 + (clock.wall - WALL0)
    return rl_headers(remaining, limit=limit, reset=server_now + left, date=server_now)


def open_bucket(
    gov: RateLimitGovernor, clock: FakeClock, remaining: int, *, limit: int = 10, left: float = 10.0
) -> None:
    """Probe an unknown bucket and answer it, leaving it open."""
    probe = gov.try_acquire(KEY)
    assert probe is not None and probe.probe
    gov.release(probe, 200, server_headers(clock, remaining, limit=limit, left=left))


def snap(gov: RateLimitGovernor, key: BucketKey = KEY) -> BucketSnapshot:
    (found,) = [s for s in gov.snapshot() if s.key == key]
    return found


# -- pure header parsing ---------------------------------------------------------------


def test_parse_rate_limit_without_headers_is_none() -> None:
    assert parse_rate_limit(CIMultiDictProxy(CIMultiDict({"Content-Type": "x"}))) is None


def test_parse_rate_limit_reads_reset_against_the_server_date() -> None:
    # The server clock is an hour ahead; the window ends 30 s after its Date.
    server_now = time.time() + 3600
    info = parse_rate_limit(rl_headers(587, limit=600, reset=server_now + 30, date=server_now))
    assert info is not None
    assert (info.limit, info.remaining) == (600, 587)
    assert info.reset_at is not None
    assert info.reset_at.tzinfo is not None
    left = (info.reset_at - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 28 <= left <= 31


def test_parse_rate_limit_relative_reset() -> None:
    info = parse_rate_limit(rl_headers(5, reset="20"))
    assert info is not None and info.reset_at is not None
    left = (info.reset_at - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 18 <= left <= 21


@pytest.mark.parametrize("garbage", ["", "abc", "-1", "nan", "inf", "1e999", "0x10", "🙂"])
def test_parse_rate_limit_garbage_gives_none_fields(garbage: str) -> None:
    info = parse_rate_limit(rl_headers(garbage, limit=garbage, reset=garbage, date=garbage))
    assert info == RateLimitInfo(limit=None, remaining=None, reset_at=None)


def test_parse_rate_limit_accepts_integral_floats_only() -> None:
    info = parse_rate_limit(rl_headers("7.0", limit="10.0"))
    assert info is not None and (info.limit, info.remaining) == (10, 7)
    info = parse_rate_limit(rl_headers("7.5", limit="1e3"))
    assert info is not None and (info.limit, info.remaining) == (1000, None)


def test_reset_delay_absolute_against_date() -> None:
    assert reset_delay(rl_headers(1, reset=SERVER0 + 42, date=SERVER0)) == 42.0


def test_reset_delay_without_date_uses_the_local_clock() -> None:
    delay = reset_delay(rl_headers(1, reset=time.time() + 10))
    assert delay is not None and 8 <= delay <= 10.5


def test_reset_delay_relative_and_clamped() -> None:
    assert reset_delay(rl_headers(1, reset="2.5")) == 2.5
    assert reset_delay(rl_headers(1, reset=SERVER0 - 50, date=SERVER0)) == 0.0


def test_retry_after_wins() -> None:
    assert reset_delay(rl_headers(0, reset=SERVER0 + 40, date=SERVER0, retry_after="7")) == 7.0
    as_date = rl_headers(0, reset=SERVER0 + 40, date=SERVER0, retry_after=http_date(SERVER0 + 12))
    assert reset_delay(as_date) == 12.0
    # A garbage Retry-After falls back to the reset.
    bad = rl_headers(0, reset=SERVER0 + 40, date=SERVER0, retry_after="soon")
    assert reset_delay(bad) == 40.0


def test_reset_delay_unknown() -> None:
    assert reset_delay(rl_headers(3)) is None
    assert reset_delay(rl_headers(3, reset="never")) is None


# -- probe, room, unmanaged buckets ------------------------------------------------------


def test_unknown_bucket_sends_one_probe_first(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    probe = gov.try_acquire(KEY)
    assert isinstance(probe, Permit) and probe.probe and probe.key == KEY
    assert gov.try_acquire(KEY) is None  # everyone else waits for the probe's answer
    gov.release(probe, 200, server_headers(clock, 5))
    granted = [gov.try_acquire(KEY) for _ in range(6)]
    assert [p is not None for p in granted] == [True] * 5 + [False]
    assert not any(p.probe for p in granted if p is not None)


def test_room_counts_requests_in_flight(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    open_bucket(gov, clock, 3)
    permits = [gov.try_acquire(KEY) for _ in range(3)]
    assert all(permits)
    assert gov.try_acquire(KEY) is None
    assert snap(gov).in_flight == 3
    # Answers come back: the server's count and our in-flight count fall together.
    gov.release(permits[0], 200, server_headers(clock, 2))  # type: ignore[arg-type]
    assert gov.try_acquire(KEY) is None
    gov.release(permits[1], 200, server_headers(clock, 1))  # type: ignore[arg-type]
    gov.release(permits[2], 200, server_headers(clock, 0))  # type: ignore[arg-type]
    assert gov.try_acquire(KEY) is None
    assert snap(gov).in_flight == 0


def test_window_refills_at_the_reset_without_new_headers(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    open_bucket(gov, clock, 0, limit=4, left=5.0)
    assert gov.try_acquire(KEY) is None
    clock.advance(4.9)
    assert gov.try_acquire(KEY) is None
    clock.advance(0.2)
    permits = [gov.try_acquire(KEY) for _ in range(5)]
    assert [p is not None for p in permits] == [True] * 4 + [False]


def test_refill_keeps_counting_requests_still_in_flight(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    open_bucket(gov, clock, 2, limit=4, left=5.0)
    slow = [gov.try_acquire(KEY), gov.try_acquire(KEY)]
    assert all(slow)
    clock.advance(5.1)
    granted = [gov.try_acquire(KEY) for _ in range(3)]
    assert [p is not None for p in granted] == [True, True, False]


@pytest.mark.parametrize(
    "headers",
    [
        CIMultiDictProxy(CIMultiDict()),
        rl_headers("lots", limit="many", reset="later", date="yesterday"),
        rl_headers(None, limit=10, reset=SERVER0),
    ],
    ids=["missing", "garbage", "no-remaining"],
)
def test_missing_or_garbage_headers_make_the_bucket_unmanaged(
    clock: FakeClock, headers: CIMultiDictProxy[str]
) -> None:
    gov = governor(clock)
    probe = gov.try_acquire(KEY)
    assert probe is not None
    gov.release(probe, 200, headers)
    # Permits flow freely: missing headers never serialize traffic.
    permits = [gov.try_acquire(KEY) for _ in range(200)]
    assert all(permits)
    for p in permits:
        gov.release(p, 200, headers)  # type: ignore[arg-type]
    assert snap(gov).in_flight == 0


def test_unmanaged_bucket_becomes_managed_when_headers_appear(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    probe = gov.try_acquire(KEY)
    gov.release(probe, 200, CIMultiDictProxy(CIMultiDict()))  # type: ignore[arg-type]
    p = gov.try_acquire(KEY)
    assert p is not None
    gov.release(p, 200, server_headers(clock, 1))
    assert gov.try_acquire(KEY) is not None
    assert gov.try_acquire(KEY) is None


def test_headers_missing_on_one_answer_change_nothing(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    open_bucket(gov, clock, 2)
    p = gov.try_acquire(KEY)
    gov.release(p, 502, CIMultiDictProxy(CIMultiDict()))  # type: ignore[arg-type]  # a proxy's error page
    assert snap(gov).remaining == 2


def test_a_failed_probe_lets_the_next_request_probe(clock: FakeClock) -> None:
    gov = governor(clock)
    probe = gov.try_acquire(KEY)
    assert gov.try_acquire(KEY) is None
    gov.release(probe, None, None)  # type: ignore[arg-type]  # connection refused / cancelled
    again = gov.try_acquire(KEY)
    assert again is not None and again.probe
    assert snap(gov).in_flight == 1


def test_release_twice_is_ignored(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    open_bucket(gov, clock, 5)
    p = gov.try_acquire(KEY)
    gov.release(p, 200, server_headers(clock, 4))  # type: ignore[arg-type]
    gov.release(p, 200, server_headers(clock, 4))  # type: ignore[arg-type]
    assert snap(gov).in_flight == 0


# -- pacing -------------------------------------------------------------------------------


def test_spread_pacing_spaces_the_remaining_allowance(clock: FakeClock) -> None:
    gov = governor(clock)  # spread is the default
    open_bucket(gov, clock, 10, limit=11, left=10.0)
    remaining = 10
    sent_at: list[float] = []
    for _ in range(200):
        p = gov.try_acquire(KEY)
        if p is not None:
            sent_at.append(clock.mono)
            remaining -= 1
            left = 10.0 - (clock.mono - 1000.0)
            gov.release(p, 200, server_headers(clock, remaining, limit=11, left=left))
            continue
        clock.advance(0.05)
        if clock.mono >= 1000.0 + 9.9:
            break
    start = 1000.0
    # All ten go within the window, but not at once: a burst of two, then about one per
    # second for the allowance left.
    assert len(sent_at) == 10
    assert sent_at[1] - start < 0.01
    assert sent_at[2] - start > 0.5
    assert sent_at[-1] - start > 7.0
    # Never more than the small burst at once.
    assert all(c - a > 0.9 for a, _, c in zip(sent_at, sent_at[1:], sent_at[2:], strict=False))
    assert all(b - a < 1.6 for a, b in itertools.pairwise(sent_at))


def test_spread_pacing_allows_a_burst_of_a_small_share_of_a_large_allowance(
    clock: FakeClock,
) -> None:
    gov = governor(clock)
    open_bucket(gov, clock, 600, limit=600, left=60.0)
    at_once = 0
    while gov.try_acquire(KEY) is not None:
        at_once += 1
        assert at_once < 600
    # About 5 % of the allowance goes at once (interactive bursts stay snappy)...
    assert 20 <= at_once <= 40
    # ...then one permit per 0.1 s (600 in 60 s).
    clock.advance(0.11)
    assert gov.try_acquire(KEY) is not None
    assert gov.try_acquire(KEY) is None


def test_burst_pacing_sends_while_there_is_room(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    open_bucket(gov, clock, 10, limit=10, left=10.0)
    assert sum(gov.try_acquire(KEY) is not None for _ in range(12)) == 10


def test_invalid_pacing_raises() -> None:
    with pytest.raises(ValueError, match="pacing"):
        RateLimitGovernor(pacing="fast")  # type: ignore[arg-type]


# -- clock skew and the Date header ------------------------------------------------------


@pytest.mark.parametrize("skew", [3600.0, -3600.0, 0.0])
def test_client_clock_skew_changes_nothing(clock: FakeClock, skew: float) -> None:
    gov = governor(clock, pacing="burst")
    server_now = clock.wall + skew
    probe = gov.try_acquire(KEY)
    gov.release(probe, 200, rl_headers(0, limit=5, reset=server_now + 10, date=server_now))  # type: ignore[arg-type]
    s = snap(gov)
    assert s.reset_at is not None
    assert (
        s.reset_at - dt.datetime.fromtimestamp(clock.wall, dt.timezone.utc)
    ).total_seconds() == (pytest.approx(10.0, abs=1.01))
    clock.advance(9.0)
    assert gov.try_acquire(KEY) is None
    clock.advance(2.0)
    assert gov.try_acquire(KEY) is not None


def test_date_offset_keeps_the_tightest_bound() -> None:
    b = _Bucket(KEY)
    # Server clock = monotonic + 5000.25; Date is truncated to the second.
    first = b.observe_date(6000.0, sent=1000.30, recv=1000.35)  # server at 6000.55..6000.60
    assert first == pytest.approx(6000.0 - 1000.35)  # a safe lower bound, 0.6 s low
    better = b.observe_date(6001.0, sent=1000.74, recv=1000.76)  # just after a tick
    assert better == pytest.approx(6001.0 - 1000.76)
    assert first < better <= 5000.25  # never above the truth: deadlines are never early
    worse = b.observe_date(6002.0, sent=1002.4, recv=1002.5)  # server at 6002.65..6002.75
    assert worse == better


def test_date_offset_starts_over_when_the_server_clock_steps_back() -> None:
    b = _Bucket(KEY)
    b.observe_date(6000.0, sent=999.9, recv=1000.0)
    # The server clock jumped one minute back: the old bound is impossible now.
    assert b.observe_date(5950.0, sent=1010.0, recv=1010.1) == pytest.approx(5950.0 - 1010.1)


def test_relative_reset(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    probe = gov.try_acquire(KEY)
    gov.release(probe, 200, rl_headers(0, limit=3, reset="2.5"))  # type: ignore[arg-type]
    clock.advance(2.4)
    assert gov.try_acquire(KEY) is None
    clock.advance(0.2)
    assert gov.try_acquire(KEY) is not None


def test_out_of_order_answers_keep_the_lowest_count(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    open_bucket(gov, clock, 5, left=10.0)
    a, b = gov.try_acquire(KEY), gov.try_acquire(KEY)
    gov.release(b, 200, server_headers(clock, 3))  # type: ignore[arg-type]
    gov.release(a, 200, server_headers(clock, 4))  # type: ignore[arg-type]  # processed first, answered last
    assert snap(gov).remaining == 3


def test_a_late_answer_from_an_older_window_is_ignored(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    open_bucket(gov, clock, 5, left=2.0)
    old = gov.try_acquire(KEY)
    clock.advance(2.5)
    new = gov.try_acquire(KEY)
    gov.release(new, 200, server_headers(clock, 9, left=9.5))  # type: ignore[arg-type]
    # The answer of the previous window arrives last: it must not shrink the new one.
    server_then = SERVER0 + (clock.wall - WALL0) - 2.5
    gov.release(old, 200, rl_headers(0, reset=server_then + 2.0, date=server_then))  # type: ignore[arg-type]
    assert snap(gov).remaining == 9


# -- 429 ----------------------------------------------------------------------------------


def test_429_closes_the_bucket_until_the_reset_then_one_probe(clock: FakeClock) -> None:
    events: list[RateLimitEvent] = []
    gov = governor(clock, pacing="burst", on_event=events.append)
    open_bucket(gov, clock, 5, left=10.0)
    a, b, c = (gov.try_acquire(KEY) for _ in range(3))
    gov.release(a, 429, server_headers(clock, 0, left=4.0))  # type: ignore[arg-type]
    assert snap(gov).closed
    assert gov.try_acquire(KEY) is None
    # Stragglers sent before the close do not emit a second event.
    gov.release(b, 429, server_headers(clock, 0, left=4.0))  # type: ignore[arg-type]
    assert [e.kind for e in events] == ["throttled"]
    assert events[0].delay == pytest.approx(4.0)
    assert events[0].bucket == "org/default"
    clock.advance(3.9)
    assert gov.try_acquire(KEY) is None
    clock.advance(0.2)
    probe = gov.try_acquire(KEY)
    assert probe is not None and probe.probe
    assert gov.try_acquire(KEY) is None  # the rest wait for the probe's answer
    assert snap(gov).closed
    gov.release(c, 200, server_headers(clock, 3, left=9.8))  # type: ignore[arg-type]
    assert gov.try_acquire(KEY) is None  # a straggler's answer does not open it
    gov.release(probe, 200, server_headers(clock, 8, left=9.8))  # type: ignore[arg-type]
    assert not snap(gov).closed
    assert gov.try_acquire(KEY) is not None


def test_429_probe_answered_with_429_closes_again(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    open_bucket(gov, clock, 5)
    p = gov.try_acquire(KEY)
    gov.release(p, 429, server_headers(clock, 0, left=1.0))  # type: ignore[arg-type]
    clock.advance(1.0)
    probe = gov.try_acquire(KEY)
    assert probe is not None and probe.probe
    gov.release(probe, 429, server_headers(clock, 0, left=2.0))
    clock.advance(1.5)
    assert gov.try_acquire(KEY) is None
    clock.advance(0.5)
    again = gov.try_acquire(KEY)
    assert again is not None and again.probe


def test_429_without_a_reset_backs_off(clock: FakeClock) -> None:
    gov = governor(clock)
    probe = gov.try_acquire(KEY)
    gov.release(probe, 429, CIMultiDictProxy(CIMultiDict()))  # type: ignore[arg-type]
    assert gov.try_acquire(KEY) is None
    clock.advance(0.6)
    again = gov.try_acquire(KEY)
    assert again is not None and again.probe
    gov.release(again, 429, None)
    clock.advance(0.6)
    assert gov.try_acquire(KEY) is None  # the backoff doubles
    clock.advance(0.6)
    assert gov.try_acquire(KEY) is not None


def test_429_retry_after_wins_over_the_reset(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    open_bucket(gov, clock, 5)
    p = gov.try_acquire(KEY)
    server_now = SERVER0 + (clock.wall - WALL0)
    gov.release(  # type: ignore[arg-type]
        p, 429, rl_headers(0, reset=server_now + 30, date=server_now, retry_after="2")
    )
    clock.advance(2.1)
    assert gov.try_acquire(KEY) is not None


def test_buckets_are_independent(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    probe = gov.try_acquire(SCROLL)
    gov.release(probe, 429, rl_headers(0, reset="30"))  # type: ignore[arg-type]
    assert gov.try_acquire(SCROLL) is None
    open_bucket(gov, clock, 5)
    assert gov.try_acquire(KEY) is not None
    other_token = BucketKey("ffffffffffff", "org", "scroll")
    assert gov.try_acquire(other_token) is not None


# -- observability ---------------------------------------------------------------------


def test_snapshot_reports_every_bucket(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    open_bucket(gov, clock, 7, limit=10, left=20.0)
    held = gov.try_acquire(KEY)
    assert held is not None
    s = snap(gov)
    assert (s.limit, s.remaining, s.in_flight, s.waiters, s.closed) == (10, 7, 1, 0, False)
    assert s.reset_at == dt.datetime.fromtimestamp(clock.wall + 20.0, dt.timezone.utc)


def test_callback_errors_are_logged_and_swallowed(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def broken(event: RateLimitEvent) -> None:
        raise RuntimeError("progress bar exploded")

    gov = governor(clock, on_event=broken)
    gov.add_listener(lambda e: seen.append(e.kind))
    with caplog.at_level(logging.WARNING, logger="instasent_async.ratelimit"):
        gov.emit(RateLimitEvent(kind="retry", bucket="org/default", delay=0.1, status=503))
    assert seen == ["retry"]
    assert "callback raised" in caplog.text
    gov.remove_listener(seen.append)  # never added: ignored


def test_throttle_is_logged_at_debug_without_the_token(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    gov = governor(clock)
    probe = gov.try_acquire(KEY)
    with caplog.at_level(logging.DEBUG, logger="instasent_async.ratelimit"):
        gov.release(probe, 429, rl_headers(0, reset="3"))  # type: ignore[arg-type]
    assert "org/default" in caplog.text
    assert "3.000s" in caplog.text
    assert "secret" not in caplog.text


def test_a_slow_429_from_a_window_already_over_does_not_close_the_bucket(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    open_bucket(gov, clock, 5, left=2.0)
    slow = gov.try_acquire(KEY)
    assert slow is not None
    old_server_now = SERVER0 + (clock.wall - WALL0)
    clock.advance(2.5)  # the window is over when the refusal finally arrives
    fresh = gov.try_acquire(KEY)
    assert fresh is not None
    gov.release(fresh, 200, server_headers(clock, 9, left=1.5))
    gov.release(slow, 429, rl_headers(0, reset=old_server_now + 2.0, date=old_server_now))
    assert not snap(gov).closed
    assert gov.try_acquire(KEY) is not None


def test_a_429_after_our_reset_closes_briefly_and_moves_later_deadlines(clock: FakeClock) -> None:
    gov = governor(clock, pacing="burst")
    open_bucket(gov, clock, 5, left=2.0)
    reset = SERVER0 + (clock.wall - WALL0) + 2.0
    clock.advance(2.1)
    early = gov.try_acquire(KEY)  # the window rolled by our clock...
    assert early is not None
    # ...but the server still counts the old one (its reset is later than announced).
    gov.release(early, 429, rl_headers(0, reset=reset, date=reset - 1))
    assert snap(gov).closed
    assert gov.try_acquire(KEY) is None
    clock.advance(1.2)
    probe = gov.try_acquire(KEY)
    assert probe is not None and probe.probe
