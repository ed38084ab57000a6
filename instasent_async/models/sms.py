"""SMS senders and messages."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import attrs

from ._base import to_aware, wire

__all__ = ["SmsMessage", "SmsSender"]


@attrs.define(slots=True, kw_only=True)
class SmsSender:
    """An SMS sender; ``from_`` is the wire ``from`` (the sender name or number)."""

    id: str | None = attrs.field(default=None, metadata=wire("id"))
    from_: str | None = attrs.field(default=None, metadata=wire("from"))
    status: str | None = attrs.field(default=None, metadata=wire("status"))
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)


@attrs.define(slots=True, kw_only=True)
class SmsMessage:
    """An SMS message (direct, campaign or automation).

    Wire keys: ``from`` -> ``from_``, ``utmTerm`` -> ``utm_term``,
    ``audienceId`` -> ``audience_id``, ``createdAt`` -> ``created_at``.
    """

    id: str | None = attrs.field(default=None, metadata=wire("id"))
    to: str | None = attrs.field(default=None, metadata=wire("to"))
    from_: str | None = attrs.field(default=None, metadata=wire("from"))
    text: str | None = attrs.field(default=None, metadata=wire("text"))
    status: str | None = attrs.field(default=None, metadata=wire("status"))
    utm_term: str | None = attrs.field(default=None, metadata=wire("utmTerm"))
    audience_id: str | None = attrs.field(default=None, metadata=wire("audienceId"))
    created_at: _dt.datetime | None = attrs.field(
        default=None, converter=to_aware, metadata=wire("createdAt", "datetime")
    )
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)
