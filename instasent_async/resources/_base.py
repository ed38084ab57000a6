"""What every resource shares: the transport, the project id and path rendering."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson

from .._convert import structure, structurer
from .._endpoints import OPERATIONS, Operation, encode_segment, is_plain_segment
from .._errors import ConfigurationError, NotFoundError
from .._pagination import OffsetPager, ScrollIterator
from .._transport import RequestStats, Response, Transport
from ..query import list_params, query_to_dict

__all__ = ["Resource", "delete_once", "entities_of", "entity_of", "entity_reader", "op"]

log = logging.getLogger("instasent_async.resources")

T = TypeVar("T")

MAX_SCROLL_PAGE = 100
MAX_SEARCH = 50
MAX_LIST_PAGE = 100


def check_page_size(value: int, maximum: int, what: str) -> int:
    """Validate a page size against the documented maximum.

    Raises:
        ValueError: ``value`` is not an int between 1 and ``maximum``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ValueError(f"{what} must be an integer from 1 to {maximum}, got {value!r}")
    return value


async def delete_once(send: Callable[[RequestStats], Awaitable[object]]) -> None:
    """Run a delete (``send(stats)``); a 404 after an uncertain retry counts as done.

    When an attempt may have been carried out (no answer after sending, or a
    5xx) and the retry answers 404, the first attempt most likely deleted the
    contact: it is gone either way, and raising ``NotFoundError`` would report
    a failure for a delete that worked. A 404 with no such retry is raised.
    """
    stats = RequestStats()
    try:
        await send(stats)
    except NotFoundError as exc:
        if not stats.uncertain_retries:
            raise
        log.info("%s after an uncertain attempt was retried: taken as deleted", exc)


def op(name: str) -> Operation:
    """The operation called ``name`` from the endpoint table."""
    return OPERATIONS[name]


def entity_of(payload: Any) -> Any:
    """The single resource of an ``{"entity": ...}`` envelope (or the payload itself)."""
    if isinstance(payload, dict) and "entity" in payload:
        return payload["entity"]
    return payload


def entity_reader(cls: type[T]) -> Callable[[Response], T]:
    """A function that reads a response's ``{"entity": ...}`` envelope as a ``cls``.

    What ``structure(entity_of(response.json()), cls)`` does, as one call: the
    hot path of every ``get``.
    """
    hook = structurer(cls)
    loads = orjson.loads

    def read(response: Response) -> T:
        try:
            payload = loads(response.body)
        except orjson.JSONDecodeError:
            payload = response.json()  # an empty body is None; anything else raises
        if type(payload) is dict and "entity" in payload:
            payload = payload["entity"]
        return hook(payload)

    read.__qualname__ = f"read_{cls.__qualname__}"
    return read


def entities_of(payload: Any, *keys: str) -> list[Any]:
    """The items of a collection envelope, whichever key the server used.

    Looks at ``entities`` then the given ``keys``; a lone ``entity`` becomes a
    one-item list; a bare list is returned as is; anything else is empty.
    """
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in ("entities", *keys):
            value = payload.get(key)
            if isinstance(value, list):
                return value
        entity = payload.get("entity")
        if isinstance(entity, list):
            return entity
        if isinstance(entity, dict):
            return [entity]
    return []


