"""A datasource stream (Ingest API): ``client.datasource("ds_xxx")``."""

from __future__ import annotations

import time

import orjson
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._batch import parse_batch
from .._convert import structure, to_wire_items
from .._endpoints import Operation, encode_segment
from .._errors import APIConnectionError, APIStatusError, BadRequestError, UnprocessableEntityError
from ..models import (
    AttributeSpec,
    Contact,
    DatasourceStats,
    EventParameterSpec,
    EventTypeSpec,
    FailedItem,
    IngestReport,
    RejectedItem,
    StreamInfo,
)
from ._base import Resource, entities_of, entity_of, op

if TYPE_CHECKING:
    from .._transport import Transport

__all__ = ["Datasource", "DatasourceContacts", "DatasourceEvents", "DatasourceSpecs"]

BATCH_SIZE = 100
"""Items per ingest request (the API's maximum)."""

_INFO = op("datasource.info")
_STATS = op("datasource.stats")
_SPEC_ATTRS = op("datasource.specs.attributes")
_SPEC_EVENTS = op("datasource.specs.events")
_SPEC_PARAMS = op("datasource.specs.event_parameters")
_CONTACT_GET = op("datasource.contacts.get")
_CONTACT_UPSERT = op("datasource.contacts.upsert")
_CONTACT_DELETE = op("datasource.contacts.delete")
_EVENTS_ADD = op("datasource.events.add")


def _flags(sync: bool, dry_run: bool) -> dict[str, str] | None:
    if not (sync or dry_run):
        return None
    flags: dict[str, str] = {}
    if sync:
        flags["_sync"] = "true"
    if dry_run:
        flags["_dryRun"] = "true"
    return flags


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
        params: dict[str, str] | None = None,
        body: bytes | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        encoded = [self._p(), self._ds_enc, *(encode_segment(s, n) for s, n in
                                             zip(segments, operation.params[2:]))]
        return await self._transport.request(
            operation,
            operation.render(*encoded),
            scope=self._ds,
            params=params,
            body=body,
            idempotent=idempotent,
        )

    async def _send_batches(
        self,
        operation: Operation,
        items: Sequence[Any],
        wire: Sequence[Any],
        *,
        idempotent: bool,
        params: dict[str, str] | None,
    ) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport(total=len(items))
        for offset in range(0, len(wire), BATCH_SIZE):
            chunk = wire[offset : offset + BATCH_SIZE]
            report.requests += 1
            try:
                response = await self._ds_call(
                    operation, params=params, body=orjson.dumps(chunk), idempotent=idempotent
                )
                status, payload = response.status, response.json()
            except UnprocessableEntityError as exc:
                status, payload = 422, exc.body
            except BadRequestError as exc:
                for i, item in enumerate(chunk):
                    report.rejected.append(
                        RejectedItem(item=items[offset + i], position=offset + i,
                                     errors={"_": [exc.message]})
                    )
                continue
            except (APIConnectionError, APIStatusError) as exc:
                if isinstance(exc, APIStatusError) and exc.status in (401, 403, 404):
                    raise
                for i in range(len(chunk)):
                    report.failed.append(
                        FailedItem(item=items[offset + i], position=offset + i, reason=str(exc))
                    )
                continue
            outcome = parse_batch(status, payload, chunk, offset)
            report.accepted += outcome.accepted + len(outcome.unknown)
            report.rejected.extend(
                RejectedItem(item=items[r.position], position=r.position, errors=r.errors)
                for r in outcome.rejected
            )
            if outcome.raw is not None:
                report.raw.append(outcome.raw)
        report.elapsed = time.perf_counter() - started
        return report


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
        self, items: Sequence[Any], *, sync: bool = False, dry_run: bool = False
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
        return await self._send_batches(
            _CONTACT_UPSERT, items, to_wire_items(items), idempotent=True, params=_flags(sync, dry_run)
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

        Raises:
            NotFoundError: no such contact in this datasource.
        """
        await self._ds_call(_CONTACT_DELETE, user_id)


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
        wire = to_wire_items(items)
        idempotent = _all_have_event_id(wire, require_event_id)
        return await self._send_batches(
            _EVENTS_ADD, items, wire, idempotent=idempotent, params=_flags(sync, dry_run)
        )


def _all_have_event_id(wire: Sequence[Any], required: bool) -> bool:
    for position, item in enumerate(wire):
        event_id = item.get("_event_id") if isinstance(item, dict) else None
        if not event_id:
            if required:
                raise ValueError(
                    f"event at position {position} has no _event_id: without it a retry "
                    "could store the event twice (pass require_event_id=False to send "
                    "such events without automatic retries)"
                )
            return False
    return True


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
