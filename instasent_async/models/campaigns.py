"""Campaigns and automations."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import attrs

from ._base import to_aware, wire

__all__ = ["Automation", "Campaign"]


@attrs.define(slots=True, kw_only=True)
class Campaign:
    """A campaign; ``campaign_at`` (wire ``campaignAt``) is when it is or was sent."""

    id: str | None = attrs.field(default=None, metadata=wire("id"))
    title: str | None = attrs.field(default=None, metadata=wire("title"))
    campaign_at: _dt.datetime | None = attrs.field(
        default=None, converter=to_aware, metadata=wire("campaignAt", "datetime")
    )
    status: str | None = attrs.field(default=None, metadata=wire("status"))
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)


@attrs.define(slots=True, kw_only=True)
class Automation:
    """An automation."""

    id: str | None = attrs.field(default=None, metadata=wire("id"))
    title: str | None = attrs.field(default=None, metadata=wire("title"))
    status: str | None = attrs.field(default=None, metadata=wire("status"))
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)
