"""Value types for the command line's options (``type=`` of ``add_argument``)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

__all__ = ["count", "positive_float", "positive_int"]

N = TypeVar("N", int, float)


def _number(text: str, parse: Callable[[str], N], fits: Callable[[N], bool], what: str) -> N:
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not fits(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
    return value


def count(text: str) -> int:
    """0 or more; ``_`` and ``,`` may group digits (``100_000``, ``12,300``).

    Raises:
        argparse.ArgumentTypeError: not a whole number, or negative.
    """
    return _number(
        text.replace("_", "").replace(",", ""), int, lambda v: v >= 0, "a number, 0 or more"
    )


def positive_int(text: str) -> int:
    """1 or more.

    Raises:
        argparse.ArgumentTypeError: not a whole number, or below 1.
    """
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def positive_float(text: str) -> float:
    """A finite number above 0.

    Raises:
        argparse.ArgumentTypeError: not a number, not above 0, or infinite.
    """
    return _number(text, float, lambda v: v > 0 and not math.isinf(v), "a positive number")
