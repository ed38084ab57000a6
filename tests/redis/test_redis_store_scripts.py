"""The Redis store's scripts against a real redis-server: leases, answers, 429s, give-back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from instasent_async import ConfigurationError
from instasent_async._redis_store import Lease, Observation, RedisBucketStore, StoreUnavailable

BUCKET = "test:rl:0123456789ab:org:default"
# A window id: the epoch the window resets at. Windows here last a minute, ample
# time for a test on a busy machine; the tests move the stored times instead.
WINDOW = 2_000_000_000.0
LENGTH = 60.0


def seen(
    remaining: int, window: float = WINDOW, limit: int = 50, ends_in: float = 60.0
) -> Observation:
    return Observation(
        window=window, tolerance=0.0, ends_in=ends_in, remaining=remaining, limit=limit
    )


@pytest.fixture
async def new_store(redis_url: str) -> AsyncIterator[Callable[..., RedisBucketStore]]:
    """Make stores on the test's server (each one a process of the fleet); all closed after."""
    made: list[RedisBucketStore] = []

    def make(**options: Any) -> RedisBucketStore:
        made.append(RedisBucketStore(redis_url, prefix="test", **options))
        return made[-1]

    yield make
    for s in made:
        await s.aclose()


@pytest.fixture
def store(new_store: Callable[..., RedisBucketStore]) -> RedisBucketStore:
    return new_store()


async def open_window(store: RedisBucketStore, remaining: int = 50, limit: int = 50) -> None:
    """Take the first probe and answer it: the window is known with ``remaining`` left."""
    lease = await store.lease(BUCKET, 1)
    assert lease.probe
    await store.observe(BUCKET, seen(remaining, limit=limit), ended_probe=True)


async def shift(raw: Any, field: str, seconds: float) -> None:
    """Move a stored server time (ms) by ``seconds``: the store's clock is Redis's own."""
    value = await raw.hget(BUCKET, field)
    await raw.hset(BUCKET, field, str(int(float(value)) + int(seconds * 1000)))


# -- probes and leases ----------------------------------------------------------------------


async def test_unknown_bucket_sends_one_probe_and_others_wait_for_its_answer(
    new_store: Callable[..., RedisBucketStore], store: RedisBucketStore
) -> None:
    other = new_store()
    first = await store.lease(BUCKET, 8)
    assert (first.granted, first.reason) == (1, "probe")
    waiting = await other.lease(BUCKET, 8)
    assert (waiting.granted, waiting.reason) == (0, "probing")
    assert 0 < waiting.retry_in <= 0.05
    await store.observe(BUCKET, seen(49), ended_probe=True)
    after = await other.lease(BUCKET, 8)
    assert after.reason == "granted"
    assert after.granted == 8  # wanted 8; a fifth of the 49 left would allow 9
    assert after.left == 41
    assert after.window == WINDOW
    assert 59 < after.valid_for <= 60


async def test_a_probe_whose_holder_went_silent_passes_to_another_after_its_ttl(
    new_store: Callable[..., RedisBucketStore], store: RedisBucketStore, redis_raw: Any
) -> None:
    other = new_store()
    assert (await store.lease(BUCKET, 1)).probe
    assert (await other.lease(BUCKET, 1)).reason == "probing"
    await shift(redis_raw, "pu", -10)
    assert (await other.lease(BUCKET, 1)).probe


async def test_a_lone_holder_takes_blocks_of_at_most_max_lease(
    store: RedisBucketStore,
) -> None:
    await open_window(store, remaining=50)
    sizes = [(await store.lease(BUCKET, 100)).granted for _ in range(5)]
    assert sizes == [16, 16, 16, 2, 0]


async def test_in_a_windows_second_half_a_lease_takes_at_most_a_share_of_what_is_left(
    store: RedisBucketStore, redis_raw: Any
) -> None:
    await open_window(store, remaining=50)
    for field in ("dl", "ws"):
        await shift(redis_raw, field, -31)
    sizes = []
    while (lease := await store.lease(BUCKET, 16)).granted:
        sizes.append(lease.granted)
    assert sizes[:4] == [10, 8, 6, 5]  # floor(left / 5): 50, 40, 32, 26
    assert sizes[-1] == 1
    assert sum(sizes) == 50


