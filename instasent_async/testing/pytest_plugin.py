"""pytest plugin: ``fake_instasent`` (a started :class:`FakeInstasent`) and ``instasent_client``.

Registered through the ``pytest11`` entry point, so installing ``instasent-async`` is
enough. Both fixtures are async and run in the test's own event loop, under either
async test plugin:

- pytest-asyncio, strict mode (mark tests ``@pytest.mark.asyncio``) or auto mode;
- anyio's pytest plugin (mark tests ``@pytest.mark.anyio``; the ``anyio_backend``
  must be ``"asyncio"``: the fake server and the client run on asyncio).

Without either plugin (or with anyio's alone and a test that is not marked), using a
fixture fails with a message that names what to install or mark, instead of a
fixture that is silently missing or never awaited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator
from typing import Any, NoReturn, TypeVar, cast

import pytest

from .._client import Instasent
from ._server import FakeInstasent

__all__ = ["fake_instasent", "instasent_client"]


async def _fake() -> AsyncIterator[FakeInstasent]:
    async with FakeInstasent() as fake:
        yield fake


async def _client(fake_instasent: FakeInstasent) -> AsyncIterator[Instasent]:
    async with Instasent(
        fake_instasent.product_token, project="proj_demo", base_url=fake_instasent.base_url
    ) as client:
        yield client


# The plain async generators, by fixture name: handed to anyio's plugin as they are.
_PLAIN: dict[str, Callable[..., AsyncIterator[Any]]] = {
    "fake_instasent": _fake,
    "instasent_client": _client,
}

_F = TypeVar("_F", bound=Callable[..., Any])

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - depends on the environment
    _async_fixture = cast(Callable[[_F], _F], pytest.fixture)
else:
    _async_fixture = cast(Callable[[_F], _F], pytest_asyncio.fixture)


@_async_fixture
async def fake_instasent() -> AsyncIterator[FakeInstasent]:
    """A started ``FakeInstasent()`` (seeded with ``proj_demo``, ``ds_demo``), closed after."""
    async for fake in _fake():
        yield fake


@_async_fixture
async def instasent_client(fake_instasent: FakeInstasent) -> AsyncIterator[Instasent]:
    """An ``Instasent`` client on ``fake_instasent``: its product token, project ``proj_demo``."""
    async for client in _client(fake_instasent):
        yield client


_ASYNCIO_HELP = (
    "install pytest-asyncio (pip install pytest-asyncio) and mark the test "
    "@pytest.mark.asyncio (or set asyncio_mode = auto)"
)


def _refusal(name: str, request: pytest.FixtureRequest) -> str | None:
    """Why fixture ``name`` cannot run for this test, or None when a plugin will run it."""
    plugins = request.config.pluginmanager
    if "anyio_backend" in request.fixturenames:
        backend = request.getfixturevalue("anyio_backend")
        backend_name = backend if isinstance(backend, str) else backend[0]
        if backend_name != "asyncio":
            return (
                f"{name} runs on asyncio, not {backend_name!r}: "
                "make the anyio_backend fixture return 'asyncio'"
            )
        return None
    if plugins.hasplugin("asyncio"):
        return None
    if plugins.hasplugin("anyio"):
        return (
            f"{name} is an async fixture: mark the test @pytest.mark.anyio "
            f"(anyio's pytest plugin), or {_ASYNCIO_HELP}"
        )
    return (
        f"{name} is an async fixture and no async test plugin is installed: {_ASYNCIO_HELP}, "
        "or use anyio's pytest plugin (pip install anyio, mark the test @pytest.mark.anyio)"
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Hand this plugin's fixtures to the plugin that runs the test, or fail saying why."""
    plain = _PLAIN.get(fixturedef.argname)
    if plain is None or getattr(fixturedef.func, "__module__", None) != __name__:
        return (yield)  # not ours (or overridden by the user's own fixture)
    refusal = _refusal(fixturedef.argname, request)
    if refusal is None and "anyio_backend" not in request.fixturenames:
        return (yield)  # pytest-asyncio runs it
    with pytest.MonkeyPatch.context() as patch:
        # An anyio test: anyio's plugin runs the plain async generator (pytest-asyncio's
        # strict mode leaves it alone). A refusal: a function that fails, called as the
        # fixture, so pytest reports (and caches) the failure the usual way.
        patch.setattr(fixturedef, "func", plain if refusal is None else _failing(refusal))
        return (yield)


def _failing(message: str) -> Callable[..., NoReturn]:
    def refuse(**_: Any) -> NoReturn:
        pytest.fail(message, pytrace=False)

    return refuse
