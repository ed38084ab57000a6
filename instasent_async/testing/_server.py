"""``FakeInstasent``: an in-memory Instasent Product + Ingest API on ``aiohttp.web``.

One middleware runs every request through the same pipeline:

1. global ``latency``;
2. authentication (401; a 401 consumes no rate-limit budget: no organization is known);
3. rate limiting on the organization's bucket (429), then visibility (404) and scope (403);
4. fault injection (fail, drop, delay, malformed; before or after processing);
5. the operation's handler, then the ``X-RateLimit-*`` and ``Date`` headers.

Handlers are synchronous functions of a :class:`_Call`, so every request mutates the state
atomically with respect to the others.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

import attrs
import orjson
from aiohttp import web
from multidict import MultiMapping

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
    ItemValidator,
    Project,
    Segment,
    State,
    StoredEvent,
    Token,
    compile_segment_query,
    fingerprint,
    format_timestamp,
    normalize_phone,
)

__all__ = ["FakeInstasent", "RecordedRequest"]

RateClass = Literal["default", "search", "scroll", "datasource"]
BatchShape = Literal["documented", "activepieces"]
_RATE_CLASSES: tuple[RateClass, ...] = ("default", "search", "scroll", "datasource")
#: ``X-RateLimit-Limit`` sent when rate limiting is off.
UNLIMITED = 1_000_000_000
_MAX_BATCH = 100
_MAX_SEARCH = 50
_MAX_SCROLL = 100
_MAX_UTM_TERM = 40
_INVALID_JSON: Any = object()
_PRIVATE_FIELDS = ("_email", "_phone_mobile")
_PRIVACY_SCOPES = frozenset({"PROJECT_AUDIENCE_DATA_BASIC", "PROJECT_AUDIENCE_DATA_FULL"})


@attrs.frozen(slots=True)
class RecordedRequest:
    """One request the fake received.

    ``token_fingerprint`` identifies the bearer token (a hash prefix, never the token);
    ``json`` is the parsed body (None when absent or not JSON); ``status`` is the status
    answered, or None when the connection was dropped without a response; ``time`` is the
    server clock (offset included) when the request arrived.
    """

    method: str
    path: str
    query: dict[str, str]
    json: Any
    token_fingerprint: str | None
    status: int | None
    time: float


class _ApiError(Exception):
    """Answered as ``{"message": ...}`` (or an empty body when ``message`` is None)."""

    def __init__(self, status: int, message: str | None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


@attrs.frozen(slots=True)
class _Operation:
    name: str
    level: Literal["org", "project", "datasource"]
    scope: str | None
    rate_class: RateClass
    endpoint: str
    handler: Callable[[_Call], web.StreamResponse]


@attrs.define(slots=True)
class _Call:
    request: web.Request
    operation: _Operation
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
        """A valueless query flag such as ``?_sync`` (``0``/``false`` turn it off)."""
        value = self.request.query.get(name)
        return value is not None and value.lower() not in ("0", "false", "no")

    @property
    def project_(self) -> Project:
        assert self.project is not None
        return self.project

    @property
    def datasource_(self) -> Datasource:
        assert self.datasource is not None
        return self.datasource

    def contact_out(self, contact: Mapping[str, Any]) -> dict[str, Any]:
        """A contact as this token may see it: phone and email need a privacy scope."""
        if self.token.kind == "product" and not (self.token.scopes & _PRIVACY_SCOPES):
            return {k: v for k, v in contact.items() if k not in _PRIVATE_FIELDS}
        return dict(contact)


@attrs.define(slots=True)
class _RateConfig:
    limit: int | None
    window: float


@attrs.define(slots=True)
class _Fault:
    kind: Literal["fail", "drop", "delay", "malformed"]
    remaining: int
    method: str | None
    path_contains: str | None
    after_processing: bool = False
    status: int = 503
    body: Any = None
    seconds: float = 0.0

    def matches(self, request: web.Request) -> bool:
        return (self.method is None or self.method == request.method) and (
            self.path_contains is None or self.path_contains in request.path
        )


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


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


class FakeInstasent:
    """An in-memory Instasent API server for tests and local development.

    It implements every operation of ``instasent-api.md`` section 6 under ``/v1``: tokens
    with kinds and scopes (401/403/404 as the real API), contact upsert by ``_user_id``,
    event dedup by ``_event_id``, per-item 202/422 batch outcomes, scroll cursors, query
    filters, generic list filters, direct SMS, fixed-window rate limits with
    ``X-RateLimit-*`` headers and 429s, and fault injection. Use it in-process::

        async with FakeInstasent() as fake:
            client = Instasent(fake.product_token, project="proj_demo",
                               base_url=fake.base_url)

    or standalone with ``python -m instasent_async.testing``.

    Args:
        rate_limit: requests per window per bucket; None turns limiting off (the headers
            are still sent, with :data:`UNLIMITED` as the limit).
        window: fixed window length in seconds, aligned to ``floor(now / window) * window``
            on the server clock. ``X-RateLimit-Reset`` is the window end as an integer
            epoch rounded up, so windows shorter than a second lose precision there; the
            non-standard ``X-RateLimit-Reset-Precise`` header carries the exact float.
        batch_shape: 202/422 ingest body: ``"documented"`` (``instasent-api.md`` 4.3 a) or
            ``"activepieces"`` (4.3 b).
        clock_offset: seconds added to the server clock (``Date``, ``X-RateLimit-Reset``,
            window math, relative date filters) to test client clock skew; may be changed
            at any time.
        seed: create organization ``org_demo``, project ``proj_demo`` (id 1), API
            datasources ``ds_demo`` (what ``dsapi`` resolves to) and ``ds_other``, a sender,
            a campaign, an automation, demo specs, and the tokens
            :attr:`product_token` and :attr:`datasource_token`.
        product_token, datasource_token: fixed values for the seeded tokens (random
            when None).
        cursor_ttl: seconds a scroll cursor stays valid after its last use.
    """

    def __init__(
        self,
        *,
        rate_limit: int | None = 600,
        window: float = 60.0,
        batch_shape: BatchShape = "documented",
        clock_offset: float = 0.0,
        seed: bool = True,
        product_token: str | None = None,
        datasource_token: str | None = None,
        cursor_ttl: float = 300.0,
    ) -> None:
        if batch_shape not in ("documented", "activepieces"):
            raise ValueError(f"unknown batch_shape {batch_shape!r}")
        _check_rate(rate_limit, window)
        self.batch_shape: BatchShape = batch_shape
        #: Seconds added to the server clock; may be changed at any time.
        self.clock_offset = clock_offset
        #: Seconds slept before answering every request.
        self.latency = 0.0
        #: Seconds a scroll cursor stays valid after its last use.
        self.cursor_ttl = cursor_ttl
        self._state = State()
        self._rates: dict[str, _RateConfig] = {
            name: _RateConfig(rate_limit, window) for name in _RATE_CLASSES
        }
        self._buckets: dict[tuple[Any, ...], list[float]] = {}
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._scrolls: dict[str, _Scroll] = {}
        self._validator: ItemValidator | None = None
        self._route_ops: dict[web.AbstractRoute, _Operation] = {}
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._date_cache: tuple[int, str] = (-1, "")
        self._app = web.Application(middlewares=[self._middleware])
        self._add_routes()
        self.product_token = ""
        self.datasource_token = ""
        if seed:
            self._seed(product_token, datasource_token)

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def app(self) -> web.Application:
        """The ``aiohttp.web.Application`` (to embed the fake in your own server)."""
        return self._app

    @property
    def base_url(self) -> str:
        """``http://host:port/v1`` once started.

        Raises:
            RuntimeError: the server is not started.
        """
        if self._base_url is None:
            raise RuntimeError("FakeInstasent is not started: await fake.start() first")
        return self._base_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (port 0 picks a free port) and return the base URL.

        Idempotent: a started server returns its current base URL.
        """
        if self._base_url is not None:
            return self._base_url
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        shown_host = f"[{host}]" if ":" in host else host
        self._base_url = f"http://{shown_host}:{bound_port}/v1"
        return self._base_url

    async def close(self) -> None:
        """Stop listening (idempotent). The state is kept; ``start()`` may be called again."""
        runner, self._runner, self._base_url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeInstasent:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        where = self._base_url or "not started"
        return f"<FakeInstasent {where} projects={list(self._state.projects)}>"

    # --- seeding and administration -------------------------------------------------------

    def _seed(self, product_token: str | None, datasource_token: str | None) -> None:
        self._state.add_organization("org_demo", "Demo organization")
        self.add_project("proj_demo", name="Demo project", organization="org_demo")
        self.add_datasource("proj_demo", "ds_demo", name="Demo API datasource")
        self.add_datasource("proj_demo", "ds_other", name="Other API datasource")
        self.product_token = self.add_token(kind="product", token=product_token)
        self.datasource_token = self.add_token(
            kind="datasource", project="proj_demo", datasource="ds_demo", token=datasource_token
        )
        for uid, label, data_type, multivalue in (
            ("_user_id", "User id", "string", 1),
            ("_email", "Email", "string", 1),
            ("_phone_mobile", "Mobile phone", "string", 1),
            ("_first_name", "First name", "string", 1),
            ("_last_name", "Last name", "string", 1),
            ("_client_tags", "Tags", "string", 20),
            ("plan", "Plan", "string", 1),
        ):
            self.add_attribute_spec(
                "proj_demo",
                uid,
                display_label=label,
                data_type=data_type,
                multivalue=multivalue,
                required_in_webhook=uid == "_user_id",
            )
        self.add_event_type(
            "proj_demo",
            "ecommerce_order_create",
            name="Order created",
            category="ecommerce",
            parameters=[
                {"parameter": "order-id", "title": "Order id", "dataType": "string"},
                {"parameter": "order-euro-amount", "title": "Amount", "dataType": "number"},
            ],
        )
        self.add_event_type(
            "proj_demo",
            "page_view",
            name="Page view",
            category="web",
            parameters=[{"parameter": "url", "title": "URL", "dataType": "string"}],
        )
        self.add_event_type(
            "proj_demo",
            "update",
            name="Contact update",
            category="contact",
            parameters=[{"parameter": "source", "title": "Source", "dataType": "string"}],
        )
        self.add_sender("proj_demo", "snd_demo", "Instasent", default=True)
        self.add_campaign("proj_demo", "cmp_demo", "Welcome campaign", status="sent")
        self.add_automation("proj_demo", "aut_demo", "Welcome automation", status="active")

    def add_organization(self, uid: str, name: str | None = None) -> None:
        """Create an organization (projects and tokens of one organization share budgets)."""
        self._state.add_organization(uid, name)

    def add_project(
        self, uid: str, name: str | None = None, *, organization: str = "org_demo"
    ) -> None:
        """Create a project (its organization is created if needed).

        Raises:
            ValueError: the project exists already.
        """
        self._state.add_project(uid, name, organization)

    def add_datasource(
        self, project_uid: str, datasource_id: str, *, kind: str = "api", name: str | None = None
    ) -> None:
        """Create a datasource; the first ``kind="api"`` one is what ``dsapi`` resolves to.

        Raises:
            KeyError: unknown project.
            ValueError: the datasource exists already.
        """
        self._state.add_datasource(project_uid, datasource_id, kind, name)

    def add_token(
        self,
        *,
        kind: Literal["product", "datasource"],
        scopes: Iterable[str] | None = None,
        project: str | None = None,
        datasource: str | None = None,
        token: str | None = None,
        organization: str | None = None,
    ) -> str:
        """Issue a token and return its value (random unless ``token`` is given).

        A product token with ``project=None`` is organization-level (every project of
        ``organization``, by default the first organization); with a project it reaches
        only that project. ``scopes=None`` grants every scope. A datasource token needs
        ``project`` and ``datasource`` and reaches only that datasource's stream paths.

        Raises:
            ValueError: inconsistent arguments or a token value already registered.
            KeyError: unknown project.
        """
        record = self._state.add_token(
            kind=kind,
            scopes=scopes,
            organization=organization,
            project=project,
            datasource=datasource,
            token=token,
        )
        return record.value

    def revoke_token(self, token: str) -> None:
        """Revoke a token: its next requests answer 401.

        Raises:
            KeyError: unknown token (the message does not contain it).
        """
        record = self._state.tokens.get(token)
        if record is None:
            raise KeyError(f"unknown token (fingerprint {fingerprint(token)})")
        record.revoked = True

    def add_segment(
        self,
        project_uid: str,
        uid: str,
        name: str,
        *,
        query: Mapping[str, Any] | None = None,
        dynamic: bool = False,
        static_members: Iterable[str] | None = None,
        requires_parameter: bool = False,
        **extra: Any,
    ) -> None:
        """Create a segment whose members are ``static_members`` (audience ids) plus the
        contacts matching ``query`` (an audience query filter, whole document or root).

        Raises:
            KeyError: unknown project.
            ValueError: the query filter is invalid.
        """
        project = self._state.project(project_uid)
        try:
            predicate = compile_segment_query(query)
        except QueryFilterError as exc:
            raise ValueError(f"invalid segment query: {exc}") from None
        project.segments[uid] = Segment(
            uid=uid,
            name=name,
            dynamic=dynamic,
            query=query,
            static_members=set(static_members or ()),
            requires_parameter=requires_parameter,
            extra=dict(extra),
            predicate=predicate,
        )

    def add_campaign(
        self,
        project_uid: str,
        id: str | int,
        title: str,
        status: str = "sent",
        *,
        campaign_at: str | None = None,
        **extra: Any,
    ) -> None:
        """Create a campaign ``{id, title, campaignAt, status, **extra}``.

        Raises:
            KeyError: unknown project.
        """
        project = self._state.project(project_uid)
        when = campaign_at or format_timestamp(self._now())
        project.campaigns[str(id)] = {
            **extra,
            "id": id,
            "title": title,
            "campaignAt": when,
            "status": status,
        }

    def add_automation(
        self, project_uid: str, id: str | int, title: str, status: str = "active", **extra: Any
    ) -> None:
        """Create an automation ``{id, title, status, **extra}``.

        Raises:
            KeyError: unknown project.
        """
        project = self._state.project(project_uid)
        project.automations[str(id)] = {**extra, "id": id, "title": title, "status": status}

    def add_sender(
        self,
        project_uid: str,
        id: str | int,
        from_: str,
        status: str = "active",
        *,
        default: bool = False,
        **extra: Any,
    ) -> None:
        """Create an SMS sender ``{id, from, status}``. The pseudo-id ``default`` resolves
        to the sender created with ``default=True``, else to the first active sender.

        Raises:
            KeyError: unknown project.
        """
        project = self._state.project(project_uid)
        project.senders[str(id)] = {**extra, "id": id, "from": from_, "status": status}
        if default:
            project.default_sender = str(id)

    def add_event_type(
        self,
        project_uid: str,
        uid: str,
        name: str | None = None,
        *,
        category: str = "custom",
        parameters: Iterable[Mapping[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        """Create an event type spec and its parameter specs.

        Raises:
            KeyError: unknown project.
        """
        project = self._state.project(project_uid)
        project.event_types[uid] = {
            "uid": uid,
            "name": name or uid,
            "emoji": None,
            "description": "",
            "category": category,
            "attribution": False,
            "automation": True,
            "icon": None,
            "important": False,
            **extra,
        }
        project.event_parameters[uid] = [
            {
                "parameter": "",
                "title": "",
                "description": "",
                "icon": None,
                "dataType": "string",
                "visualType": None,
                "maxLength": 255,
                "required": False,
                "multiValue": 1,
                **spec,
            }
            for spec in parameters or ()
        ]

    def add_attribute_spec(
        self,
        project_uid: str,
        uid: str,
        *,
        data_type: str = "string",
        display_label: str | None = None,
        multivalue: int = 1,
        required_in_webhook: bool = False,
        read_only: bool = False,
        visible: bool = True,
        description: str = "",
        important: bool = False,
        **extra: Any,
    ) -> None:
        """Create an attribute spec; ``custom`` is true for names without a leading ``_``.

        Raises:
            KeyError: unknown project.
        """
        project = self._state.project(project_uid)
        project.attribute_specs[uid] = {
            "uid": uid,
            "displayLabel": display_label or uid,
            "description": description,
            "dataType": data_type,
            "multivalue": multivalue,
            "requiredInWebhook": required_in_webhook,
            "readOnly": read_only,
            "visible": visible,
            "custom": not uid.startswith("_"),
            "important": important,
            **extra,
        }

    def add_sms(
        self,
        project_uid: str,
        *,
        to: str,
        text: str,
        status: str = "delivered",
        campaign_id: str | int | None = None,
        option_idx: int = 0,
        automation_id: str | int | None = None,
        message_idx: int = 0,
        send_id: str | None = None,
        utm_term: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Store an SMS as if a campaign, an automation or a direct send had sent it
        (direct when neither ``campaign_id`` nor ``automation_id`` is given); return it.

        Raises:
            KeyError: unknown project.
        """
        project = self._state.project(project_uid)
        phone = normalize_phone(to)
        found = project.search_phone(phone, limit=1)
        sender = self._resolve_sender(project, "default")
        sms = _sms_entity(
            to=phone,
            sender=sender,
            text=text,
            allow_unicode=True,
            utm_term=utm_term,
            audience_id=found[0]["id"] if found else None,
            now_text=format_timestamp(self._now()),
            status=status,
            send_id=send_id,
        )
        sms["direct"] = campaign_id is None and automation_id is None
        if campaign_id is not None:
            sms.update(campaignId=campaign_id, optionIdx=option_idx)
        if automation_id is not None:
            sms.update(automationId=automation_id, messageIdx=message_idx)
        sms.update(extra)
        project.sms[sms["id"]] = sms
        return dict(sms)

    def reject_items(self, predicate: ItemValidator | None) -> None:
        """Install an ingest hook called with every contact and event item: the per-field
        errors it returns (or None) reject that item, on top of the built-in validation.
        ``None`` removes the hook."""
        self._validator = predicate

    # --- inspection ---------------------------------------------------------------------

    def contacts(self, project_uid: str = "proj_demo") -> list[dict[str, Any]]:
        """Copies of the audience contacts (``id`` is the audience id), in creation order.

        Raises:
            KeyError: unknown project.
        """
        return [dict(contact) for contact in self._state.project(project_uid).contacts.values()]

    def events(self, project_uid: str = "proj_demo") -> list[dict[str, Any]]:
        """The stored events (read-side objects), in arrival order.

        Raises:
            KeyError: unknown project.
        """
        project = self._state.project(project_uid)
        return [project.event_to_wire(event) for event in project.events]

    def sent_sms(self, project_uid: str = "proj_demo") -> list[dict[str, Any]]:
        """Copies of the stored SMS messages, in creation order.

        Raises:
            KeyError: unknown project.
        """
        return [dict(sms) for sms in self._state.project(project_uid).sms.values()]

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in completion order (a copy)."""
        return list(self._requests)

    @property
    def request_count(self) -> int:
        """How many requests were received so far."""
        return len(self._requests)

    def count(
        self,
        method: str | None = None,
        path_contains: str | None = None,
        status: int | None = None,
    ) -> int:
        """How many recorded requests match all the given filters."""
        wanted = method.upper() if method else None
        return sum(
            1
            for recorded in self._requests
            if (wanted is None or recorded.method == wanted)
            and (path_contains is None or path_contains in recorded.path)
            and (status is None or recorded.status == status)
        )

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._requests.clear()

    # --- fault injection ------------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int = 503,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next ``n`` matching requests with ``status`` WITHOUT processing them.

        ``body`` is JSON-encoded (bytes and str are sent as they are); by default
        ``{"message": "Injected failure"}``. Faults apply to requests that passed
        authentication and rate limiting (they consume budget and carry the headers).
        """
        self._add_fault(_Fault("fail", n, method, path_contains, status=status, body=body))

    def fail_after_processing_next(
        self,
        n: int,
        status: int = 500,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        body: Any = None,
    ) -> None:
        """Process the next ``n`` matching requests (the state changes), then answer
        ``status`` instead of the real response: proves that retries do not duplicate."""
        self._add_fault(
            _Fault(
                "fail", n, method, path_contains, after_processing=True, status=status, body=body
            )
        )

    def drop_next(
        self,
        n: int,
        *,
        after_processing: bool = False,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Close the connection of the next ``n`` matching requests without a response,
        before processing them or (``after_processing=True``) after the state changed.

        Note that aiohttp's client retries an idempotent request (GET, DELETE...) once on
        its own when a reused keep-alive connection is dropped.
        """
        self._add_fault(_Fault("drop", n, method, path_contains, after_processing))

    def delay_next(
        self,
        n: int,
        seconds: float,
        *,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Sleep ``seconds`` before processing the next ``n`` matching requests (a client
        that times out meanwhile still gets its request processed, as on a real server)."""
        self._add_fault(_Fault("delay", n, method, path_contains, seconds=seconds))

    def malformed_next(
        self,
        n: int,
        *,
        after_processing: bool = False,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with a 200 whose body is not JSON
        (declared as ``application/json``), before or after processing them."""
        self._add_fault(_Fault("malformed", n, method, path_contains, after_processing))

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        self._faults.clear()

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining < 0:
            raise ValueError("n must be >= 0")
        if fault.method is not None:
            fault.method = fault.method.upper()
        if fault.remaining:
            self._faults.append(fault)

    def _take_fault(self, request: web.Request, delay: bool) -> _Fault | None:
        for fault in self._faults:
            if (fault.kind == "delay") == delay and fault.matches(request):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # --- rate limits ----------------------------------------------------------------------

    def set_rate_limit(
        self,
        limit: int | None,
        window: float | None = None,
        *,
        rate_class: RateClass | None = None,
    ) -> None:
        """Change the limit (None = unlimited) and optionally the window, of every rate
        class or of one (``"default"``, ``"search"``, ``"scroll"``, ``"datasource"``).

        Raises:
            ValueError: unknown class, or a limit < 1 or window <= 0.
        """
        if rate_class is not None and rate_class not in self._rates:
            raise ValueError(f"unknown rate class {rate_class!r}")
        for name in (rate_class,) if rate_class else _RATE_CLASSES:
            config = self._rates[name]
            new_window = config.window if window is None else window
            _check_rate(limit, new_window)
            config.limit, config.window = limit, new_window

    def reset_rate_limits(self) -> None:
        """Empty every bucket (as if a new window started everywhere)."""
        self._buckets.clear()

    def _now(self) -> float:
        return time.time() + self.clock_offset

    def _consume(
        self, key: tuple[Any, ...], rate_class: str, now: float
    ) -> tuple[bool, dict[str, str]]:
        config = self._rates[rate_class]
        window = config.window
        start = math.floor(now / window) * window
        bucket = self._buckets.get(key)
        if bucket is None or bucket[0] != start:
            bucket = self._buckets[key] = [start, 0]
        limit = UNLIMITED if config.limit is None else config.limit
        allowed = bucket[1] < limit
        if allowed:
            bucket[1] += 1
        return allowed, self._rate_headers(limit, limit - int(bucket[1]), start + window)

    def _rate_headers(self, limit: int, remaining: int, reset: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
            # Rounded to the microsecond first so float noise never adds a second.
            "X-RateLimit-Reset": str(math.ceil(round(reset, 6))),
            "X-RateLimit-Reset-Precise": f"{reset:.6f}",
        }

    def _unbucketed_headers(self, now: float) -> dict[str, str]:
        config = self._rates["default"]
        limit = UNLIMITED if config.limit is None else config.limit
        end = math.floor(now / config.window) * config.window + config.window
        return self._rate_headers(limit, limit, end)

    def _date_header(self, now: float) -> str:
        second = int(now)
        cached_second, text = self._date_cache
        if cached_second != second:
            text = email.utils.formatdate(second, usegmt=True)
            self._date_cache = (second, text)
        return text

    # --- the pipeline -----------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        now = self._now()
        raw = await request.read() if request.can_read_body else b""
        body: Any = None
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = _INVALID_JSON
        token_value = _bearer(request)
        token = self._state.tokens.get(token_value) if token_value else None
        status: int | None = None
        try:
            response = await self._pipeline(request, token, body, now)
            if response is not None:
                status = response.status
                return response
            transport = request.transport
            if transport is not None:
                transport.abort()
            return web.Response(status=499)
        finally:
            self._requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    json=None if body is _INVALID_JSON else body,
                    token_fingerprint=(
                        token.fingerprint
                        if token is not None
                        else (fingerprint(token_value) if token_value else None)
                    ),
                    status=status,
                    time=now,
                )
            )

    async def _pipeline(
        self,
        request: web.Request,
        token: Token | None,
        body: Any,
        now: float,
    ) -> web.StreamResponse | None:
        if token is None or token.revoked:
            message = "Token revoked" if token is not None else "Missing or invalid token"
            denied = _json({"message": message}, 401)
            denied.headers.update(self._unbucketed_headers(now))
            denied.headers["Date"] = self._date_header(now)
            return denied
        operation = self._route_ops.get(request.match_info.route)
        call = None
        error: _ApiError | None
        if operation is None:
            http_error = getattr(request.match_info, "http_exception", None)
            status = getattr(http_error, "status", 404)
            error = _ApiError(status, "Method not allowed" if status == 405 else "Not found")
            bucket: tuple[Any, ...] = (token.organization, "default")
            rate_class = "default"
        else:
            call = _Call(request, operation, token, now, body)
            error = self._authorize(call)
            rate_class = operation.rate_class
            bucket = self._bucket_key(call)
        allowed, headers = self._consume(bucket, rate_class, now)
        response = await self._respond(request, call, error, allowed, rate_class)
        if response is not None:
            response.headers.update(headers)
            response.headers["Date"] = self._date_header(now)
        return response

    async def _respond(
        self,
        request: web.Request,
        call: _Call | None,
        error: _ApiError | None,
        allowed: bool,
        rate_class: str,
    ) -> web.StreamResponse | None:
        if not allowed:
            if rate_class == "datasource":
                return web.Response(status=429)
            return _json({"message": "You exceeded the rate limit"}, 429)
        if error is not None or call is None:
            assert error is not None
            return _error_response(error)
        delay = self._take_fault(request, delay=True) if self._faults else None
        if delay is not None:
            await asyncio.sleep(delay.seconds)
        fault = self._take_fault(request, delay=False) if self._faults else None
        if fault is not None and not fault.after_processing:
            return _fault_response(fault)
        try:
            response = call.operation.handler(call)
        except _ApiError as exc:
            response = _error_response(exc)
        if fault is not None:
            return _fault_response(fault)
        return response

    def _authorize(self, call: _Call) -> _ApiError | None:
        """Resolve the project and datasource of the call; the error to answer, if any."""
        operation, token, match = call.operation, call.token, call.request.match_info
        not_found = _ApiError(404, "Not found")
        if operation.level == "org":
            return not_found if token.kind != "product" else None
        project_uid = match["project"]
        project = self._state.projects.get(project_uid)
        if project is None or project.organization != token.organization:
            return _ApiError(404, "Project not found")
        if token.project is not None and token.project != project_uid:
            return _ApiError(404, "Project not found")
        call.project = project
        if operation.level == "datasource":
            datasource = project.resolve_datasource(match["datasource"])
            if datasource is None:
                return _ApiError(404, "Datasource not found")
            call.datasource = datasource
            if token.kind == "datasource" and datasource.id != token.datasource:
                return _ApiError(404, "Datasource not found")
        elif token.kind == "datasource":
            return not_found
        if operation.scope is not None and operation.scope not in token.scopes:
            return _ApiError(
                403,
                f"This token lacks the scope {operation.scope} required by this operation",
                requiredScope=operation.scope,
            )
        return None

    def _bucket_key(self, call: _Call) -> tuple[Any, ...]:
        operation = call.operation
        if operation.rate_class != "datasource":
            return (call.token.organization, operation.rate_class)
        match = call.request.match_info
        datasource = call.datasource.id if call.datasource else match.get("datasource")
        return (call.token.organization, match.get("project"), datasource, operation.endpoint)

    # --- routing ------------------------------------------------------------------------

    def _add_routes(self) -> None:
        add = self._add_route
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

    def _add_route(
        self,
        method: str,
        path: str,
        name: str,
        function: Callable[[_Call], web.StreamResponse],
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
        operation = _Operation(name, level, scope, rate_class, endpoint, function)
        route = self._app.router.add_route(method, path, _dispatched_by_middleware)
        self._route_ops[route] = operation

    # --- organization, project, specs ------------------------------------------------------

    def _organization(self, call: _Call) -> web.Response:
        token = call.token
        organization = self._state.organizations[token.organization]
        projects = [
            project.to_wire()
            for project in self._state.iter_projects(organization.uid)
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

    def _project(self, call: _Call) -> web.Response:
        return _entity({**call.project_.to_wire(), "organization": call.project_.organization})

    def _specs_attributes(self, call: _Call) -> web.Response:
        return _entities(list(call.project_.attribute_specs.values()))

    def _specs_events(self, call: _Call) -> web.Response:
        return _entities(list(call.project_.event_types.values()))

    def _event_parameter_specs(self, call: _Call) -> list[dict[str, Any]]:
        found = call.project_.event_parameters.get(call.match["eventType"])
        if found is None:
            raise _ApiError(404, "Unknown event type")
        return found

    def _specs_params(self, call: _Call) -> web.Response:
        return _entities(self._event_parameter_specs(call))

    # --- audience -------------------------------------------------------------------------

    def _contact_or_404(self, project: Project, audience_id: str) -> dict[str, Any]:
        contact = project.contacts.get(audience_id)
        if contact is None:
            raise _ApiError(404, "Audience contact not found")
        return contact

    def _audience_get(self, call: _Call) -> web.Response:
        return _entity(
            call.contact_out(self._contact_or_404(call.project_, call.match["audienceId"]))
        )

    def _by_user(self, call: _Call) -> web.Response:
        contact = call.project_.find_contact(call.match["userId"])
        if contact is None:
            raise _ApiError(404, "Audience contact not found")
        return _entity(call.contact_out(contact))

    def _by_phone(self, call: _Call) -> web.Response:
        found = call.project_.search_phone(call.match["phone"])
        return _entities([call.contact_out(contact) for contact in found])

    def _by_email(self, call: _Call) -> web.Response:
        found = call.project_.search_email(call.match["email"])
        return _entities([call.contact_out(contact) for contact in found])

    def _audience_events(self, call: _Call) -> web.Response:
        project = call.project_
        contact = self._contact_or_404(project, call.match["audienceId"])
        latest = sorted(project.events_of(contact), key=lambda e: e.timestamp, reverse=True)
        return _entities([project.event_to_wire(event) for event in latest[:100]])

    def _audience_matches(
        self, call: _Call, query: _SearchQuery, segment: Segment | None = None
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

    def _audience_search(self, call: _Call) -> web.Response:
        query = _parse_search(call.body, "audience", max_limit=_MAX_SEARCH)
        found = self._audience_matches(call, query)
        page = found[query.offset : query.offset + query.limit]
        return _entities([call.contact_out(contact) for contact in page])

    def _audience_scroll(self, call: _Call) -> web.Response:
        return self._scroll(call, "audience", None)

    def _segment_scroll(self, call: _Call) -> web.Response:
        segment = call.project_.segments.get(call.match["segmentUid"])
        if segment is None:
            raise _ApiError(404, "Segment not found")
        return self._scroll(call, "segment", segment)

    def _event_scroll(self, call: _Call) -> web.Response:
        return self._scroll(call, "event", None)

    def _scroll(self, call: _Call, kind: str, segment: Segment | None) -> web.Response:
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
                raise _ApiError(400, "Invalid or expired cursor")
        scroll = self._scrolls[scroll_id]
        scroll.expires_at = time.monotonic() + self.cursor_ttl
        chunk = scroll.entries[offset : offset + limit]
        end = offset + len(chunk)
        next_cursor = _encode_cursor(scroll_id, end) if end < len(scroll.entries) else None
        if kind == "event":
            page = [project.event_to_wire(event) for event in chunk]
        else:
            page = [
                call.contact_out(project.contacts[audience_id])
                for audience_id in chunk
                if audience_id in project.contacts
            ]
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

    def _stream(self, call: _Call) -> web.Response:
        action = call.match["action"]
        if action not in _STREAM_ACTIONS:
            raise _ApiError(404, "Not found")
        body = call.body if isinstance(call.body, Mapping) else {}
        audience_id = body.get("audienceId")
        if not isinstance(audience_id, str) or not audience_id:
            raise _ApiError(400, "audienceId is required")
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

    def _event_matches(self, call: _Call, query: _SearchQuery) -> list[StoredEvent]:
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

    def _event_search(self, call: _Call) -> web.Response:
        query = _parse_search(call.body, "event", max_limit=_MAX_SEARCH)
        found = self._event_matches(call, query)[query.offset : query.offset + query.limit]
        return _entities([call.project_.event_to_wire(event) for event in found])

    # --- datasources ----------------------------------------------------------------------

    def _stream_info(self, call: _Call) -> web.Response:
        project, datasource = call.project_, call.datasource_
        organization = self._state.organizations[project.organization]
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

    def _ds_specs_attributes(self, call: _Call) -> web.Response:
        return _json({"specs": list(call.project_.attribute_specs.values())})

    def _ds_specs_events(self, call: _Call) -> web.Response:
        return _json({"specs": list(call.project_.event_types.values())})

    def _ds_specs_no_type(self, call: _Call) -> web.Response:
        raise _ApiError(400, "An event type is required: /stream/specs/event-parameters/{type}")

    def _ds_specs_params(self, call: _Call) -> web.Response:
        return _json({"specs": self._event_parameter_specs(call)})

    def _stats(self, call: _Call) -> web.Response:
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

    def _ds_contact(self, call: _Call) -> tuple[Project, dict[str, Any]]:
        project, user_id = call.project_, call.match["userId"]
        audience_id = project.by_user.get(user_id)
        if audience_id is None or user_id not in call.datasource_.user_ids:
            raise _ApiError(404, "Contact not found in this datasource")
        return project, project.contacts[audience_id]

    def _ds_contact_get(self, call: _Call) -> web.Response:
        return _entity(dict(self._ds_contact(call)[1]))

    def _ds_contact_delete(self, call: _Call) -> web.Response:
        project, contact = self._ds_contact(call)
        project.delete_contact(contact["id"])
        return web.Response(status=204)

    def _ingest_contacts(self, call: _Call) -> web.Response:
        items = _batch_items(call.body)
        outcomes = call.project_.upsert_contacts(
            call.datasource_,
            items,
            now_text=format_timestamp(call.now),
            dry_run=call.flag("_dryRun"),
            validator=self._validator,
        )
        return self._batch_response(call, outcomes, ("_user_id",))

    def _ingest_events(self, call: _Call) -> web.Response:
        items = _batch_items(call.body)
        outcomes = call.project_.add_events(
            call.datasource_,
            items,
            now=call.now,
            now_text=format_timestamp(call.now),
            dry_run=call.flag("_dryRun"),
            validator=self._validator,
        )
        return self._batch_response(call, outcomes, ("_user_id", "_event_id"))

    def _batch_response(
        self, call: _Call, outcomes: list[ItemOutcome], id_keys: tuple[str, ...]
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

    def _list(self, call: _Call, entities: Iterable[Mapping[str, Any]]) -> web.Response:
        try:
            query = parse_list_query(call.query.items())
        except QueryFilterError as exc:
            raise _ApiError(400, "Invalid query filter", detail=str(exc)) from None
        return _entities(apply_list_query(entities, query))

    def _segments(self, call: _Call) -> web.Response:
        return self._list(call, [s.to_wire() for s in call.project_.segments.values()])

    def _segments_dynamic(self, call: _Call) -> web.Response:
        segments = call.project_.segments.values()
        return self._list(
            call, [s.to_wire() for s in segments if s.dynamic and not s.requires_parameter]
        )

    def _segment_get(self, call: _Call) -> web.Response:
        segment = call.project_.segments.get(call.match["segmentUid"])
        if segment is None:
            raise _ApiError(404, "Segment not found")
        return _entity(segment.to_wire(call.query.get("parameter")))

    def _campaigns(self, call: _Call) -> web.Response:
        return self._list(call, call.project_.campaigns.values())

    def _campaign_get(self, call: _Call) -> web.Response:
        return _entity(_get_or_404(call.project_.campaigns, call.match["campaignId"], "Campaign"))

    def _automations(self, call: _Call) -> web.Response:
        return self._list(call, call.project_.automations.values())

    def _automation_get(self, call: _Call) -> web.Response:
        found = _get_or_404(call.project_.automations, call.match["automationId"], "Automation")
        return _entity(found)

    def _senders(self, call: _Call) -> web.Response:
        return self._list(call, call.project_.senders.values())

    # --- SMS ------------------------------------------------------------------------------

    def _sms_get(self, call: _Call) -> web.Response:
        return _entity(_get_or_404(call.project_.sms, call.match["smsId"], "SMS"))

    def _sms_direct(self, call: _Call) -> web.Response:
        term = call.match.get("utmTerm")
        if term is not None and len(term) > _MAX_UTM_TERM:
            raise _ApiError(400, f"utmTerm must be at most {_MAX_UTM_TERM} characters")
        messages = [
            sms
            for sms in call.project_.sms.values()
            if sms.get("direct") and (term is None or sms.get("utmTerm") == term)
        ]
        return self._list(call, messages)

    def _sms_by_audience(self, call: _Call) -> web.Response:
        project, target = call.project_, call.match["audienceIdOrPhone"]
        if target in project.contacts:
            messages = [sms for sms in project.sms.values() if sms.get("audienceId") == target]
        elif target.startswith("+") or target.startswith("00"):
            phone = normalize_phone(target)
            messages = [sms for sms in project.sms.values() if sms.get("to") == phone]
        elif normalize_phone(target).isdigit():
            raise _ApiError(400, "Phone numbers need the international prefix, e.g. +34...")
        else:
            raise _ApiError(404, "Audience contact not found")
        return self._list(call, messages)

    def _sms_by_send(self, call: _Call) -> web.Response:
        send_id = call.match["sendId"]
        messages = [sms for sms in call.project_.sms.values() if sms.get("sendId") == send_id]
        if not messages:
            raise _ApiError(404, "Send not found")
        return self._list(call, messages)

    def _sms_by_campaign(self, call: _Call) -> web.Response:
        project = call.project_
        campaign = _get_or_404(project.campaigns, call.match["campaignId"], "Campaign")
        index = _index(call.match.get("optionIdx"), "optionIdx")
        messages = [
            sms
            for sms in project.sms.values()
            if str(sms.get("campaignId")) == str(campaign["id"]) and sms.get("optionIdx") == index
        ]
        return self._list(call, messages)

    def _sms_by_automation(self, call: _Call) -> web.Response:
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

    def _resolve_sender(self, project: Project, sender_id: str) -> dict[str, Any] | None:
        if sender_id == "default" and "default" not in project.senders:
            if project.default_sender is not None:
                return project.senders.get(project.default_sender)
            return next((s for s in project.senders.values() if s.get("status") == "active"), None)
        return project.senders.get(sender_id)

    def _sms_send(self, call: _Call) -> web.Response:
        project = call.project_
        sender = self._resolve_sender(project, call.match["senderId"])
        if sender is None:
            raise _ApiError(404, "Sender not found")
        if sender.get("status") != "active":
            raise _ApiError(400, "Sender is not active")
        term = call.match.get("utmTerm")
        if term is not None and len(term) > _MAX_UTM_TERM:
            raise _ApiError(400, f"utmTerm must be at most {_MAX_UTM_TERM} characters")
        body = call.body if isinstance(call.body, Mapping) else {}
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "text should not be blank")
        allow_unicode = body.get("allowUnicode", False)
        if not isinstance(allow_unicode, bool):
            raise _ApiError(400, "allowUnicode must be a boolean")
        target = call.match["audienceIdOrPhone"]
        contact = project.contacts.get(target)
        audience_id: str | None
        if contact is not None:
            phone = contact.get("_phone_mobile")
            if not isinstance(phone, str) or not phone:
                raise _ApiError(400, "The audience contact has no mobile phone")
            phone, audience_id = normalize_phone(phone), target
        elif target.startswith("+") or target.startswith("00"):
            phone = normalize_phone(target)
            if not 8 <= len(phone) <= 16:
                raise _ApiError(400, "Invalid phone number")
            found = project.search_phone(phone, limit=1)
            audience_id = found[0]["id"] if found else None
        elif normalize_phone(target).isdigit():
            raise _ApiError(400, "Phone numbers need the international prefix, e.g. +34...")
        else:
            raise _ApiError(404, "Audience contact not found")
        sms = _sms_entity(
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


# --- helpers ------------------------------------------------------------------------------

_STREAM_ACTIONS = frozenset(
    {"sms-subscribe", "sms-unsubscribe", "email-subscribe", "email-unsubscribe", "delete-contact"}
)


def _check_rate(limit: int | None, window: float) -> None:
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ValueError("rate_limit must be >= 1 or None")
    if not window > 0:
        raise ValueError("window must be > 0")


async def _dispatched_by_middleware(request: web.Request) -> web.StreamResponse:
    # Every route's operation runs inside FakeInstasent._middleware, never here.
    raise web.HTTPInternalServerError()


def _error_response(error: _ApiError) -> web.Response:
    if error.message is None:
        return web.Response(status=error.status)
    return _json({"message": error.message, **error.extra}, error.status)


def _fault_response(fault: _Fault) -> web.Response | None:
    if fault.kind == "drop":
        return None
    if fault.kind == "malformed":
        return web.Response(
            body=b'{"entity": {"truncated": <html>', status=200, content_type="application/json"
        )
    body = fault.body
    if body is None:
        body = {"message": "Injected failure"}
    if isinstance(body, (bytes, str)):
        return web.Response(body=body, status=fault.status)
    return _json(body, fault.status)


def _encode_cursor(scroll_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{scroll_id}:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: Any) -> tuple[str, int]:
    if not isinstance(cursor, str) or not cursor:
        raise _ApiError(400, "Invalid or expired cursor")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        scroll_id, _, offset = text.rpartition(":")
        return scroll_id, int(offset)
    except ValueError:
        raise _ApiError(400, "Invalid or expired cursor") from None


def _get_or_404(table: Mapping[str, dict[str, Any]], key: str, what: str) -> dict[str, Any]:
    found = table.get(key)
    if found is None:
        raise _ApiError(404, f"{what} not found")
    return found


def _index(raw: str | None, name: str) -> int:
    if raw is None:
        return 0
    if not raw.isdigit():
        raise _ApiError(400, f"{name} must be a non-negative integer")
    return int(raw)


def _int_field(body: Mapping[str, Any], key: str, *, default: int, maximum: int | None) -> int:
    raw = body.get(key)
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < (1 if key == "limit" else 0):
        raise _ApiError(
            400, f"{key} must be a {'positive' if key == 'limit' else 'non-negative'} integer"
        )
    if maximum is not None and raw > maximum:
        raise _ApiError(400, f"{key} must be at most {maximum}")
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
    """The body of a search or scroll call (``instasent-api.md`` 5.3/5.4)."""
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        raise _ApiError(400, "Invalid query filter")
    try:
        predicate = compile_filter(body.get("root"), target=target)
    except QueryFilterError as exc:
        raise _ApiError(400, "Invalid query filter", detail=str(exc)) from None
    limit = _int_field(body, "limit", default=max_limit or _MAX_SCROLL, maximum=max_limit)
    offset = _int_field(body, "offset", default=0, maximum=None)
    sort_field = body.get("sortField")
    sort_asc = body.get("sortAsc", True)
    if sort_field is not None and not isinstance(sort_field, str):
        raise _ApiError(400, "sortField must be a string")
    if not isinstance(sort_asc, bool):
        raise _ApiError(400, "sortAsc must be a boolean")
    return _SearchQuery(predicate, limit, offset, sort_field, sort_asc)


def _batch_items(body: Any) -> list[Any]:
    if body is _INVALID_JSON or not isinstance(body, list):
        raise _ApiError(400, "Body should be an array")
    if not body:
        raise _ApiError(400, "Body should contain at least one item")
    if len(body) > _MAX_BATCH:
        raise _ApiError(400, f"Body should contain at most {_MAX_BATCH} items, got {len(body)}")
    if not all(isinstance(item, dict) for item in body):
        raise _ApiError(400, "Every item of the body should be an object")
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


def _sms_entity(
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
