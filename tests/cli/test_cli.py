"""The ``instasent-async`` command line: whoami, ingest, serve-fake, exit codes, tokens.

``main(argv)`` is synchronous (it runs its own event loop), so these tests are plain
functions; the fake server they talk to runs on its own loop in a background thread.
Ctrl-C and ``serve-fake`` run the CLI in a subprocess with bounded timeouts.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import itertools
import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from instasent_async import FailedItem, IngestReport, Instasent, RejectedItem, RetryPolicy
from instasent_async.cli.access import resolve_access
from instasent_async.cli.codes import (
    EXIT_API,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
)
from instasent_async.cli.main import build_parser, main
from instasent_async.cli.output import (
    PlainProgress,
    Progress,
    TqdmProgress,
    make_progress,
    print_report,
)
from instasent_async.testing import FakeInstasent

T = TypeVar("T")

PRODUCT_TOKEN = "ptok-SECRET-4f1d2c"
DATASOURCE_TOKEN = "dtok-SECRET-9a8b7c"
TIMEOUT = 30.0


class ThreadedFake:
    """A FakeInstasent on its own event loop in a daemon thread."""

    def __init__(self, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.fake = FakeInstasent(
            product_token=PRODUCT_TOKEN, datasource_token=DATASOURCE_TOKEN, **kwargs
        )
        self.url = ""

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def start(self) -> None:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(self.fake.start("127.0.0.1", 0), self.loop)
        self.url = future.result(TIMEOUT)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.close(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (the fake's state is not thread-safe)."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(TIMEOUT)

    def contacts(self) -> list[dict[str, Any]]:
        return self.call(self.fake.contacts)

    def events(self) -> list[dict[str, Any]]:
        return self.call(self.fake.events)

    def ingest_requests(self) -> int:
        requests = self.call(lambda: self.fake.requests)
        return sum(1 for r in requests if r.method == "POST" and "/stream/" in r.path)


@pytest.fixture
def server() -> Iterator[ThreadedFake]:
    fake = ThreadedFake()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INSTASENT_TOKEN", "INSTASENT_PROJECT", "INSTASENT_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


class Run:
    """The exit code and the output of one ``main(argv)`` call."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def text(self) -> str:
        return self.out + self.err


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    code = main(list(argv))
    captured = capsys.readouterr()
    result = Run(code, captured.out, captured.err)
    # The tokens must never be printed, whatever happened.
    assert PRODUCT_TOKEN not in result.text
    assert DATASOURCE_TOKEN not in result.text
    return result


def api(server: ThreadedFake, token: str = PRODUCT_TOKEN) -> list[str]:
    return ["--token", token, "--base-url", server.url]


def write_ndjson(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


def report_counts(text: str, label: str) -> tuple[int, int, int, int]:
    match = re.search(
        rf"^{label}: (\d+) items: (\d+) accepted, (\d+) rejected, (\d+) failed", text, re.M
    )
    assert match, text
    total, accepted, rejected, failed = (int(g) for g in match.groups())
    return total, accepted, rejected, failed


# --- general ------------------------------------------------------------------------------


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "--help")
    assert result.code == EXIT_OK
    for command in ("whoami", "ingest", "serve-fake", "demo"):
        assert command in result.out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "frobnicate").code == EXIT_USAGE
    assert run(capsys).code == EXIT_USAGE
    bad = run(capsys, "ingest", "contacts", "x.ndjson", "--datasource", "d", "--concurrency", "0")
    assert bad.code == EXIT_USAGE
    assert "positive integer" in bad.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from instasent_async import __version__

    result = run(capsys, "--version")
    assert result.code == EXIT_OK and __version__ in result.out


def test_module_entry_point_runs_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "instasent_async", "whoami"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("INSTASENT_")},
        check=False,
    )
    assert proc.returncode == EXIT_USAGE
    assert "no token: pass --token or set INSTASENT_TOKEN" in proc.stderr


# --- whoami -------------------------------------------------------------------------------


def test_whoami_product_token_shows_organization_projects_and_project(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "whoami", *api(server), "--project", "proj_demo")
    assert result.code == EXIT_OK, result.err
    assert "token: valid (product token)" in result.out
    assert "organization: Demo organization (org_demo)" in result.out
    assert "projects (1):\n  proj_demo  Demo project" in result.out
    assert "project: Demo project (proj_demo)" in result.out


