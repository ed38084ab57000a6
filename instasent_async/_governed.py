"""What the governor keeps beside each core bucket: its queue of waiters and timers.

``GovernedBucket`` is a core ``Bucket`` plus the shell's state: the FIFO of
``Waiter``s, one ``LoopTimer`` per event loop with waiters, the probe out and its
loop, and its label. The shell (``_ratelimit``) and the shared store's bucket
(``_bucket_store``) build on it.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ._core.bucket import Bucket, Permit
from ._ratelimit_values import BucketKey

__all__ = ["GovernedBucket", "LoopTimer", "Waiter"]


class Waiter:
    """A coroutine waiting for a permit: its loop's future and when it gives up."""

    __slots__ = ("future", "give_up_at", "give_up_timer", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, give_up_at: float) -> None:
        self.loop = loop
        self.future: asyncio.Future[Permit] = loop.create_future()
        self.give_up_at = give_up_at
        self.give_up_timer: asyncio.TimerHandle | None = None


class LoopTimer:
    """The waiters of one bucket on one event loop, and that loop's wake-up timer."""

    __slots__ = ("at", "handle", "waiters")

    def __init__(self) -> None:
        self.waiters = 0
        self.handle: asyncio.TimerHandle | None = None
        self.at = 0.0


class GovernedBucket(Bucket):
    """A core bucket plus what the shell keeps beside it."""

    __slots__ = ("key", "label", "loops", "probe_loop", "probe_permit", "said_unmanaged", "waiters")

    def __init__(self, key: BucketKey, spread_pacing: bool) -> None:
        super().__init__(spread_pacing)
        self.key = key
        self.label = f"{key.scope}/{key.rate_class}"
        self.waiters: deque[Waiter] = deque()
        self.loops: dict[asyncio.AbstractEventLoop, LoopTimer] = {}
        self.probe_permit: Permit | None = None
        self.probe_loop: asyncio.AbstractEventLoop | None = None
        self.said_unmanaged = False
