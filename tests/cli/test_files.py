"""The NDJSON and CSV readers of ``instasent-async ingest`` (``instasent_async._files``)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import string
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instasent_async.cli._files import (
    InputError,
    LineMap,
    check_readable,
    detect_format,
    is_dead_letter,
    read_csv,
    read_items,
    read_ndjson,
    records,
    scan,
)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def error_of(path: Path, fmt: str = "csv", **kwargs: object) -> InputError:
    with pytest.raises(InputError) as info:
        list(read_items(path, fmt, **kwargs))  # type: ignore[arg-type]
    return info.value


# --- format detection and opening ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.ndjson", "ndjson"), ("a.jsonl", "ndjson"), ("A.CSV", "csv"), ("x/y.csv", "csv")],
)
def test_format_comes_from_the_extension(name: str, expected: str) -> None:
    assert detect_format(name) == expected


def test_explicit_format_wins_over_the_extension() -> None:
    assert detect_format("data.txt", "csv") == "csv"
    assert detect_format("data.csv", "jsonl") == "ndjson"


def test_unknown_extension_names_the_file_and_the_way_out() -> None:
    with pytest.raises(InputError) as info:
        detect_format("data.txt")
    assert str(info.value).startswith("data.txt: ")
    assert "--format" in str(info.value)
    with pytest.raises(InputError, match="unknown format 'xml'"):
        detect_format("data.csv", "xml")


def test_missing_file_and_directory_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ndjson"
    with pytest.raises(InputError) as info:
        check_readable(missing)
    assert str(info.value) == f"{missing}: no such file"
    assert info.value.line is None and info.value.fatal
    with pytest.raises(InputError, match="is a directory"):
        check_readable(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        list(read_ndjson(missing))


# --- NDJSON -------------------------------------------------------------------------------


def test_ndjson_yields_objects_and_skips_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.ndjson",
        '\ufeff{"_user_id": "u1"}\r\n\n   \n{"_user_id": "u2", "plan": "pro"}\n{"n": 1}',
    )
    assert list(read_ndjson(path)) == [
        {"_user_id": "u1"},
        {"_user_id": "u2", "plan": "pro"},
        {"n": 1},
    ]


def test_ndjson_invalid_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "c.ndjson", '{"a": 1}\n\n{"a": \n')
    error = error_of(path, "ndjson")
    assert error.line == 3
    assert str(error) == f"{path}:3: invalid JSON at column 6: unexpected end of data"


@pytest.mark.parametrize(
    ("line", "what"),
    [("[1, 2]", "an array"), ('"text"', "a string"), ("42", "a number"), ("null", "null")],
)
def test_ndjson_line_must_be_an_object(tmp_path: Path, line: str, what: str) -> None:
    path = write(tmp_path, "c.ndjson", f'{{"a": 1}}\n{line}\n')
    assert str(error_of(path, "ndjson")) == f"{path}:2: expected a JSON object, got {what}"


def test_ndjson_invalid_utf8_is_reported_as_such(tmp_path: Path) -> None:
    path = write(tmp_path, "c.ndjson", b'{"a": 1}\n{"a": "caf\xe9"}\n')
    assert str(error_of(path, "ndjson")) == f"{path}:2: not valid UTF-8 (byte 11 of the line)"


def test_ndjson_streams_items_before_the_bad_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.ndjson", '{"a": 1}\n{"a": 2}\nnot json\n{"a": 4}\n')
    items = read_ndjson(path)
    assert next(items) == {"a": 1}
    assert next(items) == {"a": 2}
    with pytest.raises(InputError, match=":3: invalid JSON"):
        next(items)


def test_ndjson_reader_is_lazy(tmp_path: Path) -> None:
    # Only the first line is parsed when only the first item is asked for.
    path = write(tmp_path, "c.ndjson", '{"a": 1}\n' + "garbage\n" * 1000)
    assert next(read_items(path, "ndjson")) == {"a": 1}


# --- CSV ----------------------------------------------------------------------------------


def test_csv_reserved_and_custom_columns_and_empty_cells(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.csv",
        "\ufeff_user_id, _email ,plan,_client_tags\r\n"
        'u1,a@example.com,pro,"[""vip"", ""beta""]"\r\n'
        "\r\n"
        "u2,,free,\r\n"
        "u3,,,\r\n",
    )
    assert list(read_csv(path)) == [
        {
            "_user_id": "u1",
            "_email": "a@example.com",
            "plan": "pro",
            "_client_tags": ["vip", "beta"],
        },
        {"_user_id": "u2", "plan": "free"},
        {"_user_id": "u3"},
    ]


def test_csv_event_parameters_are_parsed_as_json(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "e.csv",
        "_user_id,_event_id,_event_type,_event_parameters\n"
        'u1,e1,order,"{""order-id"": ""o1"", ""amount"": 12.5}"\n',
    )
    assert list(read_csv(path)) == [
        {
            "_user_id": "u1",
            "_event_id": "e1",
            "_event_type": "order",
            "_event_parameters": {"order-id": "o1", "amount": 12.5},
        }
    ]


def test_csv_extra_json_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", '_user_id,scores\nu1,"[1,2]"\n')
    assert list(read_csv(path)) == [{"_user_id": "u1", "scores": "[1,2]"}]
    assert list(read_csv(path, json_columns={"scores"})) == [{"_user_id": "u1", "scores": [1, 2]}]


def test_csv_line_numbers_count_quoted_newlines_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", '_user_id,note\n\nu1,"two\nlines"\nu2,ok\nu3,ok,extra\n')
    error = error_of(path)
    assert error.line == 6
    assert str(error) == f"{path}:6: 3 cells but the header row has 2 columns"


def test_csv_only_a_header_yields_nothing(tmp_path: Path) -> None:
    assert list(read_csv(write(tmp_path, "c.csv", "_user_id,_email\n"))) == []


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("_user_id,,plan\nu1,a,b\n", 1, "column 2 of the header row has no name"),
        (
            "_user_id,plan,plan\nu1,a,b\n",
            1,
            "duplicate column 'plan' in the header row (columns 2 and 3)",
        ),
        ("\n\n_user_id, plan ,plan\n", 3, "duplicate column 'plan' in the header row"),
        ("", 1, "empty file: a CSV file needs a header row"),
        ("_user_id\nu1\nu2,x\n", 3, "2 cells but the header row has 1 columns"),
        ("_user_id,plan,city\nu1,pro,Vigo\nu2,pro\n", 3, "2 cells but the header row has 3"),
        ('_user_id,_client_tags\nu1,"[vip"\n', 2, "column '_client_tags': invalid JSON"),
        (
            '_user_id,_event_parameters\nu1,"[1]"\n',
            2,
            "column '_event_parameters': expected a JSON object, got an array",
        ),
        ('_user_id,plan\nu1,"pro"x\n', 2, "malformed CSV"),
        ('_user_id,plan\nu1,"pro\n', 2, "malformed CSV: unexpected end of data"),
    ],
)
def test_csv_bad_input_names_the_line(
    tmp_path: Path, content: str, line: int, message: str
) -> None:
    path = write(tmp_path, "bad.csv", content)
    error = error_of(path)
    assert error.line == line
    assert str(error).startswith(f"{path}:{line}: {message}")


def test_csv_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", b"_user_id,plan\nu1,pro\nu2,caf\xe9\n")
    assert str(error_of(path)) == f"{path}:3: not valid UTF-8 (byte 7 of the line)"


def test_csv_missing_required_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "e.csv", "_user_id,_event_date\nu1,2026-01-01T00:00:00Z\n")
    error = error_of(path, required=("_user_id", "_event_id", "_event_type"))
    assert str(error) == f"{path}:1: missing required column(s): _event_id, _event_type"
    assert error.fatal


# --- scan and one-pass reading ------------------------------------------------------------


def test_scan_counts_items_and_keeps_the_first_errors(tmp_path: Path) -> None:
    lines = ['{"a": 1}'] * 5 + ["bad"] * 15 + ['{"a": 2}']
    path = write(tmp_path, "c.ndjson", "\n".join(lines) + "\n")
    result = scan(path, "ndjson", max_errors=3)
    assert (result.items, result.bad, result.ok, result.fatal) == (6, 15, False, False)
    assert [e.line for e in result.errors] == [6, 7, 8]


def test_scan_goes_past_bad_csv_rows_but_stops_at_a_bad_header(tmp_path: Path) -> None:
    rows = write(tmp_path, "rows.csv", "_user_id\nu1\nu2,x\nu3\nu4,y\nu5\n")
    result = scan(rows, "csv")
    assert (result.items, result.bad, result.fatal) == (3, 2, False)
    assert [e.line for e in result.errors] == [3, 5]
    header = write(tmp_path, "header.csv", "_user_id,_user_id\nu1,u1\n")
    result = scan(header, "csv")
    assert (result.items, result.bad, result.fatal) == (0, 1, True)


def test_scan_of_a_good_file(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "_user_id\nu1\nu2\n")
    result = scan(path, "csv")
    assert result.ok and result.items == 2 and result.errors == []


def test_records_pair_each_item_with_its_line_and_go_on_past_a_bad_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.ndjson", '{"a": 1}\n\n{"a": 2}\n[3]\n{"a": 4}\n')
    found = list(records(path, "ndjson"))
    assert [line for line, _ in found] == [1, 3, 4, 5]
    assert [value for _, value in found if not isinstance(value, InputError)] == [
        {"a": 1},
        {"a": 2},
        {"a": 4},
    ]
    assert str(found[2][1]) == f"{path}:4: expected a JSON object, got an array"


# --- compressed files and stdin -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.ndjson.gz", "ndjson"), ("a.jsonl.GZ", "ndjson"), ("a.csv.gz", "csv"), ("-", "ndjson")],
)
def test_format_looks_through_gz_and_stdin_is_ndjson(name: str, expected: str) -> None:
    assert detect_format(name) == expected
    assert detect_format("-", "csv") == "csv"


def test_a_gz_unknown_inside_still_needs_format() -> None:
    with pytest.raises(InputError, match=r"\.gz"):
        detect_format("data.txt.gz")


def test_gzip_files_are_read_whatever_their_name(tmp_path: Path) -> None:
    ndjson = tmp_path / "c.ndjson.gz"
    ndjson.write_bytes(gzip.compress(b'{"_user_id": "u1"}\n\n{"_user_id": "u2"}\n'))
    assert list(read_ndjson(ndjson)) == [{"_user_id": "u1"}, {"_user_id": "u2"}]
    # Recognised by its first bytes, not its name.
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_bytes(gzip.compress(b"_user_id,plan\nu1,pro\nu2\n"))
    found = list(records(csv_file, "csv"))
    assert found[0] == (2, {"_user_id": "u1", "plan": "pro"})
    assert str(found[1][1]) == f"{csv_file}:3: 1 cells but the header row has 2 columns"
    assert scan(csv_file, "csv").items == 1


def test_a_truncated_or_corrupt_gzip_file_is_a_read_error_with_its_line(tmp_path: Path) -> None:
    whole = gzip.compress(b"".join(b'{"_user_id": "u%d"}\n' % i for i in range(2000)))
    truncated = write(tmp_path, "t.ndjson.gz", whole[: len(whole) // 2])
    result = scan(truncated, "ndjson")
    assert result.fatal and result.bad == 1
    assert 0 < result.items < 2000
    assert str(result.errors[0]) == (
        f"{truncated}:{result.items + 1}: read error: the compressed file is truncated"
    )
    corrupt = write(tmp_path, "c.ndjson.gz", whole[:10] + b"\x00" * 40)
    error = error_of(corrupt, "ndjson")
    assert error.fatal and "read error" in str(error)


def test_stdin_is_read_as_dash_plain_or_compressed(monkeypatch: pytest.MonkeyPatch) -> None:
    for data in (b'{"a": 1}\n{"a": 2}\n', gzip.compress(b'{"a": 1}\n{"a": 2}\n')):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        assert list(read_items("-", "ndjson")) == [{"a": 1}, {"a": 2}]
        assert not sys.stdin.closed
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"{oops\n")))
    assert str(error_of(Path("-"), "ndjson")).startswith("<stdin>:1: invalid JSON")
    check_readable("-")  # nothing to check: never raises


# --- dead-letter files --------------------------------------------------------------------

DEAD_LINES = [
    {
        "position": 3,
        "line": 5,
        "status": 422,
        "errors": {"_email": ["bad"]},
        "reason": None,
        "item": {"_user_id": "u3", "_email": "x"},
    },
    {
        "position": 9,
        "line": None,
        "status": None,
        "errors": None,
        "reason": "timeout",
        "item": {"_user_id": "u9"},
    },
]


def test_a_dead_letter_file_is_recognised_and_its_items_are_read(tmp_path: Path) -> None:
    dead = write(tmp_path, "dead.ndjson", "\n" + "".join(json.dumps(d) + "\n" for d in DEAD_LINES))
    assert is_dead_letter(dead)
    assert list(records(dead, "dead-letter")) == [
        (2, {"_user_id": "u3", "_email": "x"}),
        (3, {"_user_id": "u9"}),
    ]
    plain = write(tmp_path, "c.ndjson", '{"_user_id": "u1", "position": 1}\n')
    assert not is_dead_letter(plain)
    look_alike = {"_user_id": "u1", "position": 2, "status": "vip", "item": {"sku": "A"}}
    assert not is_dead_letter(write(tmp_path, "l.ndjson", json.dumps(look_alike) + "\n"))
    assert not is_dead_letter(write(tmp_path, "empty.ndjson", ""))
    assert not is_dead_letter("-")


def test_a_line_that_is_not_a_dead_letter_line_is_named(tmp_path: Path) -> None:
    dead = write(tmp_path, "dead.ndjson", json.dumps(DEAD_LINES[0]) + '\n{"_user_id": "u1"}\n')
    error = error_of(dead, "dead-letter")
    assert error.line == 2 and "not a dead-letter line" in str(error)


# --- line map -----------------------------------------------------------------------------


@given(gaps=st.lists(st.integers(1, 4), max_size=60))
def test_line_map_gives_the_line_of_every_position(gaps: list[int]) -> None:
    lines, line = [], 0
    for gap in gaps:
        line += gap
        lines.append(line)
    line_map = LineMap()
    for number in lines:
        line_map.append(number)
    assert len(line_map) == len(lines)
    assert [line_map(i) for i in range(len(lines))] == lines
    assert line_map(-1) is None and line_map(len(lines)) is None


def test_line_map_of_plain_lines_stores_one_run() -> None:
    line_map = LineMap()
    for number in range(1, 100_001):
        line_map.append(number)
    assert line_map(99_999) == 100_000
    assert line_map._starts == [0]  # one run: memory does not grow with the file


# --- round trips --------------------------------------------------------------------------

_names = st.text(string.ascii_letters + "_", min_size=1, max_size=8).map(str.strip).filter(bool)
_cells = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"))


@given(rows=st.lists(st.dictionaries(_names, _cells, min_size=1, max_size=5), max_size=8))
def test_csv_round_trip(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, str]]
) -> None:
    header = sorted({name for row in rows for name in row} - {"_client_tags", "_event_parameters"})
    if not header:
        return
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(name, "") for name in header])
    path = tmp_path_factory.mktemp("csv") / "r.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    expected = [{k: row[k] for k in header if row.get(k)} for row in rows]
    # A row whose cells are all empty is written as a blank line, which is skipped; so is
    # a one-column row of spaces, which the reader cannot tell from a blank line.
    blank = [len(header) == 1 and not row.get(header[0], "").strip() for row in rows]
    assert list(read_csv(path)) == [
        item for item, skipped in zip(expected, blank, strict=True) if item and not skipped
    ]


@given(
    items=st.lists(
        st.dictionaries(
            st.text(max_size=5),
            st.recursive(
                st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3)
                ),
                max_leaves=5,
            ),
            max_size=4,
        ),
        max_size=6,
    )
)
def test_ndjson_round_trip(
    tmp_path_factory: pytest.TempPathFactory, items: list[dict[str, object]]
) -> None:
    path = tmp_path_factory.mktemp("ndjson") / "r.ndjson"
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    assert list(read_ndjson(path)) == items
