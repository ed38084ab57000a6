"""Reading a body: one ``resp.read()`` where ``fits_one_read`` allows it, ``read_body``
otherwise; both give the same bytes, and ``read_body`` stops at the limit."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from instasent_async._http.transport import BodyTooLarge, fits_one_read, read_body


class _Content:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = list(chunks)

    async def readany(self) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""


class _Resp:
    """What read_body uses of an aiohttp ClientResponse."""

    def __init__(self, body: bytes, cuts: list[int], length: bool, encoded: bool) -> None:
        headers: CIMultiDict[str] = CIMultiDict()
        if length:
            headers["Content-Length"] = str(len(body))
        if encoded:
            headers["Content-Encoding"] = "gzip"  # already inflated: what aiohttp hands over
        self.headers = CIMultiDictProxy(headers)
        bounds = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
        self.content = _Content([body[a:b] for a, b in itertools.pairwise(bounds) if b > a])
        self._body = body

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        return None


@settings(deadline=None)
@given(
    body=st.binary(max_size=4096),
    cuts=st.lists(st.integers(min_value=0, max_value=4096), max_size=8),
    length=st.booleans(),
    encoded=st.booleans(),
    limit=st.integers(min_value=1, max_value=5000),
)
def test_both_branches_read_the_same_bytes_and_stop_at_the_same_limit(
    body: bytes, cuts: list[int], length: bool, encoded: bool, limit: int
) -> None:
    resp: Any = _Resp(body, cuts, length, encoded)
    one_read = fits_one_read(resp.headers, limit)
    assert one_read == (length and not encoded and len(body) <= limit)
    if one_read:
        assert asyncio.run(resp.read()) == asyncio.run(read_body(resp, limit)) == body
    elif len(body) <= limit:
        assert asyncio.run(read_body(resp, limit)) == body
    else:
        with pytest.raises(BodyTooLarge) as info:
            asyncio.run(read_body(resp, limit))
        assert info.value.prefix == body[:limit] and info.value.limit == limit
