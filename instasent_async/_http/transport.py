"""The request path: slot -> permit -> send once -> classify -> retry decision.

``Transport.request`` sends one operation and returns its successful answer:

1. take a ``max_concurrency`` slot (when configured), then a rate-limit permit;
2. send once: one ``session.request`` (redirects never followed, the session's
   ``raise_for_status`` never applied), one bounded read of the body;
3. give the permit back with the answer's status and headers, free the slot;
4. classify: a success status of the operation returns the answer; any other
   status, or a failure to get one, goes to the retry policy;
5. retry (after the policy's delay), or raise the error the SDK documents.

The transport knows operations, the governor, the retry policy and the error
mapping; it never knows a resource. What each status and failure means is
decided in ``instasent_async._core.status``; this module only acts on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, overload

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from .. import _tracing
from .._core.endpoints import Operation
from .._core.headers import AnswerInfo, parse_answer
from .._core.retry import Outcome, RetryDecision, RetryPolicy
from .._core.status import SUCCESSES, FailureKinds
from .._errors import (
    AmbiguousOutcomeError,
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    ConfigurationError,
    ResponseTooLargeError,
    decode_body,
    error_from_response,
)
from .._ratelimit import (
    DEFAULT_MAX_WAIT,
    BucketKey,
    Permit,
    RateLimitEvent,
    RateLimitGovernor,
    check_max_wait,
    rate_limit_info,
)
from .auth import JSON_CT, Auth, Credentials
from .deadline import Deadlines
from .options import DEFAULT_MAX_RESPONSE_BYTES, Timeouts
from .pool import Pool

__all__ = ["RequestStats", "Response", "Transport", "body_at_hand", "read_body"]

log = logging.getLogger("instasent_async.transport")

T = TypeVar("T")

_EXCERPT: Final = 500


class Response:
    """An answer: status, headers and the raw body, with the request it answers.

    ``info`` is the one parse of its rate-limit headers (``None`` when nobody
    needs it: a success while rate limiting is off).
    """

    __slots__ = ("body", "headers", "info", "method", "path", "status")

    def __init__(
        self,
        status: int,
        headers: CIMultiDictProxy[str],
        body: bytes,
        method: str = "",
        path: str = "",
        info: AnswerInfo | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.method = method
        self.path = path
        self.info = info

    def __repr__(self) -> str:
        return f"<Response {self.status} ({len(self.body)} bytes)>"

    def json(self) -> Any:
        """The body as JSON, ``None`` when empty.

        Raises:
            APIResponseValidationError: the body is not valid JSON.
        """
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise self.invalid("the response body is not valid JSON") from None

    def invalid(self, message: str) -> APIResponseValidationError:
        """The error for a body that does not have the operation's shape."""
        return APIResponseValidationError(
            message,
            status=self.status,
            excerpt=self.body[:_EXCERPT].decode("utf-8", "replace"),
            method=self.method,
            path=self.path,
        )


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


class BodyTooLarge(Exception):
    """The body grew past the limit while being read; ``prefix`` is what was read."""

    def __init__(self, limit: int, prefix: bytes) -> None:
        super().__init__(f"the response body is larger than max_response_bytes={limit}")
        self.limit = limit
        self.prefix = prefix


