"""The pytest plugin's fixtures under each async test plugin, run with pytest's own ``pytester``.

pytest-asyncio in strict and auto mode, anyio's plugin alone and beside pytest-asyncio;
without a usable plugin the failure names what to install or mark.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# What a user's test does with the fixtures: write through the client, read back both ways.
_BODY = """
    report = await instasent_client.datasource("ds_demo").contacts.upsert([{"_user_id": "u1"}])
    assert report.ok
    contact = await instasent_client.audience.get_by_user_id("u1")
    assert contact.user_id == "u1"
    assert [c["_user_id"] for c in fake_instasent.contacts()] == ["u1"]
"""


def _test(name: str, mark: str | None) -> str:
    decorator = f"@pytest.mark.{mark}\n" if mark else ""
    return f"{decorator}async def {name}(instasent_client, fake_instasent):{_BODY}\n\n"


def _module(*tests: str) -> str:
    return "import pytest\n\n\n" + "".join(tests)


def _ini(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    )


def test_pytest_asyncio_strict_mode_and_anyio_beside_it(pytester: pytest.Pytester) -> None:
    _ini(pytester, "strict")
    pytester.makepyfile(_module(_test("test_asyncio", "asyncio"), _test("test_anyio", "anyio")))
    result = pytester.runpytest("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_pytest_asyncio_auto_mode(pytester: pytest.Pytester) -> None:
    _ini(pytester, "auto")
    pytester.makepyfile(
        _module(
            _test("test_unmarked", None),
            _test("test_marked", "asyncio"),
            _test("test_anyio", "anyio"),  # refused: auto mode runs fixtures in its own loop
        )
    )
    result = pytester.runpytest("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*anyio test under pytest-asyncio's auto mode*strict*"])


def test_anyio_plugin_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_marked=_module(
            _test("test_anyio", "anyio"),
            "def test_not_marked(fake_instasent):\n    pass\n",
        ),
        test_trio=(
            "import pytest\n\n"
            "@pytest.fixture\ndef anyio_backend():\n    return 'trio'\n\n"
            "@pytest.mark.anyio\nasync def test_trio(fake_instasent):\n    pass\n"
        ),
    )
    result = pytester.runpytest("-p", "no:asyncio", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*fake_instasent is an async fixture: mark the test*anyio*"])
    result.stdout.fnmatch_lines(["*fake_instasent runs on asyncio, not 'trio'*"])


def test_without_any_async_plugin_the_error_names_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses_the_fake(fake_instasent):\n    pass\n")
    result = pytester.runpytest("-p", "no:asyncio", "-p", "no:anyio", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*no async test plugin is installed: install pytest-asyncio*anyio*"]
    )
