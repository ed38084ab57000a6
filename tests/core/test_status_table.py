"""The per-operation success table and the failure classifier (pure, no server)."""

from __future__ import annotations

import pytest

from instasent_async import APIStatusError, RedirectError, RetryPolicy
from instasent_async._core.endpoints import OPERATIONS
from instasent_async._core.status import SUCCESSES, FailureKinds
from instasent_async._errors import error_from_response


def test_every_operation_has_its_successes_and_none_is_outside_2xx() -> None:
    assert set(SUCCESSES) == set(OPERATIONS)
    for name, statuses in SUCCESSES.items():
        assert statuses, name
        assert all(200 <= s <= 299 for s in statuses), name


def test_reads_succeed_on_200_only() -> None:
    for name, operation in OPERATIONS.items():
        if operation.method == "GET" or name.endswith(("search", "scroll")):
            assert SUCCESSES[name] == {200}, name


@pytest.mark.parametrize(
    ("name", "statuses"),
    [
        ("audience.sms_subscribe", {200, 202, 204}),
        ("audience.delete", {200, 202, 204}),
        ("datasource.contacts.delete", {200, 202, 204}),
        ("datasource.contacts.upsert", {200, 201, 202, 207}),
        ("datasource.events.add", {200, 201, 202, 207}),
        ("sms.send_direct", {200, 201, 202, 204}),
    ],
)
def test_writes_succeed_on_the_statuses_the_reference_allows(name: str, statuses: set[int]) -> None:
    assert SUCCESSES[name] == statuses


@pytest.mark.parametrize("status", [100, 203, 206, 299, 300, 301, 302, 303, 304, 307, 308])
def test_no_operation_reads_these_statuses_as_success(status: int) -> None:
    assert all(status not in statuses for statuses in SUCCESSES.values())


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308, 399])
def test_a_redirect_is_a_redirect_error_naming_where_it_pointed(status: int) -> None:
    err = error_from_response(
        status, None, method="GET", path="/x", headers={"location": "https://elsewhere/x"}
    )
    assert type(err) is RedirectError
    assert isinstance(err, APIStatusError)
    assert err.location == "https://elsewhere/x"


@pytest.mark.parametrize("status", [100, 203, 206, 299])
def test_other_unexpected_statuses_are_plain_status_errors(status: int) -> None:
    err = error_from_response(status, {"message": "odd"}, method="GET", path="/x")
    assert type(err) is APIStatusError
    assert err.status == status and err.message == "odd"


def test_redirects_and_other_unexpected_statuses_are_never_retried() -> None:
    policy = RetryPolicy()
    for status in (203, 302, 307):
        assert policy.decide(idempotent=True, attempt=1, outcome=status).action == "raise"


class _Base(Exception):
    pass


class _NotSent(_Base):
    pass


class _Fatal(_NotSent):
    pass


def test_failure_kinds_check_fatal_then_not_sent_then_maybe_sent() -> None:
    classify = FailureKinds(fatal=(_Fatal,), not_sent=(_NotSent,), maybe_sent=(_Base, OSError))
    assert classify(_Fatal()) == "fatal"
    assert classify(_NotSent()) == "not_sent"
    assert classify(_Base()) == "maybe_sent"
    assert classify(ConnectionResetError()) == "maybe_sent"
    assert classify(ValueError()) == "fatal"  # not listed: never repeated
    assert set(classify.classes) == {_Fatal, _NotSent, _Base, OSError}


def test_a_fatal_outcome_is_never_retried() -> None:
    assert RetryPolicy().decide(idempotent=True, attempt=1, outcome="fatal").action == "raise"
