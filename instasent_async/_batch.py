"""Reading the answer to a batch write (contacts upsert, events add): pure functions.

Two body shapes are known (``instasent-api.md`` 4.3), and both are understood:

(a) documented: ``{"entity": {"successful": n, "failed": m, "items": [{"status":
    "success"|"error", "_user_id"?, "_event_id"?, "errors"?: {field: [msg]}}]}}``,
    one item per input item, in order.
(b) seen in Instasent's ActivePieces piece: ``{"success", "entitiesSuccess",
    "errors": [...], "accepted": [{"position", "item"}], ...}``; items not in
    ``accepted`` are rejected with the errors found in ``errors``.

When every answer says success, every item is accepted whatever ids the answers
echo (which answer is whose only matters for placing per-item errors).

Rules for everything else (DESIGN.md "Decisions"):

- A position the body says nothing about is accepted when the status is a
  success (200/201/202/204) and nothing in the body says some item failed; the
  body is then kept as ``raw``. When the body does say that some failed without
  saying which, those positions are ``unknown`` (unless only one is open).
- A 422 means every item failed: open positions are rejected with the errors
  found in the body, or ``{"_": ["<message>"]}``.
- Any other status settles nothing: every position is ``unknown``.

Errors are always normalised to ``dict[str, list[str]]`` (``"_"`` when the server
names no field).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from itertools import repeat
from typing import Any, Final

from .models.ingest import BatchOutcome, RejectedItem

__all__ = ["accepted_all", "normalize_errors", "parse_batch"]

_OK_STATUSES: Final = frozenset({200, 201, 202, 204})
_SUCCESS_WORDS: Final = frozenset(
    {"success", "successful", "succeeded", "ok", "accepted", "created", "updated"}
)
_ERROR_WORDS: Final = frozenset(
    {"error", "errors", "failed", "failure", "fail", "rejected", "invalid"}
)
_NO_DETAILS: Final = "rejected by the server without details"
_NO_DETAILS_422: Final = "Unprocessable Entity"
_DICT_ONLY: Final = {dict}

# The fate of one position: _OK, a dict of errors (rejected), or None (not said).
_OK: Final = True
_Fate = Any


def parse_batch(
    status: int,
    body: Any,
    items: Sequence[Any],
    offset: int,
) -> BatchOutcome:
    """Decide the fate of every item of one batch request from the response.

    ``items`` are the items sent (wire dicts or models), ``offset`` the position
    of ``items[0]`` in the caller's whole input: positions in the outcome are
    positions in that input. Never raises on a malformed body; whatever cannot be
    mapped is kept in ``raw``.
    """
    if status in _OK_STATUSES or status == 422:
        # Fast path: one answer per item, in order (shape (a), or a bare list of answers).
        answers = _answers_of(body)
        if type(answers) is list and len(answers) == len(items):
            outcome = _read_in_order(answers, items, offset)
            if outcome is not None:
                return outcome
    return _parse_general(status, body, items, offset)


def _parse_general(status: int, body: Any, items: Sequence[Any], offset: int) -> BatchOutcome:
    """``parse_batch`` without its fast path: every shape and fallback."""
    n = len(items)
    if status not in _OK_STATUSES and status != 422:
        return BatchOutcome(unknown=list(range(offset, offset + n)), raw=body)
    fates: list[_Fate] = [None] * n
    state = _State(status, body)
    if isinstance(body, Mapping):
        container = _entity_container(body)
        if container is not None:
            _read_entity_shape(container, items, fates, state)
        elif _looks_like_accepted_shape(body):
            _read_accepted_shape(body, n, fates, state)
        else:
            state.read_loose(body)
    elif isinstance(body, list):
        # A bare list of per-item answers: read it like shape (a)'s items.
        _read_entity_shape({"items": body}, items, fates, state)
    else:
        state.unmapped = body not in (None, "", b"")
        message = _message(body)
        if status == 422 and message:
            state.general = {"_": [message]}
    return _settle(fates, items, offset, state)


class _State:
    """What the body said beyond per-item fates."""

    __slots__ = ("body", "failed_open", "general", "says_failure", "status", "unmapped")

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        self.unmapped = False  # part of the body could not be mapped: keep it raw
        self.failed_open: int | None = None  # how many open positions failed, if said
        self.says_failure = False  # the body says some item failed (not which/how many)
        self.general: dict[str, list[str]] | None = None  # errors not tied to a position

    def add_general(self, errors: dict[str, list[str]] | None) -> None:
        if errors:
            self.general = _merge(self.general, errors)

    def read_loose(self, body: Mapping[Any, Any]) -> None:
        """A mapping in neither known shape: look for failure hints and messages."""
        self.unmapped = bool(body)
        self.add_general(normalize_errors(body.get("errors")))
        if body.get("success") is False or self.general:
            self.says_failure = True
        failed = _count(body.get("failed"))
        if failed:
            self.says_failure = True
        if self.status == 422 and not self.general:
            message = _message(body)
            if message:
                self.general = {"_": [message]}


def _entity_container(body: Mapping[Any, Any]) -> Mapping[Any, Any] | None:
    entity = body.get("entity")
    if isinstance(entity, Mapping) and (
        isinstance(entity.get("items"), list) or "successful" in entity or "failed" in entity
    ):
        return entity
    if isinstance(body.get("items"), list) and ("successful" in body or "failed" in body):
        return body
    return None


def _looks_like_accepted_shape(body: Mapping[Any, Any]) -> bool:
    return (
        "accepted" in body
        or "entitiesSuccess" in body
        or ("success" in body and isinstance(body.get("success"), bool))
        or isinstance(body.get("errors"), list)
    )


# --- shape (a) --------------------------------------------------------------------------


def _read_entity_shape(
    container: Mapping[Any, Any], items: Sequence[Any], fates: list[_Fate], state: _State
) -> None:
    n = len(items)
    answers = container.get("items")
    if isinstance(answers, list):
        if len(answers) == n and (_all_succeeded(answers) or _ids_agree(answers, items)):
            # In order (or every item a success, when which answer is whose
            # does not matter: all are accepted).
            for i, answer in enumerate(answers):
                fates[i] = _item_fate(answer)
        else:
            state.unmapped = True
            _match_by_id(answers, items, fates)
    else:
        state.unmapped = bool(container.get("items"))  # something there, not a list
    open_count = fates.count(None)
    if open_count:
        said_ok = sum(1 for f in fates if f is _OK)
        said_failed = n - open_count - said_ok
        failed = _count(container.get("failed"))
        successful = _count(container.get("successful"))
        if failed is not None:
            state.failed_open = max(failed - said_failed, 0)
        elif successful is not None:
            state.failed_open = max(open_count - max(successful - said_ok, 0), 0)
    state.add_general(normalize_errors(container.get("errors")))
    if state.status == 422 and not state.general:
        message = _message(container) or _message(state.body)
        if message:
            state.general = {"_": [message]}


def accepted_all(status: int, body: Any, n: int) -> bool:
    """True when ``parse_batch`` accepts every one of the ``n`` items sent.

    The usual answer to a batch, recognised without building an outcome: a
    success (or 422) status and one ``"success"`` answer per item. False says
    nothing: ``parse_batch`` decides.
    """
    if status not in _OK_STATUSES and status != 422:
        return False
    answers = _answers_of(body)
    return type(answers) is list and len(answers) == n and _all_succeeded(answers)


def _answers_of(body: Any) -> Any:
    """The per-item answers of shape (a) (``entity.items``), or the body itself."""
    if type(body) is dict:
        entity = body.get("entity")
        return entity.get("items") if type(entity) is dict else None
    return body


def _all_succeeded(answers: list[Any]) -> bool:
    """Every answer a dict whose ``status`` is ``"success"``, checked in C.

    When every item of a batch succeeded, which answer belongs to which item
    does not matter (all are accepted), so the ids the answers echo are not
    compared: that only matters for placing per-item errors.
    """
    try:
        # A non-dict answer raises TypeError (dict.get refuses it).
        statuses = list(map(dict.get, answers, repeat("status")))
    except TypeError:
        return False
    return statuses.count("success") == len(answers)


def _read_in_order(answers: list[Any], items: Sequence[Any], offset: int) -> BatchOutcome | None:
    """The outcome when every answer is a dict settling its item, in order; else ``None``.

    This is what the general path decides when answers and items have the same
    length, every answer says success or failure and, unless every one says
    success (then which answer is whose does not matter), no id an answer carries
    disagrees with its item: nothing else in the body matters (no position is
    left open, nothing is kept raw), whatever the status (2xx or 422). Anything
    else (a non-dict answer, an id mismatch, an answer that says neither) returns
    ``None`` and the general path decides. An all-success answer costs one pass
    in C; only error answers are normalised.
    """
    if _all_succeeded(answers):
        return BatchOutcome(accepted=len(answers))
    # Some item did not simply succeed: settle each answer, checking the ids it carries.
    dicts = set(map(type, items)) == _DICT_ONLY
    accepted = 0
    rejected: list[RejectedItem] = []
    for i, answer in enumerate(answers):
        if type(answer) is not dict:
            return None
        answer_event = answer.get("_event_id")
        answer_user = answer.get("_user_id")
        if answer_event is not None or answer_user is not None:
            if dicts:
                user_id, event_id = items[i].get("_user_id"), items[i].get("_event_id")
            else:
                user_id, event_id = _ids_of(items[i])
            if (answer_event is not None and answer_event != event_id) or (
                answer_user is not None and answer_user != user_id
            ):
                return None
        if answer.get("status") == "success":
            accepted += 1
            continue
        fate = _item_fate(answer)
        if fate is None:
            return None
        if fate is _OK:
            accepted += 1
        else:
            rejected.append(RejectedItem(items[i], offset + i, fate))
    return BatchOutcome(accepted, rejected)


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
    if type(answer) is not dict and not isinstance(answer, Mapping):
        return None
    status = answer.get("status")
    if status is None and isinstance(answer.get("success"), bool):
        status = answer["success"]
    errors = normalize_errors(answer.get("errors") if "errors" in answer else answer.get("error"))
    if status is True or (isinstance(status, str) and status.lower() in _SUCCESS_WORDS):
        return _OK
    if status is False or (isinstance(status, str) and status.lower() in _ERROR_WORDS):
        return errors or _message_errors(answer) or {"_": [_NO_DETAILS]}
    if errors:
        return errors
    return None


# --- shape (b) --------------------------------------------------------------------------


def _read_accepted_shape(
    body: Mapping[Any, Any], n: int, fates: list[_Fate], state: _State
) -> None:
    positional: dict[int, dict[str, list[str]]] = {}
    errors = body.get("errors")
    if isinstance(errors, list):
        for entry in errors:
            position = _position(entry.get("position"), n) if isinstance(entry, Mapping) else None
            found = normalize_errors(entry)
            if position is None:
                state.add_general(found)
                if isinstance(entry, Mapping) and "position" in entry:
                    state.unmapped = True  # a position we cannot place
            elif found:
                positional[position] = _merge(positional.get(position), found)
    else:
        state.add_general(normalize_errors(errors))

    accepted = body.get("accepted")
    if isinstance(accepted, list):
        for entry in accepted:
            raw_position = entry.get("position") if isinstance(entry, Mapping) else entry
            position = _position(raw_position, n)
            if position is None:
                state.unmapped = True
            else:
                fates[position] = _OK
        for i in range(n):
            if fates[i] is None:
                fates[i] = positional.get(i) or state.general or {"_": [_NO_DETAILS]}
        return

    for position, found in positional.items():
        fates[position] = found
    open_count = fates.count(None)
    successes = _count(body.get("entitiesSuccess"))
    if successes is not None:
        state.failed_open = max(open_count - successes, 0)
    elif not positional and (body.get("success") is False or state.general):
        state.says_failure = True
    if state.status == 422 and not state.general:
        message = _message(body)
        if message:
            state.general = {"_": [message]}


# --- settling open positions ----------------------------------------------------------


def _settle(fates: list[_Fate], items: Sequence[Any], offset: int, state: _State) -> BatchOutcome:
    open_positions = [i for i, fate in enumerate(fates) if fate is None]
    keep_raw = state.unmapped
    unknown: list[int] = []
    if open_positions:
        generic = state.general or {"_": [_NO_DETAILS_422 if state.status == 422 else _NO_DETAILS]}
        if state.status == 422:
            fill: _Fate = generic
            keep_raw = keep_raw or state.general is None
        elif state.failed_open is not None:
            if state.failed_open == 0:
                fill = _OK
            elif state.failed_open >= len(open_positions):
                fill = generic
            else:
                fill, keep_raw = None, True
        elif state.says_failure:
            fill = generic if len(open_positions) == 1 else None
            keep_raw = True
        else:
            fill, keep_raw = _OK, keep_raw or state.body not in (None, "", b"")
        if fill is None:
            unknown = [offset + i for i in open_positions]
        else:
            for i in open_positions:
                fates[i] = fill
    accepted = 0
    rejected: list[RejectedItem] = []
    for i, fate in enumerate(fates):
        if fate is _OK:
            accepted += 1
        elif fate is not None:
            rejected.append(RejectedItem(items[i], offset + i, fate))
    return BatchOutcome(accepted, rejected, unknown, state.body if keep_raw else None)


# --- small readers ----------------------------------------------------------------------


def normalize_errors(value: Any) -> dict[str, list[str]] | None:
    """Errors in any shape as ``{field: [messages]}`` (``"_"`` for no field), or ``None``.

    Understands ``{field: [msgs] | msg | {nested: ...}}``, a list of messages or
    of ``{"field"/"property", "message"}`` entries, entries with ``errors`` of
    their own, and a bare message.
    """
    out: dict[str, list[str]] = {}
    _collect(value, "_", out)
    return out or None


def _collect(value: Any, field: str, out: dict[str, list[str]]) -> None:
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


def _collect_mapping(value: Mapping[Any, Any], field: str, out: dict[str, list[str]]) -> None:
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


def _merge(base: dict[str, list[str]] | None, more: dict[str, list[str]]) -> dict[str, list[str]]:
    if not base:
        return {k: list(v) for k, v in more.items()}
    merged = {k: list(v) for k, v in base.items()}
    for key, messages in more.items():
        merged.setdefault(key, []).extend(messages)
    return merged


def _message_errors(answer: Mapping[Any, Any]) -> dict[str, list[str]] | None:
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
