"""Shared fixtures: a tiny scripted aiohttp server on 127.0.0.1, a user-defined mapping
class, and an aioresponses shim."""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
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
