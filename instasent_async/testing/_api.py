"""The API surface of the fake server: routes, authorization and one handler per operation.

Handlers are synchronous functions of a :class:`Call` (the request with its resolved token,
project and datasource), so each request mutates the in-memory state atomically. They
raise :class:`ApiError` for error answers; :mod:`._server` runs them inside its middleware.
"""

from __future__ import annotations

import base64
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs
import orjson
from aiohttp import web
from multidict import MultiMapping

from ._limits import RateClass
from ._query import (
    Predicate,
    QueryFilterError,
    apply_list_query,
    compile_filter,
    parse_list_query,
    sort_entities,
)
from ._state import (
    Datasource,
    ItemOutcome,
    Project,
    Segment,
    State,
    StoredEvent,
    Token,
    format_timestamp,
    normalize_phone,
)

__all__ = ["Api", "ApiError", "BatchShape", "Call", "Operation", "sms_entity"]

BatchShape = Literal["documented", "activepieces"]
_MAX_BATCH = 100
_MAX_SEARCH = 50
_MAX_SCROLL = 100
_MAX_UTM_TERM = 40
INVALID_JSON: Any = object()
"""The body of a request whose bytes are not JSON."""
_PRIVATE_FIELDS = ("_email", "_phone_mobile")
_PRIVACY_SCOPES = frozenset({"PROJECT_AUDIENCE_DATA_BASIC", "PROJECT_AUDIENCE_DATA_FULL"})