def body_at_hand(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The whole body when it came with the head, else ``None``: ``read_body`` without a wait.

    The usual small answer arrives in one piece, and aiohttp has fed its end (after
    inflating all of a compressed one) before the request returns: what is buffered
    is the body. Past ``limit``: ``BodyTooLarge``, as ``read_body``.
    """
    content = resp.content
    if not content.is_eof():
        return None
    body = content.read_nowait()
    if len(body) > limit:
        raise BodyTooLarge(limit, body[:limit])
    return body


async def read_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, counting decompressed bytes; past ``limit``: ``BodyTooLarge``.

    Read chunk by chunk (what ``resp.read()`` does too, without a bound), so a
    huge, endless or highly compressed body stops at the limit: aiohttp inflates a
    compressed body a bounded piece at a time, as it is read.
    """
    chunks: list[bytes] = []
    size = 0
    content = resp.content
    while chunk := await content.readany():
        size += len(chunk)
        chunks.append(chunk)
        if size > limit:
            raise BodyTooLarge(limit, b"".join(chunks)[:limit])
    return b"".join(chunks)  # at the end of the body aiohttp released the connection


class AttemptTimeout(asyncio.TimeoutError):
    """The attempt outlived its deadline (it may have reached the server)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"request timed out: the attempt took longer than {seconds:g}s")


# What a failure to get an answer means (the pure table lives in _core.status).
_classify_failure = FailureKinds(
    fatal=(aiohttp.ClientConnectorCertificateError, BodyTooLarge),
    not_sent=(aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError),
    maybe_sent=(aiohttp.ClientError, asyncio.TimeoutError, OSError),
)
_RAISE: Final = RetryDecision("raise")
_AMBIGUOUS: Final = RetryDecision("ambiguous")


class Transport:
    """Sends operations: auth headers, slots and permits, retries, error mapping."""

    __slots__ = (
        "_auth",
        "_bare",
        "_base",
        "_deadlines",
        "_emit",
        "_governor",
        "_keys",
        "_max_bytes",
        "_max_wait",
        "_options",
        "_pool",
        "_retry",
        "_semaphore",
    )

    def __init__(
        self,
        *,
        pool: Pool,
        auth: Auth,
        base_url: str,
        timeouts: Timeouts,
        retry: RetryPolicy,
        governor: RateLimitGovernor | None,
        semaphore: asyncio.Semaphore | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_wait: float | None = DEFAULT_MAX_WAIT,
    ) -> None:
        self._pool = pool
        self._auth = auth
        self._base = base_url
        self._retry = retry
        self._governor = governor
        self._semaphore = semaphore
        self._max_bytes = max_response_bytes
        self._max_wait = check_max_wait(max_wait)
        self._keys: dict[tuple[str, str, str], BucketKey] = {}
        # Options the session does not already apply by default; a borrowed
        # session's raise_for_status must never replace the SDK's error mapping.
        options: dict[str, Any] = {"allow_redirects": False, "raise_for_status": False}
        if timeouts.client != pool.default_timeout:
            options["timeout"] = timeouts.client
        self._options = options
        self._deadlines = Deadlines(timeouts.attempt) if timeouts.attempt is not None else None
        # The session sends the static token's headers by default: leave them out.
        static = auth.static
        self._bare = static is not None and static.get_headers == pool.default_headers
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

    @overload
    async def request(
        self,
        op: Operation,
        path: str,
        *,
        scope: str = ...,
        params: Mapping[str, str] | str | None = ...,
        json: Any = ...,
        body: bytes | None = ...,
        idempotent: bool | None = ...,
        stats: RequestStats | None = ...,
        read: None = ...,
    ) -> Response: ...

    @overload
    async def request(
        self,
        op: Operation,
        path: str,
        *,
        scope: str = ...,
        params: Mapping[str, str] | str | None = ...,
        json: Any = ...,
        body: bytes | None = ...,
        idempotent: bool | None = ...,
        stats: RequestStats | None = ...,
        read: Callable[[Response], T],
    ) -> T: ...

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
        read: Callable[[Response], Any] | None = None,
    ) -> Any:
        """Send one operation and return its successful answer (or ``read(answer)``).

        ``path`` is the rendered, encoded path; ``scope`` the bucket scope (``"org"``
        or the datasource id); ``params`` a mapping or a ready query string (bare
        flags such as ``_sync``); ``json`` is encoded with orjson unless ``body`` already
        holds encoded bytes; ``idempotent`` overrides the operation's own flag;
        ``stats`` (optional) counts attempts, retries and rate-limit waits; ``read``
        (optional) turns the successful answer into what is returned, so a caller
        that only reads the answer needs no coroutine of its own.

        Raises:
            APIStatusError: (a subclass for) a status that is not a success of the
                operation, after retries; ``RedirectError`` for a 3xx.
            APIConnectionError / APITimeoutError: transport failure after retries;
                ``ResponseTooLargeError`` for a body over ``max_response_bytes``.
            AmbiguousOutcomeError: a non-idempotent operation may have reached the server.
            ConfigurationError: closed client, wrong event loop, bad token provider.
            Whatever ``read`` raises (``APIResponseValidationError`` for a body
                that does not have the operation's shape).
        """
        if _tracing.tracer is not None and not _tracing.inside.get():  # one span per operation
            stats = stats if stats is not None else RequestStats()
            kwargs = {"params": params, "json": json, "body": body, "idempotent": idempotent}
            spanned: Response = await _tracing.traced(
                self.request, op, path, stats, scope=scope, **kwargs
            )
            return spanned if read is None else read(spanned)  # the span ends with the answer
        if json is not None and body is None:
            body = orjson.dumps(json)
        url = URL(self._base + path, encoded=True)
        if params:
            url = url.with_query(params)
        creds = self._auth.static or await self._auth.current()
        safe = op.idempotent if idempotent is None else idempotent
        successes = SUCCESSES[op.name]
        started, attempt, reauthed = time.monotonic(), 0, False
        while True:
            attempt += 1
            answer = await self._attempt(op, url, path, creds, scope, body, safe, stats)
            if isinstance(answer, Response):
                if answer.status in successes:
                    return answer if read is None else read(answer)
                outcome: Outcome = answer.status
                if outcome == 429 and stats is not None:
                    stats.rate_limited += 1
                if outcome == 401 and not reauthed and self._auth.rotates:
                    reauthed, fresh = True, await self._auth.current()
                    if fresh.fingerprint != creds.fingerprint:  # a rotated token: once more
                        creds, attempt = fresh, attempt - 1
                        continue
            else:
                outcome = _classify_failure(answer)
            decision = self._decide(safe, attempt, outcome, answer)
            if decision.action != "retry":
                raise self._error(op, path, creds, answer, decision, attempt, started)
            self._count_retry(op, scope, attempt, outcome, answer, decision, stats)
            if decision.delay > 0:
                await asyncio.sleep(decision.delay)

    async def _attempt(
        self,
        op: Operation,
        url: URL,
        path: str,
        creds: Credentials,
        scope: str,
        body: bytes | None,
        safe: bool,
        stats: RequestStats | None,
    ) -> Response | BaseException:
        """One attempt: a slot, then a permit, send once under the deadline, give both back.

        Returns the answer (any status) or the exception that kept it from coming.
        """
        semaphore, governor = self._semaphore, self._governor
        if semaphore is not None:
            await semaphore.acquire()  # cancelled while waiting: nothing held
        try:
            permit: Permit | None = None
            if governor is not None:
                fp, rate_class = creds.fingerprint, op.rate_class
                key = self._keys.get((fp, scope, rate_class)) or self._key(fp, scope, rate_class)
                permit = governor.try_acquire(key) or await self._wait_for_permit(key, stats)
            if stats is not None:
                stats.requests += 1
            answer: Response | BaseException | None = None
            deadlines = self._deadlines
            watched = deadlines.enter() if deadlines is not None else None
            try:
                answer = await self._send_once(op, url, path, creds, body, safe)
            except _classify_failure.classes as exc:
                answer = exc
            except asyncio.CancelledError:
                if deadlines is None or not deadlines.expired(watched):
                    raise
                answer = AttemptTimeout(deadlines.seconds)
            finally:
                if deadlines is not None:
                    deadlines.leave(watched)
                if permit is not None:
                    assert governor is not None
                    if isinstance(answer, Response):
                        governor.release(permit, answer.status, answer.info)
                    else:  # no answer: its unit is spent unless it certainly never left
                        unsent = answer is not None and _classify_failure(answer) == "not_sent"
                        governor.release(permit, None, None, sent=not unsent)
            return answer
        finally:
            if semaphore is not None:
                semaphore.release()

    async def _wait_for_permit(self, key: BucketKey, stats: RequestStats | None) -> Permit:
        """Wait in the governor's queue for a permit of a bucket without room now."""
        assert self._governor is not None
        if stats is not None:
            stats.rate_limit_waits += 1
        return await self._governor.acquire(key, max_wait=self._max_wait)

    async def _send_once(
        self,
        op: Operation,
        url: URL,
        path: str,
        creds: Credentials,
        body: bytes | None,
        safe: bool,
    ) -> Response:
        """One ``session.request`` and one bounded read of its body."""
        session = self._pool.session()  # raises if the client was closed meanwhile
        if self._bare and creds is self._auth.static:
            headers = _CONTENT_TYPE if body is not None else None
        else:
            headers = creds.json_headers if body is not None else creds.get_headers
        try:
            # Awaited rather than ``async with``: the read releases the connection
            # at the end of the body, and a failed read closes it.
            resp = await session.request(
                op.method, url, headers=headers, data=body, **self._options
            )
        except RuntimeError:
            if not session.closed:
                raise
            raise ConfigurationError("the aiohttp session passed as session= is closed") from None
        try:
            raw = body_at_hand(resp, self._max_bytes)
            if raw is None:
                raw = await read_body(resp, self._max_bytes)
        except BodyTooLarge as exc:
            resp.close()
            if safe or resp.status not in SUCCESSES[op.name]:
                raise
            raw = exc.prefix  # carried out (a success status): never an error to resend
        except BaseException:
            resp.close()
            raise
        status, answered = resp.status, resp.headers
        info = None
        if self._governor is not None or status not in SUCCESSES[op.name]:
            info = parse_answer(answered, time.time())  # the one parse of this answer
        return Response(status, answered, raw, op.method, path, info)

    def _key(self, fp: str, scope: str, rate_class: str) -> BucketKey:
        """The bucket key, made once per (token, scope, class) and reused."""
        triple = (fp, scope, rate_class)
        key = self._keys.get(triple)
        if key is None:
            if len(self._keys) >= 1024:
                self._keys.clear()
            key = self._keys[triple] = BucketKey(fp, scope, rate_class)
        return key

    def _decide(
        self, safe: bool, attempt: int, outcome: Outcome, answer: Response | BaseException
    ) -> RetryDecision:
        """The retry policy's decision; nothing more once the client is closed, and
        no wait for a 429's announced reset beyond ``max_wait``."""
        if self._pool.closed and outcome != "fatal":
            return _AMBIGUOUS if outcome == "maybe_sent" and not safe else _RAISE
        info = answer.info if isinstance(answer, Response) else None
        decision = self._retry.decide(
            idempotent=safe,
            attempt=attempt,
            outcome=outcome,
            reset_after=info.announced_wait if info is not None else None,
            governed=self._governor is not None,
        )
        max_wait = self._max_wait
        if outcome == 429 and max_wait is not None and decision.delay > max_wait:
            return _RAISE  # the announced wait is longer than max_wait
        return decision

    def _count_retry(
        self,
        op: Operation,
        scope: str,
        attempt: int,
        outcome: Outcome,
        answer: Response | BaseException,
        decision: RetryDecision,
        stats: RequestStats | None,
    ) -> None:
        """Log, emit and count a retry about to happen."""
        status = answer.status if isinstance(answer, Response) else None
        reason = _describe(answer) if isinstance(answer, BaseException) else str(status)
        bucket = f"{scope}/{op.rate_class}"
        log.debug(
            "retrying %s (attempt %d, %s) in %.3fs [bucket %s]",
            op.name,
            attempt + 1,
            reason,
            decision.delay,
            bucket,
        )
        if self._emit is not None:
            self._emit(RateLimitEvent("retry", bucket, decision.delay, attempt, status, reason))
        if stats is not None:
            stats.retries += 1
            if outcome == "maybe_sent" or (status is not None and status >= 500):
                stats.uncertain_retries += 1

    def _error(
        self,
        op: Operation,
        path: str,
        creds: Credentials,
        answer: Response | BaseException,
        decision: RetryDecision,
        attempts: int,
        started: float,
    ) -> Exception:
        """The documented error that ends a request (never chained to aiohttp's)."""
        method = op.method
        if isinstance(answer, Response):
            headers = {k: v for k, v in answer.headers.items() if creds.token not in v}
            err: Exception = error_from_response(
                answer.status,
                decode_body(answer.body),
                method=method,
                path=path,
                rate_limit=rate_limit_info(answer.info),
                required_scope=op.scope,
                headers=headers,
                attempts=attempts,
                elapsed=time.monotonic() - started,
            )
            what = f"answered {answer.status}"
        else:
            err = _connection_error(answer, method, path, self._pool.closed)
            what = f"failed after the request may have reached the server ({_describe(answer)})"
        if decision.action == "ambiguous":
            ambiguous = AmbiguousOutcomeError(
                f"{op.name} {what}: it may or may not have been carried out, and it is "
                "not safe to repeat automatically",
                method=method,
                path=path,
            )
            ambiguous.__cause__ = err
            return ambiguous
        return err


_CONTENT_TYPE: Final = {"Content-Type": JSON_CT}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _connection_error(
    exc: BaseException, method: str, path: str, closed: bool
) -> APIConnectionError:
    if isinstance(exc, BodyTooLarge):
        return ResponseTooLargeError(
            f"{exc} ({method} {path}); the connection was dropped",
            limit=exc.limit,
            method=method,
            path=path,
        )
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return APIConnectionError(
            f"TLS certificate error: {exc.certificate_error}", method=method, path=path
        )
    if closed:
        return APIConnectionError(
            f"the client was closed while the request was in flight ({method} {path})",
            method=method,
            path=path,
        )
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        what = str(exc) if isinstance(exc, AttemptTimeout) else "request timed out"
        return APITimeoutError(f"{what} ({method} {path})", method=method, path=path)
    return APIConnectionError(
        f"connection error: {_describe(exc)} ({method} {path})", method=method, path=path
    )
