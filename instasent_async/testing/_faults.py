"""Fault injection: rules that fail, drop, delay or garble the next matching requests."""

from __future__ import annotations

from typing import Any, Literal

import attrs
import orjson
from aiohttp import web

__all__ = ["Fault", "FaultQueue"]

_MALFORMED_BODY = b'{"entity": {"truncated": <html>'


@attrs.define(slots=True)
class Fault:
    """One rule; ``remaining`` counts down on every matching request."""

    kind: Literal["fail", "drop", "delay", "malformed"]
    remaining: int
    method: str | None
    path_contains: str | None
    after_processing: bool = False
    status: int = 503
    body: Any = None
    seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        """True when the request's method and path pass the rule's filters."""
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )

    def response(self) -> web.Response | None:
        """What to answer instead of the real response; None means "drop the connection"."""
        if self.kind == "drop":
            return None
        if self.kind == "malformed":
            return web.Response(body=_MALFORMED_BODY, status=200, content_type="application/json")
        body = {"message": "Injected failure"} if self.body is None else self.body
        if isinstance(body, (bytes, str)):
            return web.Response(body=body, status=self.status)
        return web.Response(
            body=orjson.dumps(body), status=self.status, content_type="application/json"
        )


class FaultQueue:
    """Pending rules, applied in the order they were added."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def __bool__(self) -> bool:
        return bool(self._faults)

    def add(self, fault: Fault) -> None:
        """Queue a rule (``remaining == 0`` is a no-op).

        Raises:
            ValueError: a negative count.
        """
        if fault.remaining < 0:
            raise ValueError("n must be >= 0")
        if fault.method is not None:
            fault.method = fault.method.upper()
        if fault.remaining:
            self._faults.append(fault)

    def take(self, method: str, path: str, *, delay: bool) -> Fault | None:
        """Consume one use of the first matching delay rule (``delay=True``) or of the first
        matching terminal rule (fail, drop, malformed)."""
        for fault in self._faults:
            if (fault.kind == "delay") == delay and fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        """Remove every rule."""
        self._faults.clear()