class ApiError(Exception):
    """An error answer: ``{"message": ...}`` plus ``extra`` keys, or an empty body when
    ``message`` is None."""

    def __init__(self, status: int, message: str | None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra

    def response(self) -> web.Response:
        """The response carrying this error."""
        if self.message is None:
            return web.Response(status=self.status)
        return _json({"message": self.message, **self.extra}, self.status)


@attrs.frozen(slots=True)
class Operation:
    """One route's operation: its name (as in ``instasent_async._core.endpoints``), the level it
    lives at, the scope it needs, its rate class, its bucket endpoint and its handler."""

    name: str
    level: Literal["org", "project", "datasource"]
    scope: str | None
    rate_class: RateClass
    endpoint: str
    handler: Callable[[Call], web.StreamResponse]


@attrs.define(slots=True)
class Call:
    """One authorized request: the token, the server clock, the parsed body, and the
    project and datasource its path resolved to (set by :meth:`Api.authorize`)."""

    request: web.Request
    operation: Operation
    token: Token
    now: float
    body: Any
    project: Project | None = None
    datasource: Datasource | None = None

    @property
    def match(self) -> Mapping[str, str]:
        return self.request.match_info

    @property
    def query(self) -> MultiMapping[str]:
        return self.request.query

    def flag(self, name: str) -> bool:
        """Whether a bare query flag such as ``?_sync`` is present.

        Instasent's own clients send these flags without a value; a value
        (``?_sync=true``) is refused so that a client sending another form is seen.

        Raises:
            ApiError: 400 when the flag carries a value.
        """
        for part in self.request.query_string.split("&"):
            key, equals, _ = part.partition("=")
            if key == name:
                if equals:
                    raise ApiError(400, f"{name} is a bare flag: send ?{name} without a value")
                return True
        return False

    @property
    def project_(self) -> Project:
        """The resolved project (project and datasource operations always have one)."""
        assert self.project is not None
        return self.project

    @property
    def datasource_(self) -> Datasource:
        """The resolved datasource (datasource operations always have one)."""
        assert self.datasource is not None
        return self.datasource

    def contact_out(self, contact: Mapping[str, Any]) -> dict[str, Any]:
        """A contact as this token may see it: phone and email need a privacy scope."""
        if self.token.kind == "product" and not (self.token.scopes & _PRIVACY_SCOPES):
            return {k: v for k, v in contact.items() if k not in _PRIVATE_FIELDS}
        return dict(contact)


@attrs.define(slots=True)
class _Scroll:
    kind: str
    project: str
    segment: str | None
    entries: list[Any]
    expires_at: float


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _entity(payload: Any, status: int = 200) -> web.Response:
    return _json({"entity": payload}, status)


def _entities(payload: Sequence[Any]) -> web.Response:
    return _json({"entities": list(payload)})


class Api:
    """Every operation of the Instasent API reference over a :class:`State`.

    ``batch_shape`` picks the 202/422 ingest body, ``cursor_ttl`` the life of an idle
    scroll cursor, ``validator`` the optional per-item ingest hook.
    """

    def __init__(self, state: State, *, batch_shape: BatchShape, cursor_ttl: float) -> None:
        self.state = state
        self.batch_shape: BatchShape = batch_shape
        self.cursor_ttl = cursor_ttl
        self.validator: Callable[[dict[str, Any]], dict[str, list[str]] | None] | None = None
        self._scrolls: dict[str, _Scroll] = {}

    def register(self, app: web.Application) -> dict[web.AbstractRoute, Operation]:
        """Add every route to ``app``; return each route's operation."""
        operations: dict[web.AbstractRoute, Operation] = {}

        def add(
            method: str,
            path: str,
            name: str,
            function: Callable[[Call], web.StreamResponse],
            scope: str | None = None,
            rate_class: RateClass = "default",
        ) -> None:
            level: Literal["org", "project", "datasource"] = "org"
            if "{datasource}" in path:
                level, rate_class = "datasource", "datasource"
            elif "{project}" in path:
                level = "project"
            # Datasource buckets are per (datasource, method, endpoint template).
            endpoint = f"{method} {path.rpartition('{datasource}')[2]}"
            route = app.router.add_route(method, path, _dispatched_by_middleware)
            operations[route] = Operation(name, level, scope, rate_class, endpoint, function)

        p = "/v1/project/{project}"
        ds = p + "/datasource/{datasource}"
        sms = p + "/channel/sms/sms"
        read, events = "PROJECT_AUDIENCE_READ", "PROJECT_AUDIENCE_DATA_EVENTS"
        write, listing = "PROJECT_AUDIENCE_WRITE", "PROJECT_AUDIENCE_LIST"
        campaign, automation = "PROJECT_CAMPAIGN_READ", "PROJECT_AUTOMATION_READ"
        sms_read, sms_write = "PROJECT_DIRECT_READ", "PROJECT_DIRECT_WRITE"
        # Registration order matters where a literal segment competes with a placeholder.
        add("GET", "/v1/", "organization.get", self._organization)
        add("GET", "/v1", "organization.get", self._organization)
        add("GET", p, "project.get", self._project)
        add("GET", p + "/specs/attributes", "specs.attributes", self._specs_attributes)
        add("GET", p + "/specs/events", "specs.events", self._specs_events)
        add("GET", p + "/specs/events/{eventType}", "specs.event_parameters", self._specs_params)
        add("GET", p + "/audience/user/{userId}", "audience.get_by_user_id", self._by_user, read)
        add(
            "GET",
            p + "/audience/search/phone/{phone}",
            "audience.search_by_phone",
            self._by_phone,
            read,
            "search",
        )
        add(
            "GET",
            p + "/audience/search/email/{email}",
            "audience.search_by_email",
            self._by_email,
            read,
            "search",
        )
        add(
            "POST", p + "/audience/search", "audience.search", self._audience_search, read, "search"
        )
        add(
            "POST",
            p + "/audience/scroll",
            "audience.scroll",
            self._audience_scroll,
            listing,
            "scroll",
        )
        add(
            "POST",
            p + "/audience/segment/{segmentUid}/scroll",
            "audience.segment_scroll",
            self._segment_scroll,
            listing,
            "scroll",
        )
        add("POST", p + "/audience/stream/{action}", "audience.stream", self._stream, write)
        add("GET", p + "/audience/{audienceId}", "audience.get", self._audience_get, read)
        add(
            "GET",
            p + "/audience/{audienceId}/events",
            "audience.events",
            self._audience_events,
            events,
        )
        add("POST", p + "/event/search", "events.search", self._event_search, events, "search")
        add("POST", p + "/event/scroll", "events.scroll", self._event_scroll, events, "scroll")
        add("GET", ds + "/stream", "datasource.info", self._stream_info)
        add(
            "GET",
            ds + "/stream/specs/attributes",
            "datasource.specs.attributes",
            self._ds_specs_attributes,
        )
        add("GET", ds + "/stream/specs/events", "datasource.specs.events", self._ds_specs_events)
        add(
            "GET",
            ds + "/stream/specs/event-parameters",
            "datasource.specs.event_parameters",
            self._ds_specs_no_type,
        )
        add(
            "GET",
            ds + "/stream/specs/event-parameters/{eventType}",
            "datasource.specs.event_parameters",
            self._ds_specs_params,
        )
        add("GET", ds + "/stats", "datasource.stats", self._stats)
        add(
            "GET", ds + "/stream/contacts/{userId}", "datasource.contacts.get", self._ds_contact_get
        )
        add(
            "DELETE",
            ds + "/stream/contacts/{userId}",
            "datasource.contacts.delete",
            self._ds_contact_delete,
        )
        add("POST", ds + "/stream/contacts", "datasource.contacts.upsert", self._ingest_contacts)
        add("POST", ds + "/stream/events", "datasource.events.add", self._ingest_events)
        add("GET", p + "/segment", "segments.list", self._segments)
        add("GET", p + "/segment/dynamic", "segments.dynamic", self._segments_dynamic)
        add("GET", p + "/segment/{segmentUid}", "segments.get", self._segment_get)
        add("GET", p + "/campaign", "campaigns.list", self._campaigns, campaign)
        add("GET", p + "/campaign/{campaignId}", "campaigns.get", self._campaign_get, campaign)
        add("GET", p + "/automation", "automations.list", self._automations, automation)
        add(
            "GET",
            p + "/automation/{automationId}",
            "automations.get",
            self._automation_get,
            automation,
        )
        add("GET", p + "/channel/sms/sender", "sms.senders", self._senders)
        add("GET", sms + "/direct", "sms.list_direct", self._sms_direct, sms_read)
        add("GET", sms + "/direct/{utmTerm}", "sms.list_direct", self._sms_direct, sms_read)
        add(
            "GET",
            sms + "/audience/{audienceIdOrPhone}",
            "sms.list_by_audience",
            self._sms_by_audience,
            sms_read,
        )
        add("GET", sms + "/send/{sendId}", "sms.list_by_send", self._sms_by_send, sms_read)
        for suffix in ("", "/{optionIdx}"):
            add(
                "GET",
                sms + "/campaign/{campaignId}" + suffix,
                "sms.list_by_campaign",
                self._sms_by_campaign,
                sms_read,
            )
        for suffix in ("", "/{messageIdx}"):
            add(
                "GET",
                sms + "/automation/{automationId}" + suffix,
                "sms.list_by_automation",
                self._sms_by_automation,
                sms_read,
            )
        add("GET", sms + "/{smsId}", "sms.get", self._sms_get, sms_read)
        for suffix in ("", "/{utmTerm}"):
            add(
                "POST",
                sms + "/direct/{senderId}/{audienceIdOrPhone}" + suffix,
                "sms.send_direct",
                self._sms_send,
                sms_write,
            )
        return operations

    def authorize(self, call: Call) -> ApiError | None:
        """Resolve the project and datasource of the call; the error to answer, if any."""
        operation, token, match = call.operation, call.token, call.request.match_info
        if operation.level == "org":
            return ApiError(404, "Not found") if token.kind != "product" else None
        project_uid = match["project"]
        project = self.state.projects.get(project_uid)
        if project is None or project.organization != token.organization:
            return ApiError(404, "Project not found")
        if token.project is not None and token.project != project_uid:
            return ApiError(404, "Project not found")
        call.project = project
        if operation.level == "datasource":
            datasource = project.resolve_datasource(match["datasource"])
            if datasource is None:
                return ApiError(404, "Datasource not found")
            call.datasource = datasource
            if token.kind == "datasource" and datasource.id != token.datasource:
                return ApiError(404, "Datasource not found")
        elif token.kind == "datasource":
            return ApiError(404, "Not found")
        if operation.scope is not None and operation.scope not in token.scopes:
            return ApiError(
                403,
                f"This token lacks the scope {operation.scope} required by this operation",
                requiredScope=operation.scope,
            )
        return None

    def bucket_key(self, call: Call) -> tuple[Any, ...]:
        """The rate-limit bucket: (organization, class) on the Product API, (organization,
        project, datasource, endpoint) on datasource paths."""
        operation = call.operation
        if operation.rate_class != "datasource":
            return (call.token.organization, operation.rate_class)
        match = call.request.match_info
        datasource = call.datasource.id if call.datasource else match.get("datasource")
        return (call.token.organization, match.get("project"), datasource, operation.endpoint)

    # --- organization, project, specs ------------------------------------------------------

    def _organization(self, call: Call) -> web.Response:
        token = call.token
        organization = self.state.organizations[token.organization]
        projects = [
            project.to_wire()
            for project in self.state.iter_projects(organization.uid)
            if token.project is None or token.project == project.uid
        ]
        entity: dict[str, Any] = {
            "organization": {"uid": organization.uid, "name": organization.name},
            "projects": projects,
            "token": {
                "kind": token.kind,
                "scopes": sorted(token.scopes),
                "project": token.project,
            },
        }
        if "ACCOUNT_READ" in token.scopes:
            entity["account"] = {"funds": organization.funds, "currency": "EUR"}
        return _entity(entity)

    def _project(self, call: Call) -> web.Response:
        return _entity({**call.project_.to_wire(), "organization": call.project_.organization})

    def _specs_attributes(self, call: Call) -> web.Response:
        return _entities(list(call.project_.attribute_specs.values()))

    def _specs_events(self, call: Call) -> web.Response:
        return _entities(list(call.project_.event_types.values()))

    def _event_parameter_specs(self, call: Call) -> list[dict[str, Any]]:
        found = call.project_.event_parameters.get(call.match["eventType"])
        if found is None:
            raise ApiError(404, "Unknown event type")
        return found

    def _specs_params(self, call: Call) -> web.Response:
        return _entities(self._event_parameter_specs(call))

    # --- audience -------------------------------------------------------------------------

    def _contact_or_404(self, project: Project, audience_id: str) -> dict[str, Any]:
        contact = project.contacts.get(audience_id)
        if contact is None:
            raise ApiError(404, "Audience contact not found")
        return contact

    def _audience_get(self, call: Call) -> web.Response:
        return _entity(
            call.contact_out(self._contact_or_404(call.project_, call.match["audienceId"]))
        )

    def _by_user(self, call: Call) -> web.Response:
        contact = call.project_.find_contact(call.match["userId"])
        if contact is None:
            raise ApiError(404, "Audience contact not found")
        return _entity(call.contact_out(contact))

    def _by_phone(self, call: Call) -> web.Response:
        found = call.project_.search_phone(call.match["phone"])
        return _entities([call.contact_out(contact) for contact in found])

    def _by_email(self, call: Call) -> web.Response:
        found = call.project_.search_email(call.match["email"])
        return _entities([call.contact_out(contact) for contact in found])

    def _audience_events(self, call: Call) -> web.Response:
        project = call.project_
        contact = self._contact_or_404(project, call.match["audienceId"])
        latest = sorted(project.events_of(contact), key=lambda e: e.timestamp, reverse=True)
        return _entities([project.event_to_wire(event) for event in latest[:100]])

    def _audience_matches(
        self, call: Call, query: _SearchQuery, segment: Segment | None = None
    ) -> list[dict[str, Any]]:
        project = call.project_
        context = project.filter_context(call.now)
        contacts: Iterable[dict[str, Any]] = project.contacts.values()
        if segment is not None:
            contacts = [c for c in contacts if context.segment_contains(segment.uid, c)]
        found = [contact for contact in contacts if query.predicate(contact, context)]
        if query.sort_field:
            found = sort_entities(found, [(query.sort_field, not query.sort_asc)])
        return found

    def _audience_search(self, call: Call) -> web.Response:
        query = _parse_search(call.body, "audience", max_limit=_MAX_SEARCH)
        found = self._audience_matches(call, query)
        page = found[query.offset : query.offset + query.limit]
        return _entities([call.contact_out(contact) for contact in page])

    def _audience_scroll(self, call: Call) -> web.Response:
        return self._scroll(call, "audience", None)

    def _segment_scroll(self, call: Call) -> web.Response:
        segment = call.project_.segments.get(call.match["segmentUid"])
        if segment is None:
            raise ApiError(404, "Segment not found")
        return self._scroll(call, "segment", segment)

    def _event_scroll(self, call: Call) -> web.Response:
        return self._scroll(call, "event", None)

    def _scroll(self, call: Call, kind: str, segment: Segment | None) -> web.Response:
        project = call.project_
        body = call.body if isinstance(call.body, Mapping) else {}
        limit = _int_field(body, "limit", default=_MAX_SCROLL, maximum=_MAX_SCROLL)
        cursor = body.get("cursor")
        segment_uid = segment.uid if segment is not None else None
        if cursor is None:
            query = _parse_search(call.body, "event" if kind == "event" else "audience", None)
            entries: list[Any]
            if kind == "event":
                entries = self._event_matches(call, query)
            else:
                entries = [c["id"] for c in self._audience_matches(call, query, segment)]
            scroll_id = self._open_scroll(_Scroll(kind, project.uid, segment_uid, entries, 0.0))
            offset = 0
        else:
            scroll_id, offset = _decode_cursor(cursor)
            scroll = self._scrolls.get(scroll_id)
            if (
                scroll is None
                or scroll.expires_at < time.monotonic()
                or (scroll.kind, scroll.project, scroll.segment) != (kind, project.uid, segment_uid)
            ):
                raise ApiError(400, "Invalid or expired cursor")
        scroll = self._scrolls[scroll_id]
        scroll.expires_at = time.monotonic() + self.cursor_ttl
        page: list[dict[str, Any]] = []
        end = offset
        # Contacts deleted since the snapshot are skipped; the page is filled from later
        # entries so a non-final page is never empty (clients stop on an empty page).
        while len(page) < limit and end < len(scroll.entries):
            entry = scroll.entries[end]
            end += 1
            if kind == "event":
                page.append(project.event_to_wire(entry))
            elif entry in project.contacts:
                page.append(call.contact_out(project.contacts[entry]))
        next_cursor = _encode_cursor(scroll_id, end) if end < len(scroll.entries) else None
        return _json({"entities": page, "cursor": next_cursor})

    def _open_scroll(self, scroll: _Scroll) -> str:
        now = time.monotonic()
        for key in [key for key, old in self._scrolls.items() if old.expires_at < now]:
            del self._scrolls[key]
        scroll_id = base64.urlsafe_b64encode(secrets.token_bytes(12)).decode().rstrip("=")
        scroll.expires_at = now + self.cursor_ttl
        self._scrolls[scroll_id] = scroll
        return scroll_id

    def expire_cursors(self) -> None:
        """Invalidate every scroll cursor (their next use answers 400)."""
        self._scrolls.clear()

    def _stream(self, call: Call) -> web.Response:
        action = call.match["action"]
        if action not in _STREAM_ACTIONS:
            raise ApiError(404, "Not found")
        body = call.body if isinstance(call.body, Mapping) else {}
        audience_id = body.get("audienceId")
        if not isinstance(audience_id, str) or not audience_id:
            raise ApiError(400, "audienceId is required")
        project = call.project_
        contact = self._contact_or_404(project, audience_id)
        if action == "delete-contact":
            project.delete_contact(audience_id)
            result: dict[str, Any] = {"id": audience_id, "deleted": True}
        else:
            channel, _, verb = action.partition("-")
            contact[f"_{channel}_subscribed"] = verb == "subscribe"
            if verb == "unsubscribe":
                for key in ("reason", "utm-source", "utm-medium", "utm-campaign"):
                    if key in body:
                        contact[f"_{channel}_unsubscribe_{key.replace('-', '_')}"] = body[key]
            contact["_date_updated"] = format_timestamp(call.now)
            result = call.contact_out(contact)
        return _entity(result, 200 if call.flag("_sync") else 202)

    # --- events ---------------------------------------------------------------------------

    def _event_matches(self, call: Call, query: _SearchQuery) -> list[StoredEvent]:
        project = call.project_
        context = project.filter_context(call.now)
        found = [event for event in project.events if query.predicate(event, context)]
        if query.sort_field:
            field = query.sort_field
            getter: Callable[[StoredEvent], Any] = (
                (lambda event: event.timestamp)
                if field == "created-at"
                else (lambda event: event.field(field))
            )
            present = [event for event in found if getter(event) is not None]
            missing = [event for event in found if getter(event) is None]
            present.sort(key=lambda event: _sortable(getter(event)), reverse=not query.sort_asc)
            found = present + missing
        return found

    def _event_search(self, call: Call) -> web.Response:
        query = _parse_search(call.body, "event", max_limit=_MAX_SEARCH)
        found = self._event_matches(call, query)[query.offset : query.offset + query.limit]
        return _entities([call.project_.event_to_wire(event) for event in found])

    # --- datasources ----------------------------------------------------------------------

    def _stream_info(self, call: Call) -> web.Response:
        project, datasource = call.project_, call.datasource_
        organization = self.state.organizations[project.organization]
        return _json(
            {
                "organization": {"uid": organization.uid, "name": organization.name},
                "project": project.to_wire(),
                "datasource": {
                    "id": datasource.id,
                    "name": datasource.name,
                    "type": datasource.kind,
                },
                "stream": {"id": datasource.stream_id, "status": "active"},
                "usage": {
                    "contacts": len(datasource.user_ids),
                    "events": datasource.events_stored,
                },
            }
        )

    def _ds_specs_attributes(self, call: Call) -> web.Response:
        return _json({"specs": list(call.project_.attribute_specs.values())})

    def _ds_specs_events(self, call: Call) -> web.Response:
        return _json({"specs": list(call.project_.event_types.values())})

    def _ds_specs_no_type(self, call: Call) -> web.Response:
        raise ApiError(400, "An event type is required: /stream/specs/event-parameters/{type}")

    def _ds_specs_params(self, call: Call) -> web.Response:
        return _json({"specs": self._event_parameter_specs(call)})

    def _stats(self, call: Call) -> web.Response:
        datasource = call.datasource_
        return _entity(
            {
                "datasourceId": datasource.id,
                "contacts": len(datasource.user_ids),
                "contactsUpserted": datasource.contacts_upserted,
                "events": datasource.events_stored,
                "lastContactAt": datasource.last_contact_at,
                "lastEventAt": datasource.last_event_at,
            }
        )

    def _ds_contact(self, call: Call) -> tuple[Project, dict[str, Any]]:
        project, user_id = call.project_, call.match["userId"]
        audience_id = project.by_user.get(user_id)
        if audience_id is None or user_id not in call.datasource_.user_ids:
            raise ApiError(404, "Contact not found in this datasource")
        return project, project.contacts[audience_id]

    def _ds_contact_get(self, call: Call) -> web.Response:
        return _entity(dict(self._ds_contact(call)[1]))

    def _ds_contact_delete(self, call: Call) -> web.Response:
        project, contact = self._ds_contact(call)
        project.delete_contact(contact["id"])
        return web.Response(status=204)

    def _ingest_contacts(self, call: Call) -> web.Response:
        call.flag("_sync")  # accepted and ignored, but only in its bare form
        items = _batch_items(call.body)
        outcomes = call.project_.upsert_contacts(
            call.datasource_,
            items,
            now_text=format_timestamp(call.now),
            dry_run=call.flag("_dryRun"),
            validator=self.validator,
        )
        return self._batch_response(call, outcomes, ("_user_id",))

    def _ingest_events(self, call: Call) -> web.Response:
        call.flag("_sync")  # accepted and ignored, but only in its bare form
        items = _batch_items(call.body)
        outcomes = call.project_.add_events(
            call.datasource_,
            items,
            now=call.now,
            now_text=format_timestamp(call.now),
            dry_run=call.flag("_dryRun"),
            validator=self.validator,
        )
        return self._batch_response(call, outcomes, ("_user_id", "_event_id"))

    def _batch_response(
        self, call: Call, outcomes: list[ItemOutcome], id_keys: tuple[str, ...]
    ) -> web.Response:
        successful = sum(1 for outcome in outcomes if outcome.ok)
        failed = len(outcomes) - successful
        status = 202 if successful else 422
        if self.batch_shape == "documented":
            items = []
            for outcome in outcomes:
                entry: dict[str, Any] = {"status": "success" if outcome.ok else "error"}
                for key in id_keys:
                    entry[key] = outcome.item.get(key)
                if outcome.errors is not None:
                    entry["errors"] = outcome.errors
                items.append(entry)
            payload: dict[str, Any] = {
                "entity": {"successful": successful, "failed": failed, "items": items}
            }
        else:
            payload = {
                "success": failed == 0,
                "entitiesSuccess": successful,
                "streamId": call.datasource_.stream_id,
                "projectId": call.project_.uid,
                "datasourceId": call.datasource_.id,
                "errors": [
                    {"position": o.position, "item": o.item, "errors": o.errors}
                    for o in outcomes
                    if not o.ok
                ],
                "accepted": [{"position": o.position, "item": o.item} for o in outcomes if o.ok],
            }
        return _json(payload, status)

    # --- segments, campaigns, automations, senders ------------------------------------------

    def _list(self, call: Call, entities: Iterable[Mapping[str, Any]]) -> web.Response:
        try:
            query = parse_list_query(call.query.items())
        except QueryFilterError as exc:
            raise ApiError(400, "Invalid query filter", detail=str(exc)) from None
        return _entities(apply_list_query(entities, query))

    def _segments(self, call: Call) -> web.Response:
        return self._list(call, [s.to_wire() for s in call.project_.segments.values()])

    def _segments_dynamic(self, call: Call) -> web.Response:
        segments = call.project_.segments.values()
        return self._list(
            call, [s.to_wire() for s in segments if s.dynamic and not s.requires_parameter]
        )

    def _segment_get(self, call: Call) -> web.Response:
        segment = call.project_.segments.get(call.match["segmentUid"])
        if segment is None:
            raise ApiError(404, "Segment not found")
        return _entity(segment.to_wire(call.query.get("parameter")))

    def _campaigns(self, call: Call) -> web.Response:
        return self._list(call, call.project_.campaigns.values())

    def _campaign_get(self, call: Call) -> web.Response:
        return _entity(_get_or_404(call.project_.campaigns, call.match["campaignId"], "Campaign"))

    def _automations(self, call: Call) -> web.Response:
        return self._list(call, call.project_.automations.values())

    def _automation_get(self, call: Call) -> web.Response:
        found = _get_or_404(call.project_.automations, call.match["automationId"], "Automation")
        return _entity(found)

    def _senders(self, call: Call) -> web.Response:
        return self._list(call, call.project_.senders.values())

    # --- SMS ------------------------------------------------------------------------------

    def _sms_get(self, call: Call) -> web.Response:
        return _entity(_get_or_404(call.project_.sms, call.match["smsId"], "SMS"))

    def _sms_direct(self, call: Call) -> web.Response:
        term = call.match.get("utmTerm")
        if term is not None and len(term) > _MAX_UTM_TERM:
            raise ApiError(400, f"utmTerm must be at most {_MAX_UTM_TERM} characters")
        messages = [
            sms
            for sms in call.project_.sms.values()
            if sms.get("direct") and (term is None or sms.get("utmTerm") == term)
        ]
        return self._list(call, messages)

    def _sms_by_audience(self, call: Call) -> web.Response:
        project, target = call.project_, call.match["audienceIdOrPhone"]
        if target in project.contacts:
            messages = [sms for sms in project.sms.values() if sms.get("audienceId") == target]
        elif target.startswith("+") or target.startswith("00"):
            phone = normalize_phone(target)
            messages = [sms for sms in project.sms.values() if sms.get("to") == phone]
        elif normalize_phone(target).isdigit():
            raise ApiError(400, "Phone numbers need the international prefix, e.g. +34...")
        else:
            raise ApiError(404, "Audience contact not found")
        return self._list(call, messages)

    def _sms_by_send(self, call: Call) -> web.Response:
        send_id = call.match["sendId"]
        messages = [sms for sms in call.project_.sms.values() if sms.get("sendId") == send_id]
        if not messages:
            raise ApiError(404, "Send not found")
        return self._list(call, messages)

    def _sms_by_campaign(self, call: Call) -> web.Response:
        project = call.project_
        campaign = _get_or_404(project.campaigns, call.match["campaignId"], "Campaign")
        index = _index(call.match.get("optionIdx"), "optionIdx")
        messages = [
            sms
            for sms in project.sms.values()
            if str(sms.get("campaignId")) == str(campaign["id"]) and sms.get("optionIdx") == index
        ]
        return self._list(call, messages)

    def _sms_by_automation(self, call: Call) -> web.Response:
        project = call.project_
        automation = _get_or_404(project.automations, call.match["automationId"], "Automation")
        index = _index(call.match.get("messageIdx"), "messageIdx")
        messages = [
            sms
            for sms in project.sms.values()
            if str(sms.get("automationId")) == str(automation["id"])
            and sms.get("messageIdx") == index
        ]
        return self._list(call, messages)

    def _sms_send(self, call: Call) -> web.Response:
        project = call.project_
        sender = project.resolve_sender(call.match["senderId"])
        if sender is None:
            raise ApiError(404, "Sender not found")
        if sender.get("status") != "active":
            raise ApiError(400, "Sender is not active")
        term = call.match.get("utmTerm")
        if term is not None and len(term) > _MAX_UTM_TERM:
            raise ApiError(400, f"utmTerm must be at most {_MAX_UTM_TERM} characters")
        body = call.body if isinstance(call.body, Mapping) else {}
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "text should not be blank")
        allow_unicode = body.get("allowUnicode", False)
        if not isinstance(allow_unicode, bool):
            raise ApiError(400, "allowUnicode must be a boolean")
        target = call.match["audienceIdOrPhone"]
        contact = project.contacts.get(target)
        audience_id: str | None
        if contact is not None:
            phone = contact.get("_phone_mobile")
            if not isinstance(phone, str) or not phone:
                raise ApiError(400, "The audience contact has no mobile phone")
            phone, audience_id = normalize_phone(phone), target
        elif target.startswith("+") or target.startswith("00"):
            phone = normalize_phone(target)
            if not 8 <= len(phone) <= 16:
                raise ApiError(400, "Invalid phone number")
            found = project.search_phone(phone, limit=1)
            audience_id = found[0]["id"] if found else None
        elif normalize_phone(target).isdigit():
            raise ApiError(400, "Phone numbers need the international prefix, e.g. +34...")
        else:
            raise ApiError(404, "Audience contact not found")
        sms = sms_entity(
            to=phone,
            sender=sender,
            text=text,
            allow_unicode=allow_unicode,
            utm_term=term,
            audience_id=audience_id,
            now_text=format_timestamp(call.now),
            status="enqueued",
            send_id=None,
        )
        project.sms[sms["id"]] = sms
        return _entity(dict(sms), 201)


