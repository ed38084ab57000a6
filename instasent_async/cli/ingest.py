"""``instasent-async ingest contacts|events FILE``: send a file's records to a datasource.

The file (NDJSON, CSV, a dead-letter file, gzip-compressed or not, ``-`` for stdin) is
checked first; nothing is sent if a line is bad. Rejections and failures name their
``FILE:LINE``. When a run stops early (Ctrl-C, the API gone, a bad line) or ends with
failed or rejected items, the last lines are the exact commands that resume it
(``--skip N``) or resend its dead letter (``--resend FILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import shlex
from collections.abc import Awaitable, Iterator, Mapping
from typing import Any, TypeVar

from .. import IngestReport
from ..bulk import MISSING_EVENT_ID, report_of, run_ingest
from ..errors import InstasentError, PermissionDeniedError
from ..models.specs import AttributeSpec
from ._cells import converters as cell_converters
from ._files import (
    JSON_COLUMNS,
    STDIN,
    CellConverter,
    FileFormat,
    InputError,
    LineMap,
    check_readable,
    detect_format,
    display_name,
    is_dead_letter,
    records,
    scan,
)
from .access import Access, resolve_access
from .argtypes import count, positive_float, positive_int
from .codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_REJECTED, EXIT_USAGE, UsageError
from .output import (
    Interrupts,
    fail,
    make_progress,
    print_report,
    say,
    warn,
)

__all__ = ["engine_default", "register", "run"]

T = TypeVar("T")

PROGRAM = "instasent-async"
_SHOWN_INPUT_ERRORS = 10


def engine_default(option: str) -> Any:
    """The bulk engine's default for ``option`` (shown in --help; an option left out
    of the command line is left out of the call, so the engine's default applies)."""
    return inspect.signature(run_ingest).parameters[option].default


_REQUIRED_CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "contacts": ("_user_id",),
    "events": ("_user_id", "_event_id", "_event_type"),
}