class Resource:
    """Base of every resource: holds the transport and the project id."""

    __slots__ = ("_prefixes", "_project", "_project_enc", "_transport")

    def __init__(self, transport: Transport, project: str | None) -> None:
        self._transport = transport
        self._project = project
        self._project_enc = encode_segment(project, "project") if project is not None else None
        # operation name -> its path up to the last segment ("" when not of that form)
        self._prefixes: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} project={self._project!r}>"

    def _p(self) -> str:
        """The encoded project segment.

        Raises:
            ConfigurationError: the client was created without a project.
        """
        if self._project_enc is None:
            raise ConfigurationError(
                "this operation needs a project: pass project='<project uid>' to Instasent() "
                "or use client.with_options(project=...)"
            )
        return self._project_enc

    def _one(self, operation: Operation, segment: object) -> str:
        """``_path(operation, segment)`` for a path that ends with its one segment.

        The rendered prefix (project included) is kept per operation, so a plain
        segment costs a lookup and a concatenation.
        """
        prefix = self._prefixes.get(operation.name)
        if prefix is None:
            template, params = operation.template, operation.params
            if template.endswith("%s") and params[:-1] in ((), ("project",)):
                prefix = template[:-2] % ((self._p(),) if len(params) == 2 else ())
            else:
                prefix = ""
            self._prefixes[operation.name] = prefix
        if not prefix:
            return self._render(operation, (segment,))
        if type(segment) is str and is_plain_segment(segment):
            return prefix + segment
        return prefix + encode_segment(segment, operation.params[-1])

    def _path(self, operation: Operation, *segments: object) -> str:
        """The operation's encoded path: the project first, then ``segments`` in order.

        Raises:
            ValueError: a segment is empty. TypeError: a segment is not a str or int.
            ConfigurationError: the operation needs a project and the client has none.
        """
        if len(segments) == 1:
            return self._one(operation, segments[0])
        return self._render(operation, segments)

    def _render(self, operation: Operation, segments: Sequence[object]) -> str:
        encoded: list[str] = []
        values = iter(segments)
        for name in operation.params:
            if name == "project":
                encoded.append(self._p())
            else:
                encoded.append(encode_segment(next(values), name))
        return operation.render(*encoded)

    async def _call(
        self,
        operation: Operation,
        *segments: object,
        params: Mapping[str, str] | str | None = None,
        json: Any = None,
        scope: str = "org",
        idempotent: bool | None = None,
        stats: RequestStats | None = None,
    ) -> Response:
        """Render the operation's path (project first, then ``segments``) and send it."""
        return await self._transport.request(
            operation,
            self._path(operation, *segments),
            scope=scope,
            params=params,
            json=json,
            idempotent=idempotent,
            stats=stats,
        )

    async def _send(
        self,
        operation: Operation,
        path: str,
        *,
        params: Mapping[str, str] | str | None = None,
        json: Any = None,
        scope: str = "org",
        idempotent: bool | None = None,
    ) -> Response:
        return await self._transport.request(
            operation, path, scope=scope, params=params, json=json, idempotent=idempotent
        )

    def _pager(
        self,
        cls: type[T],
        operation: Operation,
        *segments: object,
        start: int = 0,
        limit: int | None = MAX_LIST_PAGE,
        sort: str | Sequence[str] | None = None,
        q: Mapping[str, Any] | None = None,
        filters: Mapping[str, Any] | None = None,
        extra_params: Mapping[str, str] | None = None,
    ) -> OffsetPager[T]:
        """A list call with the generic query filter (``_start``/``_limit``/``_sort``/...).

        ``limit=None``: one request without paging parameters (the whole list).
        Every argument (ids included) is checked here, before any request.
        """
        if limit is not None:
            check_page_size(limit, MAX_LIST_PAGE, "limit")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"start must be a non-negative integer, got {start!r}")
        if isinstance(q, Mapping) and "paging" in q:
            # A fixed page inside _q would make every request return the same page.
            raise ValueError("q must not carry 'paging': list calls page with start= and limit=")
        path = self._path(operation, *segments)
        base = list_params(sort=sort, q=q, filters=filters)
        if extra_params:
            base.update(extra_params)

        async def fetch(offset: int, size: int | None) -> Any:
            params = base if size is None else {**base, "_start": str(offset), "_limit": str(size)}
            return (await self._send(operation, path, params=params)).json()

        return OffsetPager(
            fetch, entities_of, lambda item: structure(item, cls), start=start, limit=limit
        )

    def _scroll(
        self,
        cls: type[T],
        operation: Operation,
        *segments: object,
        query: Any,
        page_size: int | None,
        cursor: str | None,
        params: Mapping[str, str] | None = None,
    ) -> ScrollIterator[T]:
        """A cursor scroll over ``operation`` with a query-filter body.

        ``page_size`` defaults to the query's own ``limit``, else 100; a ``cursor``
        carried by the query is where the scroll starts unless ``cursor=`` is given.
        Every argument is checked here, before any request.
        """
        body = query_to_dict(query)
        query_cursor = body.pop("cursor", None)
        what = "page_size"
        if page_size is None:
            page_size = body.get("limit", MAX_SCROLL_PAGE)
            what = "page_size (the query's limit)"
        check_page_size(page_size, MAX_SCROLL_PAGE, what)
        if cursor is None:
            cursor = query_cursor
        if cursor is not None and (not isinstance(cursor, str) or not cursor):
            raise ValueError("cursor must be a non-empty string or None")
        path = self._path(operation, *segments)

        async def fetch(next_cursor: str | None, size: int) -> Any:
            page_body = {**body, "limit": size}
            if next_cursor is not None:
                page_body["cursor"] = next_cursor
            return (await self._send(operation, path, json=page_body, params=params)).json()

        return ScrollIterator(
            fetch,
            entities_of,
            lambda item: structure(item, cls),
            page_size=page_size,
            cursor=cursor,
        )

    async def _search(
        self,
        cls: type[T],
        operation: Operation,
        query: Any,
        limit: int | None,
        offset: int | None,
    ) -> list[T]:
        """A capped search (<= 50 results) with a query-filter body.

        ``limit`` and ``offset`` default to the query's own values; the limit
        then defaults to 50.
        """
        body = query_to_dict(query)
        body.pop("cursor", None)
        what = "limit"
        if limit is None:
            limit = body.get("limit", MAX_SEARCH)
            what = "limit (the query's limit)"
        check_page_size(limit, MAX_SEARCH, what)
        body["limit"] = limit
        if offset is None:
            offset = body.pop("offset", None)
        if offset is not None:
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
            body["offset"] = offset
        payload = (await self._call(operation, json=body)).json()
        return [structure(item, cls) for item in entities_of(payload)]
