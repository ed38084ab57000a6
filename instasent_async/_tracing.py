"""OpenTelemetry spans for SDK operations (the ``[otel]`` extra).

When ``opentelemetry-api`` is importable and a tracer provider is configured (set it
at start-up, before creating the client), each operation the SDK sends is one span
named ``instasent <operation>`` (``instasent audience.get_by_user_id``), kind CLIENT,
covering every attempt, retry and rate-limit wait of that operation. Attributes:

``http.request.method``, ``url.template`` (the route template, e.g.
``/project/{project}/audience/user/{user_id}``), ``http.response.status_code`` (the
last answer's status, when there was one), ``instasent.operation``,
``instasent.bucket`` (``org/<class>`` or ``datasource/<METHOD endpoint>``),
``instasent.retries``, ``instasent.rate_limit_waits``, and ``error.type`` (the
exception's class name) on failure.

No attribute, event or status text holds the token, a raw id, a URL or an exception
message (messages carry the request path): exceptions are not recorded on the span.

Without a configured provider (or without the package) nothing is created: the
transport's check costs one module attribute read per request. The span is the
current span while the request runs, so spans made beneath it (aiohttp's client
instrumentation: one per HTTP attempt) become its children.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from ._core.endpoints import Operation
from ._version import __version__

__all__ = ["inside", "refresh", "traced", "tracer"]

try:
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - depends on the environment
    _trace = None  # type: ignore[assignment]

tracer: Any = None
"""The tracer spans are made with, or None: tracing off (the transport's check)."""

inside: ContextVar[bool] = ContextVar("instasent_tracing_inside", default=False)
"""True inside a traced operation: the transport's own call is not traced twice."""


class _Stats(Protocol):
    """What ``traced`` reads of the transport's ``RequestStats``."""

    retries: int
    rate_limit_waits: int


class _Answer(Protocol):
    """What ``traced`` reads of the transport's ``Response``."""

    status: int


_R = TypeVar("_R", bound=_Answer)


def refresh() -> None:
    """Turn tracing on when a real tracer provider is configured (else off).

    Called when a client is created; OpenTelemetry's default proxy provider (nothing
    configured) leaves tracing off, so an unused ``opentelemetry-api`` costs nothing.
    """
    global tracer
    if _trace is None:
        return
    provider = _trace.get_tracer_provider()
    if isinstance(provider, (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider)):
        tracer = None
    else:
        tracer = provider.get_tracer("instasent_async", __version__)


async def traced(
    send: Callable[..., Awaitable[_R]],
    op: Operation,
    path: str,
    stats: _Stats,
    **kwargs: Any,
) -> _R:
    """Run ``send(op, path, stats=stats, **kwargs)`` (the transport's request) in a span.

    Raises:
        Whatever ``send`` raises, unchanged (the span records only its class name).
    """
    assert _trace is not None and tracer is not None
    retries, waits = stats.retries, stats.rate_limit_waits
    attributes = {
        "http.request.method": op.method,
        "url.template": op.path,
        "instasent.operation": op.name,
        "instasent.bucket": f"{'datasource' if op.datasource else 'org'}/{op.rate_class}",
    }
    reset = inside.set(True)
    try:
        with tracer.start_as_current_span(
            f"instasent {op.name}",
            kind=_trace.SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                response = await send(op, path, stats=stats, **kwargs)
            except BaseException as exc:
                status = getattr(exc, "status", None)
                if isinstance(status, int):
                    span.set_attribute("http.response.status_code", status)
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(_trace.StatusCode.ERROR, type(exc).__name__)
                raise
            else:
                span.set_attribute("http.response.status_code", response.status)
                return response
            finally:
                span.set_attribute("instasent.retries", stats.retries - retries)
                span.set_attribute("instasent.rate_limit_waits", stats.rate_limit_waits - waits)
    finally:
        inside.reset(reset)
