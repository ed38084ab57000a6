"""Fixtures of the client tests: an aioresponses mock that pins requests, and a client of it.

``mocked`` is an ``aioresponses`` with four helpers, the one way these tests state a
request: ``route`` answers one request, ``sent``/``only`` return what the SDK sent, and
``check`` pins its method, percent-encoded path, query, auth headers and JSON body.
"""

from __future__ import annotations

import ast
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
from aioresponses import aioresponses
from yarl import URL

from instasent_async import Instasent, RetryPolicy

ORIGIN = "https://api.example.test"
BASE = f"{ORIGIN}/v1"
TOKEN = "tok-product-123"

_NO_BODY: Any = object()


@attrs.frozen
class Sent:
    """One request as aioresponses recorded it."""

    method: str
    url: URL
    headers: Mapping[str, str]
    data: bytes | None


class MockedAPI(aioresponses):
    """``aioresponses`` plus the helpers that pin what the SDK sent."""

    token = TOKEN
    base_url = BASE

    def route(self, method: str, path: str, **kwargs: Any) -> None:
        """Answer ``method path`` (any query string) once with ``kwargs``."""
        pattern = re.compile("^" + re.escape(ORIGIN + path) + r"(\?.*)?$")
        self.add(pattern, method=method, **kwargs)

    def sent(self) -> list[Sent]:
        """Every recorded request (same URL: in order; aioresponses sorts the query by name)."""
        out: list[Sent] = []
        for (method, url), calls in self.requests.items():
            for call in calls:
                out.append(Sent(method, url, call.kwargs["headers"], call.kwargs.get("data")))
        return out

    def only(self) -> Sent:
        """The one request the test made."""
        requests = self.sent()
        assert len(requests) == 1, [f"{r.method} {r.url}" for r in requests]
        return requests[0]

    @staticmethod
    def check(
        request: Sent,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: Any = _NO_BODY,
    ) -> None:
        """Pin one request: method, encoded path, query, auth headers and JSON body."""
        assert request.method == method
        assert (request.url.scheme, request.url.host) == ("https", "api.example.test")
        assert request.url.raw_path == path
        assert len(request.url.query) == len(set(request.url.query))  # no repeated parameter
        assert dict(request.url.query) == dict(query or {})
        headers = request.headers
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["Accept"] == "application/json"
        assert headers["User-Agent"].startswith("instasent-async/")
        if body is _NO_BODY:
            assert request.data is None
            assert "Content-Type" not in headers
        else:
            assert headers["Content-Type"] == "application/json"
            assert request.data is not None
            assert orjson.loads(request.data) == body


@pytest.fixture
def mocked() -> Iterator[MockedAPI]:
    with MockedAPI() as m:
        yield m


@pytest.fixture
async def client() -> AsyncIterator[Instasent]:
    """A client of the mocked API, without rate limiting."""
    async with Instasent(TOKEN, project="proj_demo", base_url=BASE, rate_limit=None) as c:
        yield c


@pytest.fixture(scope="session")
def request_tests() -> dict[str, list[str]]:
    """Operation name -> tests of ``test_requests_product.py`` whose ``@covers`` name it.

    Read from the source, so a test may check the request tests without importing them.
    """
    source = Path(__file__).with_name("test_requests_product.py").read_text(encoding="utf-8")
    covered: dict[str, list[str]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "covers":
                for arg in deco.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        covered.setdefault(arg.value, []).append(node.name)
    return covered


@pytest.fixture
async def scripted_client(scripted: Any) -> AsyncIterator[Instasent]:
    """A client of the ``scripted`` server: no rate limiting, two attempts, no backoff."""
    async with Instasent(
        "tok-scripted-0123456789",
        project="proj_demo",
        base_url=scripted.url,
        rate_limit=None,
        retry=RetryPolicy(max_attempts=2, backoff_base=0, backoff_max=0),
    ) as c:
        yield c
