"""What every resource shares: one request path and a handful of verbs.

Every resource method is a call of one verb:

- ``_get(read, op, *segments)``: one entity (or any answer ``read`` understands);
- ``_collection(cls, op, *segments)``: a list answered at once (specs, lookups);
- ``_search(cls, op, query, ...)``: a capped search with a query-filter body;
- ``_list(cls, op, *segments, options)``: an ``OffsetPager`` over ``_start``/``_limit``;
- ``_scroll(cls, op, *segments, ...)``: a ``ScrollIterator`` over cursors;
- ``_write(op, *segments, json=...)``: a write whose answer is not read.

Each verb renders the path (project first, then the segments) and sends it with
``_send``, the one call of the transport. Answers are read by one reader per
shape (``entity_reader``, ``items_of``), which raise ``APIResponseValidationError``
for a body that does not have the shape, never a bare ``TypeError`` or ``[]``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson

from .._convert import structurer
from .._core.endpoints import OPERATIONS, Operation, encode_segment, is_plain_segment
from .._errors import ConfigurationError, NotFoundError
from .._http.transport import RequestStats, Response, Transport
from .._pagination import OffsetPager, ScrollIterator, next_cursor
from ..query import query_to_dict
from ._params import LIST_OPTIONS, ListOptions, list_params

__all__ = ["Resource", "delete_once", "entity_reader", "items_of", "op", "read_json"]

log = logging.getLogger("instasent_async.resources")

T = TypeVar("T")

MAX_SCROLL_PAGE = 100
MAX_SEARCH = 50
MAX_LIST_PAGE = 100

# What a structure hook raises for data of the wrong type.
_STRUCTURE_ERRORS = (TypeError, ValueError, KeyError, AttributeError)


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


def read_json(response: Response) -> Any:
    """The answer's JSON (``None`` for an empty body).

    Raises:
        APIResponseValidationError: the body is not JSON.
    """
    try:
        return orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return response.json()  # an empty body is None; anything else raises


def structure_or_raise(hook: Callable[[Any], T], item: Any, cls: type[T], response: Response) -> T:
    """``hook(item)``, a ``dict`` only; anything else is the server's fault.

    Raises:
        APIResponseValidationError: ``item`` is not an object or does not fit ``cls``.
    """
    if type(item) is not dict:
        raise response.invalid(f"expected a {cls.__name__} object, got {_kind(item)}")
    try:
        return hook(item)
    except _STRUCTURE_ERRORS as exc:
        raise response.invalid(f"the answer does not fit {cls.__name__}: {exc}") from None


def entity_reader(cls: type[T]) -> Callable[[Response], T]:
    """A reader of a response's ``{"entity": {...}}`` envelope (or a bare object) as a ``cls``.

    The reader raises ``APIResponseValidationError`` for an empty or non-JSON
    body, a null entity or anything that is not an object.
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
        if type(payload) is dict:
            try:
                return hook(payload)
            except _STRUCTURE_ERRORS:
                pass  # structure_or_raise says why
        return structure_or_raise(hook, payload, cls, response)

    read.__qualname__ = f"read_{cls.__qualname__}"
    return read


def items_of(response: Response, payload: Any, keys: Sequence[str] = ()) -> list[Any]:
    """The items of a collection answer, whichever envelope the server used.

    Accepted: a bare list; an object whose ``entities`` (or one of ``keys``) is a
    list; an object whose ``entity`` is a list or one object (a one-item list).

    Raises:
        APIResponseValidationError: any other shape (``null``, a number, an
            object without a list, an empty body...).
    """
    if type(payload) is list:
        return payload
    if type(payload) is dict:
        for key in ("entities", *keys):
            value = payload.get(key)
            if type(value) is list:
                return value
        entity = payload.get("entity")
        if type(entity) is list:
            return entity
        if type(entity) is dict:
            return [entity]
    raise response.invalid(f"expected a list of items, got {_kind(payload)}")


def _same(value: Any) -> Any:
    return value


def _entities(page: dict[str, Any]) -> list[Any]:
    entities: list[Any] = page["entities"]
    return entities


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null or an empty body)"
    if isinstance(value, dict):
        return f"an object with keys {sorted(value)[:8]}"
    return f"a {type(value).__name__}"


