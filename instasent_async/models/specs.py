"""Spec objects: which attributes, event types and event parameters a project accepts."""

from __future__ import annotations

from typing import Any

import attrs

from ._base import wire

__all__ = ["AttributeSpec", "EventParameterSpec", "EventTypeSpec"]


@attrs.define(slots=True, kw_only=True)
class AttributeSpec:
    """One contact attribute (``uid`` such as ``_email`` or a custom key).

    ``multivalue`` > 1 means the attribute takes a list of at most that many
    values; ``read_only`` attributes must not be sent; ``required_in_webhook``
    attributes must be.
    """

    uid: str | None = attrs.field(default=None, metadata=wire("uid"))
    display_label: str | None = attrs.field(default=None, metadata=wire("displayLabel"))
    description: str | None = attrs.field(default=None, metadata=wire("description"))
    data_type: str | None = attrs.field(default=None, metadata=wire("dataType"))
    multivalue: int | None = attrs.field(default=None, metadata=wire("multivalue", "int"))
    required_in_webhook: bool | None = attrs.field(
        default=None, metadata=wire("requiredInWebhook", "bool")
    )
    read_only: bool | None = attrs.field(default=None, metadata=wire("readOnly", "bool"))
    visible: bool | None = attrs.field(default=None, metadata=wire("visible", "bool"))
    custom: bool | None = attrs.field(default=None, metadata=wire("custom", "bool"))
    important: bool | None = attrs.field(default=None, metadata=wire("important", "bool"))
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)


@attrs.define(slots=True, kw_only=True)
class EventTypeSpec:
    """One event type (``uid`` is what ``Event.event_type`` takes)."""

    uid: str | None = attrs.field(default=None, metadata=wire("uid"))
    name: str | None = attrs.field(default=None, metadata=wire("name"))
    emoji: str | None = attrs.field(default=None, metadata=wire("emoji"))
    description: str | None = attrs.field(default=None, metadata=wire("description"))
    category: str | None = attrs.field(default=None, metadata=wire("category"))
    attribution: bool | None = attrs.field(default=None, metadata=wire("attribution", "bool"))
    automation: bool | None = attrs.field(default=None, metadata=wire("automation", "bool"))
    icon: str | None = attrs.field(default=None, metadata=wire("icon"))
    important: bool | None = attrs.field(default=None, metadata=wire("important", "bool"))
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)


@attrs.define(slots=True, kw_only=True)
class EventParameterSpec:
    """One parameter of an event type (a key of ``Event.event_parameters``).

    ``multi_value`` (wire ``multiValue``, capital V unlike ``AttributeSpec``) > 1
    means a list of at most that many values.
    """

    parameter: str | None = attrs.field(default=None, metadata=wire("parameter"))
    title: str | None = attrs.field(default=None, metadata=wire("title"))
    description: str | None = attrs.field(default=None, metadata=wire("description"))
    icon: str | None = attrs.field(default=None, metadata=wire("icon"))
    data_type: str | None = attrs.field(default=None, metadata=wire("dataType"))
    visual_type: str | None = attrs.field(default=None, metadata=wire("visualType"))
    max_length: int | None = attrs.field(default=None, metadata=wire("maxLength", "int"))
    required: bool | None = attrs.field(default=None, metadata=wire("required", "bool"))
    multi_value: int | None = attrs.field(default=None, metadata=wire("multiValue", "int"))
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)
