"""Readers for ingest files: NDJSON (one JSON object a line), CSV (a header row) and
dead-letter files (the NDJSON an ingestion writes its rejected and failed items to).

Every reader is a generator that reads one line at a time, so a file of any length
streams in constant memory. A file may be gzip-compressed (detected by its first bytes)
and ``-`` means standard input. A line that cannot be parsed gives an
:class:`InputError`, whose text is ``FILE:LINE: what is wrong``; :func:`scan` parses a
whole file without keeping any item and collects those errors, so a caller can refuse a
file before sending anything. :class:`LineMap` remembers which line each record came
from, so that a rejection can name it.

CSV conventions: the first row names the columns; ``_``-prefixed columns are reserved
fields (``_user_id``, ``_email``, ``_event_type``...), the others custom attributes;
empty cells are omitted; cells of the JSON columns (``_event_parameters``,
``_client_tags``, plus any the caller names) are parsed as JSON; the other cells are
strings unless the caller gives a converter for their column. An empty or duplicated
header, a missing required column, or a row with more or fewer cells than the header
is an error.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import sys
import zlib
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import IO, Any, Literal, cast

import attrs
import orjson

__all__ = [
    "EXTENSIONS",
    "JSON_COLUMNS",
    "STDIN",
    "CellConverter",
    "FileFormat",
    "InputError",
    "LineMap",
    "ScanResult",
    "check_readable",
    "detect_format",
    "display_name",
    "is_dead_letter",
    "read_csv",
    "read_items",
    "read_ndjson",
    "records",
    "scan",
]

FileFormat = Literal["ndjson", "csv", "dead-letter"]
"""``dead-letter``: NDJSON lines ``{"position", "item", ...}`` whose ``item`` is read."""

EXTENSIONS: dict[str, Literal["ndjson", "csv"]] = {
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".csv": "csv",
}
"""File extensions (lower case, after any ``.gz``) and the format they mean."""

JSON_COLUMNS: frozenset[str] = frozenset({"_event_parameters", "_client_tags"})
"""CSV columns whose cells are JSON documents rather than plain strings."""

STDIN = "-"
"""The path that means standard input."""

CellConverter = Callable[[str], Any]
"""Turns a CSV cell into the value sent; raises ``ValueError`` saying what is wrong."""

_OBJECT_COLUMNS = frozenset({"_event_parameters"})
_BOM = "\ufeff"
_GZIP_MAGIC = b"\x1f\x8b"
_SHOWN_CHARS = 40
_DEAD_LETTER_KEYS = frozenset({"errors", "reason", "status"})


def display_name(path: str | os.PathLike[str]) -> str:
    """``path`` as messages show it (``<stdin>`` for ``-``)."""
    name = os.fspath(path)
    return "<stdin>" if name == STDIN else name


class InputError(ValueError):
    """A file that cannot be read, or a line of it that cannot be parsed.

    ``str(error)`` is ``FILE:LINE: message`` (``FILE: message`` when no line applies).
    ``line`` is 1-based and counts every physical line, blank ones included. ``fatal``
    is true when nothing after this error can be parsed (a bad CSV header, broken
    quoting, an unreadable file).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        line: int | None,
        message: str,
        *,
        fatal: bool = False,
    ) -> None:
        self.path = display_name(path)
        self.line = line
        self.message = message
        self.fatal = fatal or line is None
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


@attrs.define(slots=True)
class ScanResult:
    """What :func:`scan` found: ``items`` parsed fine, ``bad`` lines, the first ``errors``.

    ``fatal`` is true when the scan had to stop early (unreadable file, bad CSV header,
    broken quoting), so lines after the last error were not checked.
    """

    items: int = 0
    bad: int = 0
    errors: list[InputError] = attrs.field(factory=list)
    fatal: bool = False

    @property
    def ok(self) -> bool:
        """True when every line parsed."""
        return self.bad == 0


