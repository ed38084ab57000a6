"""``Instasent()`` reads INSTASENT_TOKEN / INSTASENT_PROJECT / INSTASENT_BASE_URL when omitted."""

from __future__ import annotations

import pytest

from instasent_async import ConfigurationError, Instasent
from instasent_async.testing import FakeInstasent


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("INSTASENT_TOKEN", "INSTASENT_PROJECT", "INSTASENT_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def test_a_client_built_from_the_environment_alone_talks_to_the_fake(
    no_env: pytest.MonkeyPatch,
) -> None:
    async with FakeInstasent() as fake:
        no_env.setenv("INSTASENT_TOKEN", fake.product_token)
        no_env.setenv("INSTASENT_PROJECT", "proj_demo")
        no_env.setenv("INSTASENT_BASE_URL", fake.base_url)
        async with Instasent() as client:
            project = await client.project.get()
        assert project.uid == "proj_demo"
        assert client.project_id == "proj_demo"


async def test_base_url_from_the_environment_applies_to_an_explicit_token(
    no_env: pytest.MonkeyPatch,
) -> None:
    async with FakeInstasent() as fake:
        no_env.setenv("INSTASENT_BASE_URL", fake.base_url)
        async with Instasent(fake.product_token, project="proj_demo") as client:
            assert (await client.project.get()).uid == "proj_demo"
        assert len(fake.requests) == 1


def test_explicit_arguments_win_over_the_environment(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("INSTASENT_TOKEN", "env-token")
    no_env.setenv("INSTASENT_PROJECT", "proj_env")
    no_env.setenv("INSTASENT_BASE_URL", "http://127.0.0.1:9/env")
    client = Instasent("arg-token", project="proj_arg", base_url="https://example.test/v1")
    assert client.project_id == "proj_arg"
    assert "https://example.test/v1" in repr(client)
    assert "env" not in repr(client)


def test_without_base_url_anywhere_the_real_api_is_the_default(no_env: pytest.MonkeyPatch) -> None:
    client = Instasent("arg-token")
    assert "https://api.instasent.com/v1" in repr(client)
    assert client.project_id is None


def test_a_missing_token_names_the_variable(no_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="INSTASENT_TOKEN"):
        Instasent()
    no_env.setenv("INSTASENT_TOKEN", "   ")
    with pytest.raises(ConfigurationError, match="INSTASENT_TOKEN"):
        Instasent(project="proj_demo")


def test_an_insecure_base_url_from_the_environment_is_refused(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("INSTASENT_BASE_URL", "http://api.example.test/v1")
    with pytest.raises(ConfigurationError, match="plain http"):
        Instasent("arg-token")
