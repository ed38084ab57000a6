"""``instasent-async demo``: generated data, end-to-end run, and Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from instasent_async.cli import _demo_data, demo
from instasent_async.cli.codes import EXIT_INTERRUPTED, EXIT_OK
from instasent_async.cli.main import main
from instasent_async.testing import FakeInstasent

TIMEOUT = 60.0


def test_generated_contacts_are_deterministic_and_a_few_are_invalid() -> None:
    contacts = list(_demo_data.generate_contacts(3000, seed=3))
    assert contacts == list(_demo_data.generate_contacts(3000, seed=3))
    assert contacts != list(_demo_data.generate_contacts(3000, seed=4))
    assert len({c["_user_id"] for c in contacts}) == 3000
    invalid = [c for c in contacts if "@" not in c["_email"]]
    assert len(invalid) == 3
    for contact in contacts:
        assert contact["_phone_mobile"].startswith("+346") and len(contact["_phone_mobile"]) == 12
        assert contact["plan"] in {"free", "basic", "pro", "enterprise"}
        assert contact["_first_name"] and contact["_last_name"] and contact["city"]
    assert any("_client_tags" in c for c in contacts)


def test_generated_events_have_unique_ids_and_a_few_lack_a_type() -> None:
    events = list(_demo_data.generate_events(12_000, contacts=500, seed=3))
    assert len({e["_event_id"] for e in events}) == 12_000
    assert sum(1 for e in events if "_event_type" not in e) == 2
    assert {e["_user_id"] for e in events} <= {f"USER-{i:06d}" for i in range(500)}
    orders = [e for e in events if e.get("_event_type") == "ecommerce_order_create"]
    assert orders and all("order-euro-amount" in e["_event_parameters"] for e in orders)
    assert all(e["_event_date"].endswith(".000Z") for e in events)


def test_generators_handle_empty_sizes() -> None:
    assert list(_demo_data.generate_contacts(0)) == []
    assert list(_demo_data.generate_events(0, contacts=0)) == []


def number(pattern: str, text: str) -> tuple[int, ...]:
    match = re.search(pattern, text, re.M)
    assert match, f"{pattern!r} not in:\n{text}"
    return tuple(int(g) for g in match.groups())


def test_demo_end_to_end_reports_what_the_fake_stored(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fakes: list[FakeInstasent] = []

    class Recording(FakeInstasent):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            fakes.append(self)

    monkeypatch.setattr(demo, "FakeInstasent", Recording)
    code = main(["demo", "--contacts", "200", "--events", "1000", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, out + err
    assert err == ""  # --no-progress: nothing on stderr
    (fake,) = fakes
    assert fake.product_token not in out and fake.datasource_token not in out

    contacts = fake.contacts()
    events = fake.events()
    sms = fake.sent_sms()
    pro = [c for c in contacts if c.get("plan") == "pro"]
    assert number(r"^contacts: (\d+) items: (\d+) accepted, (\d+) rejected, (\d+) failed", out) == (
        200,
        len(contacts),
        200 - len(contacts),
        0,
    )
    assert number(r"^events: (\d+) items: (\d+) accepted, (\d+) rejected, (\d+) failed", out) == (
        1000,
        len(events),
        1000 - len(events),
        0,
    )
    assert len(contacts) == 199 and len(events) == 999  # one invalid item of each
    assert re.search(
        r"^  1 rejected, as planted; e\.g\. #\d+ USER-\d{6}: _email: Invalid format$", out, re.M
    )
    assert re.search(r"^  1 rejected, as planted; e\.g\. #\d+ EVT-\d{7}: _event_type: ", out, re.M)
    assert number(r'^segment seg_pro "Pro plan" \(plan is pro\): (\d+) contacts scrolled', out) == (
        len(pro),
    )
    assert len(sms) == 1
    assert f"direct SMS {sms[0]['id']} to {sms[0]['to']}" in out
    assert sms[0]["to"] in {c["_phone_mobile"] for c in pro}
    assert number(r"^the fake server stored (\d+) contacts, (\d+) events, (\d+) SMS", out) == (
        len(contacts),
        len(events),
        1,
    )
    assert number(
        r"^requests: (\d+) ingest requests, \d+ paced by the SDK, (\d+) answered 429", out
    ) == (
        2 + 10,
        0,
    )
    assert re.search(r"^done in \d+\.\ds$", out, re.M)


def test_demo_explains_itself_in_under_30_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--contacts", "3000", "--events", "10000", "--no-progress"])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    lines = out.splitlines()
    assert len(lines) < 30, out
    intro = " ".join(lines[:8])
    # The words it uses are explained before the work starts...
    for words in (
        "a project holds an audience",
        "through a datasource",
        "A segment is",
        "rate-limit bucket (a counter",
    ):
        assert words in intro, intro
    # ... the invalid items are announced as planted, and found as planted.
    assert (
        "Planted on purpose: 3 contacts with an invalid email and 2 events without a type." in intro
    )
    assert len(re.findall(r"^  \d+ rejected, as planted; ", out, re.M)) == 2
    # At the end it says where each step's code lives, and every file named exists.
    where = lines.index("where the code of each step lives:")
    named = re.findall(r"(instasent_async/\S+\.py)", "\n".join(lines[where:]))
    assert len(named) >= 8
    root = Path(demo.__file__).resolve().parents[2]
    assert all((root / path).is_file() for path in named), named
    assert {"instasent_async/bulk.py", "instasent_async/cli/demo.py"} <= set(named)


def test_demo_ctrl_c_stops_with_130_and_a_partial_report() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASENT_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "instasent_async",
            "demo",
            "--contacts",
            "5000",
            "--events",
            "0",
            "--rate-limit",
            "10",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the first progress line: ingestion is under way
            if line.startswith("contacts: "):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == EXIT_INTERRUPTED, out + err
    assert re.search(r"^contacts \(interrupted\): \d+ items: \d+ accepted", out, re.M)
    assert "interrupted" in out.splitlines()[-1]