class Resource:
    """Base of every resource: the transport, the project id and the verbs.

    ``_scope`` is the rate-limit scope of its requests (``"org"``, or a datasource id).
    """

    __slots__ = ("_lead", "_prefixes", "_project", "_project_enc", "_scope", "_transport")

    def __init__(self, transport: Transport, project: str | None) -> None:
        self._transport = transport
        self._project = project
        self._project_enc = encode_segment(project, "project") if project is not None else None
        self._scope = "org"
        # Segments every path of this resource starts with (after the project).
        self._lead: tuple[object, ...] = ()
        # operation name -> its path up to the last segment ("" when not of that form)
        self._prefixes: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} project={self._project!r}>"

    # -- paths -----------------------------------------------------------------

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

    def _path(self, operation: Operation, *segments: object) -> str:
        """The operation's encoded path: the project, the lead segments, then ``segments``.

        Raises:
            ValueError: a segment is empty. TypeError: a segment is not a str or int.
            ConfigurationError: the operation needs a project and the client has none.
        """
        if len(segments) == 1 and not self._lead:
            segment = segments[0]
            prefix = self._prefixes.get(operation.name)
            if prefix and type(segment) is str and is_plain_segment(segment):
                return prefix + segment  # the usual case: nothing to encode
            return self._one(operation, segment)
        return self._render(operation, (*self._lead, *segments))

    def _one(self, operation: Operation, segment: object) -> str:
        """The path of an operation that ends with its one segment (prefix cached)."""
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

    def _render(self, operation: Operation, segments: Sequence[object]) -> str:
        encoded: list[str] = []
        values = iter(segments)
        for name in operation.params:
            if name == "project":
                encoded.append(self._p())
            else:
                encoded.append(encode_segment(next(values), name))
        return operation.render(*encoded)

    # -- the one request path --------------------------------------------------

    def _send(
        self,
        operation: Operation,
        path: str,
        *,
        params: Mapping[str, str] | str | None = None,
        json: Any = None,
        body: bytes | None = None,
        idempotent: bool | None = None,
        stats: RequestStats | None = None,
    ) -> Awaitable[Response]:
        """Send ``operation`` on an encoded ``path``: the one call of the transport."""
        return self._transport.request(
            operation,
            path,
            scope=self._scope,
            params=params,
            json=json,
            body=body,
            idempotent=idempotent,
            stats=stats,
        )

    # -- verbs -----------------------------------------------------------------

    def _get(
        self,
        read: Callable[[Response], T],
        operation: Operation,
        *segments: object,
        params: Mapping[str, str] | None = None,
    ) -> Awaitable[T]:
        """One answer, read by ``read`` (an ``entity_reader`` or a reader of its own).

        The transport applies ``read``: no coroutine of its own between the caller
        and the transport.
        """
        return self._transport.request(
            operation,
            self._path(operation, *segments),
            scope=self._scope,
            params=params,
            read=read,
        )

    async def _collection(
        self,
        cls: type[T],
        operation: Operation,
        *segments: object,
        json: Any = None,
        keys: Sequence[str] = (),
        missing_is_empty: bool = False,
    ) -> list[T]:
        """Every item of a collection answered at once (``missing_is_empty``: 404 -> [])."""
        path = self._path(operation, *segments)
        try:
            response = await self._send(operation, path, json=json)
        except NotFoundError:
            if missing_is_empty:
                return []
            raise
        hook = structurer(cls)
        items = items_of(response, read_json(response), keys)
        return [structure_or_raise(hook, item, cls, response) for item in items]

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
        return await self._collection(cls, operation, json=body)

    def _list(
        self,
        cls: type[T],
        operation: Operation,
        *segments: object,
        options: ListOptions,
        extra_params: Mapping[str, str] | None = None,
        paged: bool = True,
    ) -> OffsetPager[T]:
        """A list call with the generic query filter (``_start``/``_limit``/``_sort``/...).

        ``paged=False``: no ``_start``/``_limit`` unless the caller gives ``start`` or
        ``limit`` (one request for the whole list). Every argument (ids included) is
        checked here, before any request.

        Raises:
            TypeError: an option that list calls do not take.
            ValueError: a bad value (``limit`` outside 1..100, negative ``start``...).
        """
        unknown = set(options) - LIST_OPTIONS
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        start = options.get("start", 0)
        limit: int | None = None
        if paged or "start" in options or "limit" in options:
            limit = check_page_size(options.get("limit", MAX_LIST_PAGE), MAX_LIST_PAGE, "limit")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"start must be a non-negative integer, got {start!r}")
        q = options.get("q")
        if isinstance(q, Mapping) and "paging" in q:
            # A fixed page inside _q would make every request return the same page.
            raise ValueError("q must not carry 'paging': list calls page with start= and limit=")
        path = self._path(operation, *segments)
        base = list_params(sort=options.get("sort"), q=q, filters=options.get("filters"))
        if extra_params:
            base.update(extra_params)
        hook = structurer(cls)

        async def fetch(offset: int, size: int | None) -> list[T]:
            params = base if size is None else {**base, "_start": str(offset), "_limit": str(size)}
            response = await self._send(operation, path, params=params)
            items = items_of(response, read_json(response))
            return [structure_or_raise(hook, item, cls, response) for item in items]

        return OffsetPager(fetch, _same, _same, start=start, limit=limit)

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
        hook = structurer(cls)

        async def fetch(after: str | None, size: int) -> dict[str, Any]:
            page_body = {**body, "limit": size}
            if after is not None:
                page_body["cursor"] = after
            response = await self._send(operation, path, json=page_body, params=params)
            payload = read_json(response)
            items = items_of(response, payload)
            return {
                "entities": [structure_or_raise(hook, item, cls, response) for item in items],
                "cursor": next_cursor(payload),
            }

        return ScrollIterator(fetch, _entities, _same, page_size=page_size, cursor=cursor)

    async def _write(
        self,
        operation: Operation,
        *segments: object,
        json: Any = None,
        params: Mapping[str, str] | str | None = None,
        stats: RequestStats | None = None,
    ) -> Response:
        """Send a write; the answer is returned unread (a success status already)."""
        path = self._path(operation, *segments)
        return await self._send(operation, path, json=json, params=params, stats=stats)
