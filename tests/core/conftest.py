"""Fixtures of the core tests: an event loop on a virtual clock.

``run_virtual(coro)`` runs a coroutine on a ``VirtualClockLoop``: whenever the loop
has nothing ready it jumps its clock to the next timer instead of sleeping, so an
hour of ``asyncio.sleep`` and governor timers passes in microseconds and every run
is deterministic. A loop that would wait forever (nothing scheduled, nothing
ready: a jam) raises ``VirtualDeadlock`` instead of hanging.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


class VirtualDeadlock(RuntimeError):
    """The loop would wait forever: nothing is ready and no timer is scheduled."""


class _Selector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.clock: list[float] = [0.0]

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise VirtualDeadlock("the loop would wait forever: nothing is ready or scheduled")
        self.clock[0] += timeout
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` only moves when the loop would sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        selector = _Selector()
        selector.clock[0] = start
        self._virtual = selector.clock
        super().__init__(selector)

    def time(self) -> float:
        return self._virtual[0]


RunVirtual = Callable[[Coroutine[Any, Any, T]], T]


@pytest.fixture
def run_virtual() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine to completion on a fresh ``VirtualClockLoop`` and close it."""

    def run(coro: Coroutine[Any, Any, T]) -> T:
        loop = VirtualClockLoop()
        try:
            return loop.run_until_complete(coro)
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    return run


@pytest.fixture
def virtual_loop_factory() -> Callable[[], VirtualClockLoop]:
    """Make ``VirtualClockLoop`` instances (closed by the test)."""
    return VirtualClockLoop


@pytest.fixture
def deadlock_error() -> type[VirtualDeadlock]:
    """The exception a virtual loop raises instead of waiting forever."""
    return VirtualDeadlock
