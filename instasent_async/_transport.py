"""The session manager: one aiohttp ClientSession and the request/response cycle.

The transport knows operations (``_endpoints``), the governor, the retry policy and
the error mapping; it never knows a resource. Every request goes through
``Transport.request``: governor permit, one attempt, release, retry decision.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import platform
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from . import _tracing
from ._core.headers import AnswerInfo, parse_answer
from ._endpoints import Operation
from ._errors import (
    AmbiguousOutcomeError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    decode_body,
    error_from_response,
)
from ._ratelimit import (
    DEFAULT_MAX_WAIT,
    BucketKey,
    RateLimitEvent,
    RateLimitGovernor,
    check_max_wait,
    rate_limit_info,
)
from ._retry import Outcome, RetryDecision, RetryPolicy
from ._version import __version__

__all__ = ["Pool", "RequestStats", "Response", "TokenSource", "Transport"]

log = logging.getLogger("instasent_async.transport")

TokenSource = str | Callable[[], Awaitable[str]]

DEFAULT_BASE_URL: Final = "https://api.instasent.com/v1"
DEFAULT_USER_AGENT: Final = (
    f"instasent-async/{__version__} "
    f"Python/{platform.python_version()} aiohttp/{aiohttp.__version__}"
)
_JSON_CT: Final = "application/json"


# (token fingerprint, headers of a GET, headers of a JSON request); ``None`` headers:
# the session's defaults are exactly these.
_Auth = tuple[str, dict[str, str] | None, dict[str, str]]


class Response:
    """A successful response: status, headers and the raw body (decoded on demand)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: CIMultiDictProxy[str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<Response {self.status} ({len(self.body)} bytes)>"

    def json(self) -> Any:
        """The body as JSON, ``None`` when empty.

        Raises:
            APIStatusError: the body is not valid JSON.
        """
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise APIStatusError(
                self.status, "the response body is not valid JSON", self.body[:500]
            ) from None


class RequestStats:
    """Counters a caller can pass to ``Transport.request`` to learn what it cost.

    ``uncertain_retries`` counts the retries of an attempt that may have been
    carried out (no answer after sending, or a 5xx): a 404 from a repeated
    delete then most likely means the first attempt deleted it. ``rate_limited``
    counts 429 answers (``rate_limit_waits`` counts permits the governor held back).
    """

    __slots__ = ("rate_limit_waits", "rate_limited", "requests", "retries", "uncertain_retries")

    def __init__(self) -> None:
        self.requests = 0
        self.retries = 0
        self.rate_limit_waits = 0
        self.rate_limited = 0
        self.uncertain_retries = 0


def fingerprint(token: str) -> str:
    """A short, non-reversible identifier of a token (safe to log and to key buckets)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str | URL, allow_insecure: bool) -> str:
    """Validate a base URL and return it without a trailing slash.

    Raises:
        ConfigurationError: not an absolute http(s) URL, or plain ``http://`` for a
            host that is not loopback while ``allow_insecure`` is false.
    """
    url = URL(str(base_url))
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"base_url must be an absolute http(s) URL, got {str(url)!r}")
    if url.query_string or url.fragment:
        raise ConfigurationError("base_url must not carry a query string or fragment")
    if url.scheme == "http" and not allow_insecure and not _is_loopback(url.host):
        raise ConfigurationError(
            f"refusing plain http:// for {url.host}: the bearer token would travel "
            "unencrypted; use https:// or pass allow_insecure=True"
        )
    return str(url).rstrip("/")


class Pool:
    """The one ClientSession shared by a client and its ``with_options()`` siblings.

    Created lazily inside the running event loop on first use. A borrowed session
    is never closed by us.
    """

    __slots__ = (
        "_closed",
        "_default_headers",
        "_default_timeout",
        "_loop",
        "_max_connections",
        "_owned",
        "_session",
        "_trace_configs",
    )

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None,
        max_connections: int,
        trace_configs: Sequence[aiohttp.TraceConfig] | None,
    ) -> None:
        self._session = session
        self._owned = session is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._max_connections = max_connections
        self._trace_configs = list(trace_configs) if trace_configs else None
        self._default_headers: dict[str, str] | None = None
        self._default_timeout: aiohttp.ClientTimeout | None = None
        if session is not None:
            self._loop = getattr(session, "_loop", None)

    def adopt_defaults(
        self, headers: dict[str, str] | None, timeout: aiohttp.ClientTimeout
    ) -> tuple[bool, bool]:
        """Offer a transport's request headers and timeout as the session's defaults.

        The first transport of a pool that creates its own session sets them (the
        root client: its static token's headers, its timeout); later ones only learn
        whether theirs are the same. Returns (headers are the defaults, timeout is
        the default): a request whose options are the defaults leaves them out, so
        aiohttp has nothing to merge. A borrowed session keeps its own defaults:
        every request passes its options.
        """
        if not self._owned:
            return False, False
        if self._session is None and self._default_timeout is None:
            self._default_headers = headers
            self._default_timeout = timeout
        same_headers = headers is not None and headers == self._default_headers
        return same_headers, timeout == self._default_timeout

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use in the running loop.

        Raises:
            ConfigurationError: the pool is closed, or used from an event loop other
                than the one that opened it.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop:
            raise ConfigurationError(
                "this Instasent client was opened in another event loop; create one "
                "client per event loop (aiohttp sessions cannot cross loops)"
            )
        session = self._session
        if session is None:
            if self._closed:
                raise ConfigurationError("this Instasent client is closed")
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=self._max_connections
            )
            session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=self._trace_configs,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                headers=self._default_headers,
                timeout=self._default_timeout or aiohttp.ClientTimeout(total=None),
                # Bearer tokens only: a cookie jar would cost every request for nothing.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._session = session
            self._loop = loop
        elif self._closed:
            raise ConfigurationError("this Instasent client is closed")
        return session

    async def close(self) -> None:
        """Close the session if we created it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owned and not session.closed:
            await session.close()


class Transport:
    """Sends operations: auth headers, governor permits, retries, error mapping."""

    __slots__ = (
        "_auth_cache",
        "_base",
        "_emit",
        "_governor",
        "_keys",
        "_max_wait",
        "_pool",
        "_retry",
        "_semaphore",
        "_send_timeout",
        "_static",
        "_timeout",
        "_token_source",
        "_user_agent",
    )

    def __init__(
        self,
        *,
        pool: Pool,
        token: TokenSource,
        base_url: str,
        timeout: aiohttp.ClientTimeout,
        retry: RetryPolicy,
        governor: RateLimitGovernor | None,
        user_agent: str,
        semaphore: asyncio.Semaphore | None = None,
        max_wait: float | None = DEFAULT_MAX_WAIT,
    ) -> None:
        if isinstance(token, str):
            if not token.strip():
                raise ConfigurationError("token must not be empty")
        elif not callable(token):
            raise ConfigurationError(
                "token must be a string or an async callable returning the current token"
            )
        self._pool = pool
        self._token_source = token
        self._base = base_url
        self._timeout = timeout
        self._retry = retry
        self._governor = governor
        self._user_agent = user_agent
        self._semaphore = semaphore
        self._max_wait = check_max_wait(max_wait)
        # token -> (fingerprint, GET headers, JSON headers); one entry per token seen.
        self._auth_cache: dict[str, _Auth] = {}
        self._keys: dict[tuple[str, str, str], BucketKey] = {}
        static = self._auth(token) if isinstance(token, str) else None
        same_headers, same_timeout = pool.adopt_defaults(
            static[1] if static is not None else None, timeout
        )
        if static is not None and same_headers:
            # The session sends these headers by default: a GET passes none, a JSON
            # request only its Content-Type (aiohttp then has almost nothing to merge).
            static = (static[0], None, {"Content-Type": _JSON_CT})
        self._static = static
        # None: the session's default timeout is ours.
        self._send_timeout = None if same_timeout else timeout
        self._emit: Callable[[RateLimitEvent], None] | None = (
            governor.emit if governor is not None else None
        )

    def __repr__(self) -> str:
        return f"<Transport base_url={self._base!r}>"

    @property
    def governor(self) -> RateLimitGovernor | None:
        """The rate-limit governor, or ``None`` when rate limiting is off."""
        return self._governor

    @property
    def max_wait(self) -> float | None:
        """The longest a request waits for a permit or an announced retry (``None``: no bound)."""
        return self._max_wait

    @property
    def semaphore(self) -> asyncio.Semaphore | None:
        """The concurrency limiter shared by this client family."""
        return self._semaphore

    @property
    def pool(self) -> Pool:
        """The shared connection pool."""
        return self._pool

    @property
    def base_url(self) -> str:
        """The API base URL (no trailing slash)."""
        return self._base

    def set_event_sink(self, emit: Callable[[RateLimitEvent], None] | None) -> None:
        """Where retry events go when no governor is configured."""
        if self._governor is None:
            self._emit = emit

    def _auth(self, token: str) -> _Auth:
        cached = self._auth_cache.get(token)
        if cached is None:
            if any(c in token for c in "\r\n\x00"):
                raise ConfigurationError("the token contains a line break or NUL character")
            if len(self._auth_cache) > 32:
                self._auth_cache.clear()
            get_headers = {
                "Authorization": f"Bearer {token}",
                "User-Agent": self._user_agent,
                "Accept": _JSON_CT,
            }
            cached = (fingerprint(token), get_headers, {**get_headers, "Content-Type": _JSON_CT})
            self._auth_cache[token] = cached
        return cached

    def _key(self, fp: str, scope: str, rate_class: str) -> BucketKey:
        """The bucket key, made once per (token, scope, class) and reused."""
        triple = (fp, scope, rate_class)
        key = self._keys.get(triple)
        if key is None:
            if len(self._keys) >= 1024:
                self._keys.clear()
            key = self._keys[triple] = BucketKey(fp, scope, rate_class)
        return key

    async def _current_auth(self) -> _Auth:
        if self._static is not None:
            return self._static
        source = self._token_source
        assert callable(source)
        token = await source()
        if not isinstance(token, str) or not token.strip():
            raise ConfigurationError("the token provider returned an empty or non-string token")
        return self._auth(token)

    async def request(
        self,
        op: Operation,
        path: str,
        *,
        scope: str = "org",
        params: Mapping[str, str] | str | None = None,
        json: Any = None,
        body: bytes | None = None,
        idempotent: bool | None = None,
        stats: RequestStats | None = None,
    ) -> Response:
        """Send one operation and return the successful response.

        ``path`` is the rendered, encoded path; ``scope`` the bucket scope (``"org"``
        or the datasource id); ``params`` a mapping or a ready query string (bare
        flags such as ``_sync``); ``json`` is encoded with orjson unless ``body`` already
        holds encoded bytes; ``idempotent`` overrides the operation's own flag;
        ``stats`` (optional) counts attempts, retries and rate-limit waits.

        Raises:
            APIStatusError: (a subclass for) a non-success status after retries.
            APIConnectionError / APITimeoutError: transport failure after retries.
            AmbiguousOutcomeError: a non-idempotent operation may have reached the server.
            ConfigurationError: closed client, wrong event loop, bad token provider.
        """
        if _tracing.tracer is not None and not _tracing.inside.get():  # one span per operation
            stats = stats if stats is not None else RequestStats()
            kwargs = {"params": params, "json": json, "body": body, "idempotent": idempotent}
            return await _tracing.traced(self.request, op, path, stats, scope=scope, **kwargs)
        pool = self._pool
        session = pool._session
        if session is None or pool._closed or pool._loop is not asyncio.get_running_loop():
            session = pool.session()  # creates it, or raises the reason it cannot be used
        if json is not None and body is None:
            body = orjson.dumps(json)
        auth = self._static
        if auth is None:
            auth = await self._current_auth()
        fp, get_headers, json_headers = auth
        url = URL(self._base + path, encoded=True)
        if params:
            url = url.with_query(params)
        safe = op.idempotent if idempotent is None else idempotent
        governor = self._governor
        key = None
        if governor is not None:
            key = self._keys.get((fp, scope, op.rate_class)) or self._key(fp, scope, op.rate_class)
        method = op.method
        retried_auth = False
        attempt = 0
        while True:
            attempt += 1
            headers = json_headers if body is not None else get_headers
            status: int | None = None
            resp_headers: CIMultiDictProxy[str] | None = None
            info: AnswerInfo | None = None
            outcome: Outcome
            failure: BaseException | None = None
            semaphore = self._semaphore
            if semaphore is not None:
                await semaphore.acquire()  # the slot first, then the permit
            try:
                permit = None
                if governor is not None:
                    assert key is not None
                    permit = governor.try_acquire(key)
                    if permit is None:
                        if stats is not None:
                            stats.rate_limit_waits += 1
                        permit = await governor.acquire(key, max_wait=self._max_wait)
                if stats is not None:
                    stats.requests += 1
                try:
                    # Awaited rather than ``async with``: read() releases the
                    # connection at the end of the body, and a failed read closes it.
                    if self._send_timeout is None:
                        resp = await session.request(
                            method, url, headers=headers, data=body, allow_redirects=False
                        )
                    else:
                        resp = await session.request(
                            method,
                            url,
                            headers=headers,
                            data=body,
                            timeout=self._send_timeout,
                            allow_redirects=False,
                        )
                    try:
                        raw = await resp.read()
                    except BaseException:
                        resp.close()
                        raise
                    status, resp_headers = resp.status, resp.headers
                    if governor is not None or status >= 400:
                        info = parse_answer(resp_headers, time.time())  # the one parse
                except aiohttp.ClientConnectorCertificateError as exc:
                    raise APIConnectionError(
                        f"TLS certificate error: {exc.certificate_error}", method=method, path=path
                    ) from None
                except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                    outcome, failure = "not_sent", exc
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    outcome, failure = "maybe_sent", exc
                finally:
                    # Also when cancelled, or anything unexpected: never keep the permit.
                    if permit is not None:
                        governor.release(permit, status, info)  # type: ignore[union-attr]
            finally:
                if semaphore is not None:
                    semaphore.release()
            if status is not None:
                if status < 400:
                    assert resp_headers is not None
                    return Response(status, resp_headers, raw)
                outcome = status
                if status == 429 and stats is not None:
                    stats.rate_limited += 1
                if status == 401 and not retried_auth and self._static is None:
                    # A rotated token: read the provider once more and try again.
                    retried_auth = True
                    fresh = await self._current_auth()
                    if fresh[0] != fp:
                        fp, get_headers, json_headers = fresh
                        if governor is not None:
                            key = self._key(fp, scope, op.rate_class)
                        attempt -= 1
                        continue
            decision = self._retry.decide(
                idempotent=safe,
                attempt=attempt,
                outcome=outcome,
                reset_after=info.announced_wait if info is not None else None,
                governed=governor is not None,
            )
            if status == 429 and decision.delay > (
                math.inf if self._max_wait is None else self._max_wait
            ):
                decision = _GIVE_UP  # the announced wait is longer than max_wait
            if decision.action == "retry":
                reason = str(outcome) if status is not None else _describe(failure)
                log.debug(
                    "retrying %s %s (attempt %d, %s) in %.3fs [bucket %s/%s]",
                    method,
                    path,
                    attempt + 1,
                    reason,
                    decision.delay,
                    scope,
                    op.rate_class,
                )
                if self._emit is not None:
                    self._emit(
                        RateLimitEvent(
                            kind="retry",
                            bucket=f"{scope}/{op.rate_class}",
                            delay=decision.delay,
                            attempt=attempt,
                            status=status,
                            reason=reason,
                        )
                    )
                if stats is not None:
                    stats.retries += 1
                    if outcome == "maybe_sent" or (status is not None and status >= 500):
                        stats.uncertain_retries += 1
                if decision.delay > 0:
                    await asyncio.sleep(decision.delay)
                continue
            if status is not None:
                err = error_from_response(
                    status,
                    decode_body(raw),
                    method=method,
                    path=path,
                    rate_limit=rate_limit_info(info),
                    required_scope=op.scope,
                )
                if decision.action == "ambiguous":
                    raise AmbiguousOutcomeError(
                        f"{op.name} answered {status}: it may or may not have been carried "
                        "out, and it is not safe to repeat automatically",
                        method=method,
                        path=path,
                    ) from err
                raise err
            assert failure is not None
            conn_err = _connection_error(failure, method, path)
            if decision.action == "ambiguous":
                raise AmbiguousOutcomeError(
                    f"{op.name} failed after the request may have reached the server "
                    f"({_describe(failure)}); it is not safe to repeat automatically",
                    method=method,
                    path=path,
                ) from conn_err
            raise conn_err from failure


_GIVE_UP = RetryDecision("raise")


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _connection_error(exc: BaseException, method: str, path: str) -> APIConnectionError:
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return APITimeoutError(f"request timed out ({method} {path})", method=method, path=path)
    return APIConnectionError(
        f"connection error: {_describe(exc)} ({method} {path})", method=method, path=path
    )


def make_timeout(timeout: float | aiohttp.ClientTimeout | None) -> aiohttp.ClientTimeout:
    """A ClientTimeout from seconds, or an ``aiohttp.ClientTimeout`` passed through.

    Seconds bound connecting (at most 10 s) and each wait for the server's answer,
    not the time a request queues for a free connection: under fan-out, requests
    wait for the pool without timing out.
    """
    if isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    if timeout is None:
        return aiohttp.ClientTimeout(total=None)
    if timeout <= 0:
        raise ConfigurationError(f"timeout must be positive, got {timeout!r}")
    return aiohttp.ClientTimeout(sock_connect=min(timeout, 10.0), sock_read=timeout)