def detect_format(path: str | os.PathLike[str], fmt: str | None = None) -> FileFormat:
    """The format of ``path``: ``fmt`` when given, else from its extension.

    A ``.gz`` suffix is looked through (``events.ndjson.gz`` is NDJSON); standard input
    (``-``) is NDJSON unless ``fmt`` says otherwise.

    Raises:
        InputError: ``fmt`` is unknown, or the extension is not ``.ndjson``/``.jsonl``/
            ``.csv`` (optionally followed by ``.gz``) and no ``fmt`` was given.
    """
    if fmt is not None:
        lowered = fmt.lower()
        if lowered in ("ndjson", "jsonl"):
            return "ndjson"
        if lowered in ("csv", "dead-letter"):
            return lowered  # type: ignore[return-value]
        raise InputError(path, None, f"unknown format {fmt!r} (expected ndjson or csv)")
    name = os.fspath(path)
    if name == STDIN:
        return "ndjson"
    stem, ext = os.path.splitext(name)
    if ext.lower() == ".gz":
        ext = os.path.splitext(stem)[1]
    try:
        return EXTENSIONS[ext.lower()]
    except KeyError:
        raise InputError(
            path,
            None,
            "cannot tell the format from the extension (use .ndjson, .jsonl or .csv, "
            "optionally followed by .gz, or pass --format ndjson|csv)",
        ) from None


def check_readable(path: str | os.PathLike[str]) -> None:
    """Open and close ``path`` to fail early with a clear message (no-op for stdin).

    Raises:
        InputError: the file is missing, a directory, or not readable.
    """
    if os.fspath(path) != STDIN:
        with _open(path):
            pass


