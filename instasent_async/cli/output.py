"""What the command line prints: progress, reports, error text; and what Ctrl-C does.

Results go to stdout; progress, warnings and errors to stderr. Nothing here ever
prints a token.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import math
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Literal, TextIO, TypeVar

from yarl import URL

from ..errors import (
    AmbiguousOutcomeError,
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from ..models import FailedItem, IngestReport
from .codes import EXIT_API, EXIT_USAGE

__all__ = [
    "Interrupts",
    "Locator",
    "PlainProgress",
    "Progress",
    "TqdmProgress",
    "describe_error",
    "fail",
    "make_progress",
    "missing_v1",
    "print_report",
    "say",
    "warn",
]

T = TypeVar("T")

Locator = Callable[[int], str]
"""Names where the item at a 0-based source position came from (``FILE:LINE``, ``#7``)."""

_SHOWN = 5  # rejected/failed items listed under a report

# Python arguments an SDK message may name, and the flag that sets them here.
_FLAGS = (
    ("pass allow_insecure=True", "pass --allow-insecure"),
    ("report.consumed says where to resume", "the lines below say how to resume"),
)


def say(text: str = "", *, file: TextIO | None = None) -> None:
    """Print a result line on stdout (or ``file``)."""
    print(text, file=file or sys.stdout, flush=True)


def warn(text: str) -> None:
    """Print a warning, an error or a hint on stderr."""
    print(text, file=sys.stderr, flush=True)


# --- counts -------------------------------------------------------------------------------


def _waits(report: IngestReport) -> str:
    # "paced": the governor spread requests out (normal, even far below the limit);
    # "429": the server answered Too Many Requests.
    return f"{report.rate_limit_waits} paced, {report.rate_limited} answered 429"


def _counts(report: IngestReport) -> str:
    return (
        f"{report.accepted} accepted, {report.rejected_count} rejected, "
        f"{report.failed_count} failed; requests: {_waits(report)}"
    )


# --- progress -----------------------------------------------------------------------------


class Progress:
    """Shows the progress of one ingestion; this base class shows nothing.

    ``update(report)`` is the ``on_progress`` callback of ``ingest()`` (it receives the
    live ``IngestReport`` after every batch); ``close()`` ends the display.
    """

    def update(self, report: IngestReport) -> None:
        """Show the state of ``report`` (``done``, ``accepted``, ``rejected``...)."""

    def close(self) -> None:
        """Finish the display (idempotent)."""


class PlainProgress(Progress):
    """One line on ``stream`` at the first batch, then at most every ``interval`` seconds.

    Each line reads ``LABEL: DONE[/TOTAL] items (P%), R items/s, A accepted, ...``; a last
    line is printed by ``close()``. Suited to logs and pipes (no carriage returns).
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        stream: TextIO,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream
        self.interval = interval
        self._clock = clock
        self._started = clock()
        self._last = -math.inf
        self._report: IngestReport | None = None
        self._shown: tuple[int, int, int] | None = None
        self._closed = False

    def update(self, report: IngestReport) -> None:
        self._report = report
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._print(report, now)

    @staticmethod
    def _state(report: IngestReport) -> tuple[int, int, int]:
        return (report.done, report.rate_limit_waits, report.rate_limited)

    def _print(self, report: IngestReport, now: float) -> None:
        done = report.done
        self._shown = self._state(report)
        elapsed = max(now - self._started, 1e-9)
        if self.total:
            where = f"{done}/{self.total} items ({100 * done / self.total:.0f}%)"
        else:
            where = f"{done} items"
        print(
            f"{self.label}: {where}, {done / elapsed:,.0f} items/s, {_counts(report)}",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        report = self._report
        if report is not None and self._shown != self._state(report):
            self._print(report, self._clock())


class TqdmProgress(Progress):
    """A tqdm bar (items, items/s, ETA) with the counts and the waits as postfix."""

    def __init__(self, label: str, total: int | None, *, stream: TextIO) -> None:
        tqdm = importlib.import_module("tqdm").tqdm  # untyped: keep it Any
        self._bar = tqdm(
            total=total,
            desc=label,
            unit=" items",
            file=stream,
            dynamic_ncols=True,
            mininterval=0.2,
            smoothing=0.1,
        )
        self._closed = False

    def update(self, report: IngestReport) -> None:
        bar = self._bar
        bar.set_postfix_str(
            f"ok={report.accepted} rejected={report.rejected_count} "
            f"failed={report.failed_count} paced={report.rate_limit_waits} "
            f"429={report.rate_limited}",
            refresh=False,
        )
        bar.update(report.done - bar.n)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bar.close()


def _tqdm_available() -> bool:
    return importlib.util.find_spec("tqdm") is not None


def make_progress(
    label: str,
    total: int | None,
    *,
    style: Literal["auto", "bar", "plain", "none"] = "auto",
    stream: TextIO | None = None,
    interval: float = 2.0,
) -> Progress:
    """A progress display for one ingestion of ``total`` items (None when unknown).

    ``auto`` draws a tqdm bar when tqdm is installed (the ``[cli]`` extra) and ``stream``
    (default stderr) is a terminal, else plain periodic lines; ``none`` shows nothing.

    Raises:
        ImportError: ``style="bar"`` and tqdm is not installed.
    """
    stream = stream if stream is not None else sys.stderr
    if style == "none":
        return Progress()
    if style == "auto":
        isatty = getattr(stream, "isatty", None)
        tty = bool(isatty()) if callable(isatty) else False
        style = "bar" if tty and _tqdm_available() else "plain"
    if style == "bar":
        return TqdmProgress(label, total, stream=stream)
    return PlainProgress(label, total, stream=stream, interval=interval)


# --- reports ------------------------------------------------------------------------------


def _position(position: int) -> str:
    return f"#{position}"


def _errors_text(errors: dict[str, list[str]]) -> str:
    return "; ".join(f"{field}: {', '.join(messages)}" for field, messages in errors.items())


def print_report(
    label: str,
    report: IngestReport,
    *,
    locate: Locator = _position,
    shown: int = _SHOWN,
    file: TextIO | None = None,
) -> None:
    """Print the counts of ``report``, then its first rejected and failed items.

    The first line reads ``LABEL: T items: A accepted, R rejected, F failed (...)``;
    then up to ``shown`` items of each kind, each named by ``locate(position)``
    (``FILE:LINE`` for a file); consecutive items that failed for the same reason
    (a whole batch) share one line.
    """
    rejected, failed = report.rejected_count, report.failed_count
    say(
        f"{label}: {report.total} items: {report.accepted} accepted, {rejected} rejected, "
        f"{failed} failed ({report.requests} requests, {report.retries} retries, "
        f"{_waits(report)}, {report.elapsed:.2f}s)",
        file=file,
    )
    for entry in report.rejected[:shown]:
        errors = _with_flags(_errors_text(entry.errors))
        say(f"  {locate(entry.position)}: rejected: {errors}", file=file)
    if rejected > shown > 0:
        say(f"  ... and {rejected - shown} more rejected", file=file)
    listed = 0
    for lines, (first, count, reason) in enumerate(_runs(report.failed)):
        if lines >= shown:
            break
        more = f" (and the {count - 1} after it)" if count > 1 else ""
        say(f"  {locate(first)}{more}: failed: {_with_flags(reason)}", file=file)
        listed += count
    if failed > listed and shown > 0:
        say(f"  ... and {failed - listed} more failed", file=file)


def _runs(failed: Iterable[FailedItem]) -> Iterator[tuple[int, int, str]]:
    """``(first position, count, reason)`` for each run of consecutive items failed alike."""
    first, count, reason = 0, 0, ""
    for entry in failed:
        if count and entry.reason == reason and entry.position == first + count:
            count += 1
            continue
        if count:
            yield first, count, reason
        first, count, reason = entry.position, 1, entry.reason
    if count:
        yield first, count, reason


# --- errors -------------------------------------------------------------------------------


def _with_flags(text: str) -> str:
    for argument, flag in _FLAGS:
        text = text.replace(argument, flag)
    return text


def missing_v1(base_url: str | None) -> str | None:
    """A hint when ``base_url`` does not end in ``/v1`` (the API's root), else None."""
    if base_url is None:
        return None
    try:
        path = URL(base_url).path.rstrip("/")
    except ValueError:
        return None
    if path.endswith("/v1"):
        return None
    return f"the base URL {base_url} does not end in /v1: try --base-url {base_url.rstrip('/')}/v1"


def describe_error(exc: BaseException, base_url: str | None = None) -> tuple[str, int]:
    """A message saying what went wrong and what to do next, and the exit code.

    ``base_url`` is the one given (None for the default). Never shows the token; names
    the command line's flags where the SDK's message names a Python argument.
    """
    message, code = _describe(exc, base_url)
    return _with_flags(message), code


def _describe(exc: BaseException, base_url: str | None) -> tuple[str, int]:
    if isinstance(exc, ConfigurationError):
        return f"configuration error: {exc}", EXIT_USAGE
    if isinstance(exc, AuthenticationError):
        return (
            "token rejected (401): check the token (--token or INSTASENT_TOKEN), that it "
            "is not revoked, and that it belongs to the --project you name",
            EXIT_API,
        )
    if isinstance(exc, PermissionDeniedError):
        scope = getattr(exc, "required_scope", None)
        needs = f": use a token with the {scope} scope" if scope else ""
        return f"permission denied (403): {exc.message}{needs}", EXIT_API
    if isinstance(exc, NotFoundError):
        hint = missing_v1(base_url) or (
            "check --project and --datasource: they do not exist or this token cannot reach them"
        )
        return f"not found (404): {exc.message} ({exc.method} {exc.path}); {hint}", EXIT_API
    if isinstance(exc, RateLimitError):
        return f"rate limited (429): {exc}; wait and run the command again", EXIT_API
    if isinstance(exc, APIStatusError):
        return f"API error {exc}", EXIT_API
    if isinstance(exc, APIConnectionError):
        where = base_url or "the Instasent API"
        return f"cannot reach {where}: {exc}; check --base-url and the network", EXIT_API
    if isinstance(exc, AmbiguousOutcomeError):
        return f"outcome unknown: {exc}", EXIT_API
    return f"{type(exc).__name__}: {exc}", EXIT_API


def fail(exc: BaseException, base_url: str | None = None) -> int:
    """Print ``error: <describe_error(exc)>`` on stderr and return its exit code."""
    message, code = describe_error(exc, base_url)
    warn(f"error: {message}")
    return code


# --- Ctrl-C -------------------------------------------------------------------------------


class Interrupts:
    """While entered, SIGINT cancels the current piece of work instead of the program.

    ``await interrupts.run(coro)`` runs ``coro`` as the current work: the first Ctrl-C
    cancels it (an ingestion then lets in-flight batches finish and returns its partial
    report), a second one cancels it again (in-flight batches are abandoned). ``count``
    says how many times Ctrl-C was pressed. Where the event loop cannot install signal
    handlers (Windows, a non-main thread) Ctrl-C raises ``KeyboardInterrupt`` as usual.
    """

    def __init__(self, message: str = "interrupted") -> None:
        self.message = message
        self.count = 0
        self._work: asyncio.Future[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> Interrupts:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, self.interrupt)
        except (NotImplementedError, RuntimeError, ValueError):
            return self  # not the main thread, or not supported here
        self._loop = loop
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGINT)
            self._loop = None

    def interrupt(self) -> None:
        """What Ctrl-C does: cancel the current work (also callable directly)."""
        self.count += 1
        if self.count == 1:
            warn(f"\n{self.message} (Ctrl-C again to stop at once)")
        if self._work is not None:
            self._work.cancel()

    async def run(self, work: Awaitable[T]) -> T:
        """Await ``work`` as the current work (Ctrl-C cancels it).

        Raises:
            asyncio.CancelledError: ``work`` was cancelled by Ctrl-C.
        """
        task = asyncio.ensure_future(work)
        self._work = task
        try:
            return await task
        finally:
            self._work = None
