"""Checked options: tokens, loopback hosts, timeouts, the body limit (pure, no server)."""

from __future__ import annotations

import aiohttp
import pytest

from instasent_async import ConfigurationError, Instasent
from instasent_async._http.auth import check_token
from instasent_async._http.options import (
    check_base_url,
    check_max_response_bytes,
    is_loopback,
    make_timeouts,
)


@pytest.mark.parametrize(
    "token",
    [
        "tok\x0bvt",  # vertical tab
        "tok\x0cff",  # form feed
        "tok\x7fdel",
        "tok\r\nX-Injected: 1",
        "tok\x00nul",
        "tok\tn",
        "tök-utf8",
        "tok\ud800surrogate",
        "   ",
        "",
    ],
)
def test_a_token_that_is_not_printable_ascii_is_refused_at_construction(token: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Instasent(token, project="p")
    assert token.strip() == "" or token not in str(info.value)


def test_a_printable_ascii_token_passes_unchanged() -> None:
    token = "Abc-123._~+/=!#$%&'*^`|"
    assert check_token(token) == token


def test_a_token_of_another_type_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="must be a string"):
        check_token(b"bytes")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("[::1]", True),
        ("anything.localhost", False),
        ("localhost.example.com", False),
        ("128.0.0.1", False),
        ("::ffff:127.0.0.1", False),
        ("10.0.0.1", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_is_localhost_127_slash_8_or_ipv6_one(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_plain_http_to_a_dot_localhost_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="refusing plain http"):
        check_base_url("http://anything.localhost/v1", allow_insecure=False)
    assert check_base_url("http://127.3.2.1:8080/v1/", allow_insecure=False).endswith("/v1")


def test_the_timeout_bounds_the_whole_attempt_and_connecting_within_it() -> None:
    timeouts = make_timeouts(5.0)
    client = timeouts.client
    # No per-read timer: the attempt deadline bounds reading.
    assert (client.total, client.sock_read, client.sock_connect) == (None, None, 5.0)
    assert timeouts.attempt == 5.0
    assert make_timeouts(60.0).client.sock_connect == 10.0
    assert make_timeouts(30.0, 45.0).attempt == 45.0
    assert make_timeouts(None).attempt is None
    assert make_timeouts(None, 3.0).attempt == 3.0


def test_an_aiohttp_timeout_is_used_as_given_beside_the_attempt_deadline() -> None:
    given = aiohttp.ClientTimeout(sock_read=4.0, connect=2.0)
    assert make_timeouts(given).client is given
    assert make_timeouts(given).attempt is None
    assert make_timeouts(given, 9.0).attempt == 9.0


@pytest.mark.parametrize("value", [0, -1, float("nan"), "5", True])
def test_bad_timeouts_are_named(value: object) -> None:
    with pytest.raises(ConfigurationError, match="attempt_timeout"):
        make_timeouts(1.0, value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, 1023, -5, 2.5, True, "1MB"])
def test_max_response_bytes_must_be_an_int_of_at_least_1024(value: object) -> None:
    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        check_max_response_bytes(value)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        Instasent("tok", max_response_bytes=value)  # type: ignore[arg-type]
