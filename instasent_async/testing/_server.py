"""``FakeInstasent``: an in-memory Instasent Product + Ingest API on ``aiohttp.web``.

One middleware runs every request through the same pipeline:

1. global ``latency``;
2. authentication (401; a 401 consumes no rate-limit budget: no organization is known);
3. rate limiting on the organization's bucket (429), then visibility (404) and scope (403);
4. fault injection (fail, drop, delay, malformed; before or after processing);
5. the operation's handler (:mod:`._api`), then the ``X-RateLimit-*`` and ``Date`` headers.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal

import attrs
import orjson
from aiohttp import web

from ._api import INVALID_JSON, Api, ApiError, BatchShape, Call, sms_entity
from ._faults import Fault, FaultQueue
from ._limits import UNLIMITED, RateClass, RateLimiter
from ._query import QueryFilterError
from ._state import (
    ItemValidator,
    Segment,
    State,
    Token,
    compile_segment_query,
    fingerprint,
    format_timestamp,
    normalize_phone,
)

__all__ = ["UNLIMITED", "FakeInstasent", "RecordedRequest"]


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

    It implements every operation of the Instasent API reference under ``/v1``: tokens
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
        batch_shape: 202/422 ingest body: ``"documented"`` (per-item answers) or
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

    Raises:
        ValueError: an unknown ``batch_shape``, a ``rate_limit`` below 1 or a ``window``
            that is not positive.
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
        #: Seconds added to the server clock; may be changed at any time.
        self.clock_offset = clock_offset
        #: Seconds slept before answering every request.
        self.latency = 0.0
        self._limiter = RateLimiter(rate_limit, window)
        self._state = State()
        self._api = Api(self._state, batch_shape=batch_shape, cursor_ttl=cursor_ttl)
        self._faults = FaultQueue()
        self._requests: list[RecordedRequest] = []
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._date_cache: tuple[int, str] = (-1, "")
        self._app = web.Application(middlewares=[self._middleware])
        self._operations = self._api.register(self._app)
        #: The seeded organization-level product token with every scope ("" without seed).
        self.product_token = ""
        #: The seeded datasource token of proj_demo/ds_demo ("" without seed).
        self.datasource_token = ""
        if seed:
            self._seed(product_token, datasource_token)

    @property
    def batch_shape(self) -> BatchShape:
        """The 202/422 ingest body shape; may be changed at any time."""
        return self._api.batch_shape

    @batch_shape.setter
    def batch_shape(self, value: BatchShape) -> None:
        if value not in ("documented", "activepieces"):
            raise ValueError(f"unknown batch_shape {value!r}")
        self._api.batch_shape = value

    @property
    def cursor_ttl(self) -> float:
        """Seconds a scroll cursor stays valid after its last use; may be changed."""
        return self._api.cursor_ttl

    @cursor_ttl.setter
    def cursor_ttl(self, value: float) -> None:
        self._api.cursor_ttl = value

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
        sms = sms_entity(
            to=phone,
            sender=project.resolve_sender("default"),
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
        self._api.validator = predicate

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

    def expire_cursors(self) -> None:
        """Invalidate every scroll cursor (their next use answers 400)."""
        self._api.expire_cursors()

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
        self._faults.add(Fault("fail", n, method, path_contains, status=status, body=body))

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
        self._faults.add(
            Fault("fail", n, method, path_contains, after_processing=True, status=status, body=body)
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
        self._faults.add(Fault("drop", n, method, path_contains, after_processing))

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
        self._faults.add(Fault("delay", n, method, path_contains, seconds=seconds))

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
        self._faults.add(Fault("malformed", n, method, path_contains, after_processing))

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        self._faults.clear()

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
        self._limiter.configure(limit, window, rate_class)

    def reset_rate_limits(self) -> None:
        """Empty every bucket (as if a new window started everywhere)."""
        self._limiter.reset()

    def _now(self) -> float:
        return time.time() + self.clock_offset

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
                body = INVALID_JSON
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
                    json=None if body is INVALID_JSON else body,
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
            denied = ApiError(401, message).response()
            denied.headers.update(self._limiter.headers_without_bucket(now))
            denied.headers["Date"] = self._date_header(now)
            return denied
        operation = self._operations.get(request.match_info.route)
        call = None
        error: ApiError | None
        if operation is None:
            http_error = getattr(request.match_info, "http_exception", None)
            status = getattr(http_error, "status", 404)
            error = ApiError(status, "Method not allowed" if status == 405 else "Not found")
            bucket: Hashable = (token.organization, "default")
            rate_class = "default"
        else:
            call = Call(request, operation, token, now, body)
            error = self._api.authorize(call)
            rate_class = operation.rate_class
            bucket = self._api.bucket_key(call)
        allowed, headers = self._limiter.consume(bucket, rate_class, now)
        response = await self._respond(request, call, error, allowed, rate_class)
        if response is not None:
            response.headers.update(headers)
            response.headers["Date"] = self._date_header(now)
        return response

    async def _respond(
        self,
        request: web.Request,
        call: Call | None,
        error: ApiError | None,
        allowed: bool,
        rate_class: str,
    ) -> web.StreamResponse | None:
        if not allowed:
            if rate_class == "datasource":
                return web.Response(status=429)
            return ApiError(429, "You exceeded the rate limit").response()
        if error is not None or call is None:
            assert error is not None
            return error.response()
        fault = None
        if self._faults:
            delay = self._faults.take(request.method, request.path, delay=True)
            if delay is not None:
                await asyncio.sleep(delay.seconds)
            fault = self._faults.take(request.method, request.path, delay=False)
            if fault is not None and not fault.after_processing:
                return fault.response()
        try:
            response = call.operation.handler(call)
        except ApiError as exc:
            response = exc.response()
        return response if fault is None else fault.response()
