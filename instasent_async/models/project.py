"""Organization, project and datasource stream information."""

from __future__ import annotations

from typing import Any

import attrs

from ._base import wire

__all__ = ["DatasourceStats", "Organization", "Project", "StreamInfo"]


@attrs.define(slots=True, kw_only=True)
class Project:
    """A project (``uid`` is the id used in URLs)."""

    uid: str | None = attrs.field(default=None, metadata=wire("uid"))
    id: str | None = attrs.field(default=None, metadata=wire("id"))
    name: str | None = attrs.field(default=None, metadata=wire("name"))
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)


@attrs.define(slots=True, kw_only=True)
class Organization:
    """The organization of the token (``GET /v1/``) with its ``projects``.

    Account and funds information (``ACCOUNT_READ`` scope) and token details
    are kept in ``extra`` as the server sends them.
    """

    id: str | None = attrs.field(default=None, metadata=wire("id"))
    uid: str | None = attrs.field(default=None, metadata=wire("uid"))
    name: str | None = attrs.field(default=None, metadata=wire("name"))
    projects: list[Project] = attrs.field(
        factory=list, metadata=wire("projects", "models", model=Project)
    )
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)


@attrs.define(slots=True, kw_only=True)
class StreamInfo:
    """``GET .../datasource/{ds}/stream``: who and where a datasource token writes.

    Each part is kept as the dict the server sends (their fields are not
    documented); ``usage`` is the recent usage, whatever its shape.
    """

    organization: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("organization", "dict")
    )
    project: dict[str, Any] | None = attrs.field(default=None, metadata=wire("project", "dict"))
    datasource: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("datasource", "dict")
    )
    stream: dict[str, Any] | None = attrs.field(default=None, metadata=wire("stream", "dict"))
    usage: Any = attrs.field(default=None, metadata=wire("usage", "any"))
    extra: dict[str, Any] = attrs.field(factory=dict)
    _wire: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)


@attrs.define(slots=True)
class DatasourceStats:
    """``GET .../datasource/{ds}/stats``: its shape is not documented, so it is kept whole.

    ``data`` is the decoded object (a non-object body is kept under ``"value"``).
    """

    data: dict[str, Any] = attrs.field(factory=dict)
