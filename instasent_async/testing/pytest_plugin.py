"""pytest plugin: the ``fake_instasent`` fixture (a started :class:`FakeInstasent`).

Registered through the ``pytest11`` entry point, so installing ``instasent-async`` is
enough. The fixture is async and needs pytest-asyncio (auto or strict mode); without
pytest-asyncio it is simply not registered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ._server import FakeInstasent

__all__: list[str] = []

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - depends on the environment
    pass
else:
    __all__ = ["fake_instasent"]

    @pytest_asyncio.fixture
    async def fake_instasent() -> AsyncIterator[FakeInstasent]:
        """A started ``FakeInstasent()`` with default arguments, closed afterwards."""
        async with FakeInstasent() as fake:
            yield fake
