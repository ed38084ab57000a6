"""examples/worker.py as a process against the fake server: SIGTERM stops it gracefully."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from instasent_async.testing import FakeInstasent

EVENTS = 3000


@pytest.fixture
async def fake() -> AsyncIterator[FakeInstasent]:
    async with FakeInstasent() as fake:
        yield fake


def _write_events(path: Path) -> None:
    with path.open("wb") as out:
        for i in range(EVENTS):
            event = {
                "_user_id": f"u{i % 50}",
                "_event_id": f"evt-{i:05d}",
                "_event_type": "page_view",
                "_event_parameters": {"url": f"/p/{i}"},
            }
            out.write(orjson.dumps(event) + b"\n")
            if i % 700 == 0:
                out.write(b"\n")  # blank lines are not events


async def _start(fake: FakeInstasent, examples: Path, *args: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "INSTASENT_TOKEN": fake.datasource_token,
        "INSTASENT_PROJECT": "proj_demo",
        "INSTASENT_BASE_URL": fake.base_url,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(examples / "worker.py"),
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def _last_line(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    _, output = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, output.decode()
    return output.decode().strip().splitlines()[-1]


async def test_sigterm_stops_the_worker_after_sending_what_it_read_and_it_resumes(
    fake: FakeInstasent, tmp_path: Path, examples_dir: Path
) -> None:
    source = tmp_path / "events.ndjson"
    _write_events(source)
    # A slow server keeps the worker busy until the signal arrives.
    fake.delay_next(EVENTS, 0.05, path_contains="/stream/events")
    args = [str(source), "--datasource", "ds_demo", "--concurrency", "2", "--log-every", "0"]
    process = await _start(fake, examples_dir, *args)
    assert process.stderr is not None
    for _ in range(100):  # the worker logs progress after every batch
        line = (await asyncio.wait_for(process.stderr.readline(), 120)).decode()
        assert line, "the worker ended before logging progress"
        if "progress:" in line:
            break
    process.send_signal(signal.SIGTERM)
    last = await _last_line(process)
    found = re.search(r"stopped by signal: (\d+) read, (\d+) accepted.*--skip (\d+)$", last)
    assert found is not None, last
    read, accepted, skip = map(int, found.groups())
    assert 0 < read == accepted == skip < EVENTS  # everything read was sent, nothing lost
    assert len(fake.events()) == accepted

    fake.clear_faults()
    process = await _start(fake, examples_dir, *args[:3], "--skip", str(skip))
    last = await _last_line(process)
    assert f"finished: {EVENTS - skip} read, {EVENTS - skip} accepted" in last
    assert f"--skip {EVENTS}" in last
    ids = sorted(event["_event_id"] for event in fake.events())
    assert ids == [f"evt-{i:05d}" for i in range(EVENTS)]
