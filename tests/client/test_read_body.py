"""``read_body``: every byte of a body within the limit, however it is chunked; past the
limit ``BodyTooLarge`` with exactly the first ``limit`` bytes."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instasent_async._http.transport import BodyTooLarge, read_body


class _Content:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = list(chunks)

    async def readany(self) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""


class _Resp:
    """What read_body uses of an aiohttp ClientResponse."""

    def __init__(self, body: bytes, cuts: list[int]) -> None:
        bounds = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
        self.content = _Content([body[a:b] for a, b in itertools.pairwise(bounds) if b > a])


@settings(deadline=None)
@given(
    body=st.binary(max_size=4096),
    cuts=st.lists(st.integers(min_value=0, max_value=4096), max_size=8),
    limit=st.integers(min_value=1, max_value=5000),
)
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
