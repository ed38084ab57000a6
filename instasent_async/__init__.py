"""instasent_async: the asyncio-native SDK for the Instasent Product and Ingest APIs."""

from __future__ import annotations

from ._client import Instasent
from ._ratelimit import BucketKey, BucketSnapshot, RateLimitEvent, RateLimitGovernor
from ._retry import RetryPolicy
from ._version import __version__
from .errors import (
    AmbiguousOutcomeError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InstasentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RateLimitInfo,
    ServerError,
    UnprocessableEntityError,
)
from .models import Contact, Event, FailedItem, IngestReport, RejectedItem

__all__ = [
    "APIConnectionError",
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
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitEvent",
    "RateLimitGovernor",
    "RateLimitInfo",
    "RejectedItem",
    "RetryPolicy",
    "ServerError",
    "UnprocessableEntityError",
    "__version__",
]
