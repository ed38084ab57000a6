"""Events of the audience: ``client.events``."""

from __future__ import annotations

from typing import Any

from .._pagination import ScrollIterator
from ..models import AudienceEvent
from ._base import MAX_SCROLL_PAGE, MAX_SEARCH, Resource, op

__all__ = ["EventsResource"]

_SEARCH = op("events.search")
_SCROLL = op("events.scroll")


class EventsResource(Resource):
    """Search and scroll the project's events (instasent-api.md 5.4 filters)."""

    __slots__ = ()

    async def search(
        self, query: Any = None, *, limit: int = MAX_SEARCH, offset: int | None = None
    ) -> list[AudienceEvent]:
        """Events matching an event query filter: at most 50, no paging.

        Raises:
            ValueError: ``limit`` outside 1..50 or a negative ``offset``.
            PermissionDeniedError: the token lacks PROJECT_AUDIENCE_DATA_EVENTS.
        """
        return await self._search(AudienceEvent, _SEARCH, query, limit, offset)

    def scroll(
        self, query: Any = None, *, page_size: int = MAX_SCROLL_PAGE, cursor: str | None = None
    ) -> ScrollIterator[AudienceEvent]:
        """Every event matching the filter, one page (<= 100) in memory at a time.

        Raises:
            ValueError: ``page_size`` outside 1..100 (raised immediately).
        """
        return self._scroll(
            AudienceEvent, _SCROLL, query=query, page_size=page_size, cursor=cursor
        )
