"""Checked client options: the base URL, the timeouts and the size limit of an answer."""

from __future__ import annotations

import ipaddress
import platform
from typing import Final

import aiohttp
import attrs
from yarl import URL

from .._errors import ConfigurationError
from .._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_USER_AGENT",
    "Timeouts",
    "check_base_url",
    "check_max_response_bytes",
    "is_loopback",
    "make_timeouts",
]

DEFAULT_BASE_URL: Final = "https://api.instasent.com/v1"
DEFAULT_USER_AGENT: Final = (
    f"instasent-async/{__version__} "
    f"Python/{platform.python_version()} aiohttp/{aiohttp.__version__}"
)
DEFAULT_MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024
"""8 MiB: a page of 100 contacts with every attribute is far below it."""

_LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.ip_address("::1")


def is_loopback(host: str | None) -> bool:
    """Exactly ``localhost``, an IPv4 literal in 127.0.0.0/8, or ``::1``.

    A name is never resolved: ``anything.localhost`` is not loopback here.
    """
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if address.version == 4:
        return address in _LOOPBACK_V4
    return address == _LOOPBACK_V6


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
    if url.scheme == "http" and not allow_insecure and not is_loopback(url.host):
        raise ConfigurationError(
            f"refusing plain http:// for {url.host}: the bearer token would travel "
            "unencrypted; use https:// or pass allow_insecure=True"
        )
    return str(url).rstrip("/")


def _seconds(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{what} must be positive (seconds), got {value!r}")
    return float(value)


@attrs.frozen(slots=True)
class Timeouts:
    """A client's timeouts: aiohttp's ``client`` timeout and the attempt deadline.

    ``timeout`` and ``attempt_timeout`` are the values asked for (``None`` for an
    attempt deadline derived from ``timeout``), so a sibling can derive its own.
    """

    client: aiohttp.ClientTimeout
    attempt: float | None
    timeout: float | aiohttp.ClientTimeout | None
    attempt_timeout: float | None


def make_timeouts(
    timeout: float | aiohttp.ClientTimeout | None, attempt_timeout: float | None = None
) -> Timeouts:
    """The timeouts of one attempt.

    ``timeout`` (seconds) bounds the whole attempt, from taking a connection to the
    last byte of the body, and connecting within it (at most 10 s);
    ``attempt_timeout`` replaces the bound of the whole attempt (none when
    ``timeout`` is ``None`` or an ``aiohttp.ClientTimeout``, which is used as given).

    The whole attempt is watched by the transport's one deadline timer, not by
    aiohttp's ``sock_read``, which arms and cancels a timer for every chunk
    received: a cost every request would pay (``benchmarks/overhead.py`` shows it).
    A server that stalls, or trickles a byte now and then, meets the deadline.

    Raises:
        ConfigurationError: a value that is not a positive number.
    """
    attempt = _seconds(attempt_timeout, "attempt_timeout") if attempt_timeout is not None else None
    if isinstance(timeout, aiohttp.ClientTimeout):
        client = timeout
    elif timeout is None:
        client = aiohttp.ClientTimeout(total=None)
    else:
        seconds = _seconds(timeout, "timeout")
        client = aiohttp.ClientTimeout(total=None, sock_connect=min(seconds, 10.0))
        if attempt is None:
            attempt = seconds
    return Timeouts(client, attempt, timeout, attempt_timeout)


def check_max_response_bytes(value: int) -> int:
    """Validate ``max_response_bytes``.

    Raises:
        ConfigurationError: not an int of at least 1024.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
        raise ConfigurationError(f"max_response_bytes must be an int >= 1024, got {value!r}")
    return value
