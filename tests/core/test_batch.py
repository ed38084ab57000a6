"""Batch write answers: both body shapes, id matching, and believing only what says success."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instasent_async._core.batch import BatchOutcome, normalize_errors, read_batch
from instasent_async.models import Contact, Event


def contacts(n: int) -> list[dict[str, Any]]:
    return [{"_user_id": f"USER-{i}", "_email": f"u{i}@example.com"} for i in range(n)]


def events(n: int) -> list[dict[str, Any]]:
    return [{"_user_id": "USER-1", "_event_id": f"ev-{i}", "_event_type": "t"} for i in range(n)]


def partition(outcome: BatchOutcome) -> tuple[int, dict[int, dict[str, list[str]]], list[int]]:
    return outcome.accepted, dict(outcome.rejected), outcome.unknown


def parse_batch(status: int, body: Any, items: list[Any], offset: int) -> BatchOutcome:
    """``read_batch`` with indices shifted by ``offset`` (as the engine places them)."""
    outcome = read_batch(status, body, items)
    return BatchOutcome(
        outcome.accepted,
        [(offset + i, errors) for i, errors in outcome.rejected],
        [offset + i for i in outcome.unknown],
        outcome.reason,
        outcome.raw,
    )


# --- shape (a): {"entity": {"successful", "failed", "items": [...]}} ----------------------


def test_documented_shape_positional() -> None:
    items = contacts(3)
    body = {
        "entity": {
            "successful": 2,
            "failed": 1,
            "items": [
                {"status": "success", "_user_id": "USER-0"},
                {"status": "success", "_user_id": "USER-1"},
                {"status": "error", "_user_id": "USER-2", "errors": {"_email": ["Invalid format"]}},
            ],
        }
    }
    outcome = parse_batch(202, body, items, 200)
    assert outcome == BatchOutcome(accepted=2, rejected=[(202, {"_email": ["Invalid format"]})])


def test_documented_shape_422_every_item_failed() -> None:
    items = contacts(2)
    body = {
        "entity": {
            "successful": 0,
            "failed": 2,
            "items": [
                {"status": "error", "_user_id": "USER-0", "errors": {"_user_id": ["Required"]}},
                {
                    "status": "error",
                    "_user_id": "USER-1",
                    "errors": {"_phone_mobile": ["Bad", "Too long"]},
                },
            ],
        }
    }
    outcome = parse_batch(422, body, items, 0)
    assert partition(outcome) == (
        0,
        {0: {"_user_id": ["Required"]}, 1: {"_phone_mobile": ["Bad", "Too long"]}},
        [],
    )
    assert outcome.raw is None


def test_items_without_ids_are_read_by_position() -> None:
    body = {
        "entity": {"items": [{"status": "error", "errors": {"x": ["y"]}}, {"status": "success"}]}
    }
    assert partition(parse_batch(202, body, contacts(2), 0)) == (1, {0: {"x": ["y"]}}, [])


def test_reordered_items_are_matched_by_user_id() -> None:
    items = contacts(3)
    body = {
        "entity": {
            "items": [
                {"status": "error", "_user_id": "USER-2", "errors": {"_email": ["bad"]}},
                {"status": "success", "_user_id": "USER-0"},
                {"status": "success", "_user_id": "USER-1"},
            ]
        }
    }
    outcome = parse_batch(202, body, items, 10)
    assert partition(outcome) == (2, {12: {"_email": ["bad"]}}, [])


def test_short_items_list_leaves_the_items_it_does_not_mention_unknown() -> None:
    items = contacts(4)
    body = {
        "entity": {
            "items": [{"status": "error", "_user_id": "USER-1", "errors": {"_email": ["bad"]}}]
        }
    }
    outcome = parse_batch(202, body, items, 0)
    assert partition(outcome) == (0, {1: {"_email": ["bad"]}}, [0, 2, 3])
    assert outcome.raw is body
    assert outcome.reason.startswith("outcome unknown: the server answered 202 without saying")
    assert '"USER-1"' in outcome.reason  # with an excerpt of the body


def test_short_items_list_with_totals_proving_the_rest_accepted() -> None:
    items = contacts(4)
    answer = {"status": "error", "_user_id": "USER-1", "errors": {"_email": ["bad"]}}
    body = {"entity": {"successful": 3, "failed": 1, "items": [answer]}}
    assert partition(parse_batch(202, body, items, 0)) == (3, {1: {"_email": ["bad"]}}, [])
    # Totals that do not add up prove nothing.
    body = {"entity": {"successful": 3, "failed": 2, "items": [answer]}}
    assert partition(parse_batch(202, body, items, 0)) == (0, {1: {"_email": ["bad"]}}, [0, 2, 3])
    body = {"entity": {"successful": 2, "items": [answer]}}
    assert partition(parse_batch(202, body, items, 0)) == (0, {1: {"_email": ["bad"]}}, [0, 2, 3])


def test_event_answers_are_matched_by_event_id() -> None:
    items = events(3)  # all share one _user_id: only _event_id tells them apart
    body = {
        "entity": {
            "items": [
                {
                    "status": "error",
                    "_user_id": "USER-1",
                    "_event_id": "ev-2",
                    "errors": {"_event_type": ["unknown"]},
                },
                {"status": "success", "_user_id": "USER-1", "_event_id": "ev-0"},
            ]
        }
    }
    outcome = parse_batch(202, body, items, 0)
    assert partition(outcome) == (1, {2: {"_event_type": ["unknown"]}}, [1])
    assert outcome.raw is body


def test_models_are_matched_by_their_ids_too() -> None:
    items = [Contact(user_id="A"), Contact(user_id="B")]
    body = {"entity": {"items": [{"status": "error", "_user_id": "B", "errors": {"_": ["no"]}}]}}
    outcome = parse_batch(202, body, items, 0)
    assert partition(outcome) == (0, {1: {"_": ["no"]}}, [0])
    ev = [Event(event_id="x"), Event(event_id="y")]
    body = {"entity": {"successful": 1, "items": [{"status": "error", "_event_id": "x"}]}}
    assert partition(parse_batch(202, body, ev, 0)) == (
        1,
        {0: {"_": ["rejected by the server without details"]}},
        [],
    )


def test_repeated_user_ids_are_matched_in_order() -> None:
    items = [{"_user_id": "A", "n": 1}, {"_user_id": "A", "n": 2}, {"_user_id": "B"}]
    body = {
        "entity": {
            "items": [
                {"status": "success", "_user_id": "A"},
                {"status": "error", "_user_id": "A", "errors": {"n": ["bad"]}},
            ]
        }
    }
    assert partition(parse_batch(202, body, items, 0)) == (1, {1: {"n": ["bad"]}}, [2])


def test_counters_without_items() -> None:
    items = contacts(3)
    all_ok = parse_batch(202, {"entity": {"successful": 3, "failed": 0}}, items, 0)
    assert partition(all_ok) == (3, {}, [])
    assert all_ok.raw is None
    all_failed = parse_batch(202, {"entity": {"successful": 0, "failed": 3}}, items, 5)
    assert partition(all_failed) == (
        0,
        {p: {"_": ["rejected by the server without details"]} for p in (5, 6, 7)},
        [],
    )
    some = {"entity": {"successful": 2, "failed": 1}}
    outcome = parse_batch(202, some, items, 5)
    assert partition(outcome) == (0, {}, [5, 6, 7])
    assert outcome.raw is some


def test_counters_settle_what_the_items_leave_open() -> None:
    items = contacts(3)
    body = {
        "entity": {
            "successful": 2,
            "failed": 1,
            "items": [{"status": "error", "_user_id": "USER-0", "errors": {"_email": ["bad"]}}],
        }
    }
    assert partition(parse_batch(202, body, items, 0)) == (2, {0: {"_email": ["bad"]}}, [])


def test_bare_list_of_answers() -> None:
    body = [{"status": "success"}, {"status": "error", "errors": ["broken"]}]
    assert partition(parse_batch(202, body, contacts(2), 0)) == (1, {1: {"_": ["broken"]}}, [])


def test_item_status_words_and_booleans() -> None:
    body = {
        "entity": {
            "items": [
                {"status": "OK"},
                {"status": "failed", "message": "nope"},
                {"success": True},
                {"success": False, "error": "bad thing"},
                {"status": "queued"},
            ]
        }
    }
    outcome = parse_batch(202, body, contacts(5), 0)
    # "queued" says nothing: unknown, with the body kept.
    assert partition(outcome) == (2, {1: {"_": ["nope"]}, 3: {"_": ["bad thing"]}}, [4])
    assert outcome.raw is body


# --- shape (b): {"success", "entitiesSuccess", "errors", "accepted": [...]} -------------


def test_accepted_list_shape() -> None:
    items = contacts(4)
    body = {
        "success": False,
        "entitiesSuccess": 2,
        "streamId": "st",
        "projectId": "p",
        "datasourceId": "ds",
        "errors": [
            {"position": 1, "errors": {"_email": ["Invalid format"]}},
            {"position": 3, "field": "_phone_mobile", "message": "Bad phone"},
        ],
        "accepted": [{"position": 0, "item": items[0]}, {"position": 2, "item": items[2]}],
    }
    outcome = parse_batch(202, body, items, 100)
    assert partition(outcome) == (
        2,
        {101: {"_email": ["Invalid format"]}, 103: {"_phone_mobile": ["Bad phone"]}},
        [],
    )
    assert outcome.raw is None


def test_accepted_list_with_unpositioned_errors() -> None:
    body = {
        "success": False,
        "entitiesSuccess": 1,
        "errors": ["Email is invalid"],
        "accepted": [{"position": 1}],
    }
    assert partition(parse_batch(202, body, contacts(2), 0)) == (
        1,
        {0: {"_": ["Email is invalid"]}},
        [],
    )


def test_single_item_failure_without_accepted_list() -> None:
    body = {"success": False, "entitiesSuccess": 0, "errors": ["_email: invalid"]}
    assert partition(parse_batch(202, body, contacts(1), 7)) == (
        0,
        {7: {"_": ["_email: invalid"]}},
        [],
    )
    # An error body without the shape's totals settles nothing.
    body = {"success": False, "errors": []}
    outcome = parse_batch(202, body, contacts(1), 0)
    assert partition(outcome) == (0, {}, [0])
    assert "with an error, not a batch answer" in outcome.reason


def test_accepted_shape_all_success_by_count() -> None:
    body = {"success": True, "entitiesSuccess": 3, "errors": []}
    outcome = parse_batch(202, body, contacts(3), 0)
    assert partition(outcome) == (3, {}, [])
    assert outcome.raw is None


def test_failure_without_saying_which_leaves_positions_unknown() -> None:
    body = {"success": False, "errors": ["something failed"]}
    outcome = parse_batch(202, body, contacts(3), 10)
    assert partition(outcome) == (0, {}, [10, 11, 12])
    assert outcome.raw is body
    by_count = {"entitiesSuccess": 1}
    assert partition(parse_batch(202, by_count, contacts(3), 0)) == (0, {}, [0, 1, 2])


def test_positional_errors_without_accepted_list() -> None:
    body = {"entitiesSuccess": 2, "errors": [{"position": 0, "message": "bad"}]}
    assert partition(parse_batch(202, body, contacts(3), 0)) == (2, {0: {"_": ["bad"]}}, [])


def test_out_of_range_positions_are_kept_raw() -> None:
    body = {
        "accepted": [{"position": 0}, {"position": 9}],
        "errors": [{"position": 5, "message": "x"}],
    }
    outcome = parse_batch(202, body, contacts(2), 0)
    assert partition(outcome) == (1, {1: {"_": ["x"]}}, [])
    assert outcome.raw is body


# --- anything else -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [202, 204])
@pytest.mark.parametrize("body", [None, ""])
def test_an_empty_202_or_204_accepts_everything(status: int, body: Any) -> None:
    outcome = parse_batch(status, body, contacts(3), 4)
    assert outcome == BatchOutcome(accepted=3, rejected=[], unknown=[], raw=None)


@pytest.mark.parametrize("status", [200, 201, 207])
def test_an_empty_body_on_other_successes_settles_nothing(status: int) -> None:
    outcome = parse_batch(status, None, contacts(3), 4)
    assert partition(outcome) == (0, {}, [4, 5, 6])
    assert outcome.reason == f"outcome unknown: the server answered {status} with an empty body"


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ({"message": "queued"}, "an error"),
        ({"error": "Internal server error"}, "an error"),
        ({"message": "Database unavailable, nothing stored"}, "an error"),
        ({"status": "error"}, "an error"),
        ({"success": True}, "a body that is not a batch answer"),
        ({"entity": None}, "a body that is not a batch answer"),
        ({"streamId": "x"}, "a body that is not a batch answer"),
        (42, "a body that is not a batch answer"),
        ("OK", "text that is not JSON"),
        ('{"entity": {"successful": 2, "fai', "text that is not JSON"),
        ("<html><body>Bad gateway</body></html>", "HTML"),
    ],
)
def test_a_success_status_with_an_unknown_body_settles_nothing(body: Any, what: str) -> None:
    outcome = parse_batch(200, body, contacts(2), 0)
    assert partition(outcome) == (0, {}, [0, 1])
    assert outcome.raw == body
    assert outcome.reason.startswith(f"outcome unknown: the server answered 200 with {what}")


def test_207_with_per_item_results_is_read_item_by_item() -> None:
    items = contacts(3)
    body = {
        "entity": {
            "items": [
                {"status": "success", "_user_id": "USER-0"},
                {"status": "error", "_user_id": "USER-1", "errors": {"_email": ["bad"]}},
                {"status": "success", "_user_id": "USER-2"},
            ]
        }
    }
    assert partition(parse_batch(207, body, items, 0)) == (2, {1: {"_email": ["bad"]}}, [])


def test_success_body_hinting_failures_leaves_positions_unknown() -> None:
    body = {"failed": 1, "message": "partial"}
    outcome = parse_batch(202, body, contacts(2), 0)
    assert partition(outcome) == (0, {}, [0, 1])
    assert outcome.raw is body


def test_a_422_with_a_message_only_rejects_every_item_with_the_message() -> None:
    outcome = parse_batch(422, {"message": "Validation failed"}, contacts(2), 3)
    assert partition(outcome) == (
        0,
        {3: {"_": ["Validation failed"]}, 4: {"_": ["Validation failed"]}},
        [],
    )


def test_unmappable_422_uses_the_errors_found() -> None:
    body = {"message": "Validation failed", "errors": {"_email": ["Invalid format"]}}
    outcome = parse_batch(422, body, contacts(2), 0)
    assert partition(outcome) == (
        0,
        {0: {"_email": ["Invalid format"]}, 1: {"_email": ["Invalid format"]}},
        [],
    )


def test_422_with_positional_errors_list() -> None:
    body = {"message": "Invalid", "errors": [{"position": 1, "errors": {"_email": ["bad"]}}]}
    assert partition(parse_batch(422, body, contacts(2), 0)) == (
        0,
        {0: {"_": ["Invalid"]}, 1: {"_email": ["bad"]}},
        [],
    )


@pytest.mark.parametrize("body", [None, "", "<html>oops</html>", [1, 2]])
def test_422_without_usable_body(body: Any) -> None:
    outcome = parse_batch(422, body, contacts(2), 0)
    assert outcome.accepted == 0
    assert outcome.unknown == []
    assert [i for i, _ in outcome.rejected] == [0, 1]
    for _, errors in outcome.rejected:
        assert set(errors) == {"_"}
        assert all(isinstance(m, str) and m for m in errors["_"])
    if body == "<html>oops</html>":
        assert outcome.rejected[0][1] == {"_": ["<html>oops</html>"]}


@pytest.mark.parametrize("status", [301, 302, 304, 400, 401, 404, 429, 500, 503])
def test_other_statuses_settle_nothing(status: int) -> None:
    body = {"message": "nope"}
    outcome = parse_batch(status, body, contacts(2), 8)
    assert outcome == BatchOutcome(
        unknown=[8, 9],
        reason=f'outcome unknown: the server answered {status}: {{"message":"nope"}}',
        raw=body,
    )


# --- error normalisation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ({}, None),
        ([], None),
        ("bad", {"_": ["bad"]}),
        (["a", "b"], {"_": ["a", "b"]}),
        ({"_email": "bad"}, {"_email": ["bad"]}),
        ({"_email": ["bad", None, 3]}, {"_email": ["bad", "3"]}),
        ({"address": {"city": ["required"]}}, {"address.city": ["required"]}),
        ([{"field": "_email", "message": "bad"}, "general"], {"_email": ["bad"], "_": ["general"]}),
        ([{"property": "x", "message": "y"}], {"x": ["y"]}),
        ({"position": 2, "errors": {"_email": ["bad"]}}, {"_email": ["bad"]}),
        ({"position": 2, "_email": ["bad"]}, {"_email": ["bad"]}),
        (12, {"_": ["12"]}),
    ],
)
def test_normalize_errors(value: Any, expected: dict[str, list[str]] | None) -> None:
    assert normalize_errors(value) == expected


# --- properties --------------------------------------------------------------------------

_messages = st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=2)
_errors = st.dictionaries(
    st.sampled_from(["_email", "_phone_mobile", "plan", "_"]), _messages, min_size=1, max_size=2
)


def render_documented(
    items: list[dict[str, Any]], fates: list[dict[str, list[str]] | None]
) -> dict[str, Any]:
    answers: list[dict[str, Any]] = []
    for item, fate in zip(items, fates, strict=True):
        answer: dict[str, Any] = {
            "status": "success" if fate is None else "error",
            "_user_id": item["_user_id"],
        }
        if fate is not None:
            answer["errors"] = fate
        answers.append(answer)
    failed = sum(f is not None for f in fates)
    return {"entity": {"successful": len(items) - failed, "failed": failed, "items": answers}}


def render_accepted(
    items: list[dict[str, Any]], fates: list[dict[str, list[str]] | None]
) -> dict[str, Any]:
    accepted = [
        {"position": i, "item": item}
        for i, (item, f) in enumerate(zip(items, fates, strict=True))
        if f is None
    ]
    errors = [{"position": i, "errors": f} for i, f in enumerate(fates) if f is not None]
    return {
        "success": not errors,
        "entitiesSuccess": len(accepted),
        "streamId": "s",
        "projectId": "p",
        "datasourceId": "d",
        "errors": errors,
        "accepted": accepted,
    }


@given(
    fates=st.lists(st.none() | _errors, min_size=1, max_size=100),
    offset=st.integers(min_value=0, max_value=10_000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_both_shapes_parse_back_to_the_same_partition(
    fates: list[dict[str, list[str]] | None], offset: int, seed: int
) -> None:
    items = contacts(len(fates))
    expected = (
        sum(f is None for f in fates),
        {offset + i: f for i, f in enumerate(fates) if f is not None},
        [],
    )
    all_failed = all(f is not None for f in fates)
    statuses = [202, 422] if all_failed else [202]
    for status in statuses:
        documented = parse_batch(status, render_documented(items, fates), items, offset)
        accepted_shape = parse_batch(status, render_accepted(items, fates), items, offset)
        assert partition(documented) == expected
        assert partition(accepted_shape) == expected
        assert documented.raw is None
        assert accepted_shape.raw is None
    # The documented shape in any order is placed by _user_id.
    shuffled = render_documented(items, fates)
    random.Random(seed).shuffle(shuffled["entity"]["items"])
    assert partition(parse_batch(202, shuffled, items, offset)) == expected


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 120) | st.text(max_size=6),
    lambda c: (
        st.lists(c, max_size=4)
        | st.dictionaries(
            st.text(max_size=8)
            | st.sampled_from(
                [
                    "entity",
                    "items",
                    "status",
                    "errors",
                    "accepted",
                    "position",
                    "success",
                    "entitiesSuccess",
                    "successful",
                    "failed",
                    "message",
                    "_user_id",
                ]
            ),
            c,
            max_size=4,
        )
    ),
    max_leaves=15,
)


@given(
    status=st.sampled_from([200, 201, 202, 204, 207, 302, 400, 422, 500]),
    body=_json,
    n=st.integers(min_value=0, max_value=12),
    offset=st.integers(min_value=0, max_value=1000),
)
def test_any_body_accounts_for_every_item_exactly_once(
    status: int, body: Any, n: int, offset: int
) -> None:
    items = contacts(n)
    outcome = parse_batch(status, body, items, offset)
    positions = [p for p, _ in outcome.rejected] + outcome.unknown
    assert len(positions) == len(set(positions))
    assert all(offset <= p < offset + n for p in positions)
    assert outcome.accepted + len(positions) == n
    for _, errors in outcome.rejected:
        assert isinstance(errors, dict) and errors
        for field, messages in errors.items():
            assert isinstance(field, str)
            assert isinstance(messages, list)
            assert all(isinstance(m, str) for m in messages)
    if outcome.unknown:
        assert outcome.reason.startswith("outcome unknown: ")
    if status == 422:
        assert outcome.unknown == []  # a 422 always settles every item
    elif status not in (200, 201, 202, 204, 207):
        assert outcome.unknown == list(range(offset, offset + n))


_SUCCESS = {"success", "successful", "succeeded", "ok", "accepted", "created", "updated"}
_no_success_text = st.text(max_size=6).filter(lambda t: t.lower() not in _SUCCESS)
_no_success_json = st.recursive(
    st.none() | st.just(False) | st.integers(-3, 120) | _no_success_text,
    lambda c: (
        st.lists(c, max_size=4)
        | st.dictionaries(
            _no_success_text.filter(lambda k: k not in ("entitiesSuccess",))
            | st.sampled_from(
                ["entity", "items", "status", "errors", "position", "failed", "message"]
            ),
            c,
            max_size=4,
        )
    ),
    max_leaves=15,
)


@given(
    status=st.sampled_from([200, 201, 202, 204, 207, 302, 422, 500]),
    body=_no_success_json,
    n=st.integers(min_value=1, max_value=12),
)
def test_nothing_is_accepted_that_the_answer_does_not_say_succeeded(
    status: int, body: Any, n: int
) -> None:
    # No word of success anywhere (no "success" status, no totals of successes,
    # no accepted list, no true): only an empty 202/204 may accept anything.
    outcome = read_batch(status, body, contacts(n))
    if status in (202, 204) and body in (None, ""):
        assert outcome.accepted == n
    else:
        assert outcome.accepted == 0