async def drain(s: RedisBucketStore) -> tuple[int, Lease]:
    """Lease until refused: the permits got and the refusal."""
    total = 0
    while (lease := await s.lease(BUCKET, 16)).granted:
        total += lease.granted
    return total, lease


async def test_in_a_windows_first_half_each_process_gets_at_most_an_even_split(
    new_store: Callable[..., RedisBucketStore], store: RedisBucketStore
) -> None:
    others = [new_store() for _ in range(4)]
    fleet = [store, *others]
    await open_window(store, remaining=53, limit=53)
    # The next window's answer: the window is a minute long (ample time for the test).
    await store.observe(BUCKET, seen(53, window=WINDOW + LENGTH, limit=53, ends_in=LENGTH))
    firsts = [await s.lease(BUCKET, 1) for s in fleet]
    assert [f.holders for f in firsts] == [1, 2, 3, 4, 5]
    totals = []
    for s in fleet:
        total, refusal = await drain(s)
        assert refusal.reason in ("share", "empty")
        totals.append(total + 1)
    # 53 = 5 x 10 + 3: three holders get one more.
    assert sorted(totals) == [10, 10, 11, 11, 11]


async def test_the_remainder_of_the_split_goes_round_the_holders_window_by_window(
    new_store: Callable[..., RedisBucketStore], store: RedisBucketStore, redis_raw: Any
) -> None:
    others = [new_store() for _ in range(4)]
    fleet = [store, *others]
    await open_window(store, remaining=0, limit=53)
    await store.observe(BUCKET, seen(0, window=WINDOW + LENGTH, limit=53, ends_in=LENGTH))
    for s in fleet:  # all five are holders (the window is spent)
        assert (await s.lease(BUCKET, 1)).reason == "empty"
    totals = [0] * 5
    for _ in range(5):
        for field in ("dl", "ws"):  # the window ends: the next one opens at 53
            await shift(redis_raw, field, -LENGTH)
        for index, s in enumerate(fleet):
            totals[index] += (await drain(s))[0]
    assert totals == [53] * 5


async def test_a_process_told_its_split_is_spent_is_told_when_to_ask_again(
    new_store: Callable[..., RedisBucketStore], store: RedisBucketStore
) -> None:
    other = new_store()
    await open_window(store, remaining=50)
    await store.observe(BUCKET, seen(50, window=WINDOW + LENGTH, ends_in=LENGTH))
    await other.lease(BUCKET, 1)
    total, refusal = await drain(store)
    assert total == 25
    # The other holder may still take its 24: nothing is spare before the window ends.
    assert refusal.reason == "share"
    assert 59 < refusal.retry_in <= 60


async def test_what_nobody_took_in_the_first_half_is_free_in_the_second(
    new_store: Callable[..., RedisBucketStore], store: RedisBucketStore, redis_raw: Any
) -> None:
    other = new_store()
    await open_window(store, remaining=50)
    await store.observe(BUCKET, seen(50, window=WINDOW + LENGTH, ends_in=LENGTH))
    await other.lease(BUCKET, 1)
    while (await store.lease(BUCKET, 16)).granted:
        pass
    for field in ("dl", "ws"):  # into the second half
        await shift(redis_raw, field, -31.0)
    lease = await store.lease(BUCKET, 16)
    assert (lease.reason, lease.granted) == ("granted", 4)  # a fifth of the 24 left


async def test_a_lease_never_takes_more_than_wanted(store: RedisBucketStore) -> None:
    await open_window(store, remaining=50)
    lease = await store.lease(BUCKET, 2)
    assert (lease.granted, lease.left) == (2, 48)


async def test_concurrent_leases_from_many_processes_never_hand_out_more_than_is_left(
    new_store: Callable[..., RedisBucketStore],
) -> None:
    stores = [new_store(lease_share=0.5, timeout=5.0) for _ in range(12)]
    await open_window(stores[0], remaining=97, limit=100)

    async def drain(s: RedisBucketStore) -> int:
        total = 0
        while True:
            lease = await s.lease(BUCKET, 16)
            if lease.reason == "empty":
                return total
            total += lease.granted

    totals = await asyncio.gather(*(drain(s) for s in stores for _ in range(4)))
    assert sum(totals) == 97
    lease = await stores[1].lease(BUCKET, 1)
    assert (lease.granted, lease.reason, lease.left) == (0, "empty", 0)
    assert 0 < lease.retry_in <= LENGTH


