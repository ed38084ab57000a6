"""The ``instasent-async`` command line (also ``python -m instasent_async``).

Commands: ``whoami`` (check a token), ``ingest contacts|events FILE`` (NDJSON or CSV
with a progress bar and a final report), ``serve-fake`` (the fake server standalone)
and ``demo`` (fake server in-process, realistic ingestion, segment scroll, direct SMS).

Exit codes: 0 success; 1 an ingestion finished with rejected or failed items; 2 usage,
bad input or configuration errors; 3 API errors (token rejected, not found, server
unreachable...); 130 interrupted by Ctrl-C.

The token comes from ``--token`` or ``INSTASENT_TOKEN`` and is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import math
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from typing import Any, Literal, TextIO, TypeVar

from ._files import (
    JSON_COLUMNS,
    FileFormat,
    InputError,
    check_readable,
    detect_format,
    read_items,
    scan,
    stop_at_first_error,
)
from ._version import __version__

__all__ = [
    "EXIT_API",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "Interrupts",
    "PlainProgress",
    "Progress",
    "TqdmProgress",
    "build_parser",
    "describe_error",
    "main",
    "make_progress",
    "print_report",
]

EXIT_OK = 0
"""Success (for ``ingest``: every item accepted)."""
EXIT_REJECTED = 1
"""An ingestion finished, but some items were rejected or failed."""
EXIT_USAGE = 2
"""Bad command line, bad input file, or bad configuration (no token...)."""
EXIT_API = 3
"""The API refused the work: token rejected, not found, permission denied, unreachable."""
EXIT_INTERRUPTED = 130
"""Interrupted by Ctrl-C (SIGINT)."""

DEFAULT_BASE_URL = "https://api.instasent.com/v1"
_SHOWN_INPUT_ERRORS = 10
_REQUIRED_CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "contacts": ("_user_id",),
    "events": ("_user_id", "_event_id", "_event_type"),
}

T = TypeVar("T")


# --- output -------------------------------------------------------------------------------


def _out() -> TextIO:
    return sys.stdout


def _err() -> TextIO:
    return sys.stderr


def _say(text: str = "", *, file: TextIO | None = None) -> None:
    print(text, file=file or _out(), flush=True)


def _warn(text: str) -> None:
    print(text, file=_err(), flush=True)


# --- progress -----------------------------------------------------------------------------


class Progress:
    """Shows the progress of one ingestion; this base class shows nothing.

    ``update(report)`` is the ``on_progress`` callback of ``ingest()`` (it receives the
    live ``IngestReport`` after every batch); ``close()`` ends the display.
    """

    def update(self, report: Any) -> None:
        """Show the state of ``report`` (``done``, ``accepted``, ``rejected``...)."""

    def close(self) -> None:
        """Finish the display (idempotent)."""


def _counts(report: Any) -> str:
    return (
        f"{report.accepted} accepted, {len(report.rejected)} rejected, "
        f"{len(report.failed)} failed, {report.rate_limit_waits} rate-limit waits"
    )


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
        self._report: Any = None
        self._shown: tuple[int, int] | None = None
        self._closed = False

    def update(self, report: Any) -> None:
        self._report = report
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._print(now)

    def _print(self, now: float) -> None:
        report = self._report
        done = report.done
        self._shown = (done, report.rate_limit_waits)
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
        if report is not None and self._shown != (report.done, report.rate_limit_waits):
            self._print(self._clock())


class TqdmProgress(Progress):
    """A tqdm bar (items, items/s, ETA) with accepted/rejected/failed/waits as postfix."""

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

    def update(self, report: Any) -> None:
        bar = self._bar
        bar.set_postfix_str(
            f"ok={report.accepted} rejected={len(report.rejected)} "
            f"failed={len(report.failed)} waits={report.rate_limit_waits}",
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
    stream = stream if stream is not None else _err()
    if style == "none":
        return Progress()
    if style == "auto":
        isatty = getattr(stream, "isatty", None)
        tty = bool(isatty()) if callable(isatty) else False
        style = "bar" if tty and _tqdm_available() else "plain"
    if style == "bar":
        return TqdmProgress(label, total, stream=stream)
    return PlainProgress(label, total, stream=stream, interval=interval)


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
            _warn(f"\n{self.message} (Ctrl-C again to stop at once)")
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


# --- configuration ------------------------------------------------------------------------


class _UsageError(Exception):
    """A configuration problem reported as ``error: ...`` with exit code 2."""


def _token(args: argparse.Namespace) -> str:
    token = args.token if args.token is not None else os.environ.get("INSTASENT_TOKEN")
    token = (token or "").strip()
    if not token:
        raise _UsageError("no token: pass --token or set INSTASENT_TOKEN")
    return token


def _project(args: argparse.Namespace, *, required_for: str | None = None) -> str | None:
    project = args.project if args.project is not None else os.environ.get("INSTASENT_PROJECT")
    project = (project or "").strip() or None
    if project is None and required_for is not None:
        raise _UsageError(
            f"no project: {required_for} needs --project or INSTASENT_PROJECT (the project UID)"
        )
    return project


def _base_url(args: argparse.Namespace) -> str:
    if args.base_url is not None:
        return str(args.base_url)
    return os.environ.get("INSTASENT_BASE_URL") or DEFAULT_BASE_URL


def describe_error(exc: BaseException, base_url: str | None = None) -> tuple[str, int]:
    """A one-line message and the exit code for an SDK error (never shows the token)."""
    from .errors import (
        AmbiguousOutcomeError,
        APIConnectionError,
        APIStatusError,
        AuthenticationError,
        ConfigurationError,
        NotFoundError,
        PermissionDeniedError,
    )

    if isinstance(exc, ConfigurationError):
        return f"configuration error: {exc}", EXIT_USAGE
    if isinstance(exc, AuthenticationError):
        return "token rejected (401)", EXIT_API
    if isinstance(exc, PermissionDeniedError):
        scope = getattr(exc, "required_scope", None)
        needs = f"; the operation needs the {scope} scope" if scope else ""
        return f"permission denied (403): {exc.message}{needs}", EXIT_API
    if isinstance(exc, NotFoundError):
        return (
            f"not found (404): {exc.message} ({exc.method} {exc.path}); the project or "
            "datasource does not exist or this token cannot reach it",
            EXIT_API,
        )
    if isinstance(exc, APIStatusError):
        return f"API error {exc}", EXIT_API
    if isinstance(exc, APIConnectionError):
        where = f" {base_url}" if base_url else ""
        return f"cannot reach{where}: {exc}", EXIT_API
    if isinstance(exc, AmbiguousOutcomeError):
        return f"outcome unknown: {exc}", EXIT_API
    return f"{type(exc).__name__}: {exc}", EXIT_API


def _fail(exc: BaseException, base_url: str | None = None) -> int:
    message, code = describe_error(exc, base_url)
    _warn(f"error: {message}")
    return code


# --- whoami -------------------------------------------------------------------------------


def _named(name: Any, ident: Any) -> str:
    if name and ident:
        return f"{name} ({ident})"
    return str(name or ident or "?")


def _print_stream_info(info: Any) -> None:
    org = info.organization or {}
    project = info.project or {}
    ds = info.datasource or {}
    stream = info.stream or {}
    _say(f"organization: {_named(org.get('name'), org.get('uid') or org.get('id'))}")
    _say(f"project:      {_named(project.get('name'), project.get('uid') or project.get('id'))}")
    kind = f", {ds['type']}" if ds.get("type") else ""
    _say(f"datasource:   {_named(ds.get('name'), str(ds.get('id') or '?') + kind)}")
    if stream:
        _say(f"stream:       {_named(stream.get('id'), stream.get('status'))}")
    if info.usage:
        usage = info.usage
        text = (
            ", ".join(f"{k}={v}" for k, v in usage.items())
            if isinstance(usage, dict)
            else str(usage)
        )
        _say(f"usage:        {text}")


async def _whoami(args: argparse.Namespace, token: str, project: str | None, base_url: str) -> int:
    from . import Instasent
    from .errors import AuthenticationError, InstasentError, NotFoundError, PermissionDeniedError

    try:
        async with Instasent(token, project=project, base_url=base_url) as client:
            if args.datasource:
                info = await client.datasource(args.datasource).info()
                _say("token: valid (datasource access)")
                _print_stream_info(info)
                return EXIT_OK
            try:
                org = await client.organization.get()
            except AuthenticationError:
                raise
            except (NotFoundError, PermissionDeniedError):
                # A datasource token cannot read the organization: try its datasource.
                if project is None:
                    _warn(
                        "error: this token cannot read the organization (a datasource "
                        "token?): pass --project and --datasource to check it"
                    )
                    return EXIT_API
                info = await client.datasource("dsapi").info()
                _say("token: valid (datasource token)")
                _print_stream_info(info)
                return EXIT_OK
            _say("token: valid (product token)")
            _say(f"organization: {_named(org.name, org.uid or org.id)}")
            projects = list(getattr(org, "projects", None) or [])
            _say(f"projects ({len(projects)}):")
            for item in projects:
                _say(f"  {item.uid or item.id}  {item.name or ''}".rstrip())
            if project is not None:
                found = await client.project.get()
                _say(f"project: {_named(found.name, found.uid or project)}")
            return EXIT_OK
    except InstasentError as exc:
        return _fail(exc, base_url)


def _cmd_whoami(args: argparse.Namespace) -> int:
    token = _token(args)
    project = _project(args, required_for="--datasource" if args.datasource else None)
    base_url = _base_url(args)
    return asyncio.run(_whoami(args, token, project, base_url))


# --- ingest -------------------------------------------------------------------------------


def _prepare_dead_letter(path: str, source: str) -> None:
    """Fail early on an unusable dead-letter path; start it empty for this run."""
    if os.path.isdir(path):
        raise _UsageError(f"--dead-letter {path}: is a directory")
    with contextlib.suppress(OSError):
        if os.path.samefile(path, source):
            raise _UsageError(f"--dead-letter {path}: is the input file")
    try:
        with open(path, "wb"):
            pass
    except OSError as exc:
        raise _UsageError(f"--dead-letter {path}: cannot write: {exc.strerror or exc}") from None


def _print_input_errors(path: str, errors: list[InputError], bad: int, fatal: bool) -> None:
    for error in errors:
        _warn(str(error))
    if bad > len(errors):
        _warn(f"... and {bad - len(errors)} more bad line(s)")
    stopped = " (checking stopped there)" if fatal else ""
    _warn(
        f"error: {path}: {bad} bad line(s){stopped}; nothing was sent. Fix the file "
        "(or use --no-validate to send the items before the first bad line)"
    )


def print_report(label: str, report: Any, *, file: TextIO | None = None) -> None:
    """Print ``LABEL: <str(report)>`` (counts, then the first rejected/failed items)."""
    _say(f"{label}: {report}", file=file)


async def _guarded(work: Awaitable[T]) -> tuple[T | None, BaseException | None]:
    """``(result, None)``, or ``(None, error)`` for SDK errors and cancellation."""
    from .errors import InstasentError

    try:
        return await work, None
    except (asyncio.CancelledError, InstasentError) as exc:
        return None, exc


async def _ingest(
    args: argparse.Namespace,
    token: str,
    project: str,
    base_url: str,
    fmt: FileFormat,
    total: int | None,
    json_columns: Collection[str],
) -> int:
    from . import Instasent
    from .errors import InstasentError, PermissionDeniedError

    kind: str = args.kind
    path: str = args.file
    required = _REQUIRED_CSV_COLUMNS[kind] if fmt == "csv" else ()
    try:
        async with Instasent(token, project=project, base_url=base_url) as client:
            ds = client.datasource(args.datasource)
            try:
                await ds.info()  # token, datasource and network, before reading the file
            except PermissionDeniedError:
                _warn("warning: this token cannot read the datasource info (403); trying anyway")
            stopped: list[InputError] = []
            items: Iterator[dict[str, Any]] = read_items(
                path, fmt, json_columns=json_columns, required=required
            )
            if not args.validate:
                items = stop_at_first_error(items, stopped)
            progress = make_progress(kind, total, style="none" if args.no_progress else "auto")
            target = ds.contacts if kind == "contacts" else ds.events
            with Interrupts("interrupted: letting in-flight batches finish") as interrupts:
                report, error = await interrupts.run(
                    _guarded(
                        target.ingest(
                            items,
                            concurrency=args.concurrency,
                            on_progress=progress.update,
                            dead_letter=args.dead_letter,
                        )
                    )
                )
            progress.close()
    except InstasentError as exc:
        return _fail(exc, base_url)
    if error is not None:
        report = getattr(error, "report", None)
    if report is not None:
        print_report(kind, report)
        if args.dead_letter and (report.rejected or report.failed):
            count = len(report.rejected) + len(report.failed)
            _say(f"dead letter: {count} item(s) written to {args.dead_letter}")
    if isinstance(error, asyncio.CancelledError):
        _warn("interrupted: the report above is partial")
        return EXIT_INTERRUPTED
    if error is not None:
        return _fail(error, base_url)
    if stopped:
        _warn(str(stopped[0]))
        _warn(f"error: stopped at the first bad line of {path}; the items before it were sent")
        return EXIT_USAGE
    assert report is not None
    return EXIT_OK if report.ok else EXIT_REJECTED


def _cmd_ingest(args: argparse.Namespace) -> int:
    token = _token(args)
    project = _project(args, required_for="ingest")
    assert project is not None
    base_url = _base_url(args)
    path: str = args.file
    json_columns = JSON_COLUMNS | frozenset(args.json_column or ())
    try:
        fmt = detect_format(path, args.format)
        check_readable(path)
    except InputError as exc:
        _warn(f"error: {exc}")
        return EXIT_USAGE
    if args.dead_letter:
        _prepare_dead_letter(args.dead_letter, path)
    total: int | None = None
    if args.validate:
        required = _REQUIRED_CSV_COLUMNS[args.kind] if fmt == "csv" else ()
        if not args.no_progress:
            _warn(f"checking {path} ({fmt}) ...")
        result = scan(
            path, fmt, json_columns=json_columns, required=required, max_errors=_SHOWN_INPUT_ERRORS
        )
        if not result.ok:
            _print_input_errors(path, result.errors, result.bad, result.fatal)
            return EXIT_USAGE
        total = result.items
        if not args.no_progress:
            _warn(f"{path}: {total} {args.kind} to send")
    return asyncio.run(_ingest(args, token, project, base_url, fmt, total, json_columns))


# --- serve-fake and demo ------------------------------------------------------------------


def _cmd_serve_fake(argv: Sequence[str]) -> int:
    from .testing._serve import main as serve_main

    return serve_main(list(argv))


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return asyncio.run(
        run_demo(
            contacts=args.contacts,
            events=args.events,
            seed=args.seed,
            rate_limit=args.rate_limit,
            window=args.window,
            concurrency=args.concurrency,
            progress=not args.no_progress,
        )
    )


# --- parser -------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``instasent-async`` (``serve-fake`` options are its own)."""
    parser = argparse.ArgumentParser(
        prog="instasent-async",
        description="Command line for the Instasent Product and Ingest APIs.",
        epilog="Exit codes: 0 ok, 1 items rejected or failed, 2 usage or bad input, "
        "3 API error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    api = argparse.ArgumentParser(add_help=False)
    group = api.add_argument_group("API access")
    group.add_argument(
        "--token",
        help="API token (default: $INSTASENT_TOKEN; prefer the variable, the command line "
        "is visible to other users)",
    )
    group.add_argument("--project", help="project UID (default: $INSTASENT_PROJECT)")
    group.add_argument(
        "--base-url",
        help=f"API root (default: $INSTASENT_BASE_URL or {DEFAULT_BASE_URL})",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    whoami = commands.add_parser(
        "whoami",
        parents=[api],
        help="check a token and show what it reaches",
        description="Check a token against the API: with a product token print the "
        "organization and its projects (and --project); with a datasource token (or "
        "--datasource) print the datasource stream details.",
    )
    whoami.add_argument("--datasource", metavar="ID", help="check access to this datasource")
    whoami.set_defaults(run=_cmd_whoami)

    ingest = commands.add_parser(
        "ingest",
        parents=[api],
        help="send contacts or events from an NDJSON or CSV file",
        description="Send contacts (upsert by _user_id) or events from an NDJSON file (one "
        "JSON object a line) or a CSV file (a header row; _-prefixed columns are reserved "
        "fields, the others custom attributes; _event_parameters and _client_tags cells are "
        "JSON). The whole file is checked first and nothing is sent if a line is bad.",
    )
    ingest.add_argument("kind", choices=("contacts", "events"))
    ingest.add_argument("file", metavar="FILE")
    ingest.add_argument("--datasource", metavar="ID", required=True, help="datasource id")
    ingest.add_argument(
        "--format", choices=("ndjson", "jsonl", "csv"), help="default: from the extension"
    )
    ingest.add_argument(
        "--dead-letter",
        metavar="FILE",
        help="write rejected and failed items there as NDJSON (with errors or reason)",
    )
    ingest.add_argument(
        "--concurrency", type=_positive_int, default=8, help="batches in flight (default 8)"
    )
    ingest.add_argument(
        "--no-validate",
        dest="validate",
        action="store_false",
        help="do not check the whole file first: stream it in one pass and stop at the "
        "first bad line (the items before it are sent)",
    )
    ingest.add_argument(
        "--json-column",
        action="append",
        metavar="NAME",
        help="another CSV column holding JSON (repeatable)",
    )
    ingest.add_argument("--no-progress", action="store_true", help="no progress display")
    ingest.set_defaults(run=_cmd_ingest)

    commands.add_parser(
        "serve-fake",
        add_help=False,
        help="run the fake Instasent server (see: serve-fake --help)",
    )

    demo = commands.add_parser(
        "demo",
        help="run a full ingestion, segment scroll and direct SMS against an in-process "
        "fake server (no token, no network)",
        description="Start a fake Instasent server in this process, ingest a generated data "
        "set (with a few invalid items) under a scaled-down rate limit, scroll a segment, "
        "send a direct SMS and print the reports.",
    )
    demo.add_argument("--contacts", type=_count, default=20_000, help="default 20000")
    demo.add_argument("--events", type=_count, default=100_000, help="default 100000")
    demo.add_argument("--seed", type=int, default=7, help="data set seed (default 7)")
    demo.add_argument(
        "--rate-limit",
        type=_positive_int,
        default=250,
        help="fake server requests per window per bucket (default 250)",
    )
    demo.add_argument(
        "--window", type=_positive_float, default=1.0, help="rate-limit window, s (default 1)"
    )
    demo.add_argument(
        "--concurrency", type=_positive_int, default=8, help="batches in flight (default 8)"
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress display")
    demo.set_defaults(run=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Synchronous: it runs its own event loop, so call it from plain code, not from a
    coroutine.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "serve-fake":
        return _cmd_serve_fake(args_list[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code: int = args.run(args)
    except _UsageError as exc:
        _warn(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _warn("\ninterrupted")
        return EXIT_INTERRUPTED
    return code