def register(commands: Any, access: argparse.ArgumentParser) -> None:
    """Add the ``ingest`` command to the ``commands`` sub-parsers."""
    parser = commands.add_parser(
        "ingest",
        parents=[access],
        help="send contacts or events from an NDJSON or CSV file",
        description="Send contacts (upsert by _user_id) or events from an NDJSON file (one "
        "JSON object a line), a CSV file (a header row; _-prefixed columns are reserved "
        "fields, the others custom attributes; _event_parameters and _client_tags cells are "
        "JSON; other cells take the type the datasource's attribute specs declare) or a "
        "dead-letter file of an earlier run. FILE may end in .gz; - reads stdin. The whole "
        "file is checked first and nothing is sent if a line is bad.",
    )
    parser.add_argument("kind", choices=("contacts", "events"))
    parser.add_argument(
        "file",
        metavar="FILE",
        help="NDJSON, CSV or dead-letter file (.gz accepted); - for stdin",
    )
    parser.add_argument("--datasource", metavar="ID", required=True, help="datasource id")
    parser.add_argument(
        "--resend",
        action="store_true",
        help="FILE is the dead-letter file of an earlier run: send its items again (an "
        "NDJSON FILE in that format is recognised without this flag)",
    )
    parser.add_argument(
        "--skip",
        metavar="N",
        type=count,
        default=0,
        help="skip the first N records (resume a run that stopped: its last lines say N)",
    )
    parser.add_argument(
        "--format", choices=("ndjson", "jsonl", "csv"), help="default: from the extension"
    )
    parser.add_argument(
        "--dead-letter",
        metavar="FILE",
        help="write rejected and failed items there as NDJSON, one line each with its "
        "source line and the errors or the reason (created only if something goes in)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        help=f"batches in flight (default {engine_default('concurrency')})",
    )
    parser.add_argument(
        "--unreachable-for",
        metavar="SECONDS",
        type=positive_float,
        help="stop when the API has been unreachable this long; the last lines then say "
        f"how to resume (default {engine_default('unreachable_for'):g})",
    )
    parser.add_argument(
        "--no-validate",
        dest="validate",
        action="store_false",
        help="do not check the whole file first: stream it in one pass and stop at the "
        "first bad line (the items before it are sent; stdin is always read this way)",
    )
    parser.add_argument(
        "--json-column",
        action="append",
        metavar="NAME",
        help="another CSV column holding JSON (repeatable)",
    )
    parser.add_argument(
        "--csv-strings",
        action="store_true",
        help="send CSV cells as strings, without converting them to the types the "
        "datasource's attribute specs declare (numbers, booleans, lists)",
    )
    parser.add_argument(
        "--no-require-event-id",
        dest="require_event_id",
        action="store_false",
        help="send events without an _event_id instead of rejecting them (their batches "
        "are then not retried: a retry could store them twice)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    parser.set_defaults(run=run)


# --- the command --------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Run ``ingest``; return the exit code.

    Raises:
        UsageError: no token or project, or an unusable ``--dead-letter`` path.
    """
    access = resolve_access(args, project_required_for="ingest")
    path: str = args.file
    try:
        check_readable(path)
        if args.resend:
            fmt: FileFormat = "dead-letter"
        else:
            fmt = detect_format(path, args.format)
            if fmt == "ndjson" and is_dead_letter(path):
                fmt = "dead-letter"
    except InputError as exc:
        warn(f"error: {exc}")
        return EXIT_USAGE
    if args.dead_letter:
        _prepare_dead_letter(args.dead_letter, path)
    return asyncio.run(_Run(args, access, path, fmt).main())


def _prepare_dead_letter(dead: str, source: str) -> None:
    """Fail early on an unusable dead-letter path; empty a stale one (never create it)."""
    if os.path.isdir(dead):
        raise UsageError(f"--dead-letter {dead}: is a directory")
    if source != STDIN and os.path.exists(dead) and os.path.samefile(dead, source):
        raise UsageError(f"--dead-letter {dead}: is the input file; name another file")
    folder = os.path.dirname(dead) or "."
    if not os.path.isdir(folder):
        raise UsageError(f"--dead-letter {dead}: cannot write: no folder {folder}")
    target = dead if os.path.exists(dead) else folder
    if not os.access(target, os.W_OK):
        raise UsageError(f"--dead-letter {dead}: cannot write: permission denied")
    if os.path.exists(dead) and os.path.getsize(dead):
        with open(dead, "wb"):  # lines of an earlier run would read as this run's
            pass


async def _guarded(work: Awaitable[T]) -> tuple[T | None, BaseException | None]:
    """``(result, None)``, or ``(None, error)`` for SDK errors, cancellation and a dead
    letter that could not be written (``OSError``)."""
    try:
        return await work, None
    except (asyncio.CancelledError, InstasentError, OSError) as exc:
        return None, exc


class _Run:
    """One ``ingest`` run: the checked file, the records sent, what is printed after."""

    def __init__(self, args: argparse.Namespace, access: Access, path: str, fmt: FileFormat):
        self.args = args
        self.access = access
        self.path = path
        self.name = display_name(path)
        self.fmt = fmt
        self.kind: str = args.kind
        self.lines = LineMap()
        self.stopped: InputError | None = None
        self.converters: Mapping[str, CellConverter] = {}
        self.json_columns = JSON_COLUMNS | frozenset(args.json_column or ())
        self.required = _REQUIRED_CSV_COLUMNS[self.kind] if fmt == "csv" else ()

    def locate(self, position: int) -> str:
        line = self.lines(position)
        return f"{self.name}:{line}" if line is not None else f"{self.name} record #{position}"

    async def main(self) -> int:
        args = self.args
        try:
            async with self.access.client() as client:
                ds = client.datasource(args.datasource)
                try:
                    await ds.info()  # token, datasource and network, before reading the file
                except PermissionDeniedError:
                    warn("warning: this token cannot read the datasource info (403); trying anyway")
                if self.fmt == "csv" and self.kind == "contacts" and not args.csv_strings:
                    self.converters = await self._fetch_converters(ds)
                if self.fmt == "dead-letter" and not args.resend:
                    warn(f"{self.name} is a dead letter: its items are sent again")
                total: int | None = None
                if args.validate and self.path != STDIN:
                    checked = self._check()
                    if isinstance(checked, str):
                        warn(checked)
                        return EXIT_USAGE
                    total = checked
                progress = make_progress(
                    self.kind, total, style="none" if args.no_progress else "auto"
                )
                options: dict[str, Any] = {}
                if self.kind == "events":
                    options["require_event_id"] = args.require_event_id
                for option in ("concurrency", "unreachable_for"):
                    if getattr(args, option) is not None:
                        options[option] = getattr(args, option)
                target = ds.contacts if self.kind == "contacts" else ds.events
                with Interrupts("interrupted: letting in-flight batches finish") as interrupts:
                    report, error = await interrupts.run(
                        _guarded(
                            target.ingest(
                                self._items(),
                                on_progress=progress.update,
                                dead_letter=args.dead_letter,
                                locate=self.lines,
                                **options,
                            )
                        )
                    )
                progress.close()
        except InstasentError as exc:
            return fail(exc, self.access.base_url)
        if error is not None:
            report = report_of(error)
        return self._finish(report, error)

    async def _fetch_converters(self, ds: Any) -> Mapping[str, CellConverter]:
        try:
            specs: list[AttributeSpec] = await ds.specs.attributes()
        except InstasentError as exc:
            warn(
                f"warning: cannot read the datasource's attribute specs ({exc}); "
                "CSV cells are sent as strings"
            )
            return {}
        return cell_converters(specs, skip=self.json_columns)

    def _check(self) -> int | str:
        """The number of records to send, or the message saying why none will be."""
        args = self.args
        if not args.no_progress:
            warn(f"checking {self.name} ({self.fmt}) ...")
        result = scan(
            self.path,
            self.fmt,
            json_columns=self.json_columns,
            required=self.required,
            converters=self.converters,
            max_errors=_SHOWN_INPUT_ERRORS,
        )
        if not result.ok:
            for error in result.errors:
                warn(str(error))
            if result.bad > len(result.errors):
                warn(f"... and {result.bad - len(result.errors)} more bad line(s)")
            stopped = " (checking stopped there)" if result.fatal else ""
            return (
                f"error: {self.name}: {result.bad} bad line(s){stopped}; nothing was sent. "
                "Fix the file (or use --no-validate to send the items before the first "
                "bad line)"
            )
        if result.items == 0:
            return f"error: {self.name}: no {self.kind} in the file (it is empty); nothing to send"
        if args.skip >= result.items:
            return (
                f"error: --skip {args.skip} skips all {result.items} records of {self.name}; "
                "nothing to send"
            )
        total: int = result.items - args.skip
        if not args.no_progress:
            skipped = f" (after skipping {args.skip})" if args.skip else ""
            warn(f"{self.name}: {total} {self.kind} to send{skipped}")
        return total

    def _items(self) -> Iterator[dict[str, Any]]:
        """The records after ``--skip``, their lines noted; ends at the first bad line."""
        skip = self.args.skip
        append = self.lines.append
        for line, value in records(
            self.path,
            self.fmt,
            json_columns=self.json_columns,
            required=self.required,
            converters=self.converters,
        ):
            if isinstance(value, InputError):
                self.stopped = value
                return
            if skip:
                skip -= 1
                continue
            append(line)
            yield value

    # --- after the run --------------------------------------------------------------------

    def _finish(self, report: IngestReport | None, error: BaseException | None) -> int:
        args = self.args
        if report is not None:
            print_report(self.kind, report, locate=self.locate)
            written = report.rejected_count + report.failed_count
            if args.dead_letter and written:
                say(f"dead letter: {written} item(s) written to {args.dead_letter}")
            if any(
                MISSING_EVENT_ID in entry.errors.get("_event_id", ()) for entry in report.rejected
            ):
                warn(
                    "events without an _event_id were rejected before sending: "
                    "--no-require-event-id sends them (their batches are then not retried)"
                )
        if isinstance(error, asyncio.CancelledError):
            warn("interrupted: the report above is partial")
            self._hints(report, stopped_early=True)
            return EXIT_INTERRUPTED
        if isinstance(error, OSError):
            warn(
                f"error: --dead-letter {args.dead_letter}: cannot write: "
                f"{error.strerror or error}; the run stopped (free some space or name "
                "another file)"
            )
            self._hints(report, stopped_early=True)
            return EXIT_USAGE
        if error is not None:
            code = fail(error, self.access.base_url)
            self._hints(report, stopped_early=True)
            return code
        assert report is not None
        if self.stopped is not None:
            warn(str(self.stopped))
            warn(
                f"error: stopped at the first bad line of {self.name}; the items before it "
                "were sent"
            )
            self._hints(report, stopped_early=True)
            return EXIT_USAGE
        if report.total == 0 and not args.skip:
            warn(f"error: {self.name}: no {self.kind} in the input (it is empty); nothing was sent")
            return EXIT_USAGE
        if report.ok:
            return EXIT_OK
        self._hints(report, stopped_early=False)
        return EXIT_REJECTED

    def _hints(self, report: IngestReport | None, *, stopped_early: bool) -> None:
        """Print the exact commands that resume the run and resend its dead letter."""
        if report is None:
            return
        args = self.args
        consumed = report.consumed
        failed, rejected = report.failed_count, report.rejected_count
        fresh = iter(_free_names(args.dead_letter, 2)) if args.dead_letter else None
        commands: list[tuple[str, str]] = []
        if failed and fresh is None:
            # Nothing kept the failed items: resume from the first of them (accepted
            # items after it are sent again, which upserts and _event_id make harmless).
            # When the kept list is capped the first one is not known: start over.
            known = len(report.failed) == failed
            first = min((entry.position for entry in report.failed), default=0) if known else 0
            at = args.skip + min(first, consumed)
            what = f"to send the {failed} failed item(s) again, resume at record {at}"
            commands.append((what, self._command(skip=at)))
        elif stopped_early:
            at = args.skip + consumed
            dead = next(fresh) if fresh is not None else None
            what = f"to resume after the first {at} records"
            commands.append((what, self._command(skip=at, dead_letter=dead)))
        if fresh is not None and (failed or rejected):
            parts = []
            if failed:
                parts.append(f"the {failed} failed item(s) as they are")
            if rejected:
                parts.append(f"the {rejected} rejected item(s) once fixed in {args.dead_letter}")
            what = f"to resend {' and '.join(parts)}"
            commands.append((what, self._command(resend=args.dead_letter, dead_letter=next(fresh))))
        elif rejected and not failed:
            warn(
                "fix the rejected items (the lines above name them); --dead-letter FILE "
                "collects them in a file you can fix and resend with --resend FILE"
            )
        if commands and args.token is not None:
            warn("(the token is never printed: set INSTASENT_TOKEN before running these)")
        for what, command in commands:
            warn(f"{what}:\n  {command}")

    def _command(
        self, *, skip: int = 0, resend: str | None = None, dead_letter: str | None = None
    ) -> str:
        """This run's command line, changed to skip ``skip`` records or resend ``resend``."""
        args = self.args
        words = [PROGRAM, "ingest", self.kind]
        if resend is not None:
            words += ["--resend", resend]
        elif self.fmt == "dead-letter":
            words += ["--resend", self.path]
        else:
            words.append(self.path)
        words += ["--datasource", args.datasource]
        if args.project is not None:
            words += ["--project", args.project]
        if args.base_url is not None:
            words += ["--base-url", args.base_url]
        if args.allow_insecure:
            words.append("--allow-insecure")
        if resend is None and args.format is not None:
            words += ["--format", args.format]
        if args.concurrency is not None:
            words += ["--concurrency", str(args.concurrency)]
        for column in args.json_column or ():
            words += ["--json-column", column]
        if args.csv_strings:
            words.append("--csv-strings")
        if not args.require_event_id:
            words.append("--no-require-event-id")
        if not args.validate:
            words.append("--no-validate")
        if args.unreachable_for is not None:
            words += ["--unreachable-for", f"{args.unreachable_for:g}"]
        if dead_letter is not None:
            words += ["--dead-letter", dead_letter]
        if skip:
            words += ["--skip", str(skip)]
        return shlex.join(words)


def _free_names(path: str, wanted: int) -> list[str]:
    """``wanted`` unused names after ``path``: ``dead.ndjson`` -> ``dead-2.ndjson``, ..."""
    stem, ext = os.path.splitext(path)
    base, _, number = stem.rpartition("-")
    start = 2
    if base and number.isdigit():
        stem, start = base, int(number) + 1
    names: list[str] = []
    n = start
    while len(names) < wanted:
        candidate = f"{stem}-{n}{ext}"
        if not os.path.exists(candidate):
            names.append(candidate)
        n += 1
    return names
