"""The governor against a simulated fixed-window server, on virtual time.

A small discrete-event simulation: clients with their own governor (as separate
processes sharing one token would be) send through ``try_acquire``/``release``
to a server that enforces L requests per W-second window and answers with the
real headers (integer ``Reset`` epoch, ``Date`` truncated to the second, on a
server clock that may be hours away from the client's). Deterministic and fast:
twenty virtual seconds run in a fraction of a real one.
"""

from __future__ import annotations

import email.utils
import heapq
import math
import random
from collections.abc import Callable

import attrs
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from instasent_async._ratelimit import BucketKey, Permit, RateLimitGovernor

KEY = BucketKey("0123456789ab", "org", "default")
MONO0 = 5000.0
WALL0 = 1_750_000_000.0


@attrs.define
class Server:
    limit: int
    window: float
    skew: float  # server clock minus the clients' wall clock
    ok: dict[int, int] = attrs.Factory(dict)
    rejected: dict[int, int] = attrs.Factory(dict)
    _current: int = -1
    _count: int = 0

    def handle(self, wall: float) -> tuple[int, CIMultiDictProxy[str]]:
        now = wall + self.skew
        index = math.floor(now / self.window)
        if index != self._current:
            self._current, self._count = index, 0
        if self._count < self.limit:
            self._count += 1
            self.ok[index] = self.ok.get(index, 0) + 1
            status = 200
        else:
            self.rejected[index] = self.rejected.get(index, 0) + 1
            status = 429
        h = CIMultiDict(
            {
                "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self.limit - self._count),
                "X-RateLimit-Reset": str(math.ceil((index + 1) * self.window)),
                "Date": email.utils.formatdate(int(now), usegmt=True),
            }
        )
        return status, CIMultiDictProxy(h)


@attrs.define
class Result:
    ok_per_window: list[int]
    rejected_per_window: list[int]

    @property
    def share(self) -> float:
        return sum(self.ok_per_window) / (len(self.ok_per_window) * LIMIT)

    @property
    def rejected_per_success(self) -> float:
        return sum(self.rejected_per_window) / max(1, sum(self.ok_per_window))


LIMIT = 50
WINDOW = 2.0


def simulate(
    clients: int,
    *,
    pacing: str = "spread",
    skew: float = 0.0,
    duration: float = 20.0,
    concurrency: int = 8,
    latency: float = 0.002,
    seed: int = 7,
) -> Result:
    """Run ``clients`` governors against one server; count per full server window."""
    rng = random.Random(seed)
    now = [MONO0]

    def mono() -> float:
        return now[0]

    def wall() -> float:
        return WALL0 + (now[0] - MONO0)

    server = Server(LIMIT, WINDOW, skew)
    govs = [
        RateLimitGovernor(pacing=pacing, clock=mono, wall_clock=wall)  # type: ignore[arg-type]
        for _ in range(clients)
    ]
    in_flight = [0] * clients
    queue: list[tuple[float, int, Callable[[], None]]] = []
    seq = 0

    def at(when: float, action: Callable[[], None]) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(queue, (when, seq, action))

    def send(i: int, permit: Permit) -> None:
        in_flight[i] += 1

        def arrive() -> None:
            status, headers = server.handle(wall())

            def answer() -> None:
                in_flight[i] -= 1
                govs[i].release(permit, status, headers)

            at(now[0] + latency * (0.5 + rng.random()), answer)

        at(now[0] + latency * (0.5 + rng.random()), arrive)

    # Clients start at a random phase and poll every millisecond (a stand-in for
    # waking on the governor's timers), keeping ``concurrency`` requests in flight.
    end = MONO0 + duration
    tick = 0.001
    t = MONO0 + rng.random() * WINDOW
    while t < end:
        while queue and queue[0][0] <= t:
            when, _, action = heapq.heappop(queue)
            now[0] = when
            action()
        now[0] = t
        for i, gov in enumerate(govs):
            while in_flight[i] < concurrency:
                permit = gov.try_acquire(KEY)
                if permit is None:
                    break
                send(i, permit)
        t += tick
    windows = sorted(set(server.ok) | set(server.rejected))[1:-1]  # full windows only
    return Result(
        [server.ok.get(w, 0) for w in windows], [server.rejected.get(w, 0) for w in windows]
    )


@pytest.mark.parametrize("skew", [0.0, 3600.0, -3600.0, 0.4])
def test_one_client_uses_the_whole_window_and_never_gets_429(skew: float) -> None:
    result = simulate(1, skew=skew)
    assert result.rejected_per_window == [0] * len(result.rejected_per_window)
    assert result.share >= 0.98, result


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_three_clients_sharing_a_token_stay_within_the_limit(seed: int) -> None:
    result = simulate(3, seed=seed)
    assert result.share >= 0.95, result
    assert result.rejected_per_success <= 0.04, result


def test_burst_pacing_one_client_never_gets_429() -> None:
    result = simulate(1, pacing="burst")
    assert sum(result.rejected_per_window) == 0
    assert result.share >= 0.98, result


def test_slow_answers_still_fit_the_window() -> None:
    # 40 ms each way: permits must count requests in flight, not only answers.
    result = simulate(1, latency=0.04, concurrency=32)
    assert sum(result.rejected_per_window) == 0
    assert result.share >= 0.95, result
