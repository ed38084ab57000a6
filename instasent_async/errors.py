"""Every exception the SDK raises (also importable from ``instasent_async``)."""

from __future__ import annotations

from ._errors import (
    AmbiguousOutcomeError,
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InstasentError,
    NotFoundError,
    PaginationError,
    PermissionDeniedError,
    RateLimitError,
    RateLimitInfo,
    RedirectError,
    ResponseTooLargeError,
    ServerError,
    UnprocessableEntityError,
)

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
]
