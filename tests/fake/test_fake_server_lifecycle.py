"""Lifecycle, the standalone runner (``python -m instasent_async.testing``) and the pytest
plugin of the fake server."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import signal
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web

from instasent_async.testing import FakeInstasent
from instasent_async.testing._serve import is_loopback, main, serve

if TYPE_CHECKING:
    from tests.fake.conftest import Client

P = "/project/proj_demo"

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


async def test_start_is_idempotent_and_close_keeps_the_state(client_for: type[Client]) -> None:
    fake = FakeInstasent()
    with pytest.raises(RuntimeError, match="not started"):
        _ = fake.base_url
    url = await fake.start()
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/v1")
    assert await fake.start() == url == fake.base_url
    try:
        async with aiohttp.ClientSession() as session:
            reply = await client_for(session, fake).upsert({"_user_id": "u1"})
        assert reply.status == 202
    finally:
        await fake.close()
        await fake.close()
    assert [c["_user_id"] for c in fake.contacts()] == ["u1"]
    async with fake, aiohttp.ClientSession() as session:
        assert (await client_for(session, fake).get(P + "/audience/user/u1")).status == 200


async def test_seed_false_starts_empty(client_for: type[Client]) -> None:
    fake = FakeInstasent(seed=False)
    assert fake.product_token == ""
    with pytest.raises(KeyError):
        fake.contacts()
    fake.add_project("proj_x")
    fake.add_datasource("proj_x", "ds_x")
    token = fake.add_token(kind="datasource", project="proj_x", datasource="ds_x")
    async with fake, aiohttp.ClientSession() as session:
        client = client_for(session, fake)
        reply = await client.upsert(
            {"_user_id": "u1"}, datasource="/project/proj_x/datasource/dsapi", token=token
        )
    assert reply.status == 202
    assert len(fake.contacts("proj_x")) == 1


async def test_fixed_tokens_and_embedding_the_app() -> None:
    fake = FakeInstasent(product_token="prod-fixed", datasource_token="ds-fixed")
    assert (fake.product_token, fake.datasource_token) == ("prod-fixed", "ds-fixed")
    runner = web.AppRunner(fake.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        headers = {"Authorization": "Bearer prod-fixed"}
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/v1/project/proj_demo"
            async with session.get(url, headers=headers) as response:
                assert response.status == 200
    finally:
        await runner.cleanup()


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.1.2.3")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.10")
    assert not is_loopback("example.com")


def test_main_refuses_a_public_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
    assert "--allow-public" in capsys.readouterr().err


async def test_serve_refuses_a_public_host() -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        await serve("0.0.0.0", 0)


async def test_serve_runs_until_stopped(client_for: type[Client]) -> None:
    stop = asyncio.Event()
    ready: asyncio.Future[FakeInstasent] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(
        serve("127.0.0.1", 0, stop=stop, on_ready=ready.set_result, rate_limit=7)
    )
    fake = await asyncio.wait_for(ready, 10)
    async with aiohttp.ClientSession() as session:
        reply = await client_for(session, fake).get(P)
    assert reply.headers["X-RateLimit-Limit"] == "7"
    stop.set()
    await asyncio.wait_for(task, 10)
    with pytest.raises(RuntimeError):
        _ = fake.base_url  # closed


async def test_python_m_runs_the_server_until_interrupted() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "instasent_async.testing",
        "--port",
        "0",
        "--rate-limit",
        "5",
        "--window",
        "2",
        "--product-token",
        "cli-token",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
        cwd=str(ROOT),
    )
    try:
        assert process.stdout is not None
        lines = []
        for _ in range(10):  # bounded: the banner has a few lines
            line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        banner = "".join(lines)
        assert "product token: cli-token" in banner
        assert "datasource token (ds_demo): " in banner
        base_url = lines[0].rsplit(" ", 1)[1].strip()
        headers = {"Authorization": "Bearer cli-token"}
        url = base_url + "/project/proj_demo"
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as reply:
            assert reply.status == 200
            assert reply.headers["X-RateLimit-Limit"] == "5"
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def _plugin_registered() -> bool:
    return any(
        entry.name == "instasent_async"
        for entry in importlib.metadata.entry_points(group="pytest11")
    )


@pytest.mark.parametrize("mode", ["auto", "strict"])
async def test_pytest_plugin_provides_a_started_fake(tmp_path: Path, mode: str) -> None:
    (tmp_path / "test_uses_fixture.py").write_text(
        textwrap.dedent(
            """
            import aiohttp
            import pytest

            @pytest.mark.asyncio
            async def test_fixture(fake_instasent):
                headers = {"Authorization": "Bearer " + fake_instasent.product_token}
                url = fake_instasent.base_url + "/project/proj_demo"
                async with aiohttp.ClientSession() as session:
                    async with session.get(url, headers=headers) as response:
                        assert response.status == 200
            """
        )
    )
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    args += ["-o", f"asyncio_mode={mode}", "-o", "asyncio_default_fixture_loop_scope=function"]
    args += ["-W", "error"]
    if not _plugin_registered():  # not installed: load the plugin module by name
        args += ["-p", "instasent_async.testing.pytest_plugin"]
    process = await asyncio.create_subprocess_exec(
        *args,
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=_env(),
        cwd=str(tmp_path),
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    assert b"1 passed" in output
