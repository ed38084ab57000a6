"""Shared fixtures: a tiny scripted aiohttp server on 127.0.0.1, a user-defined mapping
class, a real ``redis-server`` on a free loopback port, and an aioresponses shim.

No fake Redis: the Redis store's tests (and the README's fleet example) talk to the
server Debian's ``redis-server`` package installs (``.ci/run`` installs it when it is
missing). Without it those tests fail, saying so; none is skipped.
"""

from __future__ import annotations

import inspect
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aioresponses.core
import pytest
from aiohttp import ClientResponse, web
from hypothesis import settings


class _CompatResponse(ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's required ``stream_writer`` argument."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(*args, **kwargs)


if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:
    aioresponses.core.ClientResponse = _CompatResponse  # type: ignore[misc]

# Property tests run few examples by default, so the suite stays fast; CI or a hunt for a
# rare case asks for more: INSTASENT_HYPOTHESIS_PROFILE=ci|thorough, or any count with
# INSTASENT_HYPOTHESIS_EXAMPLES=N.
settings.register_profile("fast", max_examples=25, deadline=None)
settings.register_profile("ci", max_examples=300, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
_profile = os.environ.get("INSTASENT_HYPOTHESIS_PROFILE", "fast")
if examples := os.environ.get("INSTASENT_HYPOTHESIS_EXAMPLES"):
    settings.register_profile("env", settings.get_profile(_profile), max_examples=int(examples))
    _profile = "env"
settings.load_profile(_profile)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ScriptedServer:
    """An aiohttp server whose handler a test sets; records every request."""

    def __init__(self) -> None:
        self.handler: Handler = self._default
        self.requests: list[web.Request] = []
        self.bodies: list[bytes] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    @staticmethod
    async def _default(request: web.Request) -> web.StreamResponse:
        return web.json_response({"entity": {"uid": "proj_demo", "id": 1, "name": "Demo"}})

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        self.bodies.append(await request.read())
        return await self.handler(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v1"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


class FrozenMapping(Mapping[str, Any]):
    """A read-only mapping that is neither a dict nor a stdlib type."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@pytest.fixture(scope="session")
def frozen_mapping() -> type[FrozenMapping]:
    """A user-defined ``Mapping`` class, for code that must accept any mapping."""
    return FrozenMapping


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
