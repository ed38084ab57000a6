"""The pure bucket core, rule by rule, on a virtual clock (plain numbers, no event loop)."""

from __future__ import annotations

import copy

import pytest

from instasent_async._core.bucket import (
    CLOSE_BASE,
    CLOSE_MAX,
    CLOSED,
    FLOOR_BASE,
    MARGIN_STEP,
    OPEN,
    PROBING,
    QUIET,
    ROLL_PATIENCE,
    UNKNOWN,
    UNMANAGED,
    Bucket,
    Notice,
    Permit,
)
from instasent_async._core.headers import AnswerInfo
from instasent_async._core.timing import server_offset

T0 = 1000.0
OFFSET = 1_750_000_000.0 - T0  # the server's epoch minus our clock


def relative(remaining: int, reset_in: float, limit: int | None = 10) -> AnswerInfo:
    """An answer with a relative reset (seconds from now)."""
    return AnswerInfo(limit, remaining, None, reset_in, None, None, 0.0, None)


def absolute(remaining: int, reset_at: float, now: float, limit: int | None = 10) -> AnswerInfo:
    """An answer with an absolute reset at our time ``reset_at``; Date exact at ``now``."""
    date = float(int(now + OFFSET))
    epoch = float(round(reset_at + OFFSET))
    return AnswerInfo(limit, remaining, epoch, max(0.0, epoch - date), None, date, 0.0, None)


def refused(
    reset_in: float | None = None, retry_after: float | None = None, remaining: int | None = 0
) -> AnswerInfo:
    return AnswerInfo(10, remaining, None, reset_in, retry_after, None, 0.0, None)


NOTHING = AnswerInfo(None, None, None, None, None, None, 0.0, None)


def permit(b: Bucket, now: float) -> Permit:
    got = b.grant(now)
    assert isinstance(got, Permit), got
    return got


def opened(remaining: int, reset_in: float = 10.0, limit: int = 10, spread: bool = False) -> Bucket:
    b = Bucket(spread_pacing=spread)
    probe = permit(b, T0)
    assert probe.probe
    b.observe(probe, 200, relative(remaining, reset_in, limit), T0)
    assert b.mode == OPEN
    return b


# -- probes and room -------------------------------------------------------------------------


def test_an_unknown_bucket_sends_one_probe_and_the_rest_wait_for_its_answer() -> None:
    b = Bucket(spread_pacing=False)
    probe = permit(b, T0)
    assert probe.probe and b.mode == PROBING
    assert b.grant(T0) is None  # only the probe's answer can change anything
    assert b.observe(probe, 200, relative(5, 10.0), T0 + 0.01) is QUIET
    granted = [b.grant(T0 + 0.01) for _ in range(6)]
    assert [isinstance(p, Permit) for p in granted] == [True] * 5 + [False]
    assert granted[5] == pytest.approx(T0 + 10.01)  # the reset: when to ask again
    assert not any(p.probe for p in granted if isinstance(p, Permit))


def test_room_counts_requests_in_flight_and_answers_free_nothing_the_server_counted() -> None:
    b = opened(3)
    held = [permit(b, T0) for _ in range(3)]
    assert not isinstance(b.grant(T0), Permit) and b.in_flight == 3
    b.observe(held[0], 200, relative(2, 9.9), T0 + 0.1)
    assert not isinstance(b.grant(T0 + 0.1), Permit)
    b.observe(held[1], 200, relative(1, 9.9), T0 + 0.1)
    b.observe(held[2], 200, relative(0, 9.9), T0 + 0.1)
    assert (b.remaining, b.in_flight) == (0, 0)


def test_a_failed_request_frees_its_unit_and_a_failed_probe_lets_the_next_one_probe() -> None:
    b = Bucket()
    probe = permit(b, T0)
    b.observe(probe, None, None, T0)
    assert b.mode == UNKNOWN and b.in_flight == 0
    again = permit(b, T0)
    assert again.probe


def test_observing_a_permit_twice_is_ignored() -> None:
    b = opened(5)
    p = permit(b, T0)
    b.observe(p, 200, relative(4, 9.0), T0)
    assert b.observe(p, 429, refused(30.0), T0) is QUIET
    assert (b.in_flight, b.mode) == (0, OPEN)


def test_spread_pacing_spaces_the_room_over_the_time_left() -> None:
    b = opened(10, reset_in=10.0, limit=11, spread=True)
    sent: list[float] = []
    now, count = T0, 10
    while now < T0 + 9.9:
        got = b.grant(now)
        if isinstance(got, Permit):
            sent.append(now)
            count -= 1
            b.observe(got, 200, relative(count, T0 + 10.0 - now, 11), now)
        else:
            now += 0.05
    # All ten within the window, not at once: a burst of two, then about one a second.
    assert len(sent) == 10
    assert sent[1] - T0 < 0.01 and sent[2] - T0 > 0.5 and sent[-1] - T0 > 7.0
    assert all(c - a > 0.9 for a, c in zip(sent, sent[2:], strict=False))


