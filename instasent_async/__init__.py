"""instasent_async: the asyncio-native SDK for the Instasent Product and Ingest APIs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._client import Instasent
from ._convert import from_dict, to_dict
from ._core.retry import RetryPolicy
from ._pagination import OffsetPager, ScrollIterator
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

if TYPE_CHECKING:
    from ._redis_store import RedisBucketStore

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
    "OffsetPager",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitEvent",
    "RateLimitGovernor",
    "RateLimitInfo",
    "RedirectError",
    "RedisBucketStore",
    "RejectedItem",
    "ResponseTooLargeError",
    "RetryPolicy",
    "ScrollIterator",
    "ServerError",
    "UnprocessableEntityError",
    "__version__",
    "from_dict",
    "to_dict",
]


def __getattr__(name: str) -> Any:
    # RedisBucketStore is loaded on first use: importing the package never needs redis.
    if name == "RedisBucketStore":
        from ._redis_store import RedisBucketStore

        return RedisBucketStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
