"""``Instasent``: the client. Owns the transport and exposes the resources."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from functools import cached_property
from types import TracebackType
from typing import Any, Literal

import aiohttp

from . import _tracing
from ._core.retry import RetryPolicy
from ._errors import ConfigurationError
from ._http.auth import Auth, TokenSource
from ._http.options import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_USER_AGENT,
    check_base_url,
    check_max_response_bytes,
    make_timeouts,
)
from ._http.pool import Pool
from ._http.transport import Transport
from ._ratelimit import (
    DEFAULT_MAX_WAIT,
    BucketSnapshot,
    RateLimitEvent,
    RateLimitGovernor,
    check_max_wait,
)
from .resources.audience import AudienceResource
from .resources.campaigns import AutomationsResource, CampaignsResource
from .resources.datasource import Datasource
from .resources.events import EventsResource
from .resources.organization import OrganizationResource, ProjectResource, SpecsResource
from .resources.segments import SegmentsResource
from .resources.sms import SmsResource

__all__ = ["Instasent"]

_UNSET: Any = object()

TOKEN_ENV = "INSTASENT_TOKEN"
PROJECT_ENV = "INSTASENT_PROJECT"
BASE_URL_ENV = "INSTASENT_BASE_URL"


def _governor_of(rate_limit: object, max_wait: float | None) -> RateLimitGovernor | None:
    """The governor ``rate_limit=`` asks for: a new one for ``"auto"``, none, or the one given.

    Raises:
        ConfigurationError: anything else.
    """
    if rate_limit == "auto":
        return RateLimitGovernor(max_wait=max_wait)
    if rate_limit is None or isinstance(rate_limit, RateLimitGovernor):
        return rate_limit
    raise ConfigurationError(
        f"rate_limit must be 'auto', None or a RateLimitGovernor, got {rate_limit!r}"
    )


def _from_env(name: str) -> str | None:
    """An environment default: the variable's value, or ``None`` when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


