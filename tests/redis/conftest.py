"""Redis URLs for the Redis store's tests: a raw client, a stalled and a closed one.

The real ``redis-server`` (fixtures ``redis_server``, ``redis_url``) lives in
``tests/conftest.py``: the README's fleet example runs against it too.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest


@pytest.fixture
async def redis_raw(redis_url: str) -> AsyncIterator[Any]:
    """A plain redis-py client on the test's server, to read and shift what the store wrote."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def silent_redis_url() -> AsyncIterator[str]:
    """A loopback server that accepts connections and never answers: a stalled Redis."""
    import asyncio

    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read(1 << 16)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


@pytest.fixture
def closed_port_redis_url() -> str:
    """A loopback port nothing listens on: an unreachable Redis."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))  # a port free now: closed once this returns
        return f"redis://127.0.0.1:{sock.getsockname()[1]}/0"


@pytest.fixture(params=["unreachable", "stalled"])
def broken_redis_url(
    request: pytest.FixtureRequest, closed_port_redis_url: str, silent_redis_url: str
) -> str:
    """A Redis URL nothing answers on: no listener, or one that never replies."""
    return closed_port_redis_url if request.param == "unreachable" else silent_redis_url
