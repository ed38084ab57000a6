"""Events: ingest items (write side) and audience events (read side)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import attrs

from ._base import to_aware, wire

__all__ = ["AudienceEvent", "Event"]


@attrs.define(slots=True, kw_only=True)
class Event:
    """An event to send to a datasource (``_user_id``, ``_event_id``, ``_event_type``...).

    ``event_id`` is what the server deduplicates on: give every event a stable
    one so that a retried request never stores it twice. ``event_date`` defaults
    to "now" on the server when omitted; a naive datetime is taken as UTC and it
    is sent as ``YYYY-MM-DDTHH:MM:SS.sssZ``. ``event_parameters`` is sent as is.
    """

    user_id: str | None = attrs.field(default=None, metadata=wire("_user_id"))
    event_id: str | None = attrs.field(default=None, metadata=wire("_event_id"))
    event_type: str | None = attrs.field(default=None, metadata=wire("_event_type"))
    event_date: _dt.datetime | None = attrs.field(
        default=None, converter=to_aware, metadata=wire("_event_date", "datetime")
    )
    event_parameters: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("_event_parameters", "dict")
    )
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)


@attrs.define(slots=True, kw_only=True)
class AudienceEvent:
    """An event as read back from the audience (``/audience/{id}/events``, event search).

    ``event_type`` is read from ``event-type`` or ``_event_type``, ``created_at``
    from ``created-at`` (or ``createdAt``), ``parameters`` from ``parameters``
    (or ``_event_parameters``); the key used is kept for the round trip.
    """

    id: str | None = attrs.field(default=None, metadata=wire("id"))
    user_id: str | None = attrs.field(default=None, metadata=wire("_user_id"))
    event_id: str | None = attrs.field(default=None, metadata=wire("_event_id"))
    event_type: str | None = attrs.field(
        default=None, metadata=wire("event-type", aliases=("_event_type",))
    )
    created_at: _dt.datetime | None = attrs.field(
        default=None,
        converter=to_aware,
        metadata=wire("created-at", "datetime", aliases=("createdAt",)),
    )
    parameters: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("parameters", "dict", aliases=("_event_parameters",))
    )
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)
