"""The token and the request headers built from it (cached per token).

A token is a string or an async callable returning the current one (read before
every request, so tokens rotate without a restart). Every token, given or
provided, is checked: printable ASCII only, so it can never break a header line
or travel as something other than what was given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Final

from .._errors import ConfigurationError

__all__ = ["Auth", "Credentials", "TokenSource", "check_token", "fingerprint"]

TokenSource = str | Callable[[], Awaitable[str]]

JSON_CT: Final = "application/json"
_MAX_CACHED: Final = 32


def fingerprint(token: str) -> str:
    """A short, non-reversible identifier of a token (safe to log and to key buckets)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def check_token(token: object, where: str = "token") -> str:
    """Return ``token`` when it is a non-blank string of printable ASCII.

    Raises:
        ConfigurationError: anything else (the message never shows the token).
    """
    if not isinstance(token, str):
        raise ConfigurationError(f"{where} must be a string, got {type(token).__name__}")
    if not token.strip():
        raise ConfigurationError(f"{where} must not be empty")
    if not (token.isascii() and token.isprintable()):
        raise ConfigurationError(
            f"{where} holds a character that is not printable ASCII (a line break, a "
            "control character or a non-ASCII letter); check how it was copied"
        )
    return token


class Credentials:
    """One token's fingerprint and the headers of a request without and with a JSON body."""

    __slots__ = ("fingerprint", "get_headers", "json_headers", "token")

    def __init__(self, token: str, user_agent: str) -> None:
        self.token = token
        self.fingerprint = fingerprint(token)
        self.get_headers: dict[str, str] = {
            "Authorization": f"Bearer {token}",
            "User-Agent": user_agent,
            "Accept": JSON_CT,
        }
        self.json_headers = {**self.get_headers, "Content-Type": JSON_CT}

    def __repr__(self) -> str:
        return f"<Credentials {self.fingerprint}>"

    def headers(self, has_body: bool) -> dict[str, str]:
        """The headers of a request with or without a JSON body."""
        return self.json_headers if has_body else self.get_headers


class Auth:
    """A token source and the credentials of every token it gave (cached).

    ``static`` is the credentials of a string token (``None`` for a provider).

    Raises:
        ConfigurationError: (constructor) an invalid token or a source that is
            neither a string nor a callable.
    """

    __slots__ = ("_cache", "_source", "_user_agent", "static")

    def __init__(self, token: TokenSource, user_agent: str) -> None:
        if not isinstance(token, str) and not callable(token):
            raise ConfigurationError(
                "token must be a string or an async callable returning the current token"
            )
        self._source = token
        self._user_agent = user_agent
        self._cache: dict[str, Credentials] = {}
        self.static = self.credentials(check_token(token)) if isinstance(token, str) else None

    def __repr__(self) -> str:
        return f"<Auth {'static' if self.static is not None else 'provider'}>"

    @property
    def rotates(self) -> bool:
        """Whether the token comes from a provider (re-read once after a 401)."""
        return self.static is None

    def credentials(self, token: str) -> Credentials:
        """The (cached) credentials of a token already checked."""
        cached = self._cache.get(token)
        if cached is None:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            cached = self._cache[token] = Credentials(token, self._user_agent)
        return cached

    async def current(self) -> Credentials:
        """The credentials to send now: the static token's, or the provider's answer.

        Raises:
            ConfigurationError: the provider returned something that is not a valid token.
        """
        if self.static is not None:
            return self.static
        source = self._source
        assert callable(source)
        token = await source()
        cached = self._cache.get(token) if type(token) is str else None
        return cached or self.credentials(check_token(token, "the token provider's token"))
