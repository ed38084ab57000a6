"""The governor's seam to a shared bucket store: leased permits and the fallback.

Without a store (the default) the governor decides every permit from the answers'
headers in this process and nothing here runs. With one (``RateLimitGovernor(
store=RedisBucketStore(...))``) its buckets are ``SharedBucket``s: the same core
bucket, asking its ``StoreLink`` first. The link leases small
blocks of permits from the store, hands them out locally, carries the freshest
answer back on its next lease, closes the bucket for the whole fleet after a 429
and ends the probe it was given. Store calls run as background tasks and are
bounded by the store's timeout: a store that fails, stalls or restarts puts the
bucket into the header-driven fallback (one WARNING per store until it answers
again), and the link asks the store again in the background, going back to it as
soon as it answers. Nothing here raises into a request or makes one wait longer
than the store's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine
from typing import Any, Final, Literal, Protocol

from ._core.bucket import OPEN, Notice, Permit
from ._core.headers import AnswerInfo
from ._core.timing import window_of
from ._governed import GovernedBucket
from ._ratelimit_values import BucketKey
from ._redis_store import Lease, Observation, StoreUnavailable

__all__ = ["BucketStore", "SharedBucket", "StoreLink", "StoreLinks"]

log = logging.getLogger("instasent_async.ratelimit")

# After a failed store call, ask again after this long, doubling up to the cap.
_RECOVER_BASE: Final = 0.5
_RECOVER_MAX: Final = 8.0
# A lease asks for the waiting requests, and at least this many permits: a process
# sending one request at a time does not ask the store for each.
_MIN_WANT: Final = 4
# A 429 that announces no wait closes the fleet's bucket for this long.
_CLOSE_UNKNOWN: Final = 1.0
# ...and one that announces a wait, for at least this long.
_CLOSE_MIN: Final = 0.05

Take = Literal["permit", "probe", "fallback"]


class BucketStore(Protocol):
    """What the governor needs from a shared store (``RedisBucketStore`` is one)."""

    @property
    def timeout(self) -> float: ...

    def bucket_name(self, fingerprint: str, scope: str, rate_class: str) -> str: ...

    async def lease(
        self,
        bucket: str,
        want: int,
        observed: Observation | None = None,
        *,
        ended_probe: bool = False,
    ) -> Lease: ...

    async def close_bucket(
        self, bucket: str, delay: float, window: float | None = None
    ) -> float: ...

    async def give_back(self, bucket: str, window: float, count: int) -> int: ...

    async def observe(
        self, bucket: str, observed: Observation | None, *, ended_probe: bool = False
    ) -> int | None: ...

    async def aclose(self) -> None: ...


class SharedBucket(GovernedBucket):
    """A governed bucket whose permits come from the store while it answers.

    ``grant`` asks the link; in fallback the core decides from the headers as it
    always does. ``observe`` folds the answer into the core too (a permit the
    core did not grant changes nothing in a core that is not open), then tells
    the link what the answer said about the window.
    """

    __slots__ = ("from_store", "link", "shared_probe")

    def __init__(self, key: BucketKey, spread_pacing: bool, link: StoreLink) -> None:
        super().__init__(key, spread_pacing)
        self.link = link
        # The permits in flight that the store leased (the others come from the core),
        # and the one that is the fleet's probe.
        self.from_store: set[Permit] = set()
        self.shared_probe: Permit | None = None

    def grant(self, now: float) -> Permit | float | None:
        waiting = len(self.waiters) + 1
        taken = self.link.take(now, waiting if waiting > _MIN_WANT else _MIN_WANT)
        if taken == "fallback":
            return super().grant(now)
        if type(taken) is float:
            return None if taken == math.inf else taken
        self.in_flight += 1
        permit = Permit(self, now, False)
        self.from_store.add(permit)
        if taken == "probe":
            self.shared_probe = permit
        return permit

    def observe(
        self,
        permit: Permit,
        status: int | None,
        info: AnswerInfo | None,
        now: float,
        *,
        sent: bool = True,
    ) -> Notice:
        shared = permit in self.from_store
        notice = super().observe(permit, status, info, now, sent=sent)
        if shared:
            self.from_store.discard(permit)
            probe = permit is self.shared_probe
            if probe:
                self.shared_probe = None
            observed = None
            if (
                status is not None
                and info is not None
                and info.implausible is None
                and info.remaining is not None
                and info.reset_in is not None
            ):
                key, tolerance, ends = window_of(self, info, permit.sent_at, now)
                if info.reset_epoch is None:
                    # A relative reset: other processes know this window by wall clock.
                    key, tolerance = info.received_at + info.reset_in, max(tolerance, 1.0)
                observed = Observation(
                    key, tolerance, max(0.0, ends + self.margin - now), info.remaining, info.limit
                )
            closed_for = None
            if status == 429:
                wait = info.announced_wait if info is not None else None
                closed_for = _CLOSE_UNKNOWN if wait is None else max(_CLOSE_MIN, wait)
            self.link.answered(probe, status, observed, closed_for)
        elif self.link.unmanaged and self.mode == OPEN:
            # The answers carry rate-limit headers now: share the bucket again.
            self.link.unmanaged = False
        return notice


class StoreLinks:
    """The links of one governor to its store: one per bucket, one WARNING per outage."""

    def __init__(
        self,
        store: BucketStore,
        clock: Callable[[], float],
        dispatch: Callable[[GovernedBucket], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.dispatch = dispatch
        self.tasks: set[asyncio.Task[None]] = set()
        self.links: dict[object, StoreLink] = {}
        self._warned = False

    def bucket(self, key: BucketKey, spread_pacing: bool) -> SharedBucket:
        """A new bucket for ``key``, linked to the store (one link per key, kept when
        an idle bucket is swept and made again)."""
        link = self.links.get(key)
        if link is None:
            name = self.store.bucket_name(key.token, key.scope, key.rate_class)
            link = self.links[key] = StoreLink(self, name, f"{key.scope}/{key.rate_class}")
        bucket = SharedBucket(key, spread_pacing, link)
        link.bucket = bucket
        return bucket

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def unavailable(self, label: str, error: BaseException) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "rate-limit store unavailable (%s): bucket %s (and any other bucket meanwhile) "
                "falls back to header-driven limits until the store answers again",
                error,
                label,
            )

    def recovered(self, label: str) -> None:
        if self._warned and not any(link.fallback for link in self.links.values()):
            self._warned = False
            log.info("rate-limit store answers again (bucket %s): budgets are shared again", label)

    async def aclose(self) -> None:
        """Give back every unused permit and probe, stop the background calls and close
        the store's connections (it opens new ones if used again)."""
        links = list(self.links.values())
        await asyncio.gather(*(link.release() for link in links), return_exceptions=True)
        loop = asyncio.get_running_loop()
        tasks = [task for task in self.tasks if task.get_loop() is loop]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.store.aclose()


