"""Audience contacts (read side) and contact ingest items (write side)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import attrs

from ._base import to_aware, wire

__all__ = ["Contact"]


@attrs.define(slots=True, kw_only=True)
class Contact:
    """A contact: read from the audience, or sent to a datasource (upsert by ``user_id``).

    Reserved fields drop their leading underscore (``_user_id`` -> ``user_id``).
    Custom attributes (keys without a leading ``_``, other than ``id``) live in
    ``attributes`` and are written back at the top level; unknown reserved
    (``_``-prefixed) keys and explicit nulls of known keys live in ``extra``.
    ``id`` is the audience id (read side only; ``None`` when writing).

    Example: ``Contact(user_id="u-1", email="a@example.com", attributes={"plan": "pro"})``
    is sent as ``{"_user_id": "u-1", "_email": "a@example.com", "plan": "pro"}``.
    """

    user_id: str | None = attrs.field(default=None, metadata=wire("_user_id"))
    id: str | None = attrs.field(default=None, metadata=wire("id"))
    first_name: str | None = attrs.field(default=None, metadata=wire("_first_name"))
    last_name: str | None = attrs.field(default=None, metadata=wire("_last_name"))
    email: str | None = attrs.field(default=None, metadata=wire("_email"))
    phone_mobile: str | None = attrs.field(default=None, metadata=wire("_phone_mobile"))
    client_tags: list[str] | None = attrs.field(
        default=None, metadata=wire("_client_tags", "strlist")
    )
    date_updated: _dt.datetime | None = attrs.field(
        default=None, converter=to_aware, metadata=wire("_date_updated", "datetime")
    )
    email_verified: bool | None = attrs.field(
        default=None, metadata=wire("_email_verified", "bool")
    )
    phone_mobile_verified: bool | None = attrs.field(
        default=None, metadata=wire("_phone_mobile_verified", "bool")
    )
    attributes: dict[str, Any] = attrs.field(factory=dict)
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)
