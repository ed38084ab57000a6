"""parse_answer's same-headers branch reads exactly what its general branch reads.

An answer whose ``Limit``, ``Reset`` and ``Date`` strings equal the last ones read
against a ``Date`` takes that reading again (``headers._last``). Random sequences
of answers, drawn from few values so that repeats are common and garbage, missing
headers, relative and absolute resets and odd dates all occur, are parsed twice:
as they come (the branch taken whenever it can be), and with the remembered
reading forgotten before every answer (the general branch always). Every
``AnswerInfo`` must be equal.

Examples: ``INSTASENT_HYPOTHESIS_EXAMPLES`` (default 60).
"""

from __future__ import annotations

import email.utils
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from instasent_async._core import headers as headers_module
from instasent_async._core.headers import AnswerInfo, parse_answer

EXAMPLES = int(os.environ.get("INSTASENT_HYPOTHESIS_EXAMPLES", "60"))
SERVER = 1_750_000_020


def _date(epoch: int) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


limit = st.none() | st.sampled_from(
    ["100", "600", "0", "-3", "1e2", "abc", "", "99999999999999999"]
)
remaining = st.none() | st.sampled_from(["0", "5", "99", "100", "700", "-1", "x", "2.0"])
reset = st.none() | st.sampled_from(
    ["30", "0", str(SERVER + 40), str(SERVER - 5), str(SERVER + 10**6), "1.5", "soon", ""]
)
date = st.none() | st.sampled_from(
    [_date(SERVER), _date(SERVER + 1), _date(SERVER - 3600), "yesterday", ""]
)
retry_after = st.none() | st.sampled_from(["2", "0.5", _date(SERVER + 9), "31536000", "later"])
answer = st.fixed_dictionaries(
    {
        "X-RateLimit-Limit": limit,
        "X-RateLimit-Remaining": remaining,
        "X-RateLimit-Reset": reset,
        "Retry-After": retry_after,
        "Date": date,
    }
)
# The local clock: it matters where the answer gives no server time.
now = st.sampled_from([SERVER - 0.5, SERVER + 0.25, SERVER + 7200.0])


def _headers(values: dict[str, str | None]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k: v for k, v in values.items() if v is not None}))


def _forget() -> None:
    """The one internal hook: no reading remembered, the next parse is the general one."""
    nothing = headers_module._NOTHING_READ
    headers_module._last = (nothing, nothing, nothing, headers_module._last[3])


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.tuples(answer, now), min_size=2, max_size=40))
def test_the_same_headers_branch_reads_what_the_general_branch_reads(
    answers: list[tuple[dict[str, str | None], float]],
) -> None:
    _forget()
    as_they_come = [parse_answer(_headers(values), clock) for values, clock in answers]
    general: list[AnswerInfo] = []
    for values, clock in answers:
        _forget()
        general.append(parse_answer(_headers(values), clock))
    assert as_they_come == general


def test_the_branch_is_taken_for_the_usual_answer_and_only_remaining_changes() -> None:
    _forget()
    common = {
        "X-RateLimit-Limit": "600",
        "X-RateLimit-Reset": str(SERVER + 40),
        "Date": _date(SERVER),
    }
    first = parse_answer(_headers({**common, "X-RateLimit-Remaining": "10"}), SERVER + 0.1)
    remembered = headers_module._last
    second = parse_answer(_headers({**common, "X-RateLimit-Remaining": "9"}), SERVER + 0.2)
    assert headers_module._last is remembered  # the reading was taken again, not redone
    assert (first.remaining, second.remaining) == (10, 9)
    assert first.reset_in == second.reset_in == 40.0
    assert second.received_at == SERVER + 0.2


def test_a_reading_without_a_date_is_never_remembered() -> None:
    _forget()
    values = {"X-RateLimit-Limit": "600", "X-RateLimit-Reset": str(SERVER + 40)}
    early = parse_answer(_headers(values), SERVER + 10.0)
    late = parse_answer(_headers(values), SERVER + 20.0)
    assert headers_module._last[0] is headers_module._NOTHING_READ
    # Without a Date the local clock reads the absolute reset: it must move with it.
    assert (early.reset_in, late.reset_in) == (30.0, 20.0)
