"""The bulk engine's fast paths agree with the per-item rules they shortcut.

``missing_event_ids`` (a vectorised check for all-dict batches) against the
per-item ``_event_id`` rule, and the engine's lazy positions (``offset`` until
items are set aside) against positions computed independently, on random
inputs mixing good items, models, non-items, events without ids, values JSON
cannot encode and server rejections, across batch boundaries.
"""

from __future__ import annotations

import asyncio
import math
from types import MappingProxyType
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from instasent_async._bulk_items import has_event_id, missing_event_ids
from instasent_async._http.transport import RequestStats, Response
from instasent_async.bulk import (
    MISSING_EVENT_ID,
    NON_FINITE,
    _Engine,
    run_ingest,
)
from instasent_async.models import Event

_id_values = st.sampled_from([None, "", "e", "0", 0, 1, False, True, 0.0, [], {}, "x" * 3])


@st.composite
def wire_item(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["dict"] * 6 + ["no key", "mapping", "other"]))
    if kind == "other":
        return draw(st.none() | st.text(max_size=3) | st.integers())
    data: dict[str, Any] = {"_user_id": "u"}
    if kind != "no key":
        data["_event_id"] = draw(_id_values)
    return MappingProxyType(data) if kind == "mapping" else data


@given(wire=st.lists(wire_item(), max_size=12))
def test_missing_event_ids_agrees_with_the_per_item_rule(wire: list[Any]) -> None:
    expected = [i for i, w in enumerate(wire) if not has_event_id(w)]
    assert missing_event_ids(wire) == expected


def test_missing_event_ids_finds_each_kind_of_missing_id() -> None:
    wire: list[Any] = [
        {"_event_id": "a"},
        {"_event_id": ""},
        {"_event_id": None},
        {},
        {"_event_id": 0},  # present: only None and "" count as missing
        {"_event_id": False},
    ]
    assert missing_event_ids(wire) == [1, 2, 3]
    assert missing_event_ids(wire[:1] + wire[4:]) == []


def _response(body: Any) -> Response:
    return Response(202, CIMultiDictProxy(CIMultiDict()), orjson.dumps(body))


@st.composite
def input_item(draw: st.DrawFn, i: int) -> tuple[Any, str]:
    """An input item and what must happen to it: accepted, rejected or failed."""
    kind = draw(
        st.sampled_from(["dict"] * 5 + ["model"] * 2 + ["bad", "no id", "not json", "other", "nan"])
    )
    base = {"_user_id": f"u{i % 3}", "_event_id": f"e{i}", "_event_type": "t"}
    if kind == "other":
        return draw(st.integers() | st.none() | st.text(max_size=2)), "rejected"
    if kind == "no id":
        del base["_event_id"]
        return base, "rejected"
    if kind == "not json":
        base["v"] = {1, 2}
        return base, "rejected"
    if kind == "nan":
        base["_event_parameters"] = {"x": draw(st.sampled_from([math.nan, math.inf, -math.inf]))}
        return base, "rejected"
    if kind == "bad":
        base["_event_type"] = "bad"
        return base, "rejected"
    if kind == "model":
        return Event(
            user_id=base["_user_id"], event_id=base["_event_id"], event_type="t"
        ), "accepted"
    return base, "accepted"


@st.composite
def ingest_input(draw: st.DrawFn) -> list[tuple[Any, str]]:
    n = draw(st.integers(0, 40))
    return [draw(input_item(i)) for i in range(n)]


@given(
    case=ingest_input(),
    batch_size=st.integers(1, 9),
    concurrency=st.integers(1, 3),
    ids_in_answers=st.booleans(),
)
def test_every_item_lands_at_its_own_position(
    case: list[tuple[Any, str]], batch_size: int, concurrency: int, ids_in_answers: bool
) -> None:
    sent: list[dict[str, Any]] = []

    async def send(body: bytes, idempotent: bool, stats: RequestStats) -> Response:
        stats.requests += 1
        items = orjson.loads(body)
        sent.extend(items)
        await asyncio.sleep(0)
        answers: list[dict[str, Any]] = []
        for item in items:
            if item.get("_event_type") == "bad":
                answer: dict[str, Any] = {"status": "error", "errors": {"_event_type": ["bad"]}}
            else:
                answer = {"status": "success"}
            if ids_in_answers:
                answer["_user_id"] = item["_user_id"]
                answer["_event_id"] = item["_event_id"]
            answers.append(answer)
        return _response({"entity": {"items": answers}})

    items = [item for item, _ in case]
    report = asyncio.run(
        run_ingest(send, items, kind="events", batch_size=batch_size, concurrency=concurrency)
    )
    expected = {
        fate: [i for i, (_, f) in enumerate(case) if f == fate]
        for fate in ("accepted", "rejected", "failed")
    }
    assert report.total == len(items)
    assert report.accepted == len(expected["accepted"])
    assert [r.position for r in report.rejected] == expected["rejected"]
    assert [f.position for f in report.failed] == expected["failed"]
    for rejected in report.rejected:
        item = items[rejected.position]
        if not isinstance(item, dict):
            assert rejected.item is item  # no wire form: the caller's object
            assert "not a mapping or a model" in rejected.errors["_"][0]
        elif "_event_id" not in item:
            assert rejected.item == item
            assert rejected.errors == {"_event_id": [MISSING_EVENT_ID]}
        elif "v" in item:
            assert rejected.item is item  # as the caller gave it (it has no JSON form)
            assert rejected.errors["_"][0].startswith("cannot be sent as JSON")
        elif "_event_parameters" in item:
            assert rejected.item is item
            assert rejected.errors == {"_event_parameters.x": [NON_FINITE]}
        else:
            assert rejected.item == item  # as sent
            assert rejected.errors == {"_event_type": ["bad"]}
    assert sorted(s["_event_id"] for s in sent) == sorted(
        f"e{i}"
        for i, (_, f) in enumerate(case)
        if f == "accepted"
        or (isinstance(case[i][0], dict) and case[i][0].get("_event_type") == "bad")
    )
    assert report.raw == []


@given(case=ingest_input(), offset=st.integers(0, 1000), events=st.booleans())
def test_a_built_batch_keeps_items_wire_and_positions_aligned(
    case: list[tuple[Any, str]], offset: int, events: bool
) -> None:
    async def send(body: bytes, idempotent: bool, stats: RequestStats) -> Response:
        raise AssertionError("nothing is sent here")

    engine = _Engine(
        send,
        kind="events" if events else "contacts",
        concurrency=1,
        batch_size=100,
        on_progress=None,
        dead_letter=None,
        require_event_id=True,
    )
    items = [item for item, _ in case]
    batch = engine.make_batch(list(items), offset)
    set_aside = engine.report.rejected_count
    if batch is None:
        assert set_aside == len(items)
        return
    sent = orjson.loads(batch.body)
    assert len(batch) == len(sent) == len(items) - set_aside
    assert batch.wire == sent  # once built, the wire items are what the body says
    assert (batch.start, batch.end) == (offset, offset + len(items))
    for i in range(len(batch)):
        item = items[batch.position(i) - offset]
        if type(item) is dict:
            assert sent[i] == item  # sent as it is
        else:
            assert sent[i]["_event_id"] == item.event_id
    positions = {batch.position(i) for i in range(len(batch))}
    assert positions.isdisjoint(r.position for r in engine.report.rejected)
    assert len(positions) + set_aside == len(items)
