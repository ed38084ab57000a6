"""The one aiohttp ClientSession of a client family, created lazily in the running loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp
import orjson

from .._errors import ConfigurationError

__all__ = ["Pool"]

_NO_TIMEOUT = aiohttp.ClientTimeout(total=None)


def _json_serialize(obj: object) -> str:
    return orjson.dumps(obj).decode()


class Pool:
    """The ClientSession shared by a client and its ``with_options()`` siblings.

    The session is created on first use inside the running event loop, with the
    ``headers`` and ``timeout`` given here as its defaults (the root client's:
    fixed when the pool is made, whatever is built later). A borrowed session is
    never closed by us and keeps its own defaults: ``default_headers`` and
    ``default_timeout`` are then ``None`` and every request passes its own.
    """

    __slots__ = (
        "_closed",
        "_headers",
        "_loop",
        "_max_connections",
        "_session",
        "_timeout",
        "_trace_configs",
        "_trust_env",
        "owned",
    )

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None,
        max_connections: int,
        trace_configs: Sequence[aiohttp.TraceConfig] | None = None,
        trust_env: bool = False,
        headers: dict[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self._session = session
        self.owned = session is None
        self._loop: asyncio.AbstractEventLoop | None = (
            getattr(session, "_loop", None) if session is not None else None
        )
        self._closed = False
        self._max_connections = max_connections
        self._trace_configs = list(trace_configs) if trace_configs else None
        self._trust_env = trust_env
        self._headers = headers if self.owned else None
        self._timeout = timeout if self.owned else None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._session is not None else "lazy"
        return f"<Pool {state}{'' if self.owned else ' borrowed'}>"

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    @property
    def default_headers(self) -> dict[str, str] | None:
        """The headers the session sends by default (``None``: none of ours)."""
        return self._headers

    @property
    def default_timeout(self) -> aiohttp.ClientTimeout | None:
        """The session's default timeout (``None``: not ours, pass one per request)."""
        return self._timeout

    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use in the running loop.

        Raises:
            ConfigurationError: the pool is closed, or used from an event loop other
                than the one that opened it.
        """
        session = self._session
        if session is not None and not self._closed and self._loop is asyncio.get_running_loop():
            return session
        return self._open()

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ConfigurationError("this Instasent client is closed")
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop:
            raise ConfigurationError(
                "this Instasent client was opened in another event loop; create one "
                "client per event loop (aiohttp sessions cannot cross loops)"
            )
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=self._max_connections
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=self._trace_configs,
                json_serialize=_json_serialize,
                headers=self._headers,
                timeout=self._timeout or _NO_TIMEOUT,
                # Bearer tokens only: a cookie jar would cost every request for nothing.
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=self._trust_env,
            )
            self._loop = loop
        return self._session

    async def close(self) -> None:
        """Close the session if we created it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self.owned and not session.closed:
            await session.close()
