"""The core's fast branch leaves exactly the state of its general branch.

``Bucket._fold`` skips recomputing a window's end when an answer carries the same
window and ``Date`` as the last one read (``window_date``). Two buckets see the
same permits and the same random answers on the same clock; the general twin's
``window_date`` is cleared before every answer, so it always takes the general
branch. After every step every other field must be equal.

Examples: ``INSTASENT_HYPOTHESIS_EXAMPLES`` (default 60).
"""

from __future__ import annotations

import email.utils
import math
import os
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from instasent_async._core import bucket as bucket_module
from instasent_async._core.bucket import Bucket, Permit
from instasent_async._core.headers import parse_answer

EXAMPLES = int(os.environ.get("INSTASENT_HYPOTHESIS_EXAMPLES", "60"))
MONO0 = 500.0
SERVER0 = 1_750_000_027.3  # the server's clock at MONO0: 27.3 s into a minute


def state(b: Bucket) -> dict[str, Any]:
    out = {}
    for name in Bucket.__slots__:
        if name == "window_date":
            continue
        value = getattr(b, name)
        out[name] = "nan" if isinstance(value, float) and math.isnan(value) else value
    return out


def headers(
    remaining: int | str, reset: int, date_at: float, limit: str | None, retry: str | None
) -> dict[str, str]:
    h = {"Date": email.utils.formatdate(int(date_at), usegmt=True)}
    if limit is not None:
        h["X-RateLimit-Limit"] = limit
    h["X-RateLimit-Reset"] = str(reset)
    h["X-RateLimit-Remaining"] = str(remaining)
    if retry is not None:
        h["Retry-After"] = retry
    return h


STATUS = [200] * 12 + [201, 500, 429, None]
WINDOW = [0] * 12 + [1, -1]  # the current minute, mostly; else the next or the previous
LIMITS = ["6000"] * 12 + ["4990", None, "garbage"]  # 4990: below the count
SKEWS = [0.0] * 12 + [-1.0, 0.5, -40.0]  # -40: a stale Date, repeated
release = st.tuples(
    st.just("release"),
    st.integers(0, 7),  # which outstanding permit
    st.sampled_from(STATUS),
    st.one_of(st.integers(-3, 6), st.sampled_from(["x", "5.0", "-1"])),  # drop of the count
    st.sampled_from(WINDOW),
    st.sampled_from(LIMITS),
    st.sampled_from(SKEWS),
    st.sampled_from([None] * 12 + ["2"]),  # Retry-After
    st.sampled_from([True] * 12 + [False]),  # headers at all
)
step = st.one_of(
    st.tuples(st.just("grant"), st.integers(1, 4)),
    release,
    release,
    st.tuples(st.just("tick"), st.sampled_from([0.0, 0.001, 0.01, 0.3, 1.0, 31.0, 61.0])),
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(step, min_size=10, max_size=80), st.booleans())
# A stale Date repeated while the offset estimate is due to renew.
@example(
    [
        ("grant", 1),
        ("release", 0, 200, 10, 0, "6000", -40.0, None, True),
        ("grant", 2),
        ("release", 0, 200, 1, 0, "6000", -40.0, None, True),
        ("tick", 31.0),
        ("release", 0, 200, 1, 0, "6000", -40.0, None, True),
    ],
    True,
)
def test_the_fast_branch_leaves_the_state_of_the_general_one(
    steps: list[Any], spread: bool
) -> None:
    fast, general = Bucket(spread), Bucket(spread)
    held: tuple[list[Permit], list[Permit]] = ([], [])
    now = MONO0
    count = 4995
    for s in steps:
        if s[0] == "tick":
            now += s[1]
        elif s[0] == "grant":
            for _ in range(s[1]):
                got = fast.grant(now), general.grant(now)
                assert got[0] == got[1] or (
                    isinstance(got[0], Permit) and isinstance(got[1], Permit)
                )
                if isinstance(got[0], Permit) and isinstance(got[1], Permit):
                    assert got[0].probe == got[1].probe
                    held[0].append(got[0])
                    held[1].append(got[1])
        elif held[0]:
            _, which, status, drop, window, limit, skew, retry, with_headers = s
            remaining: int | str = drop
            if isinstance(drop, int):
                count = max(0, count - drop)
                remaining = count
            i = which % len(held[0])
            server_now = SERVER0 + (now - MONO0)
            date_at = SERVER0 if skew < -10 else server_now + skew
            reset = int(server_now // 60 * 60 + 60 * (1 + window))
            info = (
                parse_answer(headers(remaining, reset, date_at, limit, retry), server_now)
                if with_headers
                else None
            )
            general.window_date = None
            fast.observe(held[0].pop(i), status, info, now)
            general.observe(held[1].pop(i), status, info, now)
        assert state(fast) == state(general)


def test_a_steady_stream_of_answers_takes_the_fast_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    computed = 0
    general = bucket_module.window_of

    def counting(*args: Any) -> tuple[float, float, float]:
        nonlocal computed
        computed += 1
        return general(*args)

    monkeypatch.setattr(bucket_module, "window_of", counting)
    b = Bucket()
    reset = int(SERVER0 // 60 * 60 + 60)
    now = MONO0
    for n in range(50):
        p = b.grant(now)
        assert isinstance(p, Permit)
        now += 0.001
        b.observe(p, 200, parse_answer(headers(999 - n, reset, SERVER0, "1000", None), 0.0), now)
    assert computed == 1  # only the probe's answer: the same Date every time
    assert b.remaining == 950
    p = b.grant(now)
    assert isinstance(p, Permit)
    b.observe(p, 200, parse_answer(headers(949, reset, SERVER0 + 1, "1000", None), 0.0), now)
    assert computed == 2  # a new Date: the general branch again