class Instasent:
    """Async client for the Instasent Product API and its Ingest subset.

    Use it as an async context manager (or call ``close()``)::

        async with Instasent(token, project="proj_xxx") as client:
            contact = await client.audience.get_by_user_id("USER-1")

    One aiohttp connection pool serves every resource and every
    ``with_options()`` sibling. ``token`` is a string or an async callable that
    returns the current token (read before every request, and once more after a
    401, so tokens rotate without a restart).

    Args:
        token: bearer token (Product or Datasource token) or async token provider;
            omitted: ``INSTASENT_TOKEN``.
        project: project UID used by project-level operations; omitted:
            ``INSTASENT_PROJECT`` (if set).
        base_url: API root; plain ``http://`` only for loopback hosts unless
            ``allow_insecure=True``; omitted: ``INSTASENT_BASE_URL``, else
            ``https://api.instasent.com/v1``.
        timeout: seconds one attempt may take in all, from taking a connection to
            the last byte of the answer, connecting included (at most 10 s of it);
            or an ``aiohttp.ClientTimeout``, used as given. Waiting for a free
            connection of the pool counts; waiting for ``max_concurrency`` or for a
            rate-limit permit does not.
        attempt_timeout: the whole attempt's deadline when it should differ from
            ``timeout`` (which then bounds connecting only); default: ``timeout``.
        max_response_bytes: the largest body read from an answer, counted after
            decompression (default 8 MiB); a larger one raises
            ``ResponseTooLargeError`` and drops the connection.
        max_connections: size of the connection pool.
        max_concurrency: a cap on requests in flight at once below the pool size
            (default: none beyond the pool). Requests beyond either limit queue;
            queueing never counts against ``timeout``.
        retry: the ``RetryPolicy`` (default ``RetryPolicy()``).
        rate_limit: ``"auto"`` (a governor of its own), ``None`` (off), or a
            ``RateLimitGovernor`` shared with other clients.
        session: a borrowed ``aiohttp.ClientSession`` (never closed by us).
        user_agent: replaces the default ``User-Agent``.
        trace_configs: aiohttp trace configs for the session we create.
        trust_env: let the session we create read proxy settings
            (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``) and ``.netrc`` from the
            environment (aiohttp's ``trust_env``). Off by default.
        allow_insecure: allow plain ``http://`` to non-loopback hosts.
        on_event: called with every ``RateLimitEvent`` (waits, 429s, retries).
        max_wait: the longest a call waits for a rate-limit permit or a
            server-announced retry, in seconds; beyond it ``RateLimitError``
            (with ``reset_at``) is raised at once. ``None``: no bound.

    Explicit arguments always win over the environment.

    Raises:
        ConfigurationError: an invalid option (empty token, insecure URL, ...), or
            no token given and ``INSTASENT_TOKEN`` unset.
    """

    def __init__(
        self,
        token: TokenSource | None = None,
        project: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | aiohttp.ClientTimeout | None = 30.0,
        attempt_timeout: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_connections: int = 100,
        max_concurrency: int | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: Literal["auto"] | RateLimitGovernor | None = "auto",
        session: aiohttp.ClientSession | None = None,
        user_agent: str | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] | None = None,
        trust_env: bool = False,
        allow_insecure: bool = False,
        on_event: Callable[[RateLimitEvent], None] | None = None,
        max_wait: float | None = DEFAULT_MAX_WAIT,
    ) -> None:
        if token is None:
            token = _from_env(TOKEN_ENV)
            if token is None:
                raise ConfigurationError(
                    f"no token: pass Instasent(token) or set the {TOKEN_ENV} environment variable"
                )
        if project is None:
            project = _from_env(PROJECT_ENV)
        if base_url is None:
            base_url = _from_env(BASE_URL_ENV) or DEFAULT_BASE_URL
        try:
            max_wait = check_max_wait(max_wait)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if max_connections < 1:
            raise ConfigurationError(f"max_connections must be >= 1, got {max_connections}")
        if max_concurrency is not None and max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if project is not None and (not isinstance(project, str) or not project.strip()):
            raise ConfigurationError("project must be a non-empty string (the project UID)")
        governor = _governor_of(rate_limit, max_wait)
        _tracing.refresh()  # spans when an OpenTelemetry tracer provider is configured
        if governor is not None and on_event is not None:
            governor.add_listener(on_event)
        self._listener = on_event if governor is not None else None
        self._root = True
        self._options: dict[str, Any] = {
            "base_url": check_base_url(base_url, allow_insecure),
            "timeouts": make_timeouts(timeout, attempt_timeout),
            "retry": retry if retry is not None else RetryPolicy(),
            "max_response_bytes": check_max_response_bytes(max_response_bytes),
            "max_wait": max_wait,
        }
        self._user_agent = user_agent or DEFAULT_USER_AGENT
        auth = Auth(token, self._user_agent)
        pool = Pool(
            session=session,
            max_connections=max_connections,
            trace_configs=trace_configs,
            trust_env=trust_env,
            # The root client's own headers and timeout are the session's defaults.
            headers=auth.static.get_headers if auth.static is not None else None,
            timeout=self._options["timeouts"].client,
        )
        transport = Transport(
            pool=pool,
            auth=auth,
            governor=governor,
            semaphore=asyncio.Semaphore(max_concurrency) if max_concurrency is not None else None,
            **self._options,
        )
        if governor is None:
            transport.set_event_sink(on_event)
        self._init(transport, project, token)

    def _init(self, transport: Transport, project: str | None, token: TokenSource) -> None:
        self._transport = transport
        self._token = token
        self._project_id = project

    def __repr__(self) -> str:
        return (
            f"<Instasent project={self._project_id!r} base_url={self._transport.base_url!r}"
            f"{' closed' if self._transport.pool.closed else ''}>"
        )

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Instasent:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool (only if this client created it). Idempotent.

        Siblings made by ``with_options()`` share the root client's pool: closing
        a sibling does nothing; closing the root closes the pool for all of them.
        A borrowed ``session=`` is never closed.
        """
        if self._root:
            listener, self._listener = self._listener, None
            governor = self._transport.governor
            if listener is not None and governor is not None:
                # A shared governor outlives this client: stop sending it our events.
                governor.remove_listener(listener)
            if governor is not None:
                await governor.release_leases()
            await self._transport.pool.close()

    @property
    def closed(self) -> bool:
        """Whether the shared connection pool is closed."""
        return self._transport.pool.closed

    def with_options(
        self,
        *,
        token: TokenSource | None = None,
        project: str | None = _UNSET,
        timeout: float | aiohttp.ClientTimeout | None = _UNSET,
        attempt_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        user_agent: str | None = None,
        max_wait: float | None = _UNSET,
    ) -> Instasent:
        """A sibling client sharing this client's connection pool and governor.

        For multi-tenant backends: one pool, many tokens or projects. Options not
        given are inherited (``max_wait=None`` means no bound, not "inherit").
        The sibling does not own the pool: close the root.

        A new ``timeout`` brings a deadline derived from it, unless ``attempt_timeout``
        is given here or was given to the root client.

        Raises:
            ConfigurationError: an empty project, an invalid token, a bad timeout or
                a bad ``max_wait``.
        """
        options = dict(self._options)
        if max_wait is not _UNSET:
            try:
                options["max_wait"] = check_max_wait(max_wait)
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from None
        if timeout is not _UNSET or attempt_timeout is not None:
            inherited = options["timeouts"]
            options["timeouts"] = make_timeouts(
                inherited.timeout if timeout is _UNSET else timeout,
                attempt_timeout if attempt_timeout is not None else inherited.attempt_timeout,
            )
        if retry is not None:
            options["retry"] = retry
        if project is not _UNSET and project is not None and not project.strip():
            raise ConfigurationError("project must be a non-empty string (the project UID)")
        new_token = token if token is not None else self._token
        agent = user_agent if user_agent is not None else self._user_agent
        transport = Transport(
            pool=self._transport.pool,
            auth=Auth(new_token, agent),
            governor=self._transport.governor,
            semaphore=self._transport.semaphore,
            **options,
        )
        sibling = object.__new__(Instasent)
        sibling._root = False
        sibling._listener = None
        sibling._options = options
        sibling._user_agent = agent
        sibling._init(transport, self._project_id if project is _UNSET else project, new_token)
        return sibling

    # -- resources ---------------------------------------------------------------

    @property
    def project_id(self) -> str | None:
        """The project UID this client works on (``None`` for organization-only use)."""
        return self._project_id

    @cached_property
    def organization(self) -> OrganizationResource:
        """``GET /v1/``: the organization of the token."""
        return OrganizationResource(self._transport, self._project_id)

    @cached_property
    def project(self) -> ProjectResource:
        """The client's project."""
        return ProjectResource(self._transport, self._project_id)

    @cached_property
    def specs(self) -> SpecsResource:
        """The project's attribute, event-type and event-parameter specs."""
        return SpecsResource(self._transport, self._project_id)

    @cached_property
    def audience(self) -> AudienceResource:
        """Audience contacts: get, search, scroll, subscriptions, delete."""
        return AudienceResource(self._transport, self._project_id)

    @cached_property
    def events(self) -> EventsResource:
        """Search and scroll the project's events."""
        return EventsResource(self._transport, self._project_id)

    @cached_property
    def segments(self) -> SegmentsResource:
        """Segments and segment scrolls."""
        return SegmentsResource(self._transport, self._project_id)

    @cached_property
    def campaigns(self) -> CampaignsResource:
        """SMS campaigns."""
        return CampaignsResource(self._transport, self._project_id)

    @cached_property
    def automations(self) -> AutomationsResource:
        """Automations."""
        return AutomationsResource(self._transport, self._project_id)

    @cached_property
    def sms(self) -> SmsResource:
        """SMS senders, SMS messages and direct SMS."""
        return SmsResource(self._transport, self._project_id)

    def datasource(self, datasource_id: str) -> Datasource:
        """One datasource of the project (``"dsapi"`` = the first API datasource).

        Raises:
            ValueError: ``datasource_id`` is empty.
        """
        return Datasource(self._transport, self._project_id, datasource_id)

    # -- observability -----------------------------------------------------------

    @property
    def rate_limits(self) -> list[BucketSnapshot]:
        """A snapshot of every rate-limit bucket the governor knows (empty when off)."""
        governor = self._transport.governor
        return governor.snapshot() if governor is not None else []

    @property
    def governor(self) -> RateLimitGovernor | None:
        """The rate-limit governor shared by this client family (``None`` when off)."""
        return self._transport.governor