# -- answers --------------------------------------------------------------------------------


async def test_in_one_window_the_lowest_count_wins_and_a_higher_one_changes_nothing(
    store: RedisBucketStore,
) -> None:
    await open_window(store, remaining=40)
    assert await store.observe(BUCKET, seen(45)) == 40  # arrived late or out of order
    assert await store.observe(BUCKET, seen(30)) == 30  # someone outside the fleet spent
    assert await store.observe(BUCKET, seen(10, window=WINDOW - LENGTH)) == 30  # an older window


async def test_a_lease_folds_the_answer_it_carries_before_granting(
    store: RedisBucketStore,
) -> None:
    await open_window(store, remaining=50)
    lease = await store.lease(BUCKET, 16, seen(20))
    assert (lease.granted, lease.left) == (16, 4)


async def test_a_newer_window_replaces_the_old_one_and_the_window_rolls_on_the_server_clock(
    store: RedisBucketStore, redis_raw: Any
) -> None:
    await open_window(store, remaining=10)
    await store.observe(BUCKET, seen(48, window=WINDOW + LENGTH))
    assert await redis_raw.hget(BUCKET, "len") == "60"
    lease = await store.lease(BUCKET, 16)
    assert (lease.window, lease.granted, lease.left) == (WINDOW + LENGTH, 16, 32)
    # The window ends (on the server's clock): the next lease opens the following one
    # at the full limit, without a probe.
    await shift(redis_raw, "dl", -LENGTH - 0.5)
    lease = await store.lease(BUCKET, 16)
    assert lease.reason == "granted"
    assert lease.window == WINDOW + 2 * LENGTH
    assert (lease.granted, lease.left, lease.limit) == (16, 34, 50)


async def test_a_window_of_unknown_length_is_probed_again_when_it_ends(
    store: RedisBucketStore, redis_raw: Any
) -> None:
    await open_window(store, remaining=10)
    await shift(redis_raw, "dl", -LENGTH - 0.5)
    assert (await store.lease(BUCKET, 16)).probe


async def test_a_limit_that_changes_applies_from_the_next_window(
    store: RedisBucketStore, redis_raw: Any
) -> None:
    await open_window(store, remaining=50)
    await store.observe(BUCKET, seen(49, window=WINDOW + LENGTH))
    await store.observe(BUCKET, seen(9, window=WINDOW + LENGTH, limit=10))
    await shift(redis_raw, "dl", -LENGTH - 0.5)
    lease = await store.lease(BUCKET, 16)
    assert (lease.granted, lease.left, lease.limit) == (10, 0, 10)


# -- 429s -----------------------------------------------------------------------------------


async def test_a_429_closes_the_bucket_for_everyone_then_one_probe_goes(
    new_store: Callable[..., RedisBucketStore], store: RedisBucketStore, redis_raw: Any
) -> None:
    other = new_store()
    await open_window(store, remaining=50)
    assert await store.close_bucket(BUCKET, 1.5, WINDOW) == pytest.approx(1.5, abs=0.01)
    closed = await other.lease(BUCKET, 4)
    assert (closed.granted, closed.reason, closed.left) == (0, "closed", 0)
    assert 1.4 < closed.retry_in <= 1.5
    # A shorter closure never shortens the one in place.
    assert await other.close_bucket(BUCKET, 0.1) > 1.4
    await shift(redis_raw, "cu", -2)
    probe = await other.lease(BUCKET, 4)
    assert (probe.granted, probe.reason) == (1, "probe")
    assert (await store.lease(BUCKET, 4)).reason == "probing"
    await other.observe(BUCKET, seen(30, window=WINDOW + LENGTH), ended_probe=True)
    assert (await store.lease(BUCKET, 4)).granted == 4


async def test_a_429_of_another_window_leaves_the_current_count_alone(
    store: RedisBucketStore, redis_raw: Any
) -> None:
    await open_window(store, remaining=50)
    await store.close_bucket(BUCKET, 0.5, WINDOW - LENGTH)
    assert await redis_raw.hget(BUCKET, "left") == "50"


# -- give-back and expiry -------------------------------------------------------------------