# --- helpers ----------------------------------------------------------------------------

_STREAM_ACTIONS = frozenset(
    {"sms-subscribe", "sms-unsubscribe", "email-subscribe", "email-unsubscribe", "delete-contact"}
)


async def _dispatched_by_middleware(request: web.Request) -> web.StreamResponse:
    # Every route's operation runs inside FakeInstasent._middleware, never here.
    raise web.HTTPInternalServerError()


def _encode_cursor(scroll_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{scroll_id}:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: Any) -> tuple[str, int]:
    if not isinstance(cursor, str) or not cursor:
        raise ApiError(400, "Invalid or expired cursor")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        scroll_id, _, offset = text.rpartition(":")
        return scroll_id, int(offset)
    except ValueError:
        raise ApiError(400, "Invalid or expired cursor") from None


def _get_or_404(table: Mapping[str, dict[str, Any]], key: str, what: str) -> dict[str, Any]:
    found = table.get(key)
    if found is None:
        raise ApiError(404, f"{what} not found")
    return found


def _index(raw: str | None, name: str) -> int:
    if raw is None:
        return 0
    if not raw.isdigit():
        raise ApiError(400, f"{name} must be a non-negative integer")
    return int(raw)


def _int_field(body: Mapping[str, Any], key: str, *, default: int, maximum: int | None) -> int:
    raw = body.get(key)
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < (1 if key == "limit" else 0):
        raise ApiError(
            400, f"{key} must be a {'positive' if key == 'limit' else 'non-negative'} integer"
        )
    if maximum is not None and raw > maximum:
        raise ApiError(400, f"{key} must be at most {maximum}")
    return raw


