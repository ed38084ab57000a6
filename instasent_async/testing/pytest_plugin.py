"""pytest plugin: ``fake_instasent`` (a started :class:`FakeInstasent`) and ``instasent_client``.

Registered through the ``pytest11`` entry point, so installing ``instasent-async`` is
enough. Both fixtures are async and run in the test's own event loop, under either
async test plugin:

- pytest-asyncio, strict mode (mark tests ``@pytest.mark.asyncio``) or auto mode;
- anyio's pytest plugin (mark tests ``@pytest.mark.anyio``; the ``anyio_backend``
  must be ``"asyncio"``: the fake server and the client run on asyncio), alone or
  beside pytest-asyncio in strict mode (its auto mode runs every async fixture in a
  loop of its own, so anyio tests are refused there with a message saying so).

Without either plugin (or with anyio's alone and a test that is not marked), using a
fixture fails with a message that names what to install or mark, instead of a
fixture that is silently missing or never awaited.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from typing import Any, NoReturn, TypeVar, cast

import pytest

from .._client import Instasent
from ._server import FakeInstasent

__all__ = ["fake_instasent", "instasent_client"]


async def _fake() -> AsyncGenerator[FakeInstasent, None]:
    async with FakeInstasent() as fake:
        yield fake


async def _client(fake_instasent: FakeInstasent) -> AsyncGenerator[Instasent, None]:
    async with Instasent(
        fake_instasent.product_token, project="proj_demo", base_url=fake_instasent.base_url
    ) as client:
        yield client


# The plain async generators, by fixture name: handed to anyio's plugin as they are.
_PLAIN: dict[str, Callable[..., AsyncGenerator[Any, None]]] = {
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
        if _asyncio_auto_mode(request.config):
            # pytest-asyncio's auto mode runs every async fixture in a loop of its own,
            # not the anyio test's: any async fixture would hang or see another loop.
            return (
                f"{name} in an anyio test under pytest-asyncio's auto mode: use "
                "asyncio_mode = strict, or mark the test @pytest.mark.asyncio instead"
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


def _asyncio_auto_mode(config: pytest.Config) -> bool:
    if not config.pluginmanager.hasplugin("asyncio"):
        return False
    return str(config.getoption("asyncio_mode", None) or config.getini("asyncio_mode")) == "auto"


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
    # The fixture becomes a plain generator that neither async plugin touches: in an
    # anyio test it runs the async generator in anyio's runner (the test's event loop,
    # whatever pytest-asyncio's mode); on a refusal it fails, so pytest reports (and
    # caches) the failure the usual way.
    if refusal is None:
        replacement = _in_anyio_runner(plain, request.getfixturevalue("anyio_backend"))
    else:
        replacement = _failing(refusal)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fixturedef, "func", replacement)
        return (yield)


def _in_anyio_runner(
    plain: Callable[..., AsyncGenerator[Any, None]], backend: Any
) -> Callable[..., Generator[Any, None, None]]:
    from anyio.pytest_plugin import extract_backend_and_options, get_runner

    name, options = extract_backend_and_options(backend)

    def run(**kwargs: Any) -> Generator[Any, None, None]:
        with get_runner(name, options) as runner:
            yield from runner.run_asyncgen_fixture(plain, kwargs)

    return run


def _failing(message: str) -> Callable[..., NoReturn]:
    def refuse(**_: Any) -> NoReturn:
        pytest.fail(message, pytrace=False)

    return refuse
