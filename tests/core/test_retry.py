"""RetryPolicy: retry decisions as a pure function, no I/O."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from instasent_async._core.retry import RetryDecision, RetryPolicy


def fixed(value: float) -> Callable[[], float]:
    """A deterministic stand-in for ``random.random``."""
    return lambda: value


# -- constructor validation ----------------------------------------------------


def test_defaults_match_the_design() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 4
    assert policy.backoff_base == 0.5
    assert policy.backoff_max == 8.0
    assert policy.retry_statuses == frozenset({429, 500, 502, 503, 504})


def test_none_policy_makes_one_attempt() -> None:
    policy = RetryPolicy.none()
    assert policy.max_attempts == 1
    decision = policy.decide(idempotent=True, attempt=1, outcome=503)
    assert decision.action == "raise"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -3}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"backoff_base": -0.1}, "backoff_base"),
        ({"backoff_base": float("nan")}, "backoff_base"),
        ({"backoff_max": float("inf")}, "backoff_max"),
        ({"backoff_base": "1"}, "backoff_base"),
        ({"backoff_base": 2.0, "backoff_max": 1.0}, "backoff_max"),
        ({"retry_statuses": {200}}, "retry_statuses"),
        ({"retry_statuses": {"503"}}, "retry_statuses"),
        ({"retry_statuses": 503}, "retry_statuses"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_retry_statuses_accepts_any_collection() -> None:
    policy = RetryPolicy(retry_statuses=[503, 429])  # type: ignore[arg-type]
    assert policy.retry_statuses == frozenset({503, 429})
    assert policy.decide(idempotent=True, attempt=1, outcome=500).action == "raise"


def test_policy_is_frozen() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.max_attempts = 9  # type: ignore[misc]


# -- backoff -------------------------------------------------------------------


def test_backoff_is_full_jitter_over_a_capped_exponential() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=8.0)
    # rng -> 1.0 gives the ceiling of each attempt.
    ceilings = [policy.backoff(n, fixed(1.0)) for n in range(1, 8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert policy.backoff(3, fixed(0.0)) == 0.0
    assert policy.backoff(3, fixed(0.25)) == pytest.approx(0.5)


def test_backoff_survives_huge_attempt_numbers() -> None:
    assert RetryPolicy().backoff(10_000, fixed(1.0)) == 8.0


def test_backoff_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="attempt"):
        RetryPolicy().backoff(0)


def test_backoff_with_the_real_rng_stays_in_range() -> None:
    policy = RetryPolicy(backoff_base=0.1, backoff_max=0.3)
    delays = [policy.backoff(n) for n in range(1, 6) for _ in range(50)]
    assert all(0.0 <= d <= 0.3 for d in delays)
    assert len(set(delays)) > 10  # jittered, not constant


# -- decisions ---------------------------------------------------------------------


@pytest.mark.parametrize("idempotent", [True, False])
def test_not_sent_is_retried_for_every_operation(idempotent: bool) -> None:
    policy = RetryPolicy()
    decision = policy.decide(idempotent=idempotent, attempt=1, outcome="not_sent", rng=fixed(1.0))
    assert decision == RetryDecision("retry", 0.5)


def test_maybe_sent_is_retried_when_idempotent() -> None:
    decision = RetryPolicy().decide(
        idempotent=True, attempt=2, outcome="maybe_sent", rng=fixed(1.0)
    )
    assert decision == RetryDecision("retry", 1.0)


@pytest.mark.parametrize("attempt", [1, 2, 4, 9])
def test_maybe_sent_is_ambiguous_for_a_non_idempotent_operation(attempt: int) -> None:
    decision = RetryPolicy().decide(idempotent=False, attempt=attempt, outcome="maybe_sent")
    assert decision.action == "ambiguous"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_with_backoff_when_idempotent(status: int) -> None:
    decision = RetryPolicy().decide(idempotent=True, attempt=3, outcome=status, rng=fixed(0.5))
    assert decision == RetryDecision("retry", 1.0)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_ambiguous_for_a_non_idempotent_operation(status: int) -> None:
    for attempt in (1, 4):
        decision = RetryPolicy().decide(idempotent=False, attempt=attempt, outcome=status)
        assert decision.action == "ambiguous"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501])
def test_other_statuses_raise(status: int) -> None:
    for idempotent in (True, False):
        decision = RetryPolicy().decide(idempotent=idempotent, attempt=1, outcome=status)
        assert decision.action == "raise"


@pytest.mark.parametrize("idempotent", [True, False])
def test_429_under_a_governor_retries_without_sleeping(idempotent: bool) -> None:
    # The server rejected the request unprocessed: safe even for a direct SMS.
    decision = RetryPolicy().decide(
        idempotent=idempotent, attempt=1, outcome=429, reset_after=30.0, governed=True
    )
    assert decision == RetryDecision("retry", 0.0)


def test_429_without_a_governor_sleeps_until_the_reset_plus_jitter() -> None:
    policy = RetryPolicy(backoff_base=0.5)
    low = policy.decide(
        idempotent=False, attempt=1, outcome=429, reset_after=12.0, governed=False, rng=fixed(0.0)
    )
    high = policy.decide(
        idempotent=False, attempt=1, outcome=429, reset_after=12.0, governed=False, rng=fixed(1.0)
    )
    assert low == RetryDecision("retry", 12.0)
    assert high.action == "retry"
    assert 12.0 < high.delay <= 12.5


def test_429_without_a_governor_or_reset_uses_the_backoff() -> None:
    decision = RetryPolicy().decide(
        idempotent=True, attempt=2, outcome=429, governed=False, rng=fixed(1.0)
    )
    assert decision == RetryDecision("retry", 1.0)


def test_429_with_a_negative_reset_does_not_sleep_negative() -> None:
    decision = RetryPolicy().decide(
        idempotent=True, attempt=1, outcome=429, reset_after=-3.0, governed=False, rng=fixed(0.0)
    )
    assert decision == RetryDecision("retry", 0.0)


def test_429_not_in_retry_statuses_raises() -> None:
    policy = RetryPolicy(retry_statuses=frozenset({503}))
    assert policy.decide(idempotent=True, attempt=1, outcome=429).action == "raise"


@pytest.mark.parametrize(
    ("idempotent", "outcome", "expected"),
    [
        (True, "not_sent", "raise"),
        (False, "not_sent", "raise"),
        (True, "maybe_sent", "raise"),
        (False, "maybe_sent", "ambiguous"),
        (True, 503, "raise"),
        (False, 503, "ambiguous"),
        (True, 429, "raise"),
        (False, 429, "raise"),
    ],
)
def test_exhausted_attempts(idempotent: bool, outcome: object, expected: str) -> None:
    policy = RetryPolicy(max_attempts=3)
    decision = policy.decide(idempotent=idempotent, attempt=3, outcome=outcome)  # type: ignore[arg-type]
    assert decision.action == expected
    # One attempt earlier, everything but the ambiguous cases retries.
    earlier = policy.decide(idempotent=idempotent, attempt=2, outcome=outcome)  # type: ignore[arg-type]
    assert earlier.action == ("ambiguous" if expected == "ambiguous" else "retry")


def test_total_attempts_including_the_first() -> None:
    policy = RetryPolicy(max_attempts=4)
    actions = [
        policy.decide(idempotent=True, attempt=n, outcome=503, rng=fixed(0.0)).action
        for n in range(1, 5)
    ]
    assert actions == ["retry", "retry", "retry", "raise"]


def test_unknown_outcome_and_bad_attempt_raise() -> None:
    policy = RetryPolicy()
    with pytest.raises(ValueError, match="outcome"):
        policy.decide(idempotent=True, attempt=1, outcome="exploded")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attempt"):
        policy.decide(idempotent=True, attempt=0, outcome=503)


def test_decide_is_pure() -> None:
    policy = RetryPolicy()
    a = policy.decide(idempotent=True, attempt=2, outcome=502, rng=fixed(0.3))
    b = policy.decide(idempotent=True, attempt=2, outcome=502, rng=fixed(0.3))
    assert a == b
    assert policy == RetryPolicy()
