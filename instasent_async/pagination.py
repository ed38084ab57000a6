"""The iterators list and scroll calls return (also importable from ``instasent_async``).

``OffsetPager``: ``await`` it for the first page, ``async for`` it for every item.
``ScrollIterator``: follows a scroll cursor; ``.cursor`` is where to resume.
"""

from __future__ import annotations

from ._pagination import OffsetPager, ScrollIterator

__all__ = ["OffsetPager", "ScrollIterator"]
