"""Fixtures of the FakeInstasent tests: a started fake, a raw aiohttp client, item builders.

The tests talk to the fake with a plain ``aiohttp.ClientSession`` (not the SDK), so the
fake is checked against the reference on its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import attrs
import orjson
import pytest
import yarl

from instasent_async.testing import FakeInstasent

P = "/project/proj_demo"
DS = P + "/datasource/ds_demo"

_DEFAULT: Any = object()


@attrs.frozen
class Reply:
    """One answer of the fake."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def entity(self) -> Any:
        return self.json["entity"]

    @property
    def entities(self) -> list[Any]:
        entities: list[Any] = self.json["entities"]
        return entities


class Client:
    """Sends raw requests to a started fake; ``token`` defaults to the product token."""

    def __init__(self, session: aiohttp.ClientSession, fake: FakeInstasent) -> None:
        self.session = session
        self.fake = fake

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = _DEFAULT,
        json: Any = _DEFAULT,
        data: bytes | None = None,
        params: dict[str, str] | str | None = None,
    ) -> Reply:
        """``path`` is relative to the base URL and already percent-encoded."""
        headers = {}
        token = self.fake.product_token if token is _DEFAULT else token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if json is not _DEFAULT:
            data = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        url = yarl.URL(self.fake.base_url + path, encoded=True)
        if params:
            url = url.with_query(params)
        async with self.session.request(method, url, data=data, headers=headers) as response:
            return Reply(response.status, dict(response.headers), await response.read())

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        return await self.call("POST", path, json=json, **kwargs)

    async def upsert(self, *contacts: dict[str, Any], datasource: str = DS, **kwargs: Any) -> Reply:
        return await self.post(datasource + "/stream/contacts", list(contacts), **kwargs)

    async def add_events(
        self, *events: dict[str, Any], datasource: str = DS, **kwargs: Any
    ) -> Reply:
        return await self.post(datasource + "/stream/events", list(events), **kwargs)


def make_event(
    event_id: str, user_id: str = "u1", event_type: str = "page_view", **extra: Any
) -> dict[str, Any]:
    """An event item with the required keys."""
    return {"_user_id": user_id, "_event_id": event_id, "_event_type": event_type, **extra}


def make_group(*children: dict[str, Any], join: str = "and") -> dict[str, Any]:
    """An audience/event filter root."""
    return {"type": "group", "join": join, "children": list(children)}


def make_attr(key: str, operator: str, *values: Any) -> dict[str, Any]:
    """An attribute condition."""
    return {"type": "attribute_condition", "key": key, "operator": operator, "values": list(values)}


@pytest.fixture
async def fake() -> AsyncIterator[FakeInstasent]:
    """A started FakeInstasent with the default seed."""
    async with FakeInstasent() as server:
        yield server


@pytest.fixture
async def api(fake: FakeInstasent) -> AsyncIterator[Client]:
    """A raw client of ``fake``."""
    async with aiohttp.ClientSession() as session:
        yield Client(session, fake)


@pytest.fixture
def client_for() -> type[Client]:
    """The raw client class, for a test that opens its own session or fake."""
    return Client


@pytest.fixture
def event() -> Callable[..., dict[str, Any]]:
    """Builds an event item: ``event(event_id, user_id="u1", event_type="page_view", **extra)``."""
    return make_event


@pytest.fixture
def group() -> Callable[..., dict[str, Any]]:
    """Builds a filter root: ``group(*children, join="and")``."""
    return make_group


@pytest.fixture
def attr() -> Callable[..., dict[str, Any]]:
    """Builds an attribute condition: ``attr(key, operator, *values)``."""
    return make_attr