def _sortable(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))


@attrs.frozen(slots=True)
class _SearchQuery:
    predicate: Predicate
    limit: int
    offset: int
    sort_field: str | None
    sort_asc: bool


def _parse_search(
    body: Any, target: Literal["audience", "event"], max_limit: int | None
) -> _SearchQuery:
    """The body of a search or scroll call (the audience or event query filter).

    No filter is sent as no ``root`` (as Instasent's own clients do); an empty
    top-level ``and`` group is refused so that a client sending it is seen.
    """
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        raise ApiError(400, "Invalid query filter")
    if body.get("root") == {"type": "group", "join": "and", "children": []}:
        raise ApiError(
            400, "Invalid query filter", detail="an empty root group: leave root out instead"
        )
    try:
        predicate = compile_filter(body.get("root"), target=target)
    except QueryFilterError as exc:
        raise ApiError(400, "Invalid query filter", detail=str(exc)) from None
    limit = _int_field(body, "limit", default=max_limit or _MAX_SCROLL, maximum=max_limit)
    offset = _int_field(body, "offset", default=0, maximum=None)
    sort_field = body.get("sortField")
    sort_asc = body.get("sortAsc", True)
    if sort_field is not None and not isinstance(sort_field, str):
        raise ApiError(400, "sortField must be a string")
    if not isinstance(sort_asc, bool):
        raise ApiError(400, "sortAsc must be a boolean")
    return _SearchQuery(predicate, limit, offset, sort_field, sort_asc)


