"""Segments."""

from __future__ import annotations

from typing import Any

import attrs

from ._base import wire

__all__ = ["Segment"]


@attrs.define(slots=True, kw_only=True)
class Segment:
    """A static or dynamic segment (``uid`` is what segment scrolls take)."""

    uid: str | None = attrs.field(default=None, metadata=wire("uid"))
    name: str | None = attrs.field(default=None, metadata=wire("name"))
    type: str | None = attrs.field(default=None, metadata=wire("type"))
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)
