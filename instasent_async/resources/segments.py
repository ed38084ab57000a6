"""Segments: ``client.segments``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._pagination import OffsetPager, ScrollIterator
from ..models import Contact, Segment
from ._base import Resource, entity_reader, op
from ._params import ListOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["SegmentsResource"]

_LIST = op("segments.list")
_DYNAMIC = op("segments.dynamic")
_GET = op("segments.get")
_SCROLL = op("audience.segment_scroll")
_read_segment = entity_reader(Segment)


def _parameter(parameter: str | Sequence[str] | None) -> dict[str, str] | None:
    if parameter is None:
        return None
    value = parameter if isinstance(parameter, str) else "|".join(parameter)
    if not value:
        raise ValueError("parameter must not be empty")
    return {"parameter": value}


class SegmentsResource(Resource):
    """Static and dynamic segments, and scrolling a segment's contacts."""

    __slots__ = ()

    def list(self, **options: Unpack[ListOptions]) -> OffsetPager[Segment]:
        """Segments: ``await`` for one page, ``async for`` for all of them.

        Raises:
            ValueError: ``limit`` outside 1..100, negative ``start``, bad filters.
        """
        return self._list(Segment, _LIST, options=options)

    def dynamic(self, **options: Unpack[ListOptions]) -> OffsetPager[Segment]:
        """Dynamic segments that need no parameter.

        Fetched whole, without paging parameters, unless ``start`` or ``limit`` is
        given (then paged as ``list``; ``limit`` defaults to 100).

        Raises:
            ValueError: ``limit`` outside 1..100, negative ``start``, bad filters.
        """
        return self._list(Segment, _DYNAMIC, options=options, paged=False)

    async def get(self, uid: str, *, parameter: str | Sequence[str] | None = None) -> Segment:
        """One segment; ``parameter`` is the dynamic-segment value (``"a|b"`` or a list).

        Raises:
            ValueError: empty ``uid`` or ``parameter``.
            NotFoundError: no such segment.
        """
        return await self._get(_read_segment, _GET, uid, params=_parameter(parameter))

    def scroll(
        self,
        uid: str,
        query: Any = None,
        *,
        parameter: str | Sequence[str] | None = None,
        page_size: int | None = None,
        cursor: str | None = None,
    ) -> ScrollIterator[Contact]:
        """Every contact of the segment (optionally filtered), one page in memory.

        ``parameter`` is the dynamic-segment value (``"a|b"`` or a list);
        ``page_size`` defaults to the query's ``limit``, else 100; ``cursor=``
        resumes from a saved ``.cursor``.

        Raises:
            ValueError: empty ``uid``/``parameter``/cursor or ``page_size`` outside
                1..100 (immediately, before any request).
            NotFoundError: (while iterating) no such segment.
            PermissionDeniedError: (while iterating) the token lacks PROJECT_AUDIENCE_LIST.
        """
        if not isinstance(uid, str) or not uid.strip():
            raise ValueError("segment uid must be a non-empty string")
        return self._scroll(
            Contact,
            _SCROLL,
            uid,
            query=query,
            page_size=page_size,
            cursor=cursor,
            params=_parameter(parameter),
        )