def test_spread_pacing_lets_a_small_share_of_a_large_allowance_go_at_once() -> None:
    b = opened(600, reset_in=60.0, limit=600, spread=True)
    at_once = 0
    while isinstance(b.grant(T0), Permit):
        at_once += 1
    assert at_once == 30  # 5 % of the 60 s left, at 0.1 s per permit
    assert isinstance(b.grant(T0 + 0.11), Permit)
    assert not isinstance(b.grant(T0 + 0.11), Permit)


# -- windows ---------------------------------------------------------------------------------


def test_at_the_reset_one_probe_asks_what_the_new_window_holds() -> None:
    b = opened(0, reset_in=5.0, limit=4)
    assert b.grant(T0 + 4.9) == pytest.approx(T0 + 5.0)
    probe = permit(b, T0 + 5.0)
    assert probe.probe and b.grant(T0 + 5.0) is None
    notice = b.observe(probe, 200, relative(1, 5.0, limit=2), T0 + 5.01)
    assert notice == Notice(limit_change=(4, 2))
    assert isinstance(b.grant(T0 + 5.01), Permit)
    assert not isinstance(b.grant(T0 + 5.01), Permit)


def test_a_limit_of_zero_never_jams_the_bucket() -> None:
    b = opened(0, reset_in=1.0, limit=0)
    assert b.grant(T0 + 0.5) == pytest.approx(T0 + 1.0)
    probe = permit(b, T0 + 1.0)  # asked again at every reset, never assumed to refill to 0
    b.observe(probe, 200, relative(5, 1.0, limit=6), T0 + 1.01)
    assert isinstance(b.grant(T0 + 1.01), Permit)


def test_out_of_order_answers_keep_the_lowest_count_of_a_window() -> None:
    b = opened(5, reset_in=10.0)
    first, second = permit(b, T0), permit(b, T0)
    b.observe(second, 200, relative(3, 9.5), T0 + 0.5)
    b.observe(first, 200, relative(4, 9.4), T0 + 0.6)  # processed first, answered last
    assert b.remaining == 3


def test_a_count_going_up_is_believed_from_a_request_sent_after_the_lower_count() -> None:
    b = opened(10, reset_in=10.0)
    before = permit(b, T0)  # sent before the lower count arrives
    low = permit(b, T0)
    b.observe(low, 200, relative(7, 9.5), T0 + 1.0)  # another client spent two
    b.observe(before, 200, relative(9, 9.4), T0 + 1.1)  # old news, merely late
    assert b.remaining == 7
    after = permit(b, T0 + 1.2)
    b.observe(after, 200, relative(40, 8.5, limit=50), T0 + 2.0)  # the server reset its counter
    assert b.remaining == 40


def test_other_clients_spending_is_left_to_them() -> None:
    b = opened(10, reset_in=10.0, spread=False)
    b.observe(permit(b, T0), 200, relative(5, 9.0), T0 + 1.0)  # four more went elsewhere
    assert b.foreign_rate == pytest.approx(4.0)
    # 5 left as of T0 + 1; by T0 + 1.5 the others spent two more, and one more by the time
    # our request arrives (its round trip, 1 s, weighs a quarter in the first estimate).
    assert b.round_trip == pytest.approx(0.25)
    granted = sum(isinstance(b.grant(T0 + 1.5), Permit) for _ in range(5))
    assert granted == 2


def test_at_the_reset_answers_in_flight_come_before_a_probe() -> None:
    b = Bucket(spread_pacing=False)
    b.observe(permit(b, T0), 200, absolute(5, T0 + 2.0, T0), T0)
    in_flight = permit(b, T0 + 1.9)
    assert b.grant(T0 + 2.5) == pytest.approx(T0 + 2.0 + ROLL_PATIENCE)
    # Its answer already speaks of the new window: no probe needed.
    b.observe(in_flight, 200, absolute(8, T0 + 4.0, T0 + 2.1), T0 + 2.6)
    assert (b.mode, b.remaining) == (OPEN, 8)
    assert not permit(b, T0 + 2.6).probe


