"""The exception hierarchy, built in one place from a status code and a body.

No exception ever carries the token: messages are built from the status, the
server's message, the method and the path (never the query string or headers).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import attrs
import orjson

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AmbiguousOutcomeError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "InstasentError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitInfo",
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
    """The request timed out (connect or read)."""


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


class APIStatusError(InstasentError):
    """The server answered with a non-success status code.

    Attributes: ``status``, ``message`` (from the body), ``body`` (decoded JSON
    or raw text, or ``None`` when empty), ``rate_limit`` (``RateLimitInfo`` or
    ``None``), ``method`` and ``path`` (the path only: never the query or the
    token).
    """

    def __init__(
        self,
        status: int,
        message: str,
        body: Any = None,
        rate_limit: RateLimitInfo | None = None,
        method: str = "",
        path: str = "",
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
) -> APIStatusError:
    """Build the exception for a non-success response (the one mapping in the SDK)."""
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIStatusError
    message = extract_message(body, _REASONS.get(status, f"HTTP {status}"))
    if cls is PermissionDeniedError and required_scope:
        message = f"{message} (this operation needs the {required_scope} scope)"
    err = cls(status, message, body, rate_limit, method, path)
    if isinstance(err, PermissionDeniedError):
        err.required_scope = required_scope
    elif isinstance(err, UnprocessableEntityError):
        err.items = _batch_items(body)
    return err