def _open_file(path: str | os.PathLike[str]) -> IO[bytes]:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(path, None, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, None, "is a directory, not a file") from None
    except PermissionError:
        raise InputError(path, None, "permission denied") from None
    except OSError as exc:
        raise InputError(path, None, f"cannot open: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _open(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """The bytes of ``path`` (stdin for ``-``, left open), decompressed when gzip."""
    wrapper: io.BufferedReader | None = None
    if os.fspath(path) == STDIN:
        raw: Any = sys.stdin.buffer
        if not hasattr(raw, "peek"):
            raw = wrapper = io.BufferedReader(raw)
        file = raw
        closing = False
        gzipped = raw.peek(2)[:2] == _GZIP_MAGIC
    else:
        file = _open_file(path)
        closing = True
        try:
            gzipped = file.read(2) == _GZIP_MAGIC
            file.seek(0)
        except OSError as exc:
            file.close()
            raise InputError(path, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        if gzipped:
            with gzip.GzipFile(fileobj=file, mode="rb") as unzipped:
                yield cast(IO[bytes], unzipped)
        else:
            yield file
    finally:
        if closing:
            file.close()
        elif wrapper is not None:
            wrapper.detach()  # stdin stays open


_READ_ERRORS = (OSError, EOFError, zlib.error)  # EOFError, zlib.error: a broken .gz


def _read_error(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "read error: the compressed file is truncated"
    if isinstance(exc, (gzip.BadGzipFile, zlib.error)):
        return f"read error: not a valid gzip file ({exc})"
    strerror = getattr(exc, "strerror", None)
    return f"read error: {strerror or exc}"


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _json_error(exc: orjson.JSONDecodeError) -> str:
    return f"invalid JSON at column {exc.colno}: {exc.msg}"


def _utf8_error(raw: bytes) -> str | None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 (byte {exc.start + 1} of the line)"
    return None


def _ndjson_error(line: bytes, exc: orjson.JSONDecodeError) -> str:
    return _utf8_error(line) or _json_error(exc)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else "null"
    )


# --- NDJSON and dead letters --------------------------------------------------------------


def _ndjson_values(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """``(line, object or InputError)`` for every non-blank line; raises if unreadable."""
    with _open(path) as file:
        number = 0
        try:
            for number, raw in enumerate(file, 1):
                line = (
                    raw[3:] if number == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
                ).rstrip()
                if not line.strip():  # blank, or only spaces
                    continue
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield number, InputError(path, number, _ndjson_error(line, exc))
                    continue
                if not isinstance(value, dict):
                    yield (
                        number,
                        InputError(
                            path, number, f"expected a JSON object, got {_type_name(value)}"
                        ),
                    )
                    continue
                yield number, value
        except _READ_ERRORS as exc:
            yield number + 1, InputError(path, number + 1, _read_error(exc), fatal=True)


def _looks_like_dead_letter(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and "position" in value
        and isinstance(value.get("item"), dict)
        and not _DEAD_LETTER_KEYS.isdisjoint(value)
        and "_user_id" not in value  # a contact or an event, whatever else it holds
    )


def _dead_letter_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """``(line, item or InputError)``: the ``item`` of every dead-letter line."""
    for number, value in _ndjson_values(path):
        if isinstance(value, InputError) or _looks_like_dead_letter(value):
            yield number, value if isinstance(value, InputError) else value["item"]
        else:
            yield (
                number,
                InputError(
                    path,
                    number,
                    'not a dead-letter line (expected {"position": ..., "item": {...}, '
                    '"errors" or "reason": ...})',
                ),
            )


def is_dead_letter(path: str | os.PathLike[str]) -> bool:
    """True when the first non-blank line of the NDJSON file ``path`` is a dead-letter line.

    A dead-letter line is an object with ``position``, an ``item`` object and one of
    ``errors``, ``reason`` or ``status``, and no ``_user_id`` of its own (what
    ``ingest(dead_letter=...)`` writes).
    Standard input is never sniffed (its first line would be consumed).

    Raises:
        InputError: the file cannot be opened.
    """
    if os.fspath(path) == STDIN:
        return False
    for _, value in _ndjson_values(path):
        return _looks_like_dead_letter(value)
    return False


def read_ndjson(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield the JSON object of every non-blank line of ``path``, one at a time.

    Raises:
        InputError: the file cannot be opened, or a line is not a JSON object (raised
            when that line is reached; the items before it have been yielded).
    """
    return read_items(path, "ndjson")


# --- CSV ----------------------------------------------------------------------------------


class _Lines:
    """Decoded lines of a binary file for ``csv.reader``, remembering undecodable ones."""

    __slots__ = ("bad", "file", "number")

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.number = 0
        self.bad: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        for raw in self.file:
            self.number += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                self.bad[self.number] = _utf8_error(raw) or "not valid UTF-8"
                text = raw.decode("utf-8", errors="replace")
            if self.number == 1 and text.startswith(_BOM):
                text = text[1:]
            yield text


def _header(
    path: str | os.PathLike[str], line: int, row: list[str], required: Collection[str]
) -> list[str] | InputError:
    names = [cell.strip() for cell in row]
    seen: dict[str, int] = {}
    for index, name in enumerate(names, 1):
        if not name:
            return InputError(
                path, line, f"column {index} of the header row has no name", fatal=True
            )
        if name in seen:
            return InputError(
                path,
                line,
                f"duplicate column {name!r} in the header row (columns {seen[name]} and {index})",
                fatal=True,
            )
        seen[name] = index
    missing = sorted(name for name in required if name not in seen)
    if missing:
        return InputError(
            path, line, f"missing required column(s): {', '.join(missing)}", fatal=True
        )
    return names


def _csv_item(
    path: str | os.PathLike[str],
    line: int,
    header: list[str],
    row: list[str],
    json_columns: Collection[str],
    converters: Mapping[str, CellConverter],
) -> dict[str, Any] | InputError:
    if len(row) != len(header):
        return InputError(
            path, line, f"{len(row)} cells but the header row has {len(header)} columns"
        )
    item: dict[str, Any] = {}
    for name, cell in zip(header, row, strict=True):
        if cell == "":
            continue
        if name in json_columns:
            try:
                value = orjson.loads(cell)
            except orjson.JSONDecodeError as exc:
                return InputError(
                    path, line, f"column {name!r}: {_json_error(exc)} in {_shorten(cell)!r}"
                )
            if name in _OBJECT_COLUMNS and not isinstance(value, dict):
                return InputError(
                    path, line, f"column {name!r}: expected a JSON object, got {_type_name(value)}"
                )
            item[name] = value
        elif name in converters:
            try:
                item[name] = converters[name](cell)
            except ValueError as exc:
                return InputError(path, line, f"column {name!r}: {exc}")
        else:
            item[name] = cell
    return item


def _csv_records(
    path: str | os.PathLike[str],
    json_columns: Collection[str],
    required: Collection[str],
    converters: Mapping[str, CellConverter],
) -> Iterator[tuple[int, Any]]:
    """``(line, item or InputError)`` per row; a header or quoting error ends the iteration."""
    with _open(path) as file:
        lines = _Lines(file)
        reader = csv.reader(lines, strict=True)
        header: list[str] | None = None
        while True:
            start = lines.number + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield start, InputError(path, start, f"malformed CSV: {exc}", fatal=True)
                return
            except _READ_ERRORS as exc:
                yield start, InputError(path, start, _read_error(exc), fatal=True)
                return
            bad = [n for n in range(start, lines.number + 1) if n in lines.bad]
            if bad:
                yield bad[0], InputError(path, bad[0], lines.bad[bad[0]], fatal=header is None)
                if header is None:
                    return
                continue
            if not any(row) or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line, or a row of empty cells
            if header is None:
                parsed = _header(path, start, row, required)
                if isinstance(parsed, InputError):
                    yield start, parsed
                    return
                header = parsed
                continue
            yield start, _csv_item(path, start, header, row, json_columns, converters)
        if header is None:
            yield 1, InputError(path, 1, "empty file: a CSV file needs a header row", fatal=True)


def read_csv(
    path: str | os.PathLike[str],
    *,
    json_columns: Collection[str] = JSON_COLUMNS,
    required: Collection[str] = (),
    converters: Mapping[str, CellConverter] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one item per data row of the CSV file ``path``, one at a time.

    ``json_columns`` are parsed as JSON (``_event_parameters`` must be an object);
    ``required`` columns must appear in the header; ``converters`` turn the cells of
    their column into the value sent (other cells stay strings).

    Raises:
        InputError: the file cannot be opened; a bad header (empty, duplicated or missing
            column); a row with more or fewer cells than the header, broken quoting,
            invalid UTF-8, invalid JSON in a JSON column or a cell its converter refuses
            (raised when that row is reached).
    """
    return read_items(
        path, "csv", json_columns=json_columns, required=required, converters=converters
    )


# --- every format -------------------------------------------------------------------------


def records(
    path: str | os.PathLike[str],
    fmt: FileFormat,
    *,
    json_columns: Collection[str] = JSON_COLUMNS,
    required: Collection[str] = (),
    converters: Mapping[str, CellConverter] | None = None,
) -> Iterator[tuple[int, Any]]:
    """``(line, item)`` for every record of ``path``, or ``(line, InputError)`` for a bad one.

    ``line`` is 1-based and counts every physical line. After a fatal error (see
    :class:`InputError`) nothing more is yielded. ``required`` and ``converters`` apply
    to CSV only.

    Raises:
        InputError: the file cannot be opened.
    """
    if fmt == "csv":
        return _csv_records(path, json_columns, required, converters or {})
    if fmt == "dead-letter":
        return _dead_letter_records(path)
    return _ndjson_values(path)


def read_items(
    path: str | os.PathLike[str],
    fmt: FileFormat,
    *,
    json_columns: Collection[str] = JSON_COLUMNS,
    required: Collection[str] = (),
    converters: Mapping[str, CellConverter] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the items of ``path`` (see :func:`records`).

    Raises:
        InputError: at the first line that cannot be parsed, after yielding the items
            before it; or when the file cannot be opened.
    """
    for _, value in records(
        path, fmt, json_columns=json_columns, required=required, converters=converters
    ):
        if isinstance(value, InputError):
            raise value
        yield value


def scan(
    path: str | os.PathLike[str],
    fmt: FileFormat,
    *,
    json_columns: Collection[str] = JSON_COLUMNS,
    required: Collection[str] = (),
    converters: Mapping[str, CellConverter] | None = None,
    max_errors: int = 10,
) -> ScanResult:
    """Parse the whole file without keeping its items: count them and collect errors.

    At most ``max_errors`` errors are kept (``bad`` counts all of them).

    Raises:
        InputError: the file cannot be opened.
    """
    result = ScanResult()
    for _, value in records(
        path, fmt, json_columns=json_columns, required=required, converters=converters
    ):
        if isinstance(value, InputError):
            result.bad += 1
            if len(result.errors) < max_errors:
                result.errors.append(value)
            result.fatal = result.fatal or value.fatal
        else:
            result.items += 1
    return result


class LineMap:
    """The source line of each record, by 0-based position, in little memory.

    Records are appended in order; only where a line number is not the previous one
    plus one (a blank line, a multi-line CSV cell, a bad line) is anything stored, so a
    file of a million plain lines costs a few bytes. ``line_map(position)`` is the line,
    or None for a position not appended.
    """

    __slots__ = ("_count", "_lines", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._lines: list[int] = []
        self._count = 0

    def append(self, line: int) -> None:
        """Record that the next record came from ``line``."""
        count = self._count
        starts = self._starts
        if not starts or self._lines[-1] + count - starts[-1] != line:
            starts.append(count)
            self._lines.append(line)
        self._count = count + 1

    def __len__(self) -> int:
        return self._count

    def __call__(self, position: int) -> int | None:
        if not 0 <= position < self._count:
            return None
        run = bisect_right(self._starts, position) - 1
        return self._lines[run] + position - self._starts[run]