def test_an_answer_of_an_older_window_is_ignored_and_a_newer_one_adopted() -> None:
    b = Bucket(spread_pacing=False)
    probe = permit(b, T0)
    b.observe(probe, 200, absolute(5, T0 + 2.0, T0), T0)
    old = permit(b, T0)
    assert b.grant(T0 + 2.5) == pytest.approx(T0 + 2.0 + ROLL_PATIENCE)  # old is in flight
    probe2 = permit(b, T0 + 3.0)  # the window passed its reset a while ago
    assert probe2.probe
    b.observe(probe2, 200, absolute(9, T0 + 4.0, T0 + 3.0), T0 + 3.0)
    b.observe(old, 200, absolute(0, T0 + 2.0, T0 + 1.0), T0 + 3.1)  # late, from the old window
    assert b.remaining == 9
    newer = permit(b, T0 + 3.2)
    b.observe(newer, 200, absolute(7, T0 + 6.0, T0 + 3.2), T0 + 3.3)  # the server moved on
    assert (b.remaining, b.window_key) == (7, round(T0 + 6.0 + OFFSET))


def test_a_limit_that_changes_takes_effect_from_the_next_answer_down_or_up() -> None:
    b = opened(9, reset_in=10.0, limit=10)
    p = permit(b, T0)
    assert b.observe(p, 200, relative(3, 9.0, limit=4), T0 + 1.0) == Notice(limit_change=(10, 4))
    assert (b.limit, b.remaining) == (4, 3)
    p = permit(b, T0 + 1.0)
    assert b.observe(p, 200, relative(40, 8.0, limit=50), T0 + 2.0) == Notice(limit_change=(4, 50))
    assert (b.limit, b.remaining) == (50, 40)


# -- 429 ----------------------------------------------------------------------------------


def test_a_short_429_inside_a_long_window_holds_only_until_its_own_reset() -> None:
    b = opened(999_998, reset_in=60.0, limit=1_000_000)
    p = permit(b, T0)
    notice = b.observe(p, 429, refused(reset_in=2.0), T0 + 0.01)
    assert notice.closed_for == pytest.approx(2.0)
    assert b.remaining == 999_998  # never pinned: the 429 did not announce the 60 s window
    assert b.grant(T0 + 1.0) == pytest.approx(T0 + 2.01)
    probe = permit(b, T0 + 2.01)
    assert probe.probe and b.grant(T0 + 2.01) is None
    reopened = b.observe(probe, 200, relative(999_997, 58.0, limit=1_000_000), T0 + 2.02)
    assert reopened.reopened
    assert all(isinstance(b.grant(T0 + 2.02), Permit) for _ in range(100))


def test_a_429_of_the_window_the_bucket_paces_pins_its_count() -> None:
    b = Bucket(spread_pacing=False)
    probe = permit(b, T0)
    b.observe(probe, 200, absolute(50, T0 + 30.0, T0), T0)
    p = permit(b, T0)
    b.observe(p, 429, absolute(0, T0 + 30.0, T0 + 0.5), T0 + 0.5)
    assert b.remaining == 0 and b.mode == CLOSED


def test_retry_after_wins_over_the_reset() -> None:
    b = opened(5, reset_in=30.0)
    p = permit(b, T0)
    assert b.observe(p, 429, refused(reset_in=30.0, retry_after=2.0), T0).closed_for == 2.0


def test_a_429_without_headers_backs_off_doubling_up_to_a_cap() -> None:
    b = Bucket()
    closures = []
    now = T0
    for _ in range(8):
        p = permit(b, now)
        closures.append(b.observe(p, 429, NOTHING, now).closed_for)
        now = b.reopen_at
    assert closures[:3] == [CLOSE_BASE, 2 * CLOSE_BASE, 4 * CLOSE_BASE]
    assert closures[-1] == CLOSE_MAX


@pytest.mark.parametrize("reset_in", [0.0, None], ids=["reset-now", "implausible"])
def test_a_429_whose_reset_is_now_ends_the_probe_and_never_jams(reset_in: float | None) -> None:
    b = Bucket()
    probe = permit(b, T0)
    info = (
        refused(reset_in=0.0, remaining=0)
        if reset_in is not None
        else AnswerInfo(100, 0, None, None, None, None, 0.0, "X-RateLimit-Reset in the past")
    )
    closed_for = b.observe(probe, 429, info, T0).closed_for
    assert closed_for == pytest.approx(FLOOR_BASE if reset_in is not None else CLOSE_BASE)
    again = permit(b, b.reopen_at)
    assert again.probe


def test_stragglers_extend_a_closure_only_while_it_lasts() -> None:
    b = opened(5, reset_in=30.0)
    a, c, d = permit(b, T0), permit(b, T0), permit(b, T0)
    assert b.observe(a, 429, refused(reset_in=4.0), T0).closed_for == 4.0
    assert b.observe(c, 429, refused(reset_in=3.0), T0) is QUIET  # earlier: nothing new
    probe = permit(b, T0 + 4.0)
    assert b.observe(d, 429, refused(reset_in=9.0), T0 + 4.0) is QUIET  # older than the probe
    b.observe(probe, 200, relative(8, 26.0), T0 + 4.01)
    assert b.mode == OPEN and not b.throttled


