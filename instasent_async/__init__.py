"""instasent_async: the asyncio-native SDK for the Instasent Product and Ingest APIs."""

from __future__ import annotations

from ._client import Instasent
from ._core.retry import RetryPolicy
from ._ratelimit import BucketKey, BucketSnapshot, RateLimitEvent, RateLimitGovernor
from ._version import __version__
from .errors import (
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
from .models import Contact, Event, FailedItem, IngestReport, RejectedItem

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AmbiguousOutcomeError",
    "AuthenticationError",
    "BadRequestError",
    "BucketKey",
    "BucketSnapshot",
    "ConfigurationError",
    "Contact",
    "Event",
    "FailedItem",
    "IngestReport",
    "Instasent",
    "InstasentError",
    "NotFoundError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitEvent",
    "RateLimitGovernor",
    "RateLimitInfo",
    "RedirectError",
    "RejectedItem",
    "ResponseTooLargeError",
    "RetryPolicy",
    "ServerError",
    "UnprocessableEntityError",
    "__version__",
]
