"""A datasource stream (Ingest API): ``client.datasource("ds_xxx")``."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .._convert import structure
from .._endpoints import Operation, encode_segment
from .._transport import RequestStats, Response
from ..bulk import MISSING_EVENT_ID, ProgressCallback, SendBatch, Source, run_ingest
from ..models import (
    AttributeSpec,
    Contact,
    DatasourceStats,
    EventParameterSpec,
    EventTypeSpec,
    IngestReport,
    StreamInfo,
)
from ._base import Resource, delete_once, entities_of, entity_of, op

if TYPE_CHECKING:
    from .._transport import Transport

__all__ = ["Datasource", "DatasourceContacts", "DatasourceEvents", "DatasourceSpecs"]

_INFO = op("datasource.info")
_STATS = op("datasource.stats")
_SPEC_ATTRS = op("datasource.specs.attributes")
_SPEC_EVENTS = op("datasource.specs.events")
_SPEC_PARAMS = op("datasource.specs.event_parameters")
_CONTACT_GET = op("datasource.contacts.get")
_CONTACT_UPSERT = op("datasource.contacts.upsert")
_CONTACT_DELETE = op("datasource.contacts.delete")
_EVENTS_ADD = op("datasource.events.add")


def _flags(sync: bool, dry_run: bool) -> str | None:
    # Bare flags (``?_sync&_dryRun``), as Instasent's own clients send them.
    return "&".join(name for name, on in (("_sync", sync), ("_dryRun", dry_run)) if on) or None


class _DatasourcePart(Resource):
    """A resource scoped to one datasource (its rate-limit buckets are its own)."""

    __slots__ = ("_ds", "_ds_enc")

    def __init__(self, transport: Transport, project: str | None, datasource: str) -> None:
        super().__init__(transport, project)
        self._ds = datasource
        self._ds_enc = encode_segment(datasource, "datasource")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} project={self._project!r} datasource={self._ds!r}>"

    @property
    def id(self) -> str:
        """The datasource id (``dsapi`` = the project's first API datasource)."""
        return self._ds

    async def _ds_call(
        self,
        operation: Operation,
        *segments: object,
        params: str | None = None,
        body: bytes | None = None,
        idempotent: bool | None = None,
        stats: RequestStats | None = None,
    ) -> Response:
        return await self._transport.request(
            operation,
            self._path(operation, self._ds, *segments),
            scope=self._ds,
            params=params,
            body=body,
            idempotent=idempotent,
            stats=stats,
        )

    def _sender(self, operation: Operation, params: str | None) -> SendBatch:
        """The engine's ``send``: one batch request (the path is rendered once, here).

        Raises:
            ConfigurationError: the client has no project (before anything is read).
        """
        path = operation.render(self._p(), self._ds_enc)
        request = self._transport.request
        scope = self._ds

        def send(*, body: bytes, idempotent: bool, stats: RequestStats) -> Awaitable[Response]:
            # A plain function: the engine awaits the transport's coroutine itself.
            return request(
                operation,
                path,
                scope=scope,
                params=params,
                body=body,
                idempotent=idempotent,
                stats=stats,
            )

        return send


class DatasourceSpecs(_DatasourcePart):
    """The datasource's specs (what its contacts and events may carry)."""

    __slots__ = ()

    async def attributes(self) -> list[AttributeSpec]:
        """The attribute specs this datasource accepts."""
        payload = (await self._ds_call(_SPEC_ATTRS)).json()
        return [structure(i, AttributeSpec) for i in entities_of(payload, "specs")]

    async def events(self) -> list[EventTypeSpec]:
        """The event types this datasource accepts."""
        payload = (await self._ds_call(_SPEC_EVENTS)).json()
        return [structure(i, EventTypeSpec) for i in entities_of(payload, "specs")]

    async def event_parameters(self, event_type: str) -> list[EventParameterSpec]:
        """The parameter specs of one event type.

        Raises:
            ValueError: ``event_type`` is empty.
        """
        payload = (await self._ds_call(_SPEC_PARAMS, event_type)).json()
        return [structure(i, EventParameterSpec) for i in entities_of(payload, "specs")]


class DatasourceContacts(_DatasourcePart):
    """Contacts of one datasource: upsert by ``_user_id``, get, delete."""

    __slots__ = ()

    async def upsert(
        self,
        items: Sequence[Any],
        *,
        sync: bool = False,
        dry_run: bool = False,
        concurrency: int = 4,
    ) -> IngestReport:
        """Create or update contacts (keyed by ``_user_id``), 100 per request.

        ``items`` are ``Contact`` models or plain mappings (sent untouched). Every
        item ends in the report as accepted, rejected (with the server's per-item
        errors) or failed (with the reason). Upserts are idempotent, so failed
        requests are retried by the client's retry policy.

        Raises:
            TypeError: an item is neither a model nor a mapping.
            AuthenticationError / PermissionDeniedError / NotFoundError: the token
                cannot write to this datasource (nothing more is sent).
        """
        _check_sequence(items)
        return await run_ingest(
            self._sender(_CONTACT_UPSERT, _flags(sync, dry_run)),
            items,
            kind="contacts",
            concurrency=concurrency,
        )

    async def ingest(
        self,
        source: Source,
        *,
        concurrency: int = 8,
        on_progress: ProgressCallback | None = None,
        dead_letter: str | os.PathLike[str] | None = None,
        sync: bool = False,
    ) -> IngestReport:
        """Upsert every contact of an iterable or async iterable, of any length.

        Batches of 100, ``concurrency`` requests in flight, bounded memory. Every
        item read ends in the report: accepted, rejected (with the server's
        errors; never retried) or failed (transport or 5xx after the retry policy
        gave up, with the reason). ``dead_letter`` writes rejected and failed items
        as NDJSON; ``on_progress`` receives the live report after every batch.

        Order between batches is not kept: ``concurrency`` batches are in flight
        at once, a retried batch lands after later ones, and the server queues
        upserts. If the source holds the same ``_user_id`` more than once with
        different values, merge those items first when the last one must win.

        Raises:
            AuthenticationError / PermissionDeniedError / NotFoundError: the token
                cannot write here; reading stops; the partial report is ``exc.report``.
            asyncio.CancelledError: in-flight batches were let finish; ``exc.report``.
        """
        return await run_ingest(
            self._sender(_CONTACT_UPSERT, _flags(sync, False)),
            source,
            kind="contacts",
            concurrency=concurrency,
            on_progress=on_progress,
            dead_letter=dead_letter,
        )

    async def get(self, user_id: str) -> Contact:
        """The datasource's contact with this ``_user_id``.

        Raises:
            NotFoundError: no such contact in this datasource.
        """
        payload = (await self._ds_call(_CONTACT_GET, user_id)).json()
        result: Contact = structure(entity_of(payload), Contact)
        return result

    async def delete(self, user_id: str) -> None:
        """Permanently delete the contact from the datasource and the audience.

        As ``client.audience.delete``: a 404 answering the retry of an attempt
        that may have been carried out means the contact is gone, not an error.

        Raises:
            NotFoundError: no such contact in this datasource.
        """
        await delete_once(lambda stats: self._ds_call(_CONTACT_DELETE, user_id, stats=stats))


class DatasourceEvents(_DatasourcePart):
    """Events of one datasource (append-only, deduplicated by ``_event_id``)."""

    __slots__ = ()

    async def add(
        self,
        items: Sequence[Any],
        *,
        sync: bool = False,
        dry_run: bool = False,
        require_event_id: bool = True,
        concurrency: int = 4,
    ) -> IngestReport:
        """Add events, 100 per request.

        Every event must carry an ``_event_id``: the server deduplicates on it, which
        is what makes a retry after a lost response safe. With
        ``require_event_id=False`` events without one are sent, but a request that
        may have reached the server is then never retried (its items are reported
        as failed instead of risking duplicates).

        Raises:
            ValueError: an event has no ``_event_id`` (names its position).
            TypeError: an item is neither a model nor a mapping.
        """
        _check_sequence(items)
        if require_event_id:
            # Checked on the items themselves: the engine converts them once, later.
            for position, item in enumerate(items):
                if isinstance(item, Mapping):
                    event_id = item.get("_event_id")
                elif attrs.has(type(item)):
                    event_id = getattr(item, "event_id", None)
                else:
                    raise TypeError(
                        f"item at position {position} is a {type(item).__qualname__}: expected "
                        "a mapping or a model such as Event"
                    )
                if not event_id:
                    raise ValueError(f"event at position {position}: {MISSING_EVENT_ID}")
        return await run_ingest(
            self._sender(_EVENTS_ADD, _flags(sync, dry_run)),
            items,
            kind="events",
            concurrency=concurrency,
            require_event_id=require_event_id,
        )

    async def ingest(
        self,
        source: Source,
        *,
        concurrency: int = 8,
        on_progress: ProgressCallback | None = None,
        dead_letter: str | os.PathLike[str] | None = None,
        require_event_id: bool = True,
    ) -> IngestReport:
        """Add every event of an iterable or async iterable, of any length.

        As ``contacts.ingest``. Events without an ``_event_id`` are rejected
        before sending (a retry could duplicate them) unless
        ``require_event_id=False``, in which case batches holding such events are
        never retried once they may have reached the server.
        """
        return await run_ingest(
            self._sender(_EVENTS_ADD, None),
            source,
            kind="events",
            concurrency=concurrency,
            on_progress=on_progress,
            dead_letter=dead_letter,
            require_event_id=require_event_id,
        )


def _check_sequence(items: Any) -> None:
    if isinstance(items, (str, bytes, dict)) or not isinstance(items, Sequence):
        raise TypeError(
            f"items must be a sequence (list or tuple) of items, got {type(items).__name__}; "
            "use ingest() for iterables and async iterables"
        )


class Datasource(_DatasourcePart):
    """One datasource: ``info()``, ``stats()``, ``specs``, ``contacts``, ``events``."""

    __slots__ = ("contacts", "events", "specs")

    def __init__(self, transport: Transport, project: str | None, datasource: str) -> None:
        super().__init__(transport, project, datasource)
        self.specs = DatasourceSpecs(transport, project, datasource)
        self.contacts = DatasourceContacts(transport, project, datasource)
        self.events = DatasourceEvents(transport, project, datasource)

    async def info(self) -> StreamInfo:
        """Organization, project, datasource and stream details (a credential check).

        Raises:
            AuthenticationError: bad token. NotFoundError: unknown datasource, or a
            datasource token used for another datasource.
        """
        payload = (await self._ds_call(_INFO)).json()
        result: StreamInfo = structure(entity_of(payload), StreamInfo)
        return result

    async def stats(self) -> DatasourceStats:
        """The datasource's statistics (shape not documented: kept as a dict)."""
        payload = (await self._ds_call(_STATS)).json()
        result: DatasourceStats = structure(entity_of(payload), DatasourceStats)
        return result
