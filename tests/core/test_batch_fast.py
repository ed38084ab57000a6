"""``read_batch``'s all-accepted branch decides exactly what the general reading decides.

The branch recognises the usual answer (one ``"success"`` per item) without
building anything; everything else goes to ``_read_general``. These properties
build random batches in both 202 shapes (and the bare-list form), with random
ids, statuses, errors and totals, and compare ``read_batch`` with the general
reading alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from instasent_async._core.batch import BatchOutcome, _read_general, normalize_errors, read_batch
from instasent_async.models import Contact, Event

STATUSES = [200, 201, 202, 204, 207, 302, 400, 422, 500]


def same(fast: BatchOutcome, general: BatchOutcome) -> None:
    assert fast == general
    assert fast.raw is general.raw


_ids = st.sampled_from(["A", "B", "C", "ev-0", "ev-1"]) | st.integers(0, 3)
_messages = st.lists(st.text(max_size=6), max_size=2)
_errors = (
    st.none()
    | st.dictionaries(st.sampled_from(["_email", "_", "plan"]), _messages, max_size=2)
    | st.text(max_size=6)
    | _messages
)
_status_values = st.sampled_from(
    ["success", "error", "Success", "OK", "failed", "queued", "", None, True, False, 1]
)


@st.composite
def items_of(draw: st.DrawFn, n: int) -> list[Any]:
    kind = draw(st.sampled_from(["dicts", "events", "contacts", "mappings", "mixed"]))
    out: list[Any] = []
    for i in range(n):
        user_id = draw(st.none() | _ids)
        event_id = draw(st.none() | _ids)
        wire = {"_user_id": user_id, "_event_id": event_id, "n": i}
        pick = kind if kind != "mixed" else draw(st.sampled_from(["dicts", "events", "mappings"]))
        if pick == "events":
            out.append(Event(user_id=user_id, event_id=event_id))  # type: ignore[arg-type]
        elif pick == "contacts":
            out.append(Contact(user_id=user_id))  # type: ignore[arg-type]
        elif pick == "mappings":
            out.append(MappingProxyType(wire))
        else:
            out.append(wire)
    return out


def _item_ids(item: Any) -> tuple[Any, Any]:
    if isinstance(item, Mapping):
        return item.get("_user_id"), item.get("_event_id")
    return getattr(item, "user_id", None), getattr(item, "event_id", None)


@st.composite
def answer_for(draw: st.DrawFn, item: Any) -> Any:
    """One per-item answer: usually well formed, sometimes odd in one way or another."""
    shape = draw(st.sampled_from(["success"] * 4 + ["error"] * 2 + ["odd", "not a dict"]))
    if shape == "not a dict":
        return draw(st.none() | st.text(max_size=4) | st.integers(0, 2) | st.just([]))
    answer: dict[str, Any] = {}
    if shape == "success":
        answer["status"] = "success"
    elif shape == "error":
        answer["status"] = "error"
        errors = draw(_errors)
        if errors is not None:
            answer["errors"] = errors
    else:
        if draw(st.booleans()):
            answer["status"] = draw(_status_values)
        if draw(st.booleans()):
            answer["success"] = draw(st.booleans() | st.none())
        if draw(st.booleans()):
            answer["errors" if draw(st.booleans()) else "error"] = draw(_errors)
        if draw(st.booleans()):
            answer["message"] = draw(st.text(max_size=4))
    user_id, event_id = _item_ids(item)
    # Ids: carried as the item has them (most of the time), absent, or wrong.
    for key, value in (("_user_id", user_id), ("_event_id", event_id)):
        how = draw(st.sampled_from(["same", "same", "same", "absent", "other", "null"]))
        if how == "same":
            answer[key] = value
        elif how == "other":
            answer[key] = draw(_ids)
        elif how == "null":
            answer[key] = None
    return answer


@st.composite
def documented_batch(draw: st.DrawFn) -> tuple[int, Any, list[Any]]:
    """Shape (a), a bare list of answers, or shape (a) with the wrong number of answers."""
    n = draw(st.integers(0, 8))
    items = draw(items_of(n))
    answers = [draw(answer_for(item)) for item in items]
    if draw(st.integers(0, 9)) == 0:
        if answers and draw(st.booleans()):
            answers.pop(draw(st.integers(0, len(answers) - 1)))
        else:
            answers.append(draw(answer_for(draw(items_of(1))[0])))
    status = draw(st.sampled_from([202] * 4 + STATUSES))
    form = draw(st.sampled_from(["entity"] * 4 + ["bare", "top"]))
    if form == "bare":
        return status, answers, items
    container: dict[str, Any] = {"items": answers}
    for key in ("successful", "failed"):
        if draw(st.booleans()):
            container[key] = draw(st.integers(0, n + 1) | st.none() | st.text(max_size=2))
    if draw(st.integers(0, 3)) == 0:
        container["errors"] = draw(_errors)
    if draw(st.integers(0, 3)) == 0:
        container["message"] = draw(st.text(max_size=4))
    body = container if form == "top" else {"entity": container}
    return status, body, items


@st.composite
def accepted_batch(draw: st.DrawFn) -> tuple[int, Any, list[Any]]:
    """Shape (b): ``accepted`` positions and positional ``errors``."""
    n = draw(st.integers(0, 8))
    items = draw(items_of(n))
    accepted = draw(st.lists(st.integers(-1, n + 1), max_size=n + 1))
    errors = [
        {"position": draw(st.integers(-1, n)), "errors": draw(_errors)}
        for _ in range(draw(st.integers(0, 3)))
    ]
    body: dict[str, Any] = {
        "accepted": [{"position": p, "item": {"x": p}} for p in accepted],
        "errors": errors if draw(st.booleans()) else draw(_errors),
    }
    if draw(st.booleans()):
        body["success"] = not errors
    if draw(st.booleans()):
        body["entitiesSuccess"] = draw(st.integers(0, n + 1))
    if draw(st.booleans()):
        del body["accepted"]
    status = draw(st.sampled_from([202] * 4 + STATUSES))
    return status, body, items


@given(batch=documented_batch())
def test_the_branch_agrees_with_the_general_reading_on_per_item_answers(
    batch: tuple[int, Any, list[Any]],
) -> None:
    status, body, items = batch
    same(read_batch(status, body, items), _read_general(status, body, items))


@given(batch=accepted_batch())
def test_the_branch_agrees_with_the_general_reading_on_the_accepted_shape(
    batch: tuple[int, Any, list[Any]],
) -> None:
    status, body, items = batch
    same(read_batch(status, body, items), _read_general(status, body, items))


@given(
    n=st.integers(1, 100),
    status=st.sampled_from([200, 201, 202, 207, 422]),
    carry_ids=st.booleans(),
    totals=st.booleans(),
)
def test_all_success_answers_are_accepted_by_both(
    n: int, status: int, carry_ids: bool, totals: bool
) -> None:
    # The benchmark server's (and the documented) usual answer.
    items = [
        {"_user_id": f"u{i % 7}", "_event_id": f"ev-{i}", "_event_type": "t"} for i in range(n)
    ]
    answers: list[dict[str, Any]] = []
    for item in items:
        answer: dict[str, Any] = {"status": "success"}
        if carry_ids:
            answer["_user_id"] = item["_user_id"]
            answer["_event_id"] = item["_event_id"]
        answers.append(answer)
    entity: dict[str, Any] = {"items": answers}
    if totals:
        entity.update(successful=n, failed=0)
    body = {"entity": entity}
    expected = BatchOutcome(accepted=n)
    assert read_batch(status, body, items) == expected
    assert _read_general(status, body, items) == expected


# --- normalize_errors: plain JSON types take a shortcut ------------------------------------


def _reference_collect(value: Any, field: str, out: dict[str, list[str]]) -> None:
    """The type-agnostic reading of an errors value (normalize_errors before its shortcut)."""
    if value is None or value == "" or value == [] or value == {}:
        return
    if isinstance(value, str):
        out.setdefault(field, []).append(value)
    elif isinstance(value, Mapping):
        if "errors" in value or "message" in value or "error" in value:
            named = value.get("field", value.get("property", value.get("path")))
            target = str(named) if named is not None else field
            if "errors" in value:
                _reference_collect(value["errors"], target, out)
            else:
                _reference_collect(value.get("message", value.get("error")), target, out)
            return
        for key, sub in value.items():
            if key in ("position", "index", "item"):
                continue
            name = str(key) if field == "_" else f"{field}.{key}"
            _reference_collect(sub, name, out)
    elif isinstance(value, (list, tuple)):
        for entry in value:
            _reference_collect(entry, field, out)
    else:
        out.setdefault(field, []).append(str(value))


_error_keys = st.sampled_from(
    ["errors", "message", "error", "field", "property", "path", "position", "index", "item"]
) | st.text(max_size=4)
_error_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.text(max_size=4) | st.just(0.5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_error_keys, inner, max_size=3)
        | st.dictionaries(_error_keys, inner, max_size=3).map(MappingProxyType)
    ),
    max_leaves=12,
)


@given(value=_error_values)
def test_normalize_errors_reads_any_value_as_the_reference_does(value: Any) -> None:
    expected: dict[str, list[str]] = {}
    _reference_collect(value, "_", expected)
    assert normalize_errors(value) == (expected or None)
    assert list((normalize_errors(value) or {}).items()) == list(expected.items())


def test_when_every_item_succeeded_the_ids_answers_echo_do_not_matter() -> None:
    items = [{"_user_id": "u1", "_event_id": "e1"}, {"_user_id": "u2", "_event_id": "e2"}]
    # Answers in another order (or echoing other ids): every item is accepted all the same.
    answers = [
        {"status": "success", "_user_id": "u2", "_event_id": "e2"},
        {"status": "success", "_user_id": "zz", "_event_id": "e1"},
    ]
    body = {"entity": {"successful": 2, "failed": 0, "items": answers}}
    expected = BatchOutcome(accepted=2)
    assert read_batch(202, body, items) == expected
    assert _read_general(202, body, items) == expected
    # With one error among them, the ids place it: e2's answer says error.
    answers[0]["status"] = "error"
    answers[0]["errors"] = {"_email": ["invalid"]}
    outcome = read_batch(202, body, items)
    assert outcome.accepted == 1
    assert outcome.rejected == [(1, {"_email": ["invalid"]})]
    assert outcome.unknown == []
