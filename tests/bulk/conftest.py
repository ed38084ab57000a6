"""Fixtures of the bulk engine's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


class CountingSource:
    """``make(0), make(1), ... make(n - 1)``, read lazily; ``read`` counts what was taken."""

    def __init__(self, n: int, make: Callable[[int], Any]) -> None:
        self.n = n
        self.make = make
        self.read = 0

    def __iter__(self) -> Iterator[Any]:
        for i in range(self.n):
            self.read += 1
            yield self.make(i)


@pytest.fixture
def counting_source() -> type[CountingSource]:
    """A source that counts how many items the engine read from it."""
    return CountingSource
