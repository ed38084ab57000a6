"""While a bucket has plenty of room, the governor reads one answer's headers in 16.

The others are counted as one request of ours each; what other clients of the
token spent shows at the next read. Every answer is read again as soon as the room
shrinks below a quarter of the limit, a 429 arrives or the window rolls over.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator, Mapping

from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from instasent_async._ratelimit import _SAMPLE, BucketKey, Permit, RateLimitGovernor

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


RESET = int(SERVER0 // 60 * 60 + 60)


class Counted(Mapping[str, str]):
    """Response headers that count how often the governor looks at them."""

    reads = 0

    def __init__(self, headers: CIMultiDictProxy[str]) -> None:
        self._h = headers

    def __getitem__(self, key: str) -> str:
        Counted.reads += 1
        return self._h[key]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        Counted.reads += 1
        return self._h.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._h)

    def __len__(self) -> int:
        return len(self._h)


def opened(limit: int, remaining: int) -> tuple[RateLimitGovernor, Clock]:
    """A governor whose bucket the probe's answer opened."""
    clock = Clock()
    g = RateLimitGovernor(pacing="burst", clock=clock, wall_clock=clock.time)
    p = g.try_acquire(KEY)
    assert p is not None and p.probe
    g.release(p, 200, answer(remaining, RESET, SERVER0, str(limit)))
    return g, clock


def one(g: RateLimitGovernor, clock: Clock, remaining: int, status: int = 200) -> bool:
    """One request answered with ``remaining``; True when its headers were read."""
    p = g.try_acquire(KEY)
    assert p is not None
    clock.mono += 0.001
    before = Counted.reads
    g.release(p, status, Counted(answer(remaining, RESET, SERVER0, "1000")))
    return Counted.reads > before


def test_plenty_of_room_reads_one_answer_in_sample() -> None:
    g, clock = opened(1000, 999)
    b = g._buckets[KEY]
    read = [one(g, clock, 998 - n) for n in range(4 * _SAMPLE)]
    assert read.count(True) == 4
    assert read[0] and read[_SAMPLE] and not any(read[1:_SAMPLE])
    # Every answer counted exactly once: the estimate is the server's count.
    assert b.remaining == 998 - 4 * _SAMPLE + 1
    assert b.in_flight == 0
    assert b.phi == 0.0


def test_every_answer_is_read_once_the_room_is_below_a_quarter() -> None:
    g, clock = opened(1000, 260)
    read = [one(g, clock, 259 - n) for n in range(40)]
    # Sampling while room >= 250 (the first answers), then every answer.
    assert all(read[-20:])
    assert g._buckets[KEY].remaining == 259 - 39


def test_a_small_bucket_is_never_sampled() -> None:
    g, clock = opened(60, 59)
    assert all(one(g, clock, 58 - n) for n in range(30))


def test_another_client_is_seen_at_the_next_read() -> None:
    g, clock = opened(1000, 999)
    b = g._buckets[KEY]
    assert one(g, clock, 998)
    assert not one(g, clock, 997)
    # Another process of the same token spends 200 while our answers go unread.
    count = 997
    while b.skip:
        count -= 1
        assert not one(g, clock, count - 200)
    count -= 201
    assert one(g, clock, count)  # the next read sees the drop beyond ours
    assert b.remaining == count
    assert b.phi > 0.0
    # Still plenty of room (about 3/4 of the limit): one answer in _SAMPLE is read.
    assert b.skip == _SAMPLE - 1
    # It spends until less than a quarter is left: every answer is read again.
    for _ in range(_SAMPLE - 1):
        count -= 1
        one(g, clock, count - 600)
    count -= 601
    assert one(g, clock, count)
    assert b.remaining == count < 250
    assert all(one(g, clock, count - 1 - n) for n in range(_SAMPLE))


def test_a_429_while_sampling_closes_the_bucket() -> None:
    g, clock = opened(1000, 999)
    assert one(g, clock, 998)
    b = g._buckets[KEY]
    assert b.skip > 0
    one(g, clock, 0, status=429)
    assert b.skip == 0
    [snap] = g.snapshot()
    assert snap.closed
    assert g.try_acquire(KEY) is None


def test_a_failed_request_is_not_counted_while_sampling() -> None:
    g, clock = opened(1000, 999)
    assert one(g, clock, 998)
    b = g._buckets[KEY]
    skip, remaining = b.skip, b.remaining
    p = g.try_acquire(KEY)
    assert p is not None
    g.release(p, None, None)  # no answer: the server may not have counted it
    assert (b.skip, b.remaining, b.in_flight) == (skip, remaining, 0)


def test_the_window_rolling_over_stops_sampling() -> None:
    g, clock = opened(1000, 999)
    assert one(g, clock, 998)
    b = g._buckets[KEY]
    assert b.skip > 0
    assert b.deadline is not None
    clock.mono = b.deadline + 0.5
    p = g.try_acquire(KEY)  # rolls the window over
    assert p is not None
    assert b.skip == 0
    assert b.remaining == 1000
    g.release(p, None, None)


step = st.one_of(
    st.tuples(st.just("acquire"), st.integers(1, 6)),
    st.tuples(st.just("release"), st.integers(0, 40)),
    st.tuples(st.just("tick"), st.sampled_from([0.0, 0.001, 0.01, 0.2])),
)


@given(
    st.lists(step, min_size=5, max_size=120),
    st.sampled_from(["spread", "burst"]),
    st.integers(200, 3000),
)
def test_alone_on_its_token_sampling_changes_no_decision(
    steps: list[tuple[str, float]], pacing: str, limit: int
) -> None:
    """One client, answers in the order the server counted them: a sampled governor
    grants exactly what one reading every answer grants, with the same estimate."""
    clocks = (Clock(), Clock())
    sampled = RateLimitGovernor(pacing=pacing, clock=clocks[0], wall_clock=clocks[0].time)  # type: ignore[arg-type]
    reading = RateLimitGovernor(pacing=pacing, clock=clocks[1], wall_clock=clocks[1].time)  # type: ignore[arg-type]
    reading._sample = 1
    held: tuple[list[Permit], list[Permit]] = ([], [])
    count = limit
    for kind, value in steps:
        if kind == "tick":
            for c in clocks:
                c.mono += value
                c.wall += value
        elif kind == "acquire":
            for _ in range(int(value)):
                got = [g.try_acquire(KEY) for g in (sampled, reading)]
                assert (got[0] is None) == (got[1] is None)
                if got[0] is not None and got[1] is not None:
                    held[0].append(got[0])
                    held[1].append(got[1])
        elif held[0]:
            # The oldest request is answered first, as the server counted it.
            count = max(0, count - 1)
            headers = answer(count, RESET, SERVER0, str(limit))
            sampled.release(held[0].pop(0), 200, headers)
            reading.release(held[1].pop(0), 200, headers)
        a, b = sampled._buckets.get(KEY), reading._buckets.get(KEY)
        if a is not None and b is not None:
            assert (a.remaining, a.in_flight, a.state, a.phi) == (
                b.remaining,
                b.in_flight,
                b.state,
                b.phi,
            )
