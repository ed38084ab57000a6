"""The exception hierarchy, built in one place from a status code and a body.

No exception ever carries the token: messages are built from the status, the
server's message, the method and the path (never the query string or headers).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

import attrs
import orjson
from multidict import CIMultiDict

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AmbiguousOutcomeError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "InstasentError",
    "NotFoundError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitInfo",
    "RedirectError",
    "ResponseTooLargeError",
    "ServerError",
    "UnprocessableEntityError",
    "error_from_response",
    "extract_message",
]


@attrs.frozen(slots=True)
class RateLimitInfo:
    """The rate-limit headers of one response.

    ``reset_at`` is an aware UTC datetime (already corrected for the difference
    between the server's ``Date`` header and the local clock), or ``None``.
    """

    limit: int | None
    remaining: int | None
    reset_at: _dt.datetime | None


class InstasentError(Exception):
    """Base class of every error raised by this SDK."""


class ConfigurationError(InstasentError):
    """The client was configured or used in a way that cannot work.

    Examples: an ``http://`` base URL for a non-loopback host, a client used
    from an event loop other than the one that opened it, a missing project.
    """


class APIConnectionError(InstasentError):
    """The request could not be completed: connection refused, reset or dropped."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path


class APITimeoutError(APIConnectionError):
    """The request timed out: connecting, or the whole attempt (``timeout``)."""


class ResponseTooLargeError(APIConnectionError):
    """The answer's body was larger than ``max_response_bytes`` (counted decompressed).

    The connection was dropped and the request is not retried. ``limit`` is the
    limit in bytes.
    """

    def __init__(self, message: str, *, limit: int, method: str = "", path: str = "") -> None:
        super().__init__(message, method=method, path=path)
        self.limit = limit


class APIResponseValidationError(InstasentError):
    """A success status whose body does not have the operation's documented shape.

    Raised instead of returning an empty or half-filled result (a list call
    answered ``42``, a get answered ``{"entity": null}``, an HTML page...).
    Attributes: ``status``, ``method``, ``path``, ``excerpt`` (the start of the
    body as text) and ``message``.
    """

    def __init__(
        self, message: str, *, status: int, excerpt: str, method: str = "", path: str = ""
    ) -> None:
        super().__init__(f"{message} ({status} {method} {path})")
        self.message = message
        self.status = status
        self.excerpt = excerpt
        self.method = method
        self.path = path

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, method={self.method!r}, "
            f"path={self.path!r}, message={self.message!r}, excerpt={self.excerpt!r})"
        )


class AmbiguousOutcomeError(InstasentError):
    """A non-idempotent request may or may not have reached the server.

    Raised instead of retrying an operation that would not be safe to repeat
    (direct SMS): the SDK cannot know whether the server acted on it. The
    original error is chained as ``__cause__``.
    """

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path


_REQUEST_ID_HEADERS = ("X-Request-Id", "Request-Id", "X-Correlation-Id", "X-Amzn-RequestId")
# Never shown in a repr, whatever a server echoes back.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


class PaginationError(APIResponseValidationError):
    """A scroll whose pages do not advance: the server sent back a cursor that was
    already followed, or a page identical to the previous one.

    Raised instead of iterating forever. ``cursor`` names the repeated cursor (or
    the cursor that fetched the repeated page; ``None`` for the first page).
    """

    def __init__(self, message: str, *, cursor: str | None, path: str = "") -> None:
        super().__init__(message, status=200, excerpt="", method="POST", path=path)
        self.cursor = cursor


