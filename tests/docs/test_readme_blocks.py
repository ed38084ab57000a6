"""Every ```python block of README.md runs against the fake server, placeholders filled.

Blocks are run as a user would: a program with ``asyncio.run`` in a thread of its own;
a pytest snippet with pytest's ``pytester``; a FastAPI app through its lifespan and
httpx; anything else as a fragment with top-level ``await`` in the test's event loop,
given a ``client`` and the helpers the prose assumes (``read_events``, ``handle``...).
"""

from __future__ import annotations

import ast
import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace

from instasent_async import Instasent, _tracing
from instasent_async.testing import FakeInstasent

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
BLOCKS = BLOCK.findall(README.read_text(encoding="utf-8"))


def _name(block: str) -> str:
    first = next(line for line in block.splitlines() if line.strip())
    return re.sub(r"\W+", "_", first)[:40].strip("_")


def _fill(block: str, fake: FakeInstasent) -> str:
    """The placeholders of the prose, as the fake knows them."""
    return (
        block.replace("<product token>", fake.product_token)
        .replace("proj_xxx", "proj_demo")
        .replace("ds_xxx", "ds_demo")
    )


def _read_events() -> Iterator[dict[str, Any]]:
    for i in range(250):
        yield {"_user_id": f"u{i % 7}", "_event_id": f"evt-{i}", "_event_type": "page_view"}


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[FakeInstasent]:
    async with FakeInstasent() as fake:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("INSTASENT_TOKEN", fake.product_token)
        monkeypatch.setenv("INSTASENT_PROJECT", "proj_demo")
        monkeypatch.setenv("INSTASENT_BASE_URL", fake.base_url)
        monkeypatch.chdir(tmp_path)  # files a block writes (dead letters) stay here
        # A block that configures OpenTelemetry configures it for this test only.
        monkeypatch.setattr(_tracing, "tracer", None)
        monkeypatch.setattr(
            trace,
            "set_tracer_provider",
            lambda provider: monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider),
        )
        logger = logging.getLogger("instasent_async")
        monkeypatch.setattr(logger, "level", logger.level)
        async with Instasent(fake.product_token, project="proj_demo") as client:
            await client.datasource("ds_demo").contacts.upsert(
                [{"_user_id": "USER-1", "_email": "user1@example.com", "plan": "pro"}]
            )
        yield fake


def test_the_readme_has_the_blocks_this_file_runs() -> None:
    assert len(BLOCKS) >= 10
    assert sum("def test_" in block for block in BLOCKS) == 2
    assert sum("FastAPI(" in block for block in BLOCKS) == 1
    assert sum("asyncio.run(" in block for block in BLOCKS) >= 1


@pytest.mark.parametrize("block", BLOCKS, ids=[_name(b) for b in BLOCKS])
async def test_readme_block_runs(
    block: str,
    fake: FakeInstasent,
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = _fill(block, fake)
    if "RedisBucketStore" in code:  # the fleet examples: a real redis-server of this test's
        redis_url = request.getfixturevalue("redis_url")
        code = code.replace("redis://redis:6379/0", redis_url)
        monkeypatch.setenv("REDIS_URL", redis_url)
    # What the prose leaves to the reader ("yours").
    given = {"token": fake.product_token, "read_events": _read_events}
    if "def test_" in code:
        pytester.makepyfile(code)
        # Warnings are errors, but for pytest-asyncio's own note on an unconfigured project.
        unset = 'ignore:The configuration option "asyncio_default_fixture_loop_scope" is unset'
        # In a thread: this test's event loop is running, the inner session needs its own.
        args = ("-p", "no:cacheprovider", "-W", "error", "-W", unset)
        result = await asyncio.to_thread(pytester.runpytest, *args)
        result.assert_outcomes(passed=code.count("def test_"))
        return
    if "FastAPI(" in code:
        namespace: dict[str, Any] = {}
        exec(compile(code, "README.md", "exec"), namespace)
        app = namespace["app"]
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                found = await http.get("/contacts/USER-1")
                missing = await http.get("/contacts/nobody")
        assert (found.status_code, found.json()["_email"]) == (200, "user1@example.com")
        assert missing.status_code == 404
        return
    if "asyncio.run(" in code:
        namespace = {"__name__": "__main__", **given}
        await asyncio.to_thread(exec, compile(code, "README.md", "exec"), namespace)
        printed = capsys.readouterr().out
        assert printed.strip()
        if "USER-1" in code:
            assert "user1@example.com" in printed
        return
    async with Instasent(fake.product_token, project="proj_demo") as client:
        pages: list[Any] = []
        namespace = {
            **given,
            "client": client,
            "tenant_token": fake.product_token,
            "tenant_project": "proj_demo",
            "handle": pages.append,
            "save_checkpoint": lambda cursor: None,
        }
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        result = eval(compile(code, "README.md", "exec", flags=flags), namespace)
        if result is not None:
            await result
    report = namespace.get("report")
    if report is not None:
        assert report.ok and report.accepted > 0, report
