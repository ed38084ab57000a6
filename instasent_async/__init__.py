"""instasent_async: the asyncio-native SDK for the Instasent Product and Ingest APIs."""

from __future__ import annotations

from ._client import Instasent
from ._convert import from_dict, to_dict
from ._pagination import OffsetPager, ScrollIterator
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
    "OffsetPager",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitEvent",
    "RateLimitGovernor",
    "RateLimitInfo",
    "RejectedItem",
    "RetryPolicy",
    "ScrollIterator",
    "ServerError",
    "UnprocessableEntityError",
    "__version__",
    "from_dict",
    "to_dict",
]
