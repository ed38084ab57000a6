"""Async iterators for scroll cursors and ``_start``/``_limit`` pages.

Both hold one page in memory and send a request only from ``__anext__``: a
consumer that breaks out early leaves no request in flight and no connection held.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Final, Generic, TypeVar

from ._errors import PaginationError

__all__ = ["OffsetPager", "ScrollIterator", "next_cursor"]

T = TypeVar("T")

FetchScroll = Callable[[str | None, int], Awaitable[Any]]
FetchOffset = Callable[[int, int | None], Awaitable[Any]]

log = logging.getLogger("instasent_async.pagination")

# Cursors remembered to catch a server that sends the scroll round in a circle.
_MAX_SEEN_CURSORS: Final = 4096


def next_cursor(payload: Any) -> str | None:
    """The next-page cursor of a scroll response: ``cursor``, ``meta.cursor`` or ``scrollId``."""
    if not isinstance(payload, dict):
        return None
    meta = payload.get("meta")
    for value in (
        payload.get("cursor"),
        meta.get("cursor") if isinstance(meta, dict) else None,
        payload.get("scrollId"),
    ):
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


class ScrollIterator(Generic[T], AsyncIterator[T]):
    """Follows a scroll cursor page by page, one page in memory.

    ``async for item in iterator`` yields every item; ``async for page in
    iterator.pages()`` yields whole pages. ``cursor`` is the cursor of the next
    page to fetch: persist it after finishing a page and pass it back as
    ``cursor=`` to resume later. The scroll ends on a null or missing cursor, an
    empty page, or a cursor equal to the one just sent. A server that sends back
    a cursor already followed before, or a page identical to the previous one,
    would make the scroll endless: ``PaginationError`` (naming the cursor) instead.

    A request is sent only from inside the iteration, so breaking out early
    leaves nothing in flight; a failed page leaves ``cursor`` where it was, so
    iterating again (or resuming from ``cursor``) retries that page.
    """

    __slots__ = (
        "_buffer",
        "_convert",
        "_cursor",
        "_done",
        "_extract",
        "_fetch",
        "_last",
        "_page_size",
        "_seen",
        "pages_fetched",
    )

    def __init__(
        self,
        fetch: FetchScroll,
        extract: Callable[[Any], list[Any]],
        convert: Callable[[Any], T],
        *,
        page_size: int,
        cursor: str | None = None,
    ) -> None:
        self._fetch = fetch
        self._extract = extract
        self._convert = convert
        self._page_size = page_size
        self._cursor = cursor
        self._done = False
        self._buffer: list[Any] = []
        self._last: list[Any] = []
        self._seen: dict[str, None] = {}
        self.pages_fetched = 0

    @property
    def cursor(self) -> str | None:
        """The cursor of the next page to fetch.

        ``None`` before the first page of a fresh scroll and after the last page;
        the ``cursor=`` given when resuming, until its page is fetched.
        """
        return self._cursor

    @property
    def page_size(self) -> int:
        """The ``limit`` sent with every page request."""
        return self._page_size

    @property
    def done(self) -> bool:
        """True once the last page has been fetched."""
        return self._done

    def __aiter__(self) -> ScrollIterator[T]:
        return self

    async def _next_page(self) -> list[Any] | None:
        if self._done:
            return None
        sent = self._cursor
        payload = await self._fetch(sent, self._page_size)
        self.pages_fetched += 1
        items = self._extract(payload)
        cursor = next_cursor(payload)
        if items and items == self._last:
            raise PaginationError(
                f"the scroll page fetched with cursor {sent!r} repeats the previous page",
                cursor=sent,
            )
        if cursor is None or not items or cursor == sent:
            self._done = True
            self._cursor = None
        elif cursor in self._seen:
            raise PaginationError(
                f"the server sent back cursor {cursor!r}, which this scroll already followed",
                cursor=cursor,
            )
        else:
            if sent is not None:
                if len(self._seen) >= _MAX_SEEN_CURSORS:
                    del self._seen[next(iter(self._seen))]
                self._seen[sent] = None
            self._cursor = cursor
        self._last = items
        return items

    async def __anext__(self) -> T:
        while not self._buffer:
            page = await self._next_page()
            if page is None:
                raise StopAsyncIteration
            self._buffer = page[::-1]
        return self._convert(self._buffer.pop())

    async def pages(self) -> AsyncIterator[list[T]]:
        """Yield whole pages; ``cursor`` then resumes after the page just yielded."""
        convert = self._convert
        if self._buffer:
            rest, self._buffer = self._buffer[::-1], []
            yield [convert(item) for item in rest]
        while True:
            page = await self._next_page()
            if page is None:
                return
            if page:
                yield [convert(item) for item in page]


class OffsetPager(Generic[T]):
    """A list call: ``await`` it for the first page, ``async for`` it for every item.

    Pages with ``_start``/``_limit`` and holds one page in memory; iteration ends
    on a page shorter than the page size (or longer: a server that ignores
    ``_limit`` sent everything at once), or on a page identical to the previous
    one (a server that ignores ``_start``). ``pages()`` yields whole pages. With
    ``limit=None`` the list is fetched whole, in one request without paging.
    """

    __slots__ = ("_convert", "_extract", "_fetch", "_limit", "_start")

    def __init__(
        self,
        fetch: FetchOffset,
        extract: Callable[[Any], list[Any]],
        convert: Callable[[Any], T],
        *,
        start: int,
        limit: int | None,
    ) -> None:
        self._fetch = fetch
        self._extract = extract
        self._convert = convert
        self._start = start
        self._limit = limit

    def __await__(self) -> Generator[Any, None, list[T]]:
        return self._first_page().__await__()

    async def _first_page(self) -> list[T]:
        payload = await self._fetch(self._start, self._limit)
        return [self._convert(item) for item in self._extract(payload)]

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page:
                yield item

    async def pages(self) -> AsyncIterator[list[T]]:
        """Yield every page from ``start`` on, one request per page."""
        start, limit, convert = self._start, self._limit, self._convert
        last: list[Any] = []
        while True:
            page = self._extract(await self._fetch(start, limit))
            if page and page == last:
                log.warning("page at _start=%d repeats the previous page: stopping", start)
                return
            if page:
                yield [convert(item) for item in page]
            if limit is None or len(page) != limit:
                return
            last = page
            start += limit
