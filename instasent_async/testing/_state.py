"""In-memory state of the fake server: organizations, projects, tokens and their data.

Everything here is synchronous and free of HTTP; :mod:`._server` maps requests onto it.
Hot paths (ingest) use dictionaries and sets only: contacts are indexed by audience id and
by ``_user_id``, events are deduplicated with one set of ``_event_id`` per datasource.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal

import attrs

from ._query import FilterContext, Predicate, compile_filter, parse_iso8601

__all__ = [
    "ALL_SCOPES",
    "Datasource",
    "ItemOutcome",
    "ItemValidator",
    "Organization",
    "Project",
    "Segment",
    "State",
    "StoredEvent",
    "Token",
    "fingerprint",
    "format_timestamp",
    "normalize_phone",
]

#: Every scope the Instasent API reference names.
ALL_SCOPES: tuple[str, ...] = (
    "ACCOUNT_READ",
    "PROJECT_AUDIENCE_READ",
    "PROJECT_AUDIENCE_LIST",
    "PROJECT_AUDIENCE_WRITE",
    "PROJECT_AUDIENCE_DATA_BASIC",
    "PROJECT_AUDIENCE_DATA_FULL",
    "PROJECT_AUDIENCE_DATA_EVENTS",
    "PROJECT_CAMPAIGN_READ",
    "PROJECT_AUTOMATION_READ",
    "PROJECT_DIRECT_READ",
    "PROJECT_DIRECT_WRITE",
)

#: A per-item validation hook: returns per-field errors that reject the item, or None.
ItemValidator = Callable[[dict[str, Any]], "dict[str, list[str]] | None"]


def fingerprint(token: str) -> str:
    """A short, stable, non-reversible identifier of a token (safe to log and compare)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def format_timestamp(stamp: float) -> str:
    """``2024-10-28T00:10:02.471Z`` for an epoch in seconds."""
    moment = dt.datetime.fromtimestamp(stamp, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def normalize_phone(phone: str) -> str:
    """Drop spacing and punctuation; a leading ``00`` becomes ``+``."""
    cleaned = "".join(char for char in phone if char.isdigit() or char == "+")
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    return cleaned


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


@attrs.define(slots=True, eq=False)
class Token:
    """An issued token. Its value is never part of the repr."""

    value: str = attrs.field(repr=False)
    kind: Literal["product", "datasource"]
    scopes: frozenset[str]
    organization: str
    project: str | None
    datasource: str | None
    fingerprint: str
    revoked: bool = False


@attrs.define(slots=True, eq=False)
class Organization:
    """An organization: owns projects, tokens and the rate-limit buckets."""

    uid: str
    name: str
    funds: float = 100.0


@attrs.define(slots=True, eq=False)
class Datasource:
    """An (API) datasource of a project."""

    id: str
    project: str
    kind: str
    name: str
    stream_id: str
    event_ids: set[str] = attrs.field(factory=set)
    user_ids: set[str] = attrs.field(factory=set)
    events_stored: int = 0
    contacts_upserted: int = 0
    last_event_at: str | None = None
    last_contact_at: str | None = None


@attrs.define(slots=True, eq=False)
class StoredEvent:
    """An accepted event (immutable once stored)."""

    id: str
    datasource: str
    user_id: str
    event_id: str
    event_type: str
    date: str
    timestamp: float
    parameters: Mapping[str, Any]
    extra: Mapping[str, Any]

    def field(self, key: str) -> Any:
        """A read-side key of the event (see :meth:`to_wire`), or None."""
        if key in ("_user_id", "userId"):
            return self.user_id
        if key in ("_event_id", "eventId"):
            return self.event_id
        if key in ("_event_type", "event-type"):
            return self.event_type
        if key in ("_event_date", "created-at"):
            return self.date
        if key == "id":
            return self.id
        if key == "datasourceId":
            return self.datasource
        return self.extra.get(key)

    def to_wire(self, audience_id: str | None) -> dict[str, Any]:
        """The read-side JSON object: ingest keys plus ``id``, ``event-type``,
        ``created-at``, ``parameters``, ``audienceId`` and ``datasourceId``."""
        return {
            **self.extra,
            "id": self.id,
            "audienceId": audience_id,
            "datasourceId": self.datasource,
            "_user_id": self.user_id,
            "_event_id": self.event_id,
            "_event_type": self.event_type,
            "_event_date": self.date,
            "_event_parameters": dict(self.parameters),
            "event-type": self.event_type,
            "created-at": self.date,
            "parameters": dict(self.parameters),
        }


@attrs.define(slots=True, eq=False)
class Segment:
    """A segment: members are the static list plus the contacts matching ``query``."""

    uid: str
    name: str
    dynamic: bool
    query: Mapping[str, Any] | None
    static_members: set[str]
    requires_parameter: bool
    extra: dict[str, Any]
    predicate: Predicate | None

    def to_wire(self, parameter: str | None = None) -> dict[str, Any]:
        """The segment entity."""
        entity: dict[str, Any] = {
            **self.extra,
            "uid": self.uid,
            "name": self.name,
            "type": "dynamic" if self.dynamic else "static",
            "requiresParameter": self.requires_parameter,
        }
        if parameter is not None:
            entity["parameter"] = parameter
        return entity


@attrs.define(slots=True, eq=False)
class ItemOutcome:
    """What happened to one item of an ingest batch."""

    position: int
    item: Any
    errors: dict[str, list[str]] | None

    @property
    def ok(self) -> bool:
        """True when the item was accepted (or was a harmless duplicate)."""
        return self.errors is None


@attrs.define(slots=True, eq=False)
class Project:
    """A project and everything in it."""

    uid: str
    id: int
    name: str
    organization: str
    datasources: dict[str, Datasource] = attrs.field(factory=dict)
    contacts: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    by_user: dict[str, str] = attrs.field(factory=dict)
    events: list[StoredEvent] = attrs.field(factory=list)
    events_by_user: dict[str, list[StoredEvent]] = attrs.field(factory=dict)
    segments: dict[str, Segment] = attrs.field(factory=dict)
    campaigns: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    automations: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    senders: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    default_sender: str | None = None
    sms: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    attribute_specs: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    event_types: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    event_parameters: dict[str, list[dict[str, Any]]] = attrs.field(factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """The project entity."""
        return {"uid": self.uid, "id": self.id, "name": self.name}

    def resolve_datasource(self, datasource_id: str) -> Datasource | None:
        """The datasource with this id; ``dsapi`` is the first API datasource."""
        if datasource_id == "dsapi" and "dsapi" not in self.datasources:
            return next((ds for ds in self.datasources.values() if ds.kind == "api"), None)
        return self.datasources.get(datasource_id)

    def resolve_sender(self, sender_id: str) -> dict[str, Any] | None:
        """A sender by id; ``default`` is the default sender, else the first active one."""
        if sender_id == "default" and "default" not in self.senders:
            if self.default_sender is not None:
                return self.senders.get(self.default_sender)
            return next((s for s in self.senders.values() if s.get("status") == "active"), None)
        return self.senders.get(sender_id)

    # --- audience ---------------------------------------------------------------------

    def find_contact(self, identifier: str) -> dict[str, Any] | None:
        """A contact by any unique attribute: ``_user_id``, then email, then phone."""
        audience_id = self.by_user.get(identifier)
        if audience_id is not None:
            return self.contacts[audience_id]
        matches = self.search_email(identifier) or self.search_phone(identifier)
        return matches[0] if matches else None

    def search_phone(self, phone: str, limit: int = 10) -> list[dict[str, Any]]:
        """Contacts whose mobile phone equals ``phone`` once both are normalized."""
        wanted = normalize_phone(phone)
        if len(wanted) < 3:
            return []
        found = (
            contact
            for contact in self.contacts.values()
            if isinstance(contact.get("_phone_mobile"), str)
            and normalize_phone(contact["_phone_mobile"]) == wanted
        )
        return list(itertools.islice(found, limit))

    def search_email(self, email: str, limit: int = 10) -> list[dict[str, Any]]:
        """Contacts whose email equals ``email`` (case-insensitive)."""
        if "@" not in email:
            return []
        wanted = email.strip().lower()
        found = (
            contact
            for contact in self.contacts.values()
            if isinstance(contact.get("_email"), str) and contact["_email"].lower() == wanted
        )
        return list(itertools.islice(found, limit))

    def delete_contact(self, audience_id: str) -> dict[str, Any] | None:
        """Remove a contact from the audience and every datasource; return it."""
        contact = self.contacts.pop(audience_id, None)
        if contact is None:
            return None
        user_id = contact.get("_user_id")
        if isinstance(user_id, str):
            self.by_user.pop(user_id, None)
            for datasource in self.datasources.values():
                datasource.user_ids.discard(user_id)
        return contact

    def events_of(self, contact: Mapping[str, Any]) -> list[StoredEvent]:
        """The events whose ``_user_id`` is the contact's."""
        user_id = contact.get("_user_id")
        return self.events_by_user.get(user_id, []) if isinstance(user_id, str) else []

    def contact_of(self, event: Any) -> dict[str, Any] | None:
        """The contact an event belongs to, if it exists."""
        audience_id = self.by_user.get(event.user_id)
        return None if audience_id is None else self.contacts.get(audience_id)

    def event_to_wire(self, event: StoredEvent) -> dict[str, Any]:
        """An event's read-side object with its current audience id."""
        return event.to_wire(self.by_user.get(event.user_id))

    def filter_context(self, now: float, active: frozenset[str] = frozenset()) -> FilterContext:
        """The lookups a query filter needs; ``active`` breaks segment cycles."""

        def segment_contains(uid: str, contact: Mapping[str, Any]) -> bool:
            segment = self.segments.get(uid)
            if segment is None or uid in active:
                return False
            if contact.get("id") in segment.static_members:
                return True
            if segment.predicate is None:
                return False
            return segment.predicate(contact, self.filter_context(now, active | {uid}))

        return FilterContext(
            now=now,
            segment_contains=segment_contains,
            events_of=self.events_of,
            contact_of=self.contact_of,
        )

    # --- ingest -------------------------------------------------------------------------

    def upsert_contacts(
        self,
        datasource: Datasource,
        items: list[Any],
        *,
        now_text: str,
        dry_run: bool,
        validator: ItemValidator | None,
    ) -> list[ItemOutcome]:
        """Validate and upsert contacts by ``_user_id``; one outcome per item, in order."""
        outcomes = []
        for position, item in enumerate(items):
            errors = _merge_errors(validate_contact(item), validator, item)
            outcomes.append(ItemOutcome(position, item, errors))
            if errors is None and not dry_run:
                self._store_contact(datasource, item, now_text)
        return outcomes

    def _store_contact(self, datasource: Datasource, item: dict[str, Any], now_text: str) -> None:
        user_id = item["_user_id"]
        fields = {key: value for key, value in item.items() if key != "id"}
        audience_id = self.by_user.get(user_id)
        if audience_id is None:
            audience_id = _new_id("aud")
            contact = {"id": audience_id, **fields, "_date_created": now_text}
            self.contacts[audience_id] = contact
            self.by_user[user_id] = audience_id
        else:
            contact = self.contacts[audience_id]
            contact.update(fields)
        contact["_date_updated"] = now_text
        datasource.user_ids.add(user_id)
        datasource.contacts_upserted += 1
        datasource.last_contact_at = now_text

    def add_events(
        self,
        datasource: Datasource,
        items: list[Any],
        *,
        now: float,
        now_text: str,
        dry_run: bool,
        validator: ItemValidator | None,
    ) -> list[ItemOutcome]:
        """Validate and append events; a known ``_event_id`` is a success stored once."""
        outcomes = []
        seen_in_batch: set[str] = set()
        for position, item in enumerate(items):
            errors = _merge_errors(validate_event(item), validator, item)
            outcomes.append(ItemOutcome(position, item, errors))
            if errors is None:
                event_id = item["_event_id"]
                if event_id in datasource.event_ids or event_id in seen_in_batch:
                    continue
                seen_in_batch.add(event_id)
                if not dry_run:
                    self._store_event(datasource, item, now, now_text)
        return outcomes

    def _store_event(
        self, datasource: Datasource, item: dict[str, Any], now: float, now_text: str
    ) -> None:
        date = item.get("_event_date")
        if isinstance(date, str):
            stamp = parse_iso8601(date)
            assert stamp is not None  # validated before
        else:
            date, stamp = now_text, now
        extra = {key: value for key, value in item.items() if key not in _EVENT_KEYS}
        event = StoredEvent(
            id=_new_id("evt"),
            datasource=datasource.id,
            user_id=item["_user_id"],
            event_id=item["_event_id"],
            event_type=item["_event_type"],
            date=date,
            timestamp=stamp,
            parameters=item.get("_event_parameters") or {},
            extra=extra,
        )
        datasource.event_ids.add(event.event_id)
        datasource.events_stored += 1
        datasource.last_event_at = now_text
        self.events.append(event)
        self.events_by_user.setdefault(event.user_id, []).append(event)


_SUB_MILLISECOND = re.compile(r":\d\d[.,]\d{4,}")
_EVENT_KEYS = frozenset(
    {"_user_id", "_event_id", "_event_type", "_event_date", "_event_parameters", "id"}
)


def _merge_errors(
    errors: dict[str, list[str]] | None, validator: ItemValidator | None, item: dict[str, Any]
) -> dict[str, list[str]] | None:
    if validator is None:
        return errors
    extra = validator(item)
    if not extra:
        return errors
    merged = {field: list(messages) for field, messages in (errors or {}).items()}
    for field, messages in extra.items():
        merged.setdefault(field, []).extend(messages)
    return merged


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


def validate_contact(item: dict[str, Any]) -> dict[str, list[str]] | None:
    """Built-in contact validation: ``_user_id`` required, ``_email`` must contain ``@``."""
    errors: dict[str, list[str]] | None = None
    if _blank(item.get("_user_id")):
        errors = {"_user_id": ["This value should not be blank."]}
    email = item.get("_email")
    if email is not None and (not isinstance(email, str) or "@" not in email):
        errors = errors or {}
        errors["_email"] = ["Invalid format"]
    return errors


def validate_event(item: dict[str, Any]) -> dict[str, list[str]] | None:
    """Built-in event validation: ids and type required, ISO date, object parameters."""
    errors: dict[str, list[str]] = {}
    for key in ("_user_id", "_event_id", "_event_type"):
        if _blank(item.get(key)):
            errors[key] = ["This value should not be blank."]
    date = item.get("_event_date")
    if date is not None and (not isinstance(date, str) or parse_iso8601(date) is None):
        errors["_event_date"] = ["Invalid date format, expected ISO 8601."]
    elif date is not None and _SUB_MILLISECOND.search(date):
        # Instasent's own clients write milliseconds (JavaScript's toISOString).
        errors["_event_date"] = ["Invalid date format, expected at most 3 fraction digits."]
    parameters = item.get("_event_parameters")
    if parameters is not None and not isinstance(parameters, dict):
        errors["_event_parameters"] = ["This value should be an object."]
    return errors or None


def compile_segment_query(query: Mapping[str, Any] | None) -> Predicate | None:
    """Compile a segment's filter (a whole query document or just its root)."""
    if query is None:
        return None
    root = query.get("root", query)
    return compile_filter(root, target="audience")


class State:
    """Every organization, project and token of one fake server."""

    def __init__(self) -> None:
        self.organizations: dict[str, Organization] = {}
        self.projects: dict[str, Project] = {}
        self.tokens: dict[str, Token] = {}
        self._project_ids = itertools.count(1)

    def add_organization(self, uid: str, name: str | None = None) -> Organization:
        """Create an organization (or return the existing one)."""
        found = self.organizations.get(uid)
        if found is None:
            found = self.organizations[uid] = Organization(uid, name or uid)
        return found

    def add_project(self, uid: str, name: str | None, organization: str) -> Project:
        """Create a project in ``organization`` (created if needed).

        Raises:
            ValueError: the project uid exists already.
        """
        if uid in self.projects:
            raise ValueError(f"project {uid!r} exists already")
        self.add_organization(organization)
        project = Project(uid, next(self._project_ids), name or uid, organization)
        self.projects[uid] = project
        return project

    def project(self, uid: str) -> Project:
        """The project with this uid.

        Raises:
            KeyError: no such project.
        """
        try:
            return self.projects[uid]
        except KeyError:
            raise KeyError(f"unknown project {uid!r}") from None

    def add_datasource(
        self, project_uid: str, datasource_id: str, kind: str, name: str | None
    ) -> Datasource:
        """Create a datasource in a project.

        Raises:
            KeyError: unknown project.
            ValueError: the datasource exists already.
        """
        project = self.project(project_uid)
        if datasource_id in project.datasources:
            raise ValueError(f"datasource {datasource_id!r} exists already")
        datasource = Datasource(
            datasource_id, project_uid, kind, name or datasource_id, _new_id("str")
        )
        project.datasources[datasource_id] = datasource
        return datasource

    def add_token(
        self,
        *,
        kind: Literal["product", "datasource"],
        scopes: Iterable[str] | None,
        organization: str | None,
        project: str | None,
        datasource: str | None,
        token: str | None,
    ) -> Token:
        """Register a token (see :meth:`FakeInstasent.add_token`)."""
        if kind not in ("product", "datasource"):
            raise ValueError(f"unknown token kind {kind!r}")
        value = token if token is not None else f"fake-{kind}-{secrets.token_urlsafe(24)}"
        if not value:
            raise ValueError("a token cannot be empty")
        if value in self.tokens:
            raise ValueError("this token is registered already")
        if project is not None:
            organization = self.project(project).organization
        elif kind == "datasource":
            raise ValueError("a datasource token needs a project and a datasource")
        if kind == "datasource":
            if datasource is None or datasource not in self.project(project or "").datasources:
                raise ValueError("a datasource token needs an existing datasource")
        elif datasource is not None:
            raise ValueError("a product token is not bound to a datasource")
        if organization is None:
            organization = next(iter(self.organizations), None)
            if organization is None:
                raise ValueError("no organization exists: add a project first")
        self.add_organization(organization)
        granted = frozenset(ALL_SCOPES if scopes is None else scopes)
        record = Token(value, kind, granted, organization, project, datasource, fingerprint(value))
        self.tokens[value] = record
        return record

    def iter_projects(self, organization: str) -> Iterator[Project]:
        """The projects of an organization, in creation order."""
        return (p for p in self.projects.values() if p.organization == organization)
