"""Readers for ingest files: NDJSON (one JSON object a line) and CSV (a header row).

Both are generators that read one line at a time, so a file of any length streams in
constant memory. A line that cannot be parsed raises :class:`InputError`, whose text is
``FILE:LINE: what is wrong``; :func:`scan` parses a whole file without keeping any item
and collects those errors, so a caller can refuse a file before sending anything.

CSV conventions: the first row names the columns; ``_``-prefixed columns are reserved
fields (``_user_id``, ``_email``, ``_event_type``...), the others custom attributes;
empty cells are omitted; cells of the JSON columns (``_event_parameters``,
``_client_tags``, plus any the caller names) are parsed as JSON. An empty or duplicated
header, a missing required column, or a row with more cells than the header is an error.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Collection, Iterable, Iterator
from typing import IO, Any, Literal

import attrs
import orjson

__all__ = [
    "EXTENSIONS",
    "JSON_COLUMNS",
    "FileFormat",
    "InputError",
    "ScanResult",
    "check_readable",
    "detect_format",
    "read_csv",
    "read_items",
    "read_ndjson",
    "scan",
    "stop_at_first_error",
]

FileFormat = Literal["ndjson", "csv"]

EXTENSIONS: dict[str, FileFormat] = {".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}
"""File extensions (lower case) and the format they mean."""

JSON_COLUMNS: frozenset[str] = frozenset({"_event_parameters", "_client_tags"})
"""CSV columns whose cells are JSON documents rather than plain strings."""

_OBJECT_COLUMNS = frozenset({"_event_parameters"})
_BOM = "\ufeff"
_SHOWN_CHARS = 40


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
        self.path = os.fspath(path)
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

    Raises:
        InputError: ``fmt`` is unknown, or the extension is not ``.ndjson``/``.jsonl``/
            ``.csv`` and no ``fmt`` was given.
    """
    if fmt is not None:
        lowered = fmt.lower()
        if lowered in ("ndjson", "jsonl"):
            return "ndjson"
        if lowered == "csv":
            return "csv"
        raise InputError(path, None, f"unknown format {fmt!r} (expected ndjson or csv)")
    ext = os.path.splitext(os.fspath(path))[1].lower()
    try:
        return EXTENSIONS[ext]
    except KeyError:
        raise InputError(
            path,
            None,
            "cannot tell the format from the extension (use .ndjson, .jsonl or .csv, "
            "or pass --format ndjson|csv)",
        ) from None


def check_readable(path: str | os.PathLike[str]) -> None:
    """Open and close ``path`` to fail early with a clear message.

    Raises:
        InputError: the file is missing, a directory, or not readable.
    """
    with _open(path):
        pass


def _open(path: str | os.PathLike[str]) -> IO[bytes]:
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


# --- NDJSON -------------------------------------------------------------------------------


def _ndjson_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """``(line, item or InputError)`` for every non-blank line; raises if unreadable."""
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
        except OSError as exc:
            yield (
                number + 1,
                InputError(path, number + 1, f"read error: {exc.strerror or exc}", fatal=True),
            )


def read_ndjson(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield the JSON object of every non-blank line of ``path``, one at a time.

    Raises:
        InputError: the file cannot be opened, or a line is not a JSON object (raised
            when that line is reached; the items before it have been yielded).
    """
    for _, value in _ndjson_records(path):
        if isinstance(value, InputError):
            raise value
        yield value


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
) -> dict[str, Any] | InputError:
    if len(row) > len(header):
        return InputError(
            path, line, f"{len(row)} cells but the header row has {len(header)} columns"
        )
    item: dict[str, Any] = {}
    for name, cell in zip(header, row, strict=False):  # short rows: missing cells are empty
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
        else:
            item[name] = cell
    return item


def _csv_records(
    path: str | os.PathLike[str],
    json_columns: Collection[str],
    required: Collection[str],
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
            except OSError as exc:
                yield (
                    start,
                    InputError(path, start, f"read error: {exc.strerror or exc}", fatal=True),
                )
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
            yield start, _csv_item(path, start, header, row, json_columns)
        if header is None:
            yield 1, InputError(path, 1, "empty file: a CSV file needs a header row", fatal=True)


def read_csv(
    path: str | os.PathLike[str],
    *,
    json_columns: Collection[str] = JSON_COLUMNS,
    required: Collection[str] = (),
) -> Iterator[dict[str, Any]]:
    """Yield one item per data row of the CSV file ``path``, one at a time.

    ``json_columns`` are parsed as JSON (``_event_parameters`` must be an object);
    ``required`` columns must appear in the header.

    Raises:
        InputError: the file cannot be opened; a bad header (empty, duplicated or missing
            column); a row with more cells than the header, broken quoting, invalid UTF-8
            or invalid JSON in a JSON column (raised when that row is reached).
    """
    for _, value in _csv_records(path, json_columns, required):
        if isinstance(value, InputError):
            raise value
        yield value


# --- both ---------------------------------------------------------------------------------


def _records(
    path: str | os.PathLike[str],
    fmt: FileFormat,
    json_columns: Collection[str],
    required: Collection[str],
) -> Iterator[tuple[int, Any]]:
    if fmt == "csv":
        return _csv_records(path, json_columns, required)
    return _ndjson_records(path)


def read_items(
    path: str | os.PathLike[str],
    fmt: FileFormat,
    *,
    json_columns: Collection[str] = JSON_COLUMNS,
    required: Collection[str] = (),
) -> Iterator[dict[str, Any]]:
    """Yield the items of an NDJSON or CSV file (see :func:`read_ndjson`, :func:`read_csv`).

    ``required`` names fields every CSV header must have (NDJSON items are checked by
    the server instead).

    Raises:
        InputError: at the first line that cannot be parsed, after yielding the items
            before it; or when the file cannot be opened.
    """
    for _, value in _records(path, fmt, json_columns, required):
        if isinstance(value, InputError):
            raise value
        yield value


def scan(
    path: str | os.PathLike[str],
    fmt: FileFormat,
    *,
    json_columns: Collection[str] = JSON_COLUMNS,
    required: Collection[str] = (),
    max_errors: int = 10,
) -> ScanResult:
    """Parse the whole file without keeping its items: count them and collect errors.

    At most ``max_errors`` errors are kept (``bad`` counts all of them).

    Raises:
        InputError: the file cannot be opened.
    """
    result = ScanResult()
    for _, value in _records(path, fmt, json_columns, required):
        if isinstance(value, InputError):
            result.bad += 1
            if len(result.errors) < max_errors:
                result.errors.append(value)
            result.fatal = result.fatal or value.fatal
        else:
            result.items += 1
    return result


def stop_at_first_error(
    items: Iterable[dict[str, Any]], sink: list[InputError]
) -> Iterator[dict[str, Any]]:
    """Yield ``items`` until one raises :class:`InputError`; record it in ``sink`` and stop.

    For one-pass ingestion: the items before a bad line are sent, the bad one never is,
    and the ingestion ends normally instead of failing the items it had buffered.
    """
    try:
        yield from items
    except InputError as exc:
        sink.append(exc)