def test_a_429_to_a_request_sent_after_the_announced_reset_moves_later_deadlines() -> None:
    b = Bucket(spread_pacing=False)
    probe = permit(b, T0)
    b.observe(probe, 200, absolute(5, T0 + 2.0, T0), T0)
    early = permit(b, T0 + 2.1)  # the window ended by our clock: a probe goes
    notice = b.observe(early, 429, absolute(0, T0 + 2.0, T0 + 2.1), T0 + 2.15)
    assert b.margin == MARGIN_STEP
    assert notice.closed_for == pytest.approx(FLOOR_BASE)


# -- headers that cannot be believed -------------------------------------------------------


def test_implausible_headers_make_the_bucket_unmanaged_and_say_so_once() -> None:
    b = opened(5)
    bad = AnswerInfo(10, 11, None, 5.0, None, None, 0.0, "Remaining above Limit")
    notices = [b.observe(permit(b, T0), 200, bad, T0) for _ in range(3)]
    assert notices[0] == Notice(unmanaged_because="Remaining above Limit")
    assert notices[1:] == [QUIET, QUIET]
    assert b.mode == UNMANAGED and b.unmanaged_reason == "Remaining above Limit"
    assert all(isinstance(b.grant(T0), Permit) for _ in range(500))  # never blocks
    b.observe(permit(b, T0), 200, relative(4, 9.0), T0)  # believable again: paced again
    assert b.mode == OPEN and b.unmanaged_reason is None


def test_a_probe_answered_without_headers_leaves_the_bucket_unmanaged() -> None:
    b = Bucket()
    notice = b.observe(permit(b, T0), 200, NOTHING, T0)
    assert notice.unmanaged_because == "answers carry no rate-limit headers"
    assert b.mode == UNMANAGED


def test_a_probe_answered_5xx_without_headers_is_inconclusive() -> None:
    b = Bucket()
    assert b.observe(permit(b, T0), 502, NOTHING, T0) is QUIET
    assert b.mode == UNKNOWN and permit(b, T0).probe


def test_a_request_without_a_count_back_is_spent_until_a_count_says_otherwise() -> None:
    b = opened(4)
    held = permit(b, T0 + 0.1)  # sent after the count of 4 was read
    b.observe(permit(b, T0 + 0.1), 502, NOTHING, T0 + 0.2)  # a proxy's error page
    assert (b.mode, b.remaining) == (OPEN, 3)  # still paced, one unit fewer
    b.observe(permit(b, T0 + 0.2), None, None, T0 + 0.3)  # a dropped connection
    assert b.remaining == 2
    # The server had counted neither: the next count says so, and is believed.
    b.observe(held, 200, relative(3, 9.5), T0 + 0.4)
    assert b.remaining == 3
    # A request that certainly never left (given back unused, a refused connection)
    # spent nothing.
    b.observe(permit(b, T0 + 0.5), None, None, T0 + 0.6, sent=False)
    assert b.remaining == 3
    # The last unit of a window spent that way leaves no room.
    b = opened(1)
    b.observe(permit(b, T0), None, None, T0 + 0.1)
    assert b.remaining == 0 and not isinstance(b.grant(T0 + 0.2), Permit)


# -- the server's clock -----------------------------------------------------------------------


def test_the_server_offset_keeps_the_tightest_bound_below_the_truth() -> None:
    b = Bucket()
    # The server clock is ours + 5000.25; Date is truncated to the second.
    first = server_offset(b, 6000.0, sent_at=1000.30, now=1000.35)
    assert first == pytest.approx(6000.0 - 1000.35)
    better = server_offset(b, 6001.0, sent_at=1000.74, now=1000.76)
    assert better == pytest.approx(6001.0 - 1000.76)
    assert first < better <= 5000.25  # never above the truth: deadlines are never early
    assert server_offset(b, 6002.0, sent_at=1002.4, now=1002.5) == better


def test_the_server_offset_starts_over_when_the_server_clock_steps_back() -> None:
    b = Bucket()
    server_offset(b, 6000.0, sent_at=999.9, now=1000.0)
    assert server_offset(b, 5950.0, sent_at=1010.0, now=1010.1) == pytest.approx(5950.0 - 1010.1)


def test_the_state_is_a_plain_copyable_value() -> None:
    b = opened(5)
    twin = copy.copy(b)
    assert all(getattr(twin, f) == getattr(b, f) for f in Bucket.__slots__)
    permit(twin, T0)
    assert (twin.in_flight, b.in_flight) == (1, 0)
