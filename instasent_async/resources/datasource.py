"""A datasource stream (Ingest API): ``client.datasource("ds_xxx")``."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from .._core.endpoints import Operation, encode_segment
from .._http.transport import RequestStats, Response
from ..bulk import IngestOptions, SendBatch, Source, run_ingest
from ..models import (
    AttributeSpec,
    Contact,
    DatasourceStats,
    EventParameterSpec,
    EventTypeSpec,
    IngestReport,
    StreamInfo,
)
from ._base import Resource, delete_once, entity_reader, op

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .._http.transport import Transport

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
_SPECS = ("specs",)
_read_info = entity_reader(StreamInfo)
_read_stats = entity_reader(DatasourceStats)
_read_contact = entity_reader(Contact)


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
        self._scope = datasource
        self._lead = (datasource,)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} project={self._project!r} datasource={self._ds!r}>"

    @property
    def id(self) -> str:
        """The datasource id (``dsapi`` = the project's first API datasource)."""
        return self._ds

    def _sender(self, operation: Operation, params: str | None) -> SendBatch:
        """The engine's ``send``: one batch request (the path is rendered once, here).

        Raises:
            ConfigurationError: the client has no project (before anything is read).
        """
        path = operation.render(self._p(), self._ds_enc)
        send_once = self._send

        def send(*, body: bytes, idempotent: bool, stats: RequestStats) -> Awaitable[Response]:
            # A plain function: the engine awaits the transport's coroutine itself.
            return send_once(
                operation, path, params=params, body=body, idempotent=idempotent, stats=stats
            )

        return send


class DatasourceSpecs(_DatasourcePart):
    """The datasource's specs (what its contacts and events may carry)."""

    __slots__ = ()

    async def attributes(self) -> list[AttributeSpec]:
        """The attribute specs this datasource accepts."""
        return await self._collection(AttributeSpec, _SPEC_ATTRS, keys=_SPECS)

    async def events(self) -> list[EventTypeSpec]:
        """The event types this datasource accepts."""
        return await self._collection(EventTypeSpec, _SPEC_EVENTS, keys=_SPECS)

    async def event_parameters(self, event_type: str) -> list[EventParameterSpec]:
        """The parameter specs of one event type.

        Raises:
            ValueError: ``event_type`` is empty.
        """
        return await self._collection(EventParameterSpec, _SPEC_PARAMS, event_type, keys=_SPECS)


class DatasourceContacts(_DatasourcePart):
    """Contacts of one datasource: upsert by ``_user_id``, get, delete."""

    __slots__ = ()

    async def upsert(
        self,
        items: Sequence[Any],
        *,
        sync: bool = False,
        dry_run: bool = False,
        **options: Unpack[IngestOptions],
    ) -> IngestReport:
        """Create or update a sequence of contacts: ``ingest`` for a list or tuple.

        The same engine, defaults and report as ``ingest`` (same keyword
        arguments); only the input differs.

        Raises:
            TypeError: ``items`` is not a sequence (use ``ingest`` for iterables).
            Everything ``ingest`` raises.
        """
        _check_sequence(items)
        return await self.ingest(items, sync=sync, dry_run=dry_run, **options)

    async def ingest(
        self,
        source: Source,
        *,
        sync: bool = False,
        dry_run: bool = False,
        **options: Unpack[IngestOptions],
    ) -> IngestReport:
        """Upsert every contact of an iterable or async iterable (keyed by ``_user_id``).

        ``Contact`` models or plain mappings (sent untouched), 100 per request,
        ``concurrency`` requests in flight (default 8), bounded memory. Every
        item read ends in the report: accepted, rejected (the server's per-item
        errors, or an item the wire cannot carry; never retried) or failed
        (transport or 5xx after the retry policy gave up, or an answer that did
        not say, with the reason). Upserts are idempotent, so failed requests
        are retried by the client's retry policy.

        Options (shared by ``upsert``, ``events.add`` and ``events.ingest``):
        ``concurrency=8``; ``on_progress(report)`` after every batch;
        ``dead_letter=PATH`` (every rejected and failed item as an NDJSON line
        ``{"position", "line", "status", "errors", "reason", "item"}``; checked
        before reading, created at its first line); ``keep_items=1000`` (rejected
        and failed items kept on the report, each; counts stay exact; ``None``:
        all); ``locate(position) -> line`` (source line numbers for the report
        and the dead letter); ``unreachable_for=30.0`` seconds /
        ``unreachable_batches=None``: stop when the API stayed unreachable that
        long. ``sync`` / ``dry_run`` set the API's ``_sync`` / ``_dryRun`` flags.

        Order between batches is not kept: ``concurrency`` batches are in flight
        at once, a retried batch lands after later ones, and the server queues
        upserts. If the source holds the same ``_user_id`` more than once with
        different values, merge those items first when the last one must win.

        Raises:
            ConfigurationError: the dead letter cannot be written (before reading);
                the client cannot send (closed, bad token, failing token provider).
            AuthenticationError / PermissionDeniedError / NotFoundError: the token
                cannot write here.
            RateLimitError: the rate limit holds longer than the client may wait
                (``max_wait``), or answers 429 after the retries (``exc.reset_at``).
            APIConnectionError: the API stayed unreachable (see above).
            OSError: the dead letter could not be written mid-run.
            asyncio.CancelledError: in-flight batches were let finish.
            Each of these after reading started carries the partial report as
            ``exc.report`` (``report.consumed``: where to resume).
        """
        return await run_ingest(
            self._sender(_CONTACT_UPSERT, _flags(sync, dry_run)),
            source,
            kind="contacts",
            **options,
        )

    async def get(self, user_id: str) -> Contact:
        """The datasource's contact with this ``_user_id``.

        Raises:
            NotFoundError: no such contact in this datasource.
        """
        return await self._get(_read_contact, _CONTACT_GET, user_id)

    async def delete(self, user_id: str) -> None:
        """Permanently delete the contact from the datasource and the audience.

        As ``client.audience.delete``: a 404 answering the retry of an attempt
        that may have been carried out means the contact is gone, not an error.

        Raises:
            NotFoundError: no such contact in this datasource.
        """
        await delete_once(lambda stats: self._write(_CONTACT_DELETE, user_id, stats=stats))


class DatasourceEvents(_DatasourcePart):
    """Events of one datasource (append-only, deduplicated by ``_event_id``)."""

    __slots__ = ()

    async def add(
        self,
        items: Sequence[Any],
        *,
        require_event_id: bool = True,
        sync: bool = False,
        dry_run: bool = False,
        **options: Unpack[IngestOptions],
    ) -> IngestReport:
        """Add a sequence of events: ``ingest`` for a list or tuple.

        The same engine, defaults and report as ``ingest`` (same keyword
        arguments): an event without an ``_event_id`` is rejected in the report,
        not raised.

        Raises:
            TypeError: ``items`` is not a sequence (use ``ingest`` for iterables).
            Everything ``ingest`` raises.
        """
        _check_sequence(items)
        return await self.ingest(
            items, require_event_id=require_event_id, sync=sync, dry_run=dry_run, **options
        )

    async def ingest(
        self,
        source: Source,
        *,
        require_event_id: bool = True,
        sync: bool = False,
        dry_run: bool = False,
        **options: Unpack[IngestOptions],
    ) -> IngestReport:
        """Add every event of an iterable or async iterable, of any length.

        As ``contacts.ingest`` (same options, report and errors). Every event
        must carry an ``_event_id``: the server deduplicates on it, which is what
        makes a retry after a lost answer safe. Events without one are rejected
        before sending (``errors == {"_event_id": [...]}``) unless
        ``require_event_id=False``; then they are sent, but a batch holding one
        is never retried once it may have reached the server (its items are
        reported failed instead of risking duplicates).
        """
        return await run_ingest(
            self._sender(_EVENTS_ADD, _flags(sync, dry_run)),
            source,
            kind="events",
            require_event_id=require_event_id,
            **options,
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
        return await self._get(_read_info, _INFO)

    async def stats(self) -> DatasourceStats:
        """The datasource's statistics (shape not documented: kept as a dict)."""
        return await self._get(_read_stats, _STATS)