def test_whoami_reads_token_project_and_url_from_the_environment(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSTASENT_TOKEN", PRODUCT_TOKEN)
    monkeypatch.setenv("INSTASENT_PROJECT", "proj_demo")
    monkeypatch.setenv("INSTASENT_BASE_URL", server.url)
    result = run(capsys, "whoami")
    assert result.code == EXIT_OK, result.err
    assert "project: Demo project (proj_demo)" in result.out


def test_flags_override_the_environment(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSTASENT_TOKEN", "revoked-or-wrong")
    monkeypatch.setenv("INSTASENT_PROJECT", "proj_missing")
    monkeypatch.setenv("INSTASENT_BASE_URL", "http://127.0.0.1:9/v1")
    result = run(capsys, "whoami", *api(server), "--project", "proj_demo")
    assert result.code == EXIT_OK, result.err
    assert "project: Demo project (proj_demo)" in result.out


def test_whoami_datasource_token(server: ThreadedFake, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "whoami", *api(server, DATASOURCE_TOKEN), "--project", "proj_demo")
    assert result.code == EXIT_OK, result.err
    assert "token: valid (datasource token)" in result.out
    assert "datasource:   Demo API datasource (ds_demo, api)" in result.out
    assert "project:      Demo project (proj_demo)" in result.out


def test_whoami_with_datasource_option(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(
        capsys, "whoami", *api(server), "--project", "proj_demo", "--datasource", "ds_other"
    )
    assert result.code == EXIT_OK, result.err
    assert "datasource:   Other API datasource (ds_other, api)" in result.out
    wrong = run(
        capsys,
        "whoami",
        *api(server, DATASOURCE_TOKEN),
        "--project",
        "proj_demo",
        "--datasource",
        "ds_other",
    )
    assert wrong.code == EXIT_API
    assert "not found (404)" in wrong.err


def test_whoami_datasource_token_without_project_explains(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "whoami", *api(server, DATASOURCE_TOKEN))
    assert result.code == EXIT_API
    assert "cannot read the organization" in result.err and "--project" in result.err


def test_whoami_rejected_token_exits_3(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "ptok-SECRET-but-wrong"
    result = run(capsys, "whoami", "--token", secret, "--base-url", server.url)
    assert result.code == EXIT_API
    assert "token rejected (401)" in result.err
    # The next step: which token and which project to check.
    assert "check the token (--token or INSTASENT_TOKEN)" in result.err
    assert "--project" in result.err
    assert secret not in result.text


@pytest.mark.parametrize("project", [[], ["--project", "proj_demo"]])
def test_whoami_with_a_base_url_without_v1_says_so(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], project: list[str]
) -> None:
    root = server.url.removesuffix("/v1")
    result = run(capsys, "whoami", "--token", PRODUCT_TOKEN, "--base-url", root, *project)
    assert result.code == EXIT_API
    assert f"the base URL {root} does not end in /v1: try --base-url {root}/v1" in result.err
    assert "datasource token" not in result.err and "do not exist" not in result.err


def test_missing_token_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "whoami")
    assert result.code == EXIT_USAGE
    assert "error: no token: pass --token or set INSTASENT_TOKEN" in result.err
    blank = run(capsys, "whoami", "--token", "  ")
    assert blank.code == EXIT_USAGE


def test_datasource_option_needs_a_project(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "whoami", "--token", PRODUCT_TOKEN, "--datasource", "ds_demo")
    assert result.code == EXIT_USAGE
    assert "INSTASENT_PROJECT" in result.err


def test_insecure_base_url_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "whoami", "--token", PRODUCT_TOKEN, "--base-url", "http://example.com/v1")
    assert result.code == EXIT_USAGE
    assert "configuration error" in result.err and "http://" in result.err
    # The way out is named as the flag this command line has, not a Python argument.
    assert "--allow-insecure" in result.err
    assert "allow_insecure" not in result.err


def test_allow_insecure_flag_reaches_the_client() -> None:
    args = build_parser().parse_args(
        ["whoami", "--token", "t", "--base-url", "http://example.com/v1", "--allow-insecure"]
    )
    access = resolve_access(args)
    assert access.allow_insecure
    client = access.client()  # would raise ConfigurationError without the flag
    assert "example.com" in repr(client)


def test_unreachable_server_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    result = run(capsys, "whoami", "--token", PRODUCT_TOKEN, "--base-url", url)
    assert result.code == EXIT_API
    assert f"cannot reach {url}" in result.err


# --- ingest -------------------------------------------------------------------------------


def ingest(server: ThreadedFake, kind: str, path: Path, *extra: str) -> list[str]:
    return [
        "ingest",
        kind,
        str(path),
        "--datasource",
        "ds_demo",
        *api(server),
        "--project",
        "proj_demo",
        "--no-progress",
        *extra,
    ]


def test_ingest_contacts_ndjson(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    items = [
        {"_user_id": f"u{i}", "_email": f"u{i}@example.com", "plan": "pro" if i % 2 else "free"}
        for i in range(250)
    ]
    path = write_ndjson(tmp_path / "contacts.ndjson", items)
    result = run(capsys, *ingest(server, "contacts", path))
    assert result.code == EXIT_OK, result.text
    assert report_counts(result.out, "contacts") == (250, 250, 0, 0)
    stored = {c["_user_id"]: c for c in server.contacts()}
    assert len(stored) == 250
    assert stored["u7"]["plan"] == "pro" and stored["u7"]["_email"] == "u7@example.com"


def test_ingest_events_csv_with_json_parameters(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "_user_id,_event_id,_event_type,_event_date,_event_parameters\n"
        + "".join(
            f"u{i},e{i},ecommerce_order_create,2026-01-0{1 + i % 9}T10:00:00.000Z,"
            f'"{{""order-id"": ""o{i}"", ""order-euro-amount"": {i}.5}}"\n'
            for i in range(120)
        ),
        encoding="utf-8",
    )
    result = run(capsys, *ingest(server, "events", path, "--concurrency", "2"))
    assert result.code == EXIT_OK, result.text
    assert report_counts(result.out, "events") == (120, 120, 0, 0)
    events = {e.get("_event_id"): e for e in server.events()}
    assert len(events) == 120
    stored = json.dumps(events["e3"])
    assert '"o3"' in stored and "3.5" in stored


def test_ingest_rejections_exit_1_and_fill_the_dead_letter_file(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    items = [{"_user_id": f"u{i}", "_email": f"u{i}@example.com"} for i in range(150)]
    items[3]["_email"] = "not-an-email"
    items[120] = {"_email": "x@example.com"}  # no _user_id
    path = write_ndjson(tmp_path / "contacts.ndjson", items)
    path.write_text("\n\n" + path.read_text())  # two blank lines: item 3 is on line 6
    dead = tmp_path / "dead.ndjson"
    result = run(capsys, *ingest(server, "contacts", path, "--dead-letter", str(dead)))
    assert result.code == EXIT_REJECTED
    assert report_counts(result.out, "contacts") == (150, 148, 2, 0)
    assert f"dead letter: 2 item(s) written to {dead}" in result.out
    lines = [json.loads(line) for line in dead.read_text().splitlines()]
    assert lines == [
        {
            "position": 3,
            "line": 6,
            "status": 202,
            "errors": {"_email": ["Invalid format"]},
            "reason": None,
            "item": items[3],
        },
        {
            "position": 120,
            "line": 123,
            "status": 202,
            "errors": {"_user_id": ["This value should not be blank."]},
            "reason": None,
            "item": items[120],
        },
    ]
    assert len(server.contacts()) == 148


def test_dead_letter_file_is_emptied_when_nothing_is_rejected(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dead = tmp_path / "dead.ndjson"
    dead.write_text('{"stale": "from a previous run"}\n')
    path = write_ndjson(tmp_path / "c.ndjson", [{"_user_id": "u1"}])
    result = run(capsys, *ingest(server, "contacts", path, "--dead-letter", str(dead)))
    assert result.code == EXIT_OK
    assert dead.read_text() == ""


def test_unusable_dead_letter_paths_exit_2_before_sending(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "c.ndjson", [{"_user_id": "u1"}])
    for target in (tmp_path, path, tmp_path / "missing-dir" / "dead.ndjson"):
        result = run(capsys, *ingest(server, "contacts", path, "--dead-letter", str(target)))
        assert result.code == EXIT_USAGE
        assert f"--dead-letter {target}" in result.err
    assert path.read_text() == '{"_user_id": "u1"}\n'
    assert server.ingest_requests() == 0


BAD_FILES = [
    ("c.ndjson", '{"_user_id": "u1"}\n\n{"_user_id": \n', 3, "invalid JSON at column 13"),
    ("c.ndjson", '{"_user_id": "u1"}\n["u2"]\n', 2, "expected a JSON object, got an array"),
    ("c.jsonl", b'{"_user_id": "u1"}\n{"_user_id": "\xff"}\n', 2, "not valid UTF-8"),
    ("c.csv", "_user_id,,plan\nu1,x,pro\n", 1, "column 2 of the header row has no name"),
    ("c.csv", "_user_id,plan,plan\nu1,a,b\n", 1, "duplicate column 'plan'"),
    ("c.csv", "_user_id,plan\nu1,pro\nu2,pro,extra\n", 3, "3 cells but the header row has 2"),
    ("c.csv", "_user_id,plan,city\nu1,pro,Vigo\nu2,pro\n", 3, "2 cells but the header row has 3"),
    ("c.csv", '_user_id,_client_tags\nu1,"[""vip"""\n', 2, "column '_client_tags': invalid JSON"),
    ("c.csv", b"_user_id,plan\nu1,pro\nu2,\xe9\n", 3, "not valid UTF-8"),
    ("c.csv", '_user_id,plan\nu1,"pro\n', 2, "malformed CSV"),
    ("c.csv", "", 1, "empty file"),
]


@pytest.mark.parametrize(("name", "content", "line", "message"), BAD_FILES)
def test_bad_input_names_file_and_line_and_sends_nothing(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    content: str | bytes,
    line: int,
    message: str,
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    result = run(capsys, *ingest(server, "contacts", path))
    assert result.code == EXIT_USAGE
    assert f"{path}:{line}: {message}" in result.err
    assert "nothing was sent" in result.err
    assert server.ingest_requests() == 0
    assert server.contacts() == []


def test_events_csv_needs_the_event_columns(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    path.write_text("_user_id,_event_type\nu1,page_view\n", encoding="utf-8")
    result = run(capsys, *ingest(server, "events", path))
    assert result.code == EXIT_USAGE
    assert f"{path}:1: missing required column(s): _event_id" in result.err
    assert server.ingest_requests() == 0


def test_validation_reports_several_bad_lines(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [json.dumps({"_user_id": f"u{i}"}) for i in range(30)]
    for i in range(2, 30, 2):
        lines[i] = "oops"
    path = tmp_path / "c.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run(capsys, *ingest(server, "contacts", path))
    assert result.code == EXIT_USAGE
    shown = re.findall(rf"^{re.escape(str(path))}:(\d+): ", result.err, re.M)
    assert [int(n) for n in shown] == list(range(3, 23, 2))  # the first ten
    assert "... and 4 more bad line(s)" in result.err
    assert f"{path}: 14 bad line(s); nothing was sent" in result.err
    assert server.ingest_requests() == 0


def test_no_validate_sends_the_items_before_the_bad_line_only(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = [json.dumps({"_user_id": f"u{i}"}) for i in range(160)]
    lines[150] = '{"_user_id": "u150", broken'
    path = tmp_path / "c.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run(capsys, *ingest(server, "contacts", path, "--no-validate"))
    assert result.code == EXIT_USAGE
    assert f"{path}:151: invalid JSON" in result.err
    assert report_counts(result.out, "contacts") == (150, 150, 0, 0)
    assert sorted(c["_user_id"] for c in server.contacts()) == sorted(f"u{i}" for i in range(150))
    # Once the line is fixed, the printed command sends the rest.
    command = printed_commands(result.err)["to resume"]
    assert command.endswith("--no-validate --skip 150")
    lines[150] = '{"_user_id": "u150"}'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("INSTASENT_TOKEN", PRODUCT_TOKEN)
    rest = run_printed(capsys, command)
    assert rest.code == EXIT_OK, rest.text
    assert report_counts(rest.out, "contacts") == (10, 10, 0, 0)
    assert len(server.contacts()) == 160


def test_missing_or_unrecognised_file_exits_2(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.ndjson"
    result = run(capsys, *ingest(server, "contacts", missing))
    assert result.code == EXIT_USAGE
    assert f"error: {missing}: no such file" in result.err
    text = tmp_path / "contacts.txt"
    text.write_text("_user_id\nu1\n")
    result = run(capsys, *ingest(server, "contacts", text))
    assert result.code == EXIT_USAGE
    assert "--format" in result.err
    assert server.ingest_requests() == 0
    forced = run(capsys, *ingest(server, "contacts", text, "--format", "csv"))
    assert forced.code == EXIT_OK, forced.text
    assert [c["_user_id"] for c in server.contacts()] == ["u1"]


def test_ingest_needs_a_token_and_a_project(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "c.ndjson", [{"_user_id": "u1"}])
    no_token = run(capsys, "ingest", "contacts", str(path), "--datasource", "ds_demo")
    assert no_token.code == EXIT_USAGE and "no token" in no_token.err
    no_project = run(
        capsys, "ingest", "contacts", str(path), "--datasource", "ds_demo", "--token", "t"
    )
    assert no_project.code == EXIT_USAGE and "no project" in no_project.err


def test_ingest_with_a_rejected_token_exits_3_and_sends_nothing(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "c.ndjson", [{"_user_id": "u1"}])
    args = ingest(server, "contacts", path)
    args[args.index(PRODUCT_TOKEN)] = "ptok-SECRET-revoked"
    result = run(capsys, *args)
    assert result.code == EXIT_API
    assert "token rejected (401)" in result.err
    assert "ptok-SECRET-revoked" not in result.text
    assert server.ingest_requests() == 0


def test_ingest_to_an_unknown_datasource_exits_3(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "c.ndjson", [{"_user_id": "u1"}])
    args = ingest(server, "contacts", path)
    args[args.index("ds_demo")] = "ds_nope"
    result = run(capsys, *args)
    assert result.code == EXIT_API
    assert "not found (404)" in result.err
    assert server.ingest_requests() == 0


def test_ingest_with_a_datasource_token_from_the_environment(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INSTASENT_TOKEN", DATASOURCE_TOKEN)
    monkeypatch.setenv("INSTASENT_PROJECT", "proj_demo")
    monkeypatch.setenv("INSTASENT_BASE_URL", server.url)
    path = write_ndjson(
        tmp_path / "e.ndjson",
        [{"_user_id": "u1", "_event_id": f"e{i}", "_event_type": "page_view"} for i in range(5)]
        + [{"_user_id": "u1", "_event_type": "page_view"}],  # no _event_id: never sent
    )
    result = run(capsys, "ingest", "events", str(path), "--datasource", "ds_demo", "--no-progress")
    assert result.code == EXIT_REJECTED
    assert report_counts(result.out, "events") == (6, 5, 1, 0)
    assert "_event_id" in result.out
    assert len(server.events()) == 5


def test_progress_lines_go_to_stderr(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "c.ndjson", [{"_user_id": f"u{i}"} for i in range(300)])
    args = ingest(server, "contacts", path)
    args.remove("--no-progress")
    result = run(capsys, *args)
    assert result.code == EXIT_OK
    assert f"{path}: 300 contacts to send" in result.err
    assert re.search(
        r"^contacts: 100/300 items \(33%\), [\d,]+ items/s, 100 accepted", result.err, re.M
    )
    assert re.search(r"^contacts: 300/300 items \(100%\)", result.err, re.M)
    assert "items/s" not in result.out
    # Pacing is not throttling: a quiet run against a roomy limit shows no 429.
    assert "requests: " in result.err and " 0 answered 429" in result.err


def test_progress_and_report_tell_429_answers_from_pacing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake = ThreadedFake(window=0.5)
    fake.start()
    try:
        fake.call(lambda: fake.fake.fail_next(2, 429, path_contains="/stream/"))
        path = write_ndjson(tmp_path / "c.ndjson", [{"_user_id": f"u{i}"} for i in range(300)])
        args = ingest(fake, "contacts", path, "--concurrency", "1")
        args.remove("--no-progress")
        result = run(capsys, *args)
        assert result.code == EXIT_OK, result.text
        assert re.search(
            r"^contacts: 300/300 items .*; requests: \d+ paced, 2 answered 429$", result.err, re.M
        )
        assert re.search(r"^contacts: 300 items: .* \d+ paced, 2 answered 429, ", result.out, re.M)
    finally:
        fake.stop()


def test_failures_without_a_dead_letter_print_the_command_that_sends_them_again(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts = RetryPolicy().max_attempts
    server.call(lambda: server.fake.fail_next(attempts, 503, path_contains="/stream/"))
    path = write_ndjson(tmp_path / "c.ndjson", [{"_user_id": f"u{i}"} for i in range(300)])
    result = run(capsys, *ingest(server, "contacts", path, "--concurrency", "1"))
    assert result.code == EXIT_REJECTED
    assert report_counts(result.out, "contacts") == (300, 200, 0, 100)
    assert f"  {path}:1 (and the 99 after it): failed: " in result.out
    command = printed_commands(result.err)["to send"]
    assert "to send the 100 failed item(s) again, resume at record 0:" in result.err
    monkeypatch.setenv("INSTASENT_TOKEN", PRODUCT_TOKEN)
    again = run_printed(capsys, command)
    assert again.code == EXIT_OK, again.text
    assert len(server.contacts()) == 300


def test_a_dead_letter_that_cannot_be_written_stops_the_run_with_the_way_on(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    full = Path("/dev/full")  # every write fails: "No space left on device"
    items = [{"_user_id": f"u{i}", "_email": f"u{i}@example.com"} for i in range(3000)]
    items[3]["_email"] = "broken"
    path = write_ndjson(tmp_path / "c.ndjson", items)
    result = run(capsys, *ingest(server, "contacts", path, "--dead-letter", str(full)))
    assert result.code == EXIT_USAGE
    assert f"error: --dead-letter {full}: cannot write: No space left on device" in result.err
    total, _, rejected, _ = report_counts(result.out, "contacts")
    assert total < 3000 and rejected == 1
    assert "to resume after the first " in result.err
    assert "Traceback" not in result.err


def test_rejections_name_the_file_and_line(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ndjson = tmp_path / "c.ndjson"
    ndjson.write_text(
        '{"_user_id": "u1"}\n\n{"_user_id": "u2"}\n{"_user_id": "u3", "_email": "nope"}\n'
    )
    result = run(capsys, *ingest(server, "contacts", ndjson))
    assert result.code == EXIT_REJECTED
    assert f"  {ndjson}:4: rejected: _email: Invalid format" in result.out
    assert "#2" not in result.out  # not the 0-based item number
    csv_path = tmp_path / "c.csv"
    csv_path.write_text('_user_id,_email,note\nu1,a@example.com,"two\nlines"\nu2,bad,x\n')
    result = run(capsys, *ingest(server, "contacts", csv_path))
    assert result.code == EXIT_REJECTED
    assert f"  {csv_path}:4: rejected: _email: Invalid format" in result.out


def test_events_without_event_id_name_the_flag_that_sends_them(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_ndjson(
        tmp_path / "e.ndjson",
        [
            {"_user_id": "u1", "_event_id": "e1", "_event_type": "page_view"},
            {"_user_id": "u1", "_event_type": "page_view"},
        ],
    )
    result = run(capsys, *ingest(server, "events", path))
    assert result.code == EXIT_REJECTED
    assert f"{path}:2: rejected: _event_id: missing _event_id" in result.out
    assert "--no-require-event-id sends them" in result.err
    assert "require_event_id=" not in result.text
    assert len(server.events()) == 1
    # With the flag the event is sent, and the server has the last word on it.
    sent = run(capsys, *ingest(server, "events", path, "--no-require-event-id"))
    assert f"{path}:2: rejected: _event_id: This value should not be blank." in sent.out
    bodies = server.call(lambda: [r.json for r in server.fake.requests if "/stream/" in r.path])
    assert [len(body) for body in bodies] == [1, 2]


def test_stdin_is_read_with_a_dash(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = "".join(json.dumps({"_user_id": f"u{i}"}) + "\n" for i in range(150))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data.encode())))
    result = run(capsys, *ingest(server, "contacts", Path("-")))
    assert result.code == EXIT_OK, result.text
    assert report_counts(result.out, "contacts") == (150, 150, 0, 0)
    assert len(server.contacts()) == 150
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"_user_id": "u1"}\n{bad\n')))
    broken = run(capsys, *ingest(server, "contacts", Path("-")))
    assert broken.code == EXIT_USAGE
    assert "<stdin>:2: invalid JSON" in broken.err


def test_gzip_files_are_ingested(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ndjson = tmp_path / "c.ndjson.gz"
    ndjson.write_bytes(
        gzip.compress(
            "".join(json.dumps({"_user_id": f"n{i}"}) + "\n" for i in range(120)).encode()
        )
    )
    result = run(capsys, *ingest(server, "contacts", ndjson))
    assert result.code == EXIT_OK, result.text
    csv_path = tmp_path / "c.csv.gz"
    csv_path.write_bytes(gzip.compress(b"_user_id,plan\nc1,pro\nc2,free\n"))
    result = run(capsys, *ingest(server, "contacts", csv_path))
    assert result.code == EXIT_OK, result.text
    stored = {c["_user_id"]: c for c in server.contacts()}
    assert len(stored) == 122 and stored["c1"]["plan"] == "pro"


@pytest.mark.parametrize(
    ("name", "content", "extra"),
    [
        ("c.ndjson", "", ()),
        ("c.ndjson", "\n  \n\n", ()),
        ("c.csv", "_user_id,_email\n", ()),
        ("c.ndjson", "", ("--no-validate",)),
    ],
)
def test_an_empty_file_warns_and_exits_2(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    content: str,
    extra: tuple[str, ...],
) -> None:
    path = tmp_path / name
    path.write_text(content)
    result = run(capsys, *ingest(server, "contacts", path, *extra))
    assert result.code == EXIT_USAGE
    assert f"error: {path}: no contacts in the" in result.err and "empty" in result.err
    assert server.ingest_requests() == 0


def test_csv_cells_take_the_types_the_attribute_specs_declare(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def declare() -> None:
        server.fake.add_attribute_spec("proj_demo", "age", data_type="number")
        server.fake.add_attribute_spec("proj_demo", "score", data_type="decimal")
        server.fake.add_attribute_spec("proj_demo", "vip", data_type="bool")
        server.fake.add_attribute_spec("proj_demo", "langs", multivalue=3)

    server.call(declare)
    path = tmp_path / "c.csv"
    path.write_text(
        '_user_id,age,score,vip,langs,plan\nu1,33,4.5,yes,"[""es"", ""en""]",pro\nu2,,,no,fr,007\n'
    )
    result = run(capsys, *ingest(server, "contacts", path))
    assert result.code == EXIT_OK, result.text
    stored = {c["_user_id"]: c for c in server.contacts()}
    assert stored["u1"]["age"] == 33 and stored["u1"]["score"] == 4.5
    assert stored["u1"]["vip"] == "1" and stored["u2"]["vip"] == "0"
    assert stored["u1"]["langs"] == ["es", "en"] and stored["u2"]["langs"] == ["fr"]
    assert stored["u2"]["plan"] == "007"  # no spec says otherwise: a string
    specs_reads = server.call(lambda: server.fake.count("GET", "specs/attributes"))
    assert specs_reads == 1  # fetched once, not per row

    as_text = run(capsys, *ingest(server, "contacts", path, "--csv-strings"))
    assert as_text.code == EXIT_OK, as_text.text
    stored = {c["_user_id"]: c for c in server.contacts()}
    assert stored["u1"]["age"] == "33" and stored["u1"]["vip"] == "yes"


def test_a_csv_cell_that_does_not_fit_its_declared_type_is_a_bad_line(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server.call(lambda: server.fake.add_attribute_spec("proj_demo", "age", data_type="integer"))
    path = tmp_path / "c.csv"
    path.write_text("_user_id,age\nu1,33\nu2,thirty\n")
    result = run(capsys, *ingest(server, "contacts", path))
    assert result.code == EXIT_USAGE
    assert f"{path}:3: column 'age': expected a number, got 'thirty'" in result.err
    assert "--csv-strings" in result.err
    assert server.ingest_requests() == 0


def test_no_dead_letter_file_is_created_when_nothing_fails(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dead = tmp_path / "dead.ndjson"
    path = write_ndjson(tmp_path / "c.ndjson", [{"_user_id": "u1"}])
    result = run(capsys, *ingest(server, "contacts", path, "--dead-letter", str(dead)))
    assert result.code == EXIT_OK
    assert not dead.exists()
    assert "dead letter" not in result.out


def test_skip_sends_only_the_records_after_the_first_n(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [json.dumps({"_user_id": f"u{i}"}) for i in range(250)]
    lines.insert(10, "")  # blank lines are not records
    path = tmp_path / "c.ndjson"
    path.write_text("\n".join(lines) + "\n")
    result = run(capsys, *ingest(server, "contacts", path, "--skip", "100"))
    assert result.code == EXIT_OK, result.text
    assert report_counts(result.out, "contacts") == (150, 150, 0, 0)
    assert sorted(c["_user_id"] for c in server.contacts()) == sorted(
        f"u{i}" for i in range(100, 250)
    )
    everything = run(capsys, *ingest(server, "contacts", path, "--skip", "250"))
    assert everything.code == EXIT_USAGE
    assert "--skip 250 skips all 250 records" in everything.err


def dead_letter_line(position: int, item: dict[str, Any], **detail: Any) -> str:
    record = {
        "position": position,
        "line": position + 1,
        "status": None,
        "errors": None,
        "reason": None,
        "item": item,
        **detail,
    }
    return json.dumps(record) + "\n"


@pytest.mark.parametrize("how", ["--resend", "detected"])
def test_a_dead_letter_file_is_resent(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path, how: str
) -> None:
    dead = tmp_path / "dead.ndjson"
    dead.write_text(
        dead_letter_line(4, {"_user_id": "u4", "_email": "u4@example.com"}, reason="timeout")
        + dead_letter_line(9, {"_user_id": "u9"}, status=422, errors={"_email": ["bad"]})
    )
    extra = ["--resend"] if how == "--resend" else []
    result = run(capsys, *ingest(server, "contacts", dead, *extra))
    assert result.code == EXIT_OK, result.text
    assert (f"{dead} is a dead letter: its items are sent again" in result.err) == (
        how == "detected"
    )
    assert report_counts(result.out, "contacts") == (2, 2, 0, 0)
    stored = {c["_user_id"]: c for c in server.contacts()}
    assert set(stored) == {"u4", "u9"} and stored["u4"]["_email"] == "u4@example.com"


def test_resend_refuses_a_file_that_is_not_a_dead_letter(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "c.ndjson", [{"_user_id": "u1"}])
    result = run(capsys, *ingest(server, "contacts", path, "--resend"))
    assert result.code == EXIT_USAGE
    assert f"{path}:1: not a dead-letter line" in result.err
    assert server.ingest_requests() == 0


def test_exit_1_prints_the_command_that_resends_the_fixed_dead_letter(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    items = [{"_user_id": f"u{i}", "_email": f"u{i}@example.com"} for i in range(120)]
    items[7]["_email"] = "broken"
    items[110]["_email"] = "broken-too"
    path = write_ndjson(tmp_path / "c.ndjson", items)
    dead = tmp_path / "dead.ndjson"
    result = run(capsys, *ingest(server, "contacts", path, "--dead-letter", str(dead)))
    assert result.code == EXIT_REJECTED
    command = result.err.splitlines()[-1].strip()
    assert command.startswith("instasent-async ingest contacts --resend ")
    assert "to resend the 2 rejected item(s) once fixed in" in result.err
    assert PRODUCT_TOKEN not in result.err
    # Fix the dead letter's items, then run exactly the printed command.
    fixed = []
    for line in dead.read_text().splitlines():
        record = json.loads(line)
        record["item"]["_email"] = record["item"]["_user_id"] + "@fixed.example.com"
        fixed.append(json.dumps(record))
    dead.write_text("\n".join(fixed) + "\n")
    monkeypatch.setenv("INSTASENT_TOKEN", PRODUCT_TOKEN)
    argv = shlex.split(command)
    assert argv[0] == "instasent-async"
    again = run(capsys, *argv[1:], "--no-progress")
    assert again.code == EXIT_OK, again.text
    assert report_counts(again.out, "contacts") == (2, 2, 0, 0)
    stored = {c["_user_id"]: c for c in server.contacts()}
    assert stored["u7"]["_email"] == "u7@fixed.example.com"
    assert stored["u110"]["_email"] == "u110@fixed.example.com"
    assert not (tmp_path / "dead-2.ndjson").exists()  # nothing failed the second time


# --- progress displays --------------------------------------------------------------------


def make_report(done: int, rejected: int = 0, waits: int = 0, throttled: int = 0) -> IngestReport:
    report = IngestReport(
        total=done,
        accepted=done - rejected,
        rejected_count=rejected,
        rate_limit_waits=waits,
        rate_limited=throttled,
    )
    report.rejected.extend(RejectedItem({}, i, {"_": ["bad"]}) for i in range(rejected))
    return report


def test_report_lists_a_failed_batch_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    report = make_report(0)
    report.failed.extend(FailedItem({}, i, "timeout") for i in range(10, 110))
    report.failed.append(FailedItem({}, 110, "not sent"))
    report.failed.extend(FailedItem({}, i, "timeout") for i in (200, 300))
    report.total = report.failed_count = len(report.failed)
    print_report("events", report, locate=lambda position: f"e.ndjson:{position + 2}", shown=3)
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  e.ndjson:12 (and the 99 after it): failed: timeout",
        "  e.ndjson:112: failed: not sent",
        "  e.ndjson:202: failed: timeout",
        "  ... and 1 more failed",
    ]


def test_plain_progress_prints_at_first_then_every_interval_and_at_close() -> None:
    now = [100.0]
    stream = io.StringIO()
    progress = PlainProgress("events", 1000, stream=stream, interval=2.0, clock=lambda: now[0])
    now[0] = 101.0
    progress.update(make_report(100))
    now[0] = 102.0
    progress.update(make_report(200))  # within the interval: not shown
    now[0] = 103.5
    progress.update(make_report(400, rejected=1, waits=3))
    now[0] = 104.0
    progress.update(make_report(500, rejected=1, waits=3, throttled=2))
    progress.close()
    progress.close()
    assert stream.getvalue().splitlines() == [
        "events: 100/1000 items (10%), 100 items/s, 100 accepted, 0 rejected, 0 failed; "
        "requests: 0 paced, 0 answered 429",
        "events: 400/1000 items (40%), 114 items/s, 399 accepted, 1 rejected, 0 failed; "
        "requests: 3 paced, 0 answered 429",
        "events: 500/1000 items (50%), 125 items/s, 499 accepted, 1 rejected, 0 failed; "
        "requests: 3 paced, 2 answered 429",
    ]


def test_tqdm_progress_shows_counts() -> None:
    stream = io.StringIO()
    progress = TqdmProgress("contacts", 10, stream=stream)
    progress.update(make_report(4, rejected=1, waits=2))
    progress.close()
    text = stream.getvalue()
    assert "contacts" in text and "4/10" in text
    assert "ok=3 rejected=1 failed=0 paced=2 429=0" in text


def test_make_progress_picks_the_display() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(make_progress("x", None, stream=io.StringIO()), PlainProgress)
    assert isinstance(make_progress("x", None, stream=Tty()), TqdmProgress)
    silent = make_progress("x", 5, style="none", stream=io.StringIO())
    assert type(silent) is Progress


# --- serve-fake and Ctrl-C (subprocesses) -------------------------------------------------


class Proc:
    """A CLI subprocess whose output lines are read by threads (reads never block us)."""

    def __init__(self, *argv: str, env: dict[str, str] | None = None) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("INSTASENT_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "instasent_async", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**base, **(env or {}), "PYTHONUNBUFFERED": "1"},
        )
        self.lines: dict[str, list[str]] = {"out": [], "err": []}
        self._queue: queue.Queue[tuple[str, str]] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._pump, args=(name, pipe), daemon=True)
            for name, pipe in (("out", self.proc.stdout), ("err", self.proc.stderr))
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, name: str, pipe: Any) -> None:
        for line in pipe:
            self._queue.put((name, line))
        pipe.close()

    def wait_for(self, stream: str, pattern: str) -> re.Match[str]:
        """The first new line of ``stream`` matching ``pattern`` (bounded by TIMEOUT)."""
        regex = re.compile(pattern)
        while True:
            try:
                name, line = self._queue.get(timeout=TIMEOUT)
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"no line matching {pattern!r}: {self.lines}") from None
            self.lines[name].append(line)
            match = regex.search(line) if name == stream else None
            if match:
                return match

    def finish(self) -> int:
        try:
            code = self.proc.wait(TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(TIMEOUT)
        for thread in self._threads:
            thread.join(TIMEOUT)
        while not self._queue.empty():
            name, line = self._queue.get_nowait()
            self.lines[name].append(line)
        return code

    def text(self, stream: str) -> str:
        return "".join(self.lines[stream])


def test_serve_fake_prints_a_token_that_works(capsys: pytest.CaptureFixture[str]) -> None:
    proc = Proc("serve-fake", "--port", "0")
    try:
        url = proc.wait_for("out", r"listening on (\S+)").group(1)
        token = proc.wait_for("out", r"^product token: (\S+)").group(1)
        proc.wait_for("out", "Ctrl-C")
        code = main(["whoami", "--token", token, "--base-url", url, "--project", "proj_demo"])
        out = capsys.readouterr().out
        assert code == EXIT_OK
        assert "project: Demo project (proj_demo)" in out
        assert token not in out
    finally:
        proc.proc.send_signal(signal.SIGINT)
        assert proc.finish() == 0


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("host", "shown"), [("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")])
def test_serve_fake_listens_on_the_host_and_port_it_is_given(
    capsys: pytest.CaptureFixture[str], host: str, shown: str
) -> None:
    port = free_port(host)
    proc = Proc("serve-fake", "--host", host, "--port", str(port))
    try:
        url = proc.wait_for("out", r"listening on (\S+)").group(1)
        assert url == f"http://{shown}:{port}/v1"
        token = proc.wait_for("out", r"^product token: (\S+)").group(1)
        proc.wait_for("out", "Ctrl-C")
        code = main(["whoami", "--token", token, "--base-url", url, "--project", "proj_demo"])
        assert code == EXIT_OK, capsys.readouterr()
    finally:
        proc.proc.send_signal(signal.SIGINT)
        assert proc.finish() == 0


def test_serve_fake_help_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "serve-fake", "--help")
    assert result.code == EXIT_OK
    assert result.out.startswith("usage: instasent-async serve-fake ")
    assert "python -m" not in result.out
    # Every option says what it does, --batch-shape included.
    assert re.search(r"--batch-shape \{documented,activepieces\}\s+the body of 202/422", result.out)


def printed_commands(err: str) -> dict[str, str]:
    """The commands the CLI printed, by the first words of the line that leads them."""
    lines = err.splitlines()
    found = {}
    for lead, command in itertools.pairwise(lines):
        if lead.startswith("to ") and lead.endswith(":") and command.startswith("  "):
            found[" ".join(lead.split()[:2])] = command.strip()
    return found


def sent_ids(server: ThreadedFake, since: int = 0) -> list[str]:
    """The _user_ids of every ingested item the fake received, from request ``since`` on."""
    requests = server.call(lambda: server.fake.requests)[since:]
    return [
        item["_user_id"]
        for r in requests
        if r.method == "POST" and "/stream/" in r.path and isinstance(r.json, list)
        for item in r.json
    ]


def run_printed(capsys: pytest.CaptureFixture[str], command: str) -> Run:
    argv = shlex.split(command)
    assert argv[0] == "instasent-async"
    return run(capsys, *argv[1:], "--no-progress")


def test_ctrl_c_lets_in_flight_batches_finish_and_prints_the_partial_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = ThreadedFake(rate_limit=None)
    fake.fake.latency = 0.2  # every request takes 0.2 s: the ingestion lasts ~2.5 s
    fake.start()
    try:
        path = write_ndjson(tmp_path / "c.ndjson", [{"_user_id": f"u{i}"} for i in range(5000)])
        dead = tmp_path / "dead.ndjson"
        env = {
            "INSTASENT_TOKEN": PRODUCT_TOKEN,
            "INSTASENT_PROJECT": "proj_demo",
            "INSTASENT_BASE_URL": fake.url,
        }
        proc = Proc(
            "ingest",
            "contacts",
            str(path),
            "--datasource",
            "ds_demo",
            "--dead-letter",
            str(dead),
            "--concurrency",
            "4",
            env=env,
        )
        proc.wait_for("err", r"^contacts: \d+/5000 items")  # the first batch is done
        proc.proc.send_signal(signal.SIGINT)
        assert proc.finish() == EXIT_INTERRUPTED
        out, err = proc.text("out"), proc.text("err")
        assert "interrupted: letting in-flight batches finish" in err
        assert "interrupted: the report above is partial" in err
        total, accepted, rejected, failed = report_counts(out, "contacts")
        # In-flight batches finished, so the report knows exactly what was stored.
        stored = len(fake.contacts())
        assert accepted == stored
        assert 0 < stored < 5000 and rejected == 0
        assert total == accepted + failed and failed > 0
        assert len(dead.read_text().splitlines()) == failed
        assert PRODUCT_TOKEN not in out + err

        # The last lines are the commands that finish the job; run them as printed.
        commands = printed_commands(err)
        consumed = int(re.findall(r"to resume after the first (\d+) records:", err)[0])
        assert consumed == total
        assert set(commands) == {"to resume", "to resend"}
        assert f"--skip {consumed}" in commands["to resume"]
        assert f"--resend {dead}" in commands["to resend"]
        fake.call(lambda: setattr(fake.fake, "latency", 0.0))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        before = len(fake.call(lambda: fake.fake.requests))
        resumed = run_printed(capsys, commands["to resume"])
        assert resumed.code == EXIT_OK, resumed.text
        sent_by_resume = sent_ids(fake, before)
        assert sorted(sent_by_resume) == sorted(f"u{i}" for i in range(consumed, 5000))
        middle = len(fake.call(lambda: fake.fake.requests))
        resent = run_printed(capsys, commands["to resend"])
        assert resent.code == EXIT_OK, resent.text
        assert len(sent_ids(fake, middle)) == failed  # exactly the dead letter's items
        assert len(fake.contacts()) == 5000
    finally:
        fake.stop()


def stored_user_ids(url: str) -> list[str]:
    """Every contact the API at ``url`` holds, read through the SDK."""

    async def scroll() -> list[str]:
        async with Instasent(PRODUCT_TOKEN, project="proj_demo", base_url=url) as client:
            return [c.user_id async for c in client.audience.scroll(None, page_size=100)]

    return asyncio.run(scroll())


def start_fake_process(port: int) -> tuple[Proc, str]:
    """``serve-fake`` in its own process (so stopping it is a real "server gone")."""
    fake = Proc(
        "serve-fake",
        "--port",
        str(port),
        "--product-token",
        PRODUCT_TOKEN,
        "--rate-limit",
        "none",
        "--latency",
        "0.05",
    )
    url = fake.wait_for("out", r"listening on (\S+)").group(1)
    fake.wait_for("out", "Ctrl-C")
    return fake, url


def test_a_run_stops_when_the_server_is_gone_and_resumes_exactly_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port("127.0.0.1")
    fake, url = start_fake_process(port)
    path = write_ndjson(tmp_path / "c.ndjson", [{"_user_id": f"u{i}"} for i in range(3000)])
    dead = tmp_path / "dead.ndjson"
    env = {"INSTASENT_TOKEN": PRODUCT_TOKEN, "INSTASENT_PROJECT": "proj_demo"}
    try:
        proc = Proc(
            "ingest",
            "contacts",
            str(path),
            "--datasource",
            "ds_demo",
            "--base-url",
            url,
            "--dead-letter",
            str(dead),
            "--concurrency",
            "2",
            "--unreachable-for",
            "1",
            env=env,
        )
        proc.wait_for("err", r"^contacts: \d+/3000 items")  # under way
        fake.proc.kill()  # the server is gone, mid-run
        gone = time.monotonic()
        assert fake.finish() != 0
        code = proc.finish()
        stopped_after = time.monotonic() - gone
        out, err = proc.text("out"), proc.text("err")
        assert code == EXIT_API, out + err
        assert f"cannot reach {url}: the API was unreachable for" in err
        assert "--base-url" in err and "report.consumed" not in err
        total, accepted, rejected, failed = report_counts(out, "contacts")
        # It stopped reading: the items never read are not in the report.
        assert total < 3000 and rejected == 0 and failed > 0
        assert len(dead.read_text().splitlines()) == failed
        # Within the configured time: one second unreachable, then the retries of the
        # batches in flight (the default policy sleeps at most 0.5 + 1 + 2 s each).
        retries = RetryPolicy()
        chain = sum(
            min(retries.backoff_max, retries.backoff_base * 2**i)
            for i in range(retries.max_attempts - 1)
        )
        assert stopped_after < 1 + 2 * chain, stopped_after

        commands = printed_commands(err)
        consumed = int(re.findall(r"to resume after the first (\d+) records:", err)[0])
        assert set(commands) == {"to resume", "to resend"}
        assert "--unreachable-for 1" in commands["to resume"]
        assert PRODUCT_TOKEN not in out + err
        # A new server on the same address: resume sends exactly the records not yet
        # consumed, the dead letter exactly the failed ones.
        fake, url = start_fake_process(port)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        resumed = run_printed(capsys, commands["to resume"])
        assert resumed.code == EXIT_OK, resumed.text
        assert report_counts(resumed.out, "contacts") == (3000 - consumed,) * 2 + (0, 0)
        assert sorted(stored_user_ids(url)) == sorted(f"u{i}" for i in range(consumed, 3000))
        resent = run_printed(capsys, commands["to resend"])
        assert resent.code == EXIT_OK, resent.text
        assert report_counts(resent.out, "contacts") == (failed, failed, 0, 0)
        resent_ids = set(stored_user_ids(url)) - {f"u{i}" for i in range(consumed, 3000)}
        assert len(resent_ids) == failed
        assert resent_ids | {f"u{i}" for i in range(accepted + failed)} == {
            f"u{i}" for i in range(accepted + failed)
        }
    finally:
        fake.proc.send_signal(signal.SIGINT)
        fake.finish()


def test_output_cut_short_by_its_reader_ends_quietly_with_141() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "instasent_async", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            first = proc.stdout.readline()  # like `| head -1`: one line, then gone
            proc.stdout.close()
            errors = proc.stderr.read().decode()
            code = proc.wait(timeout=60)
        finally:
            proc.kill()
    assert first.startswith(b"instasent-async demo")
    assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors
    assert code == 141
