"""Reading the answer to one batch write (contacts upsert, events add): pure functions.

The rule is to believe only what says success. An item is accepted when the
answer says so: its own per-item answer, or the body's totals when they prove
it. Everything the answer does not settle is *unknown* (the engine reports
those items as failed, with the reason and an excerpt of the body), never
accepted by default.

Known answers (both shapes of the reference are understood):

(a) documented: ``{"entity": {"successful": n, "failed": m, "items": [{"status":
    "success"|"error", "_user_id"?, "_event_id"?, "errors"?: {field: [msg]}}]}}``,
    one item per input item, in order. The per-item list alone (a bare JSON
    list, or ``items`` beside the totals without the envelope) is read the same way.
(b) seen in Instasent's ActivePieces piece: ``{"success", "entitiesSuccess",
    "errors": [...], "accepted": [{"position", "item"}], ...}``: positions in
    ``accepted`` are accepted, the others are rejected with the errors found.

How each status is read:

- 200, 201, 202, 204, 207: the body above, item by item. Answers that cover
  only some items are placed by ``_event_id`` (else ``_user_id``); the items
  left open are accepted only when the totals prove it (``successful`` equals
  the open items plus the answers saying success, and ``failed`` does not
  disagree), rejected when the totals prove they failed, else unknown. An
  empty body is success only on 204 and 202 (the status says the whole batch
  was taken). An error body, an unknown shape, HTML or truncated JSON: every
  item unknown.
- 422: every item failed validation. Per-item answers are read as above; items
  without one are rejected with the errors or the message of the body.
- Anything else settles nothing: every item unknown.

Errors are always normalised to ``dict[str, list[str]]`` (``"_"`` when the server
names no field).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from itertools import repeat
from typing import Any, Final

import attrs
import orjson

__all__ = ["BatchOutcome", "excerpt", "normalize_errors", "read_batch"]

_READ_STATUSES: Final = frozenset({200, 201, 202, 204, 207, 422})
_EMPTY_OK: Final = frozenset({202, 204})
_SUCCESS_WORDS: Final = frozenset(
    {"success", "successful", "succeeded", "ok", "accepted", "created", "updated"}
)
_ERROR_WORDS: Final = frozenset(
    {"error", "errors", "failed", "failure", "fail", "rejected", "invalid"}
)
_NO_DETAILS: Final = "rejected by the server without details"
_NO_DETAILS_422: Final = "Unprocessable Entity"
_EXCERPT: Final = 200

# The fate of one position: _OK, a dict of errors (rejected), or None (not said).
_OK: Final = True
_Fate = Any
Errors = dict[str, list[str]]


@attrs.frozen(slots=True)
class BatchOutcome:
    """What one answer says about the ``n`` items of its batch (indices ``0..n-1``).

    ``accepted`` counts accepted items; ``rejected`` lists ``(index, errors)``;
    ``unknown`` lists the indices the answer does not settle, and ``reason``
    says why (with an excerpt of the body); ``raw`` is the body when it was not
    fully understood, for inspection.
    """

    accepted: int = 0
    rejected: list[tuple[int, Errors]] = attrs.field(factory=list)
    unknown: list[int] = attrs.field(factory=list)
    reason: str = ""
    raw: Any | None = None


def read_batch(status: int, body: Any, items: Sequence[Any]) -> BatchOutcome:
    """Decide the fate of every item of one batch request from its answer.

    ``body`` is the decoded answer (JSON, text when it is not JSON, ``None``
    when empty); ``items`` are the wire items sent, read only to match answers
    by id when they are not one per item in order. Never raises on a
    malformed body.
    """
    if status in _READ_STATUSES:
        # The usual answer: one "success" per item (shape (a) or the bare list).
        # A branch of the general reading, which decides the same (a property
        # test holds them equal): when every item succeeded, which answer is
        # whose does not matter.
        answers = _answers_of(body)
        if type(answers) is list and len(answers) == len(items) and _all_succeeded(answers):
            return BatchOutcome(accepted=len(answers))
    return _read_general(status, body, items)


def _read_general(status: int, body: Any, items: Sequence[Any]) -> BatchOutcome:
    """``read_batch`` without its all-success branch."""
    n = len(items)
    if status not in _READ_STATUSES:
        return _all_unknown(n, f"the server answered {status}", body)
    if body is None or body == "":
        if status in _EMPTY_OK:
            return BatchOutcome(accepted=n)
        if status != 422:
            return _all_unknown(n, f"the server answered {status} with an empty body", None)
    fates: list[_Fate] = [None] * n
    state = _State(status, body)
    if isinstance(body, Mapping):
        container = _entity_container(body)
        if container is not None:
            _read_entity_shape(container, items, fates, state)
        elif _is_accepted_shape(body):
            _read_accepted_shape(body, fates, state)
        elif status == 422:
            _read_422_body(body, fates, state)
        else:
            return _all_unknown(n, _what_answered(status, body), body)
    elif isinstance(body, list):
        _read_answers(body, items, fates, state)
    elif status == 422:
        state.unmapped = True
        message = _message(body)
        if message:
            state.general = {"_": [message]}
    else:
        return _all_unknown(n, _what_answered(status, body), body)
    return _settle(fates, state)


class _State:
    """What the body said beyond per-item fates."""

    __slots__ = ("body", "failed", "general", "status", "successful", "unmapped")

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        self.unmapped = False  # part of the body could not be placed: keep it raw
        self.successful: int | None = None  # the body's total of accepted items
        self.failed: int | None = None  # the body's total of failed items
        self.general: Errors | None = None  # errors not tied to a position

    def add_general(self, errors: Errors | None) -> None:
        if errors:
            self.general = _merge(self.general, errors)


def _all_unknown(n: int, what: str, body: Any) -> BatchOutcome:
    reason = f"outcome unknown: {what}"
    if body is not None and body != "":
        reason += f": {excerpt(body)}"
    return BatchOutcome(unknown=list(range(n)), reason=reason, raw=body)


def _what_answered(status: int, body: Any) -> str:
    if isinstance(body, str):
        kind = "HTML" if body.lstrip()[:1] == "<" else "text that is not JSON"
        return f"the server answered {status} with {kind}, not a batch answer"
    if isinstance(body, Mapping) and (
        _message(body)
        or body.get("success") is False
        or str(body.get("status", "")).lower() in _ERROR_WORDS
        or "errors" in body
    ):
        return f"the server answered {status} with an error, not a batch answer"
    return f"the server answered {status} with a body that is not a batch answer"


def excerpt(body: Any, limit: int = _EXCERPT) -> str:
    """The start of a body as text (JSON for decoded values), at most ``limit`` characters."""
    if isinstance(body, (bytes, bytearray)):
        text = bytes(body[: limit * 4]).decode("utf-8", "replace")
    elif isinstance(body, str):
        text = body
    else:
        try:
            text = orjson.dumps(body).decode()
        except TypeError:
            text = repr(body)
    text = " ".join(text[: limit * 2].split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _entity_container(body: Mapping[Any, Any]) -> Mapping[Any, Any] | None:
    entity = body.get("entity")
    if isinstance(entity, Mapping) and (
        isinstance(entity.get("items"), list)
        or _count(entity.get("successful")) is not None
        or _count(entity.get("failed")) is not None
    ):
        return entity
    if isinstance(body.get("items"), list) and (
        _count(body.get("successful")) is not None or _count(body.get("failed")) is not None
    ):
        return body
    return None


def _is_accepted_shape(body: Mapping[Any, Any]) -> bool:
    return isinstance(body.get("accepted"), list) or _count(body.get("entitiesSuccess")) is not None


# --- shape (a) and per-item answers ------------------------------------------------------


def _read_entity_shape(
    container: Mapping[Any, Any], items: Sequence[Any], fates: list[_Fate], state: _State
) -> None:
    answers = container.get("items")
    if isinstance(answers, list):
        _read_answers(answers, items, fates, state)
    elif answers is not None:
        state.unmapped = True  # something there, not a list
    state.successful = _count(container.get("successful"))
    state.failed = _count(container.get("failed"))
    state.add_general(normalize_errors(container.get("errors")))
    if state.status == 422 and not state.general:
        message = _message(container) or _message(state.body)
        if message:
            state.general = {"_": [message]}


def _read_answers(
    answers: list[Any], items: Sequence[Any], fates: list[_Fate], state: _State
) -> None:
    """Per-item answers: in order when they line up with the items, else placed by id."""
    if len(answers) == len(items) and (_all_succeeded(answers) or _ids_agree(answers, items)):
        for i, answer in enumerate(answers):
            fates[i] = _item_fate(answer)
    else:
        state.unmapped = True
        _match_by_id(answers, items, fates)


def _answers_of(body: Any) -> Any:
    """The per-item answers of shape (a) (``entity.items``), or the body itself."""
    if type(body) is dict:
        entity = body.get("entity")
        return entity.get("items") if type(entity) is dict else None
    return body


def _all_succeeded(answers: list[Any]) -> bool:
    """Every answer a dict whose ``status`` is ``"success"``, checked in C."""
    try:
        # A non-dict answer raises TypeError (dict.get refuses it).
        statuses = list(map(dict.get, answers, repeat("status")))
    except TypeError:
        return False
    return statuses.count("success") == len(answers)


def _ids_agree(answers: list[Any], items: Sequence[Any]) -> bool:
    """True when every id an answer carries matches the item at the same position."""
    for answer, item in zip(answers, items, strict=True):
        if not isinstance(answer, Mapping):
            continue
        user_id, event_id = _ids_of(item)
        answer_event = answer.get("_event_id")
        if answer_event is not None and answer_event != event_id:
            return False
        answer_user = answer.get("_user_id")
        if answer_user is not None and answer_user != user_id:
            return False
    return True


def _match_by_id(answers: list[Any], items: Sequence[Any], fates: list[_Fate]) -> None:
    """Place answers by ``_event_id`` (else ``_user_id``), in order for repeated ids."""
    by_event: dict[Hashable, deque[int]] = {}
    by_user: dict[Hashable, deque[int]] = {}
    for i, item in enumerate(items):
        user_id, event_id = _ids_of(item)
        if _hashable(event_id):
            by_event.setdefault(event_id, deque()).append(i)
        if _hashable(user_id):
            by_user.setdefault(user_id, deque()).append(i)
    for answer in answers:
        if not isinstance(answer, Mapping):
            continue
        event_id = answer.get("_event_id")
        if _hashable(event_id):
            queue = by_event.get(event_id)
        else:
            user_id = answer.get("_user_id")
            queue = by_user.get(user_id) if _hashable(user_id) else None
        while queue and fates[queue[0]] is not None:
            queue.popleft()  # already placed through the other id
        if queue:
            fates[queue.popleft()] = _item_fate(answer)


def _item_fate(answer: Any) -> _Fate:
    if not isinstance(answer, Mapping):
        return None
    status = answer.get("status")
    if status is None and isinstance(answer.get("success"), bool):
        status = answer["success"]
    if status is True or (isinstance(status, str) and status.lower() in _SUCCESS_WORDS):
        return _OK
    errors = normalize_errors(answer.get("errors") if "errors" in answer else answer.get("error"))
    if status is False or (isinstance(status, str) and status.lower() in _ERROR_WORDS):
        return errors or _message_errors(answer) or {"_": [_NO_DETAILS]}
    return errors  # errors without a status: rejected; nothing at all: not said


# --- shape (b) and other 422 bodies --------------------------------------------------------


def _read_positional_errors(errors: Any, n: int, state: _State) -> dict[int, Errors]:
    """Errors of an ``errors`` list placed by ``position``; the rest go to ``general``."""
    positional: dict[int, Errors] = {}
    if not isinstance(errors, list):
        state.add_general(normalize_errors(errors))
        return positional
    for entry in errors:
        position = _position(entry.get("position"), n) if isinstance(entry, Mapping) else None
        found = normalize_errors(entry)
        if position is None:
            state.add_general(found)
            if isinstance(entry, Mapping) and "position" in entry:
                state.unmapped = True  # a position we cannot place
        elif found:
            positional[position] = _merge(positional.get(position), found)
    return positional


def _read_accepted_shape(body: Mapping[Any, Any], fates: list[_Fate], state: _State) -> None:
    n = len(fates)
    positional = _read_positional_errors(body.get("errors"), n, state)
    accepted = body.get("accepted")
    if isinstance(accepted, list):
        for entry in accepted:
            raw_position = entry.get("position") if isinstance(entry, Mapping) else entry
            position = _position(raw_position, n)
            if position is None:
                state.unmapped = True
            else:
                fates[position] = _OK
        # The list says which were taken: the others were not.
        for i in range(n):
            if fates[i] is None:
                fates[i] = positional.get(i) or state.general or {"_": [_NO_DETAILS]}
        return
    for position, found in positional.items():
        fates[position] = found
    state.successful = _count(body.get("entitiesSuccess"))
    if state.successful == 0 and (body.get("success") is False or state.general):
        state.failed = n - len(positional)
    if state.status == 422 and not state.general:
        message = _message(body)
        if message:
            state.general = {"_": [message]}


def _read_422_body(body: Mapping[Any, Any], fates: list[_Fate], state: _State) -> None:
    """A 422 body in neither shape: positional errors where given, the message for the rest."""
    for position, found in _read_positional_errors(body.get("errors"), len(fates), state).items():
        fates[position] = found
    if not state.general:
        message = _message(body)
        if message:
            state.general = {"_": [message]}
    if state.general is None:
        state.unmapped = True


# --- settling open positions ----------------------------------------------------------


def _settle(fates: list[_Fate], state: _State) -> BatchOutcome:
    open_positions = [i for i, fate in enumerate(fates) if fate is None]
    keep_raw = state.unmapped
    reason = ""
    if open_positions:
        said_ok = sum(1 for fate in fates if fate is _OK)
        said_failed = len(fates) - len(open_positions) - said_ok
        rest = len(open_positions)
        successful, failed = state.successful, state.failed
        generic = state.general or {"_": [_NO_DETAILS_422 if state.status == 422 else _NO_DETAILS]}
        fill: _Fate = None
        if state.status == 422:
            fill = generic
            keep_raw = keep_raw or state.general is None
        elif (
            successful is not None
            and successful - said_ok == rest
            and (failed is None or failed == said_failed)
        ):
            fill = _OK  # the totals prove the open items were accepted
        elif (
            failed is not None
            and failed - said_failed == rest
            and (successful is None or successful == said_ok)
        ):
            fill = generic  # the totals prove the open items failed
        if fill is None:
            keep_raw = True
            reason = (
                f"outcome unknown: the server answered {state.status} without saying whether "
                f"this item was accepted: {excerpt(state.body)}"
            )
        else:
            for i in open_positions:
                fates[i] = fill
            open_positions = []
    accepted = 0
    rejected: list[tuple[int, Errors]] = []
    for i, fate in enumerate(fates):
        if fate is _OK:
            accepted += 1
        elif fate is not None:
            rejected.append((i, fate))
    return BatchOutcome(
        accepted, rejected, open_positions, reason, state.body if keep_raw else None
    )


# --- small readers ----------------------------------------------------------------------


def normalize_errors(value: Any) -> Errors | None:
    """Errors in any shape as ``{field: [messages]}`` (``"_"`` for no field), or ``None``.

    Understands ``{field: [msgs] | msg | {nested: ...}}``, a list of messages or
    of ``{"field"/"property", "message"}`` entries, entries with ``errors`` of
    their own, and a bare message.
    """
    out: Errors = {}
    _collect(value, "_", out)
    return out or None


def _collect(value: Any, field: str, out: Errors) -> None:
    # Plain JSON types first (exact type checks are much cheaper than the ABC check).
    kind = type(value)
    if kind is str:
        if value:
            out.setdefault(field, []).append(value)
        return
    if kind is list:
        for entry in value:
            _collect(entry, field, out)
        return
    if kind is dict:
        if value:
            _collect_mapping(value, field, out)
        return
    if value is None or value == "" or value == [] or value == {}:
        return
    if isinstance(value, str):
        out.setdefault(field, []).append(value)
    elif isinstance(value, Mapping):
        _collect_mapping(value, field, out)
    elif isinstance(value, (list, tuple)):
        for entry in value:
            _collect(entry, field, out)
    else:
        out.setdefault(field, []).append(str(value))


def _collect_mapping(value: Mapping[Any, Any], field: str, out: Errors) -> None:
    if "errors" in value or "message" in value or "error" in value:
        named = value.get("field", value.get("property", value.get("path")))
        target = str(named) if named is not None else field
        if "errors" in value:
            _collect(value["errors"], target, out)
        else:
            _collect(value.get("message", value.get("error")), target, out)
        return
    for key, sub in value.items():
        if key in ("position", "index", "item"):
            continue
        name = str(key) if field == "_" else f"{field}.{key}"
        _collect(sub, name, out)


def _merge(base: Errors | None, more: Errors) -> Errors:
    if not base:
        return {k: list(v) for k, v in more.items()}
    merged = {k: list(v) for k, v in base.items()}
    for key, messages in more.items():
        merged.setdefault(key, []).extend(messages)
    return merged


def _message_errors(answer: Mapping[Any, Any]) -> Errors | None:
    message = _message(answer)
    return {"_": [message]} if message else None


def _message(body: Any) -> str | None:
    if isinstance(body, Mapping):
        for key in ("message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    elif isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return None


def _count(value: Any) -> int | None:
    if type(value) is int and value >= 0:
        return value
    return None


def _position(value: Any, n: int) -> int | None:
    if type(value) is str and value.isdigit():
        value = int(value)
    if type(value) is int and 0 <= value < n:
        return value
    return None


def _hashable(value: Any) -> bool:
    return value is not None and isinstance(value, Hashable)


def _ids_of(item: Any) -> tuple[Any, Any]:
    if isinstance(item, Mapping):
        return item.get("_user_id"), item.get("_event_id")
    return getattr(item, "user_id", None), getattr(item, "event_id", None)
