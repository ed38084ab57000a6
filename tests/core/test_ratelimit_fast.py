"""The governor's fast paths leave exactly the state of the general ones.

Two governors see the same permits and answers on the same fake clocks; in one the
fast paths are switched off (``release`` goes straight to ``_settle``, ``try_acquire``
through ``_try``). After every step every field of the bucket must be equal.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from instasent_async._ratelimit import BucketKey, Permit, RateLimitGovernor, _Bucket

KEY = BucketKey("0123456789ab", "org", "default")
WALL0 = 1_750_000_020.0  # 20 s into a minute
SERVER0 = WALL0 + 7.3  # the server clock runs ahead of ours


class Clock:
    def __init__(self) -> None:
        self.mono = 500.0
        self.wall = WALL0

    def __call__(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall


class SlowGovernor(RateLimitGovernor):
    """The general paths only."""

    def try_acquire(self, key: BucketKey) -> Permit | None:
        b = self._bucket(key)
        if b.waiters:
            return None
        result = self._try(b, self._clock())
        return result if type(result) is Permit else None

    def release(
        self, permit: Permit, status: int | None, headers: Mapping[str, str] | None
    ) -> None:
        if permit._released:
            return
        permit._released = True
        b = permit._bucket
        b.in_flight -= 1
        self._settle(b, permit, status, headers, self._clock())


def state(g: RateLimitGovernor) -> dict[str, Any]:
    b = g._buckets.get(KEY)
    if b is None:
        return {}
    out: dict[str, Any] = {}
    for name in _Bucket.__slots__:
        value = getattr(b, name)
        if name in ("waiters", "timer"):
            continue
        if isinstance(value, float) and math.isnan(value):
            value = "nan"
        out[name] = value
    return out


def answer(
    remaining: int | str, reset: int, date_at: float, limit: str | None
) -> CIMultiDictProxy[str]:
    h: CIMultiDict[str] = CIMultiDict()
    h["Content-Type"] = "application/json"
    h["Date"] = email.utils.formatdate(int(date_at), usegmt=True)
    if limit is not None:
        h["X-RateLimit-Limit"] = limit
    h["X-RateLimit-Reset"] = str(reset)
    h["X-RateLimit-Remaining"] = str(remaining)
    return CIMultiDictProxy(h)


OK = [200] * 12 + [201, 500, 429, None]
CURRENT = [0] * 12 + [1, -1]  # the current window, mostly; else the next or the previous
LIMITS = ["6000"] * 12 + ["4990", None, "garbage"]  # 4990: below the count
SKEWS = [0.0] * 12 + [-1.0, 0.5, -40.0]  # -40: a stale Date, repeated (the server's now)
release = st.tuples(
    st.just("release"),
    st.integers(0, 7),  # which outstanding permit
    st.sampled_from(OK),
    # how much the count dropped since the last answer (negative: an older one)
    st.one_of(st.integers(-3, 6), st.sampled_from(["x", "5.0", " 7", "-1"])),
    st.sampled_from(CURRENT),
    st.sampled_from(LIMITS),
    st.sampled_from(SKEWS),
    st.sampled_from([True] * 12 + [False]),  # headers at all
)
TICKS = [0.0, 0.001, 0.001, 0.01, 0.01, 0.3, 1.0, 31.0]
step = st.one_of(
    st.tuples(st.just("acquire"), st.integers(1, 4)),
    release,
    release,
    st.tuples(st.just("tick"), st.sampled_from(TICKS)),
)


@given(st.lists(step, min_size=10, max_size=80), st.sampled_from(["spread", "burst"]))
# A reset already past: the next permit rolls the window over, its answer is late.
@example(
    [
        ("acquire", 1),
        ("release", 0, 200, 60, -1, "6000", 0.0, True),
        ("acquire", 1),
        ("release", 0, 200, 60, -1, "6000", 0.0, True),
    ],
    "spread",
)
# A stale Date repeated while the offset estimate is due to rotate.
@example(
    [
        ("acquire", 1),
        ("release", 0, 200, 10, 0, "6000", -40.0, True),
        ("acquire", 2),
        ("release", 0, 200, 1, 0, "6000", -40.0, True),
        ("tick", 31.0),
        ("release", 0, 200, 1, 0, "6000", -40.0, True),
    ],
    "spread",
)
# The same stale Date on an answer to a permit sent over a second after it came:
# the server's clock stood still, the offset estimate starts over.
@example(
    [
        ("acquire", 1),
        ("release", 0, 200, 1, 0, "4990", -40.0, True),
        ("acquire", 1),
        ("release", 0, 200, 1, 0, "4990", -40.0, True),
        ("tick", 1.0),
        ("tick", 0.3),
        ("acquire", 1),
        ("release", 0, 200, 1, 0, "4990", -40.0, True),
        ("acquire", 1),
        ("release", 0, 200, 1, 0, "4990", -40.0, True),
    ],
    "burst",
)
def test_fast_paths_leave_the_state_of_the_general_ones(steps: list[Any], pacing: Any) -> None:
    clocks = (Clock(), Clock())
    fast = RateLimitGovernor(pacing=pacing, clock=clocks[0], wall_clock=clocks[0].time)
    fast._sample = 1  # every answer read: sampling is tested in test_ratelimit_sampling
    slow = SlowGovernor(pacing=pacing, clock=clocks[1], wall_clock=clocks[1].time)
    held: tuple[list[Permit], list[Permit]] = ([], [])
    count = 4995
    for s in steps:
        if s[0] == "tick":
            for c in clocks:
                c.mono += s[1]
                c.wall += s[1]
        elif s[0] == "acquire":
            for _ in range(s[1]):
                got = [g.try_acquire(KEY) for g in (fast, slow)]
                assert (got[0] is None) == (got[1] is None)
                if got[0] is not None and got[1] is not None:
                    assert got[0].probe == got[1].probe
                    held[0].append(got[0])
                    held[1].append(got[1])
        elif held[0]:
            _, which, status, drop, window, limit, skew, with_headers = s
            remaining: int | str = drop
            if isinstance(drop, int):
                count = max(0, count - drop)
                remaining = count
            i = which % len(held[0])
            server_now = clocks[0].wall - WALL0 + SERVER0
            if skew < -10:
                server_now = SERVER0
                skew = 0.0
            reset = int(server_now // 60 * 60 + 60 * (1 + window))
            headers = answer(remaining, reset, server_now + skew, limit) if with_headers else None
            fast.release(held[0].pop(i), status, headers)
            slow.release(held[1].pop(i), status, headers)
        assert state(fast) == state(slow)
    assert fast.snapshot() == slow.snapshot()


def test_a_steady_stream_of_answers_takes_the_fast_path() -> None:
    clock = Clock()
    g = RateLimitGovernor(clock=clock, wall_clock=clock.time)
    g._sample = 1  # every answer read
    general = 0
    original = g._settle

    def counting(*args: Any) -> None:
        nonlocal general
        general += 1
        original(*args)

    g._settle = counting  # type: ignore[method-assign,assignment]
    server_now = SERVER0
    reset = int(server_now // 60 * 60 + 60)
    for n in range(50):
        p = g.try_acquire(KEY)
        assert p is not None
        clock.mono += 0.01
        g.release(p, 200, answer(999 - n, reset, server_now, "1000"))
    assert general == 1  # the probe's answer
    b = g._buckets[KEY]
    assert b.remaining == 950
    assert b.phi == 0.0
    # Another client's requests show up as a drop beyond ours: folded, as in _update.
    p = g.try_acquire(KEY)
    assert p is not None
    clock.mono += 0.01
    g.release(p, 200, answer(900, reset, server_now, "1000"))
    assert general == 1
    assert b.remaining == 900
    assert b.phi > 0.0
    # A new Date goes through _update again.
    p = g.try_acquire(KEY)
    assert p is not None
    g.release(p, 200, answer(899, reset, server_now + 1.0, "1000"))
    assert general == 2


def test_a_new_date_or_a_margin_change_goes_through_the_general_path() -> None:
    clock = Clock()
    g = RateLimitGovernor(clock=clock, wall_clock=clock.time)
    reset = int(SERVER0 // 60 * 60 + 60)
    p = g.try_acquire(KEY)
    assert p is not None
    g.release(p, 200, answer(99, reset, SERVER0, "100"))
    b = g._buckets[KEY]
    assert b.fast_date == email.utils.formatdate(int(SERVER0), usegmt=True)
    clock.mono += 1.0
    clock.wall += 1.0
    p = g.try_acquire(KEY)
    assert p is not None
    g.release(p, 200, answer(98, reset, SERVER0 + 1.0, "100"))
    assert b.fast_date == email.utils.formatdate(int(SERVER0 + 1.0), usegmt=True)
    # A 429 sent after the window we believed over moves the margin: cache dropped.
    b.fast_reset = "x"
    b.margin = 0.0
    deadline = b.deadline
    assert deadline is not None
    g._throttle(b, Permit(b, deadline + 1.0, False), None, deadline + 2.0, deadline)
    assert b.margin > 0.0
    assert b.fast_reset is None


def test_absurd_counts_are_ignored_by_both_paths() -> None:
    clocks = (Clock(), Clock())
    fast = RateLimitGovernor(pacing="burst", clock=clocks[0], wall_clock=clocks[0].time)
    fast._sample = 1
    slow = SlowGovernor(pacing="burst", clock=clocks[1], wall_clock=clocks[1].time)
    reset = int(SERVER0 // 60 * 60 + 60)
    huge = 10**400  # overflows a float
    for remaining in (7, huge, huge - 5, 6, huge):
        for g, c in zip((fast, slow), clocks, strict=True):
            p = g.try_acquire(KEY)
            assert p is not None
            g.release(p, 200, answer(remaining, reset, SERVER0, "10"))
            c.mono += 0.01
        assert state(fast) == state(slow)
    assert fast._buckets[KEY].remaining == 6