async def test_unused_permits_go_back_to_their_window_while_it_lasts(
    store: RedisBucketStore, redis_raw: Any
) -> None:
    await open_window(store, remaining=50)
    lease = await store.lease(BUCKET, 16)
    assert lease.left == 34
    assert await store.give_back(BUCKET, WINDOW, 3) == 3
    assert await redis_raw.hget(BUCKET, "left") == "37"
    assert await store.give_back(BUCKET, WINDOW - LENGTH, 2) == 0  # a window that is over
    await shift(redis_raw, "dl", -LENGTH - 1)
    assert await store.give_back(BUCKET, WINDOW, 2) == 0  # this one ended too
    assert await redis_raw.hget(BUCKET, "left") == "37"


async def test_give_back_never_raises_the_count_above_the_limit(
    store: RedisBucketStore, redis_raw: Any
) -> None:
    await open_window(store, remaining=49)
    await store.give_back(BUCKET, WINDOW, 5)
    assert await redis_raw.hget(BUCKET, "left") == "50"


async def test_keys_expire_a_little_after_their_window_or_closure(
    store: RedisBucketStore, redis_raw: Any
) -> None:
    await open_window(store, remaining=50)
    assert 64 < await redis_raw.pttl(BUCKET) / 1000 <= 65  # the window's end + 5 s
    await store.close_bucket(BUCKET, 90.0)
    assert 94 < await redis_raw.pttl(BUCKET) / 1000 <= 95  # the closure's end + 5 s
    # And it really goes: a closure that is over and a window long gone leave nothing.
    await redis_raw.hset(BUCKET, mapping={"cu": "1", "dl": "1"})
    await store.observe(BUCKET, None)
    assert 4.0 < await redis_raw.pttl(BUCKET) / 1000 <= 5.0


# -- faults ---------------------------------------------------------------------------------


async def test_an_unreachable_store_is_reported_within_its_timeout(
    closed_port_redis_url: str,
) -> None:
    store = RedisBucketStore(closed_port_redis_url, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.lease(BUCKET, 1)
    assert time.monotonic() - started < 0.2 + 0.3
    await store.aclose()


async def test_a_store_that_never_answers_is_given_up_after_its_timeout(
    silent_redis_url: str,
) -> None:
    store = RedisBucketStore(silent_redis_url, timeout=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.lease(BUCKET, 1)
        elapsed = time.monotonic() - started
        assert 0.19 <= elapsed < 0.2 + 0.3
    finally:
        await store.aclose()


async def test_a_restarted_store_answers_again_with_empty_state(
    redis_server: Any, store: RedisBucketStore
) -> None:
    await open_window(store, remaining=50)
    await asyncio.to_thread(redis_server.kill)
    with pytest.raises(StoreUnavailable):
        await store.lease(BUCKET, 4)
    await asyncio.to_thread(redis_server.start)
    # The server forgot the scripts and the bucket: the store sends the script
    # again and the first permit of the unknown window is a probe.
    assert (await store.lease(BUCKET, 4)).probe


async def test_each_call_is_one_round_trip(store: RedisBucketStore) -> None:
    await open_window(store)
    before = store.round_trips
    await store.lease(BUCKET, 4)
    await store.give_back(BUCKET, WINDOW, 1)
    assert store.round_trips - before == 2


# -- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://localhost:6379",
        "localhost:6379",
        "redis://localhost:port/0",
        "redis://localhost:99999/0",
        "redis://localhost:0/0",
        "redis://h/db",
        "redis://h/0?db=x",
        "unix://",
    ],
)
def test_a_wrong_url_is_a_configuration_error_at_construction(url: str) -> None:
    with pytest.raises(ConfigurationError):
        RedisBucketStore(url)


@pytest.mark.parametrize(
    "options",
    [
        {"prefix": ""},
        {"timeout": 0},
        {"lease_share": 0},
        {"lease_share": 1.5},
        {"max_lease": 0},
        {"probe_ttl": -1},
    ],
)
def test_options_out_of_range_are_configuration_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RedisBucketStore("redis://localhost:6379/0", **options)


def test_keys_are_named_by_the_fingerprint_under_the_prefix() -> None:
    store = RedisBucketStore("redis://localhost:6379/0", prefix="fleet")
    name = store.bucket_name("0123456789ab", "org", "search")
    assert name == "fleet:rl:{0123456789ab:org:search}"
