"""A server that lies about pages cannot make a scroll or a list endless."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from instasent_async import Instasent, PaginationError
from instasent_async._pagination import ScrollIterator

TOKEN = "tok-pages-0123456789"


async def drain(items: AsyncIterator[Any]) -> None:
    async for _ in items:
        pass


def contact(n: int) -> dict[str, Any]:
    return {"id": f"aud-{n}", "_user_id": f"U{n}"}


async def test_a_scroll_whose_cursor_comes_round_again_stops_naming_it(
    scripted: Any, scripted_client: Instasent
) -> None:
    following = {None: "A", "A": "B", "B": "A"}

    async def cycling(request: web.Request) -> web.Response:
        sent = orjson.loads(await request.read()).get("cursor")
        n = len(scripted.requests)
        assert n <= 10, "the scroll does not stop"
        return web.json_response({"entities": [contact(n)], "cursor": following[sent]})

    scripted.handler = cycling
    seen: list[str | None] = []

    async def read_all() -> None:
        async for item in scripted_client.audience.scroll():
            seen.append(item.id)

    with pytest.raises(PaginationError) as info:
        await read_all()
    assert info.value.cursor == "A" and "'A'" in str(info.value)
    assert seen == ["aud-1", "aud-2"]
    assert len(scripted.requests) == 3


async def test_a_scroll_that_repeats_its_page_under_new_cursors_stops(
    scripted: Any, scripted_client: Instasent
) -> None:
    async def same_page(request: web.Request) -> web.Response:
        n = len(scripted.requests)
        assert n <= 10, "the scroll does not stop"
        return web.json_response({"entities": [contact(1), contact(2)], "cursor": f"c{n}"})

    scripted.handler = same_page
    with pytest.raises(PaginationError) as info:
        await drain(scripted_client.audience.scroll(page_size=2))
    assert info.value.cursor == "c1"  # the cursor that fetched the repeated page
    assert len(scripted.requests) == 2


async def test_a_list_that_ignores_start_ends_after_one_page(
    scripted: Any, scripted_client: Instasent
) -> None:
    page = [{"uid": f"seg_{n}", "name": f"S{n}"} for n in range(3)]

    async def ignoring_start(request: web.Request) -> web.Response:
        assert len(scripted.requests) <= 10, "the list does not stop"
        return web.json_response({"entities": page})

    scripted.handler = ignoring_start
    names = [segment.name async for segment in scripted_client.segments.list(limit=3)]
    assert names == ["S0", "S1", "S2"]
    assert len(scripted.requests) == 2


async def test_an_honest_scroll_resumed_from_a_cursor_still_runs_to_the_end() -> None:
    pages = {None: (["a", "b"], "1"), "1": (["c"], "2"), "2": (["d"], None)}

    async def fetch(cursor: str | None, size: int) -> Any:
        items, following = pages[cursor]
        return {"entities": items, "cursor": following}

    scroll = ScrollIterator(fetch, lambda p: p["entities"], str, page_size=2)
    assert [item async for item in scroll] == ["a", "b", "c", "d"]
    resumed = ScrollIterator(fetch, lambda p: p["entities"], str, page_size=2, cursor="1")
    assert [item async for item in resumed] == ["c", "d"]
