"""A fake Instasent API server for tests: in-process, standalone, or as a pytest fixture.

``FakeInstasent`` implements every Product and Ingest API operation of the reference with
in-memory state, rate limits and fault injection::

    from instasent_async.testing import FakeInstasent

    async with FakeInstasent() as fake:
        ...  # fake.base_url, fake.product_token, fake.datasource_token

The ``fake_instasent`` pytest fixture (``instasent_async.testing.pytest_plugin``) yields a
started server; ``python -m instasent_async.testing`` runs one until Ctrl-C.
"""

from __future__ import annotations

from ._query import QueryFilterError
from ._server import UNLIMITED, FakeInstasent, RecordedRequest
from ._state import ALL_SCOPES

__all__ = ["ALL_SCOPES", "UNLIMITED", "FakeInstasent", "QueryFilterError", "RecordedRequest"]
