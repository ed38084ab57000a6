"""Events of the audience: ``client.events``."""

from __future__ import annotations

from typing import Any

from .._pagination import ScrollIterator
from ..models import AudienceEvent
from ._base import Resource, op

__all__ = ["EventsResource"]

_SEARCH = op("events.search")
_SCROLL = op("events.scroll")


class EventsResource(Resource):
    """Search and scroll the project's events (event query filters)."""

    __slots__ = ()

    async def search(
        self, query: Any = None, *, limit: int | None = None, offset: int | None = None
    ) -> list[AudienceEvent]:
        """Events matching an event query filter: at most 50, no paging.

        ``query`` is the wire dict (the event query filter), an ``EventQuery`` or a
        condition; ``limit``/``offset`` default to the query's own, the limit then to 50.

        Raises:
            ValueError: ``limit`` outside 1..50 or a negative ``offset`` (before sending).
            BadRequestError: the server rejected the filter.
            PermissionDeniedError: the token lacks PROJECT_AUDIENCE_DATA_EVENTS.
        """
        return await self._search(AudienceEvent, _SEARCH, query, limit, offset)

    def scroll(
        self,
        query: Any = None,
        page_size: int | None = None,
        cursor: str | None = None,
    ) -> ScrollIterator[AudienceEvent]:
        """Every event matching the filter, one page (<= 100) in memory at a time.

        ``page_size`` defaults to the query's ``limit``, else 100; ``cursor=``
        resumes from a saved ``.cursor``.

        Raises:
            ValueError: ``page_size`` outside 1..100 or an empty cursor (raised
                immediately, before any request).
            PermissionDeniedError: (while iterating) the token lacks
                PROJECT_AUDIENCE_DATA_EVENTS.
        """
        return self._scroll(AudienceEvent, _SCROLL, query=query, page_size=page_size, cursor=cursor)
