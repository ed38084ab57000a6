"""``read_body``: every byte of a body within the limit, however it is chunked; past the
limit ``BodyTooLarge`` with exactly the first ``limit`` bytes. ``body_at_hand``, its
branch for a body that came with the head, reads exactly what it reads."""

from __future__ import annotations

import asyncio
import gzip
import itertools
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from instasent_async._http.transport import BodyTooLarge, body_at_hand, read_body


class _Content:
    """An aiohttp StreamReader's reading side: chunks, the first ``buffered`` already here."""

    def __init__(self, chunks: list[bytes], buffered: int) -> None:
        self._chunks = list(chunks)
        self._buffered = buffered

    def is_eof(self) -> bool:
        return self._buffered >= len(self._chunks)  # the end was fed: all of it is here

    def read_nowait(self) -> bytes:
        body, self._chunks = b"".join(self._chunks), []
        return body

    async def readany(self) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""


class _Resp:
    """What read_body uses of an aiohttp ClientResponse."""

    def __init__(self, body: bytes, cuts: list[int], buffered: int = 0) -> None:
        bounds = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
        chunks = [body[a:b] for a, b in itertools.pairwise(bounds) if b > a]
        self.content = _Content(chunks, buffered)


def _outcome(read: Any) -> tuple[str, bytes]:
    try:
        return "body", asyncio.run(read())
    except BodyTooLarge as exc:
        return f"too large ({exc.limit})", exc.prefix


bodies = st.binary(max_size=4096)
cuts = st.lists(st.integers(min_value=0, max_value=4096), max_size=8)
limits = st.integers(min_value=1, max_value=5000)


@settings(deadline=None)
@given(body=bodies, cuts=cuts, limit=limits)
def test_read_body_reads_every_chunk_and_stops_at_the_limit(
    body: bytes, cuts: list[int], limit: int
) -> None:
    resp: Any = _Resp(body, cuts)
    if len(body) <= limit:
        assert asyncio.run(read_body(resp, limit)) == body
    else:
        with pytest.raises(BodyTooLarge) as info:
            asyncio.run(read_body(resp, limit))
        assert info.value.prefix == body[:limit] and info.value.limit == limit


@settings(deadline=None)
@given(body=bodies, cuts=cuts, limit=limits, buffered=st.integers(min_value=0, max_value=9))
def test_the_body_at_hand_branch_reads_what_read_body_reads(
    body: bytes, cuts: list[int], limit: int, buffered: int
) -> None:
    async def as_the_transport_reads() -> bytes:
        resp: Any = _Resp(body, cuts, buffered)
        at_hand = body_at_hand(resp, limit)
        return at_hand if at_hand is not None else await read_body(resp, limit)

    async def general() -> bytes:
        resp: Any = _Resp(body, cuts, buffered)
        return await read_body(resp, limit)

    assert _outcome(as_the_transport_reads) == _outcome(general)


@pytest.mark.parametrize("compressed", [False, True])
async def test_a_small_answer_is_at_hand_when_the_request_returns(compressed: bool) -> None:
    body = b'{"entity": {"uid": "proj_demo"}}' * 20

    async def answer(request: web.Request) -> web.Response:
        if compressed:
            return web.Response(body=gzip.compress(body), headers={"Content-Encoding": "gzip"})
        return web.Response(body=body)

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            resp = await session.request("GET", f"http://127.0.0.1:{port}/")
            assert body_at_hand(resp, 1 << 20) == body  # the branch is taken on real aiohttp
            resp = await session.request("GET", f"http://127.0.0.1:{port}/")
            with pytest.raises(BodyTooLarge) as info:
                body_at_hand(resp, 100)
            assert info.value.prefix == body[:100]
            resp.close()
    finally:
        await runner.cleanup()