class APIStatusError(InstasentError):
    """The server answered with a status that is not a success of the operation.

    Attributes: ``status``, ``message`` (from the body), ``body`` (decoded JSON
    or raw text, or ``None`` when empty), ``rate_limit`` (``RateLimitInfo`` or
    ``None``), ``method`` and ``path`` (the path only: never the query or the
    token), ``headers`` (the answer's headers, case-insensitive), ``request_id`` (from a
    request-id header, or ``None``), ``attempts`` (requests sent for this call)
    and ``elapsed`` (seconds from the first attempt to this answer).
    """

    def __init__(
        self,
        status: int,
        message: str,
        body: Any = None,
        rate_limit: RateLimitInfo | None = None,
        method: str = "",
        path: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        attempts: int = 1,
        elapsed: float = 0.0,
    ) -> None:
        super().__init__(
            f"{status} {message} ({method} {path})" if method else f"{status} {message}"
        )
        self.status = status
        self.message = message
        self.body = body
        self.rate_limit = rate_limit
        self.method = method
        self.path = path
        self.headers: CIMultiDict[str] = CIMultiDict(headers or ())
        self.request_id = next(
            (self.headers[h] for h in _REQUEST_ID_HEADERS if h in self.headers), None
        )
        self.attempts = attempts
        self.elapsed = elapsed

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.headers.items() if k.lower() not in _SECRET_HEADERS}
        return (
            f"{type(self).__name__}(status={self.status}, message={self.message!r}, "
            f"method={self.method!r}, path={self.path!r}, request_id={self.request_id!r}, "
            f"attempts={self.attempts}, elapsed={self.elapsed:.3f}, headers={shown!r})"
        )


class RedirectError(APIStatusError):
    """3xx: the server answered with a redirect. Never followed, never a success.

    ``location`` is the ``Location`` header, or ``None``.
    """

    @property
    def location(self) -> str | None:
        """Where the server wanted the request to go."""
        return self.headers.get("Location")


class BadRequestError(APIStatusError):
    """400: the body or query is malformed (not retried)."""


class AuthenticationError(APIStatusError):
    """401: the token is missing, malformed or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the token is valid but lacks a scope or privacy level.

    ``required_scope`` names the scope the operation needs, when known.
    """

    required_scope: str | None = None


class NotFoundError(APIStatusError):
    """404: the resource does not exist or is not visible to this token."""


class UnprocessableEntityError(APIStatusError):
    """422: validation failed. ``items`` holds the per-item errors of a batch."""

    items: list[dict[str, Any]]


class RateLimitError(APIStatusError):
    """429: the rate-limit window is exhausted. ``reset_at`` says when it reopens."""

    @property
    def reset_at(self) -> _dt.datetime | None:
        """When the window reopens (aware datetime), or ``None`` if unknown."""
        return self.rate_limit.reset_at if self.rate_limit is not None else None


class ServerError(APIStatusError):
    """5xx: the server failed (retried by the default policy)."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def decode_body(raw: bytes) -> Any:
    """Decode a response body: JSON if it parses, else text, ``None`` if empty."""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


def extract_message(body: Any, default: str) -> str:
    """The error message of a body: ``message``, then ``error``, ``errors``, raw text."""
    if isinstance(body, dict):
        for key in ("message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(e) for e in errors)
        if isinstance(errors, dict) and errors:
            return "; ".join(f"{k}: {v}" for k, v in errors.items())
    elif isinstance(body, str) and body.strip():
        text = body.strip()
        return text if len(text) <= 500 else text[:500] + "..."
    return default


def _batch_items(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict):
        entity = body.get("entity")
        if isinstance(entity, dict) and isinstance(entity.get("items"), list):
            return [i for i in entity["items"] if isinstance(i, dict)]
        errors = body.get("errors")
        if isinstance(errors, list):
            return [e for e in errors if isinstance(e, dict)]
    return []


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
}


def error_from_response(
    status: int,
    body: Any,
    *,
    method: str = "",
    path: str = "",
    rate_limit: RateLimitInfo | None = None,
    required_scope: str | None = None,
    headers: Mapping[str, str] | None = None,
    attempts: int = 1,
    elapsed: float = 0.0,
) -> APIStatusError:
    """Build the exception for a non-success response (the one mapping in the SDK)."""
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIStatusError
        if 300 <= status < 400:
            cls = RedirectError
    message = extract_message(body, _REASONS.get(status, f"HTTP {status}"))
    if cls is PermissionDeniedError and required_scope:
        message = f"{message} (this operation needs the {required_scope} scope)"
    err = cls(
        status,
        message,
        body,
        rate_limit,
        method,
        path,
        headers=headers,
        attempts=attempts,
        elapsed=elapsed,
    )
    if isinstance(err, PermissionDeniedError):
        err.required_scope = required_scope
    elif isinstance(err, UnprocessableEntityError):
        err.items = _batch_items(body)
    return err
