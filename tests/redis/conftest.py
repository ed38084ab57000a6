"""A real ``redis-server`` on a free loopback port, for the Redis store's tests.

No fake Redis: every test here talks to the server Debian's ``redis-server``
package installs (``.ci/run`` installs it when it is missing). Without it the tests
fail, saying so; none is skipped.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

_START_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process: no persistence, a private directory, loopback only.

    ``kill()`` ends it abruptly (SIGKILL, as a crash would); ``start()`` starts it
    again on the same port with empty state, as a restarted server comes back.
    """

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and return once it answers PING (at most 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("redis-server is already running")
        self.proc = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with status {self.proc.returncode}")
            if self.ping():
                return
            time.sleep(0.01)
        self.kill()
        raise RuntimeError(f"redis-server did not answer within {_START_TIMEOUT:g} s")

    def ping(self) -> bool:
        """Whether the server answers PING right now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """End the server at once (SIGKILL) and wait for it to be gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """End the server gracefully, killing it if it takes more than 5 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running ``redis-server`` of this test's own, stopped afterwards."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail(
            "redis-server is not installed: the Redis store's tests need a real server "
            "(Debian/Ubuntu: apt-get install redis-server; .ci/run installs it)"
        )
    server = RedisServer(executable, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of this test's ``redis-server``."""
    return redis_server.url


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
    return f"redis://127.0.0.1:{_free_port()}/0"


@pytest.fixture(params=["unreachable", "stalled"])
def broken_redis_url(
    request: pytest.FixtureRequest, closed_port_redis_url: str, silent_redis_url: str
) -> str:
    """A Redis URL nothing answers on: no listener, or one that never replies."""
    return closed_port_redis_url if request.param == "unreachable" else silent_redis_url