def _batch_items(body: Any) -> list[Any]:
    if body is INVALID_JSON or not isinstance(body, list):
        raise ApiError(400, "Body should be an array")
    if not body:
        raise ApiError(400, "Body should contain at least one item")
    if len(body) > _MAX_BATCH:
        raise ApiError(400, f"Body should contain at most {_MAX_BATCH} items, got {len(body)}")
    if not all(isinstance(item, dict) for item in body):
        raise ApiError(400, "Every item of the body should be an object")
    return body


_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


def _encoding_and_parts(text: str, allow_unicode: bool) -> tuple[str, int]:
    """GSM-7 unless Unicode is allowed and needed; parts of 160/153 or 70/67 units."""
    unicode_needed = any(c not in _GSM7 and c not in _GSM7_EXTENDED for c in text)
    if unicode_needed and allow_unicode:
        units, single, multi, encoding = len(text), 70, 67, "UCS-2"
    else:
        units = len(text) + sum(1 for c in text if c in _GSM7_EXTENDED)
        single, multi, encoding = 160, 153, "GSM-7"
    return encoding, 1 if units <= single else math.ceil(units / multi)


def sms_entity(
    *,
    to: str,
    sender: Mapping[str, Any] | None,
    text: str,
    allow_unicode: bool,
    utm_term: str | None,
    audience_id: str | None,
    now_text: str,
    status: str,
    send_id: str | None,
) -> dict[str, Any]:
    encoding, parts = _encoding_and_parts(text, allow_unicode)
    sms: dict[str, Any] = {
        "id": f"sms_{secrets.token_hex(8)}",
        "sendId": send_id or f"send_{secrets.token_hex(8)}",
        "to": to,
        "from": sender.get("from") if sender else None,
        "senderId": sender.get("id") if sender else None,
        "text": text,
        "allowUnicode": allow_unicode,
        "encoding": encoding,
        "parts": parts,
        "status": status,
        "utmTerm": utm_term,
        "createdAt": now_text,
        "direct": True,
    }
    if audience_id is not None:
        sms["audienceId"] = audience_id
    return sms
