"""Property tests of the bulk engine against FakeInstasent: every item accounted for.

Random per-item rejections, random 5xx answers (before and after the server
processed the batch), dropped connections and a random rate limit: whatever
happens, accepted + rejected + failed == input with no item twice, every accepted
event is stored, no rejected event is stored, and no event is stored twice.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instasent_async import Instasent, RetryPolicy
from instasent_async.testing import FakeInstasent

FAULTS = st.lists(
    st.tuples(
        st.sampled_from(["fail", "fail_after", "drop", "drop_after"]),
        st.integers(min_value=1, max_value=3),
        st.sampled_from([500, 502, 503, 504]),
    ),
    max_size=3,
)


def _rejects(rate: int) -> Any:
    def predicate(item: dict[str, Any]) -> dict[str, list[str]] | None:
        key = str(item.get("_event_id") or item.get("_user_id"))
        if zlib.crc32(key.encode()) % 100 < rate:
            return {"_event_parameters": ["randomly rejected"]}
        return None

    return predicate


async def _scenario(
    n: int,
    reject_rate: int,
    faults: list[tuple[str, int, int]],
    limit: int | None,
    concurrency: int,
) -> None:
    async with FakeInstasent(rate_limit=limit, window=1.0) as fake:
        fake.reject_items(_rejects(reject_rate))
        for kind, count, status in faults:
            path = "/stream/events"
            if kind == "fail":
                fake.fail_next(count, status, path_contains=path)
            elif kind == "fail_after":
                fake.fail_after_processing_next(count, status, path_contains=path)
            else:
                fake.drop_next(count, after_processing=kind == "drop_after", path_contains=path)
        retry = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05)
        async with Instasent(
            fake.product_token, project="proj_demo", base_url=fake.base_url, retry=retry
        ) as client:
            events = [
                {
                    "_user_id": f"u{i % 17}",
                    "_event_id": f"ev-{i}",
                    "_event_type": "page_view",
                    "_event_parameters": {"i": i},
                }
                for i in range(n)
            ]
            report = await client.datasource("ds_demo").events.ingest(
                iter(events), concurrency=concurrency
            )
        rejected = {r.position for r in report.rejected}
        failed = {f.position for f in report.failed}
        assert len(rejected) == len(report.rejected)
        assert len(failed) == len(report.failed)
        assert not rejected & failed
        assert report.accepted + len(rejected) + len(failed) == n == report.total
        stored = [e.get("_event_id") for e in fake.events()]
        assert len(stored) == len(set(stored)), "an event was stored twice"
        accepted_ids = {f"ev-{i}" for i in range(n) if i not in rejected and i not in failed}
        assert accepted_ids <= set(stored), "an accepted event is missing on the server"
        assert not {f"ev-{i}" for i in rejected} & set(stored), "a rejected event was stored"


@settings(
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    n=st.integers(min_value=0, max_value=450),
    reject_rate=st.sampled_from([0, 5, 50, 100]),
    faults=FAULTS,
    limit=st.sampled_from([None, 8, 30]),
    concurrency=st.integers(min_value=1, max_value=6),
)
def test_ingest_accounts_for_every_event_under_random_faults(
    n: int,
    reject_rate: int,
    faults: list[tuple[str, int, int]],
    limit: int | None,
    concurrency: int,
) -> None:
    asyncio.run(_scenario(n, reject_rate, faults, limit, concurrency))