class StoreLink:
    """One bucket's share of the store: the permits leased to this process."""

    __slots__ = (
        "bucket",
        "failures",
        "fallback",
        "fetching",
        "label",
        "leased",
        "links",
        "name",
        "pending",
        "probe_ended",
        "probe_out",
        "probe_ready",
        "retry_at",
        "unmanaged",
        "valid_until",
        "want",
        "window",
    )

    def __init__(self, links: StoreLinks, name: str, label: str) -> None:
        self.links = links
        self.name = name
        self.label = label
        # The bucket this link serves now (woken when it may grant again).
        self.bucket: SharedBucket | None = None
        self.leased = 0
        self.window: float | None = None
        self.valid_until = 0.0
        self.probe_ready = False  # the store gave us its probe; not handed out yet
        # The loop our probe was sent from while it is on its way to the API.
        self.probe_out: asyncio.AbstractEventLoop | None = None
        self.probe_ended = False  # our probe answered; the store learns it on the next lease
        self.pending: Observation | None = None  # the freshest answer not yet told to the store
        # The loop running our store call while one is out.
        self.fetching: asyncio.AbstractEventLoop | None = None
        self.retry_at = 0.0
        self.fallback = False
        self.failures = 0
        # The API sends no usable rate-limit headers for this bucket: nothing to share.
        self.unmanaged = False
        self.want = 1  # how many permits this process wanted at the last look

    # -- permits ------------------------------------------------------------------------

    def take(self, now: float, want: int) -> Take | float:
        """A permit (``"permit"``, or ``"probe"`` for the one that goes first),
        ``"fallback"`` (the governor decides from the headers itself), or the time to
        look again (``math.inf``: the bucket is woken when a lease arrives)."""
        self.want = want
        if self.fetching is not None and self.fetching.is_closed():
            self.fetching = None  # its loop closed with the call: it will never end
        if self.probe_out is not None and self.probe_out.is_closed():
            self.probe_out = None  # sent from a loop that closed: it will never be answered
            self.probe_ended = True
        if self.fallback or self.unmanaged:
            if self.fallback and self.fetching is None and now >= self.retry_at:
                self._fetch(want)  # in the background: the fallback serves meanwhile
            return "fallback"
        if self.probe_ready:
            self.probe_ready = False
            self.probe_out = asyncio.get_running_loop()
            return "probe"
        if self.leased > 0:
            if now < self.valid_until:
                self.leased -= 1
                return "permit"
            self.leased = 0  # they belonged to a window that ended
        if self.probe_out is not None or self.fetching is not None:
            return math.inf
        if now < self.retry_at:
            return self.retry_at
        self._fetch(want)
        return math.inf

    def answered(
        self,
        probe: bool,
        status: int | None,
        observed: Observation | None,
        closed_for: float | None,
    ) -> None:
        """An answer (or none: ``status`` None) to a permit of this link.

        ``observed`` is what its headers said (None when unusable); ``closed_for``
        how long a 429 closes the bucket.
        """
        if observed is not None:
            self.unmanaged = False
            pending = self.pending
            if (
                pending is None
                or observed.window > pending.window + pending.tolerance
                or (
                    observed.window >= pending.window - pending.tolerance
                    and observed.remaining < pending.remaining
                )
            ):
                self.pending = observed
        if probe:
            self.probe_out = None
            if status is not None and status != 429 and observed is None:
                self.unmanaged = True
            self.probe_ended = True
        if status == 429:
            self.leased = 0
            self.probe_ended = False  # the closing script ends it
            delay = closed_for if closed_for is not None else _CLOSE_UNKNOWN
            # Not even this process asks before the closure it is telling the store of ends.
            self.retry_at = self.links.clock() + delay
            window = observed.window if observed is not None else None
            self.links.spawn(self._close(delay, window))
        elif probe and not self.fallback and self.fetching is None:
            # Tell the store now: the fleet waits for this answer.
            if self.unmanaged:
                self.fetching = asyncio.get_running_loop()
                self.links.spawn(self._end_probe())
            else:
                self._fetch(self.want)

    # -- store calls (background) ---------------------------------------------------------

    def _fetch(self, want: int) -> None:
        self.fetching = asyncio.get_running_loop()
        self.links.spawn(self._lease(want))

    async def _lease(self, want: int) -> None:
        links = self.links
        sent = self.pending
        ended = self.probe_ended
        try:
            lease = await links.store.lease(self.name, want, sent, ended_probe=ended)
        except asyncio.CancelledError:
            self.fetching = None
            raise
        except Exception as exc:  # StoreUnavailable, or anything a broken store raises
            self._failed(exc)
        else:
            now = links.clock()
            if self.pending is sent:
                self.pending = None
            if ended:
                self.probe_ended = False
            if self.fallback:
                self.fallback = False
                self.failures = 0
                links.recovered(self.label)
            self._accept(lease, now)
        self.fetching = None
        if self.probe_ended and not self.fallback:
            self._fetch(self.want)  # our probe answered while this lease was out
        self._wake()

    def _accept(self, lease: Lease, now: float) -> None:
        if lease.granted:
            if lease.probe:
                self.probe_ready = True
                return
            if lease.window == self.window and now < self.valid_until:
                self.leased += lease.granted
            else:
                self.leased = lease.granted
            self.window = lease.window
            self.valid_until = now + lease.valid_for
        self.retry_at = now + lease.retry_in

    async def _end_probe(self) -> None:
        try:
            await self.links.store.observe(self.name, None, ended_probe=True)
        except asyncio.CancelledError:
            self.fetching = None
            raise
        except Exception as exc:
            self._failed(exc)
        else:
            self.probe_ended = False
        self.fetching = None

    async def _close(self, delay: float, window: float | None) -> None:
        try:
            await self.links.store.close_bucket(self.name, delay, window)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(exc)
            self._wake()

    def _failed(self, exc: BaseException) -> None:
        if not isinstance(exc, StoreUnavailable):
            log.debug("rate-limit store call failed", exc_info=exc)
        self.failures += 1
        self.retry_at = self.links.clock() + min(
            _RECOVER_MAX, _RECOVER_BASE * 2 ** min(self.failures - 1, 16)
        )
        if not self.fallback:
            self.fallback = True
            self.leased = 0
            self.probe_ready = False
            self.links.unavailable(self.label, exc)

    def _wake(self) -> None:
        bucket = self.bucket
        if bucket is not None and bucket.waiters:
            self.links.dispatch(bucket)

    async def release(self) -> None:
        """Give back the permits this process leased and did not use, and its probe."""
        store = self.links.store
        leased, window = self.leased, self.window
        self.leased = 0
        probe = self.probe_ready or self.probe_out is not None
        self.probe_ready = False
        self.probe_out = None
        if self.fallback:
            return
        try:
            if leased and window is not None and self.links.clock() < self.valid_until:
                await store.give_back(self.name, window, leased)
            if probe:
                await store.observe(self.name, None, ended_probe=True)
        except Exception:  # closing never fails because of the store
            log.debug("could not give leases back to the rate-limit store", exc_info=True)
