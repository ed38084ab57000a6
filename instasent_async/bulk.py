"""The bulk ingestion engine behind ``upsert``, ``add`` and ``ingest``.

It reads any iterable or async iterable, cuts it into batches of up to 100 items,
runs ``concurrency`` batches at once (each request under the client's governor and
retry policy) and accounts for every item read in exactly one bucket of the
``IngestReport``: accepted, rejected (the server's per-item errors, or an item the
wire cannot carry) or failed (with the reason).

Memory is bounded whatever the length of the input: at most ``2 * concurrency + 1``
batches are held at once, each as its encoded body only (the caller's objects are
let go as soon as a batch is encoded), and the report keeps at most ``keep_items``
rejected and failed items (and raw bodies); the counts stay exact and the dead
letter, when set, receives every one.

The engine stops early, lets the batches in flight finish and raises with the
partial report on ``exc.report`` when going on cannot help: the token cannot
write here (401/403/404), the rate limit holds longer than the client waits
(``RateLimitError``), the client cannot send (``ConfigurationError``: closed,
bad token, failing token provider), the API stayed unreachable (``unreachable_for``
seconds or ``unreachable_batches`` batches in a row), or the dead letter cannot be
written. ``report.consumed`` then says how many leading source records are
accounted for: a resumed run skips exactly that many.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, Protocol, TypedDict

from ._bulk_items import (
    MISSING_EVENT_ID,
    NON_FINITE,
    Batch,
    Errors,
    missing_event_ids,
    non_finite,
    unencodable,
    unencodable_errors,
)
from ._convert import to_wire_items
from ._core.batch import BatchOutcome, read_batch
from ._dead_letter import DeadLetter
from ._errors import (
    AmbiguousOutcomeError,
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InstasentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    decode_body,
)
from ._http.transport import RequestStats, Response
from .models.ingest import FailedItem, IngestReport, RejectedItem

__all__ = [
    "BATCH_SIZE",
    "DEFAULT_KEEP_ITEMS",
    "MISSING_EVENT_ID",
    "NON_FINITE",
    "IngestOptions",
    "Locate",
    "ProgressCallback",
    "SendBatch",
    "Source",
    "report_of",
    "run_ingest",
]

log = logging.getLogger("instasent_async.bulk")

BATCH_SIZE = 100
"""Items per ingest request (the API's maximum)."""
DEFAULT_KEEP_ITEMS = 1000
"""Rejected and failed items (each) kept on a report by default."""

Source = Iterable[Any] | AsyncIterable[Any]
ProgressCallback = Callable[[IngestReport], None]
Locate = Callable[[int], "int | None"]


class IngestOptions(TypedDict, total=False):
    """The keyword arguments ``upsert``, ``add`` and both ``ingest`` share (see ``run_ingest``)."""

    concurrency: int
    on_progress: ProgressCallback | None
    dead_letter: str | os.PathLike[str] | None
    keep_items: int | None
    locate: Locate | None
    unreachable_for: float | None
    unreachable_batches: int | None


class SendBatch(Protocol):
    """Sends one encoded batch: ``send(body=..., idempotent=..., stats=...)``."""

    def __call__(
        self, *, body: bytes, idempotent: bool, stats: RequestStats
    ) -> Awaitable[Response]: ...


_FATAL = (AuthenticationError, PermissionDeniedError, NotFoundError)


# The clock of the unreachable-API rule (tests replace it).
_clock: Callable[[], float] = time.monotonic


class _Engine:
    def __init__(
        self,
        send: SendBatch,
        *,
        kind: Literal["contacts", "events"],
        concurrency: int,
        batch_size: int,
        on_progress: ProgressCallback | None,
        dead_letter: str | os.PathLike[str] | None,
        require_event_id: bool,
        keep_items: int | None = DEFAULT_KEEP_ITEMS,
        locate: Locate | None = None,
        unreachable_for: float | None = None,
        unreachable_batches: int | None = None,
    ) -> None:
        self.send = send
        self.events = kind == "events"
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.dead = DeadLetter(dead_letter) if dead_letter is not None else None
        self.require_event_id = require_event_id
        self.keep = sys.maxsize if keep_items is None else keep_items
        self.locate = locate
        self.max_down_for = unreachable_for
        self.max_down_batches = unreachable_batches
        self.report = IngestReport()
        self.stats = RequestStats()
        # Why the run stops early (raised at the end with the report).
        self.fatal: BaseException | None = None
        self.pending: list[Any] = []
        self.queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=concurrency)
        self.started = time.perf_counter()
        # Unreachable API: batches in a row that could not connect, since when.
        self.down_batches = 0
        self.down_since: float | None = None
        self.last_answer = _clock()
        # consumed: the end of the settled prefix; settled ranges beyond it.
        self.next_start = 0
        self.settled: dict[int, int] = {}
        # The dead letter failed: the first position whose line is not in it.
        self.lost_at: int | None = None

    # -- accounting -------------------------------------------------------------

    def reject(self, position: int, item: Any, errors: Errors, status: int | None) -> None:
        report = self.report
        report.rejected_count += 1
        line = self.locate(position) if self.locate is not None else None
        if len(report.rejected) < self.keep:
            report.rejected.append(RejectedItem(item, position, errors, line))
        if self.dead is not None:
            self.dead_letter(position, line, status, errors, None, item)

    def fail(self, position: int, item: Any, reason: str, status: int | None = None) -> None:
        report = self.report
        report.failed_count += 1
        line = self.locate(position) if self.locate is not None else None
        if len(report.failed) < self.keep:
            report.failed.append(FailedItem(item, position, reason, line))
        if self.dead is not None:
            self.dead_letter(position, line, status, None, reason, item)

    def fail_batch(self, batch: Batch, reason: str, status: int | None = None) -> None:
        wire = batch.wire
        for i in range(batch.size):
            self.fail(batch.position(i), wire[i], reason, status)

    def record(self, batch: Batch, outcome: BatchOutcome, status: int) -> None:
        """Account for a read answer (its indices are indices into the batch)."""
        self.report.accepted += outcome.accepted
        if outcome.rejected or outcome.unknown:
            wire = batch.wire
            for i, errors in outcome.rejected:
                self.reject(batch.position(i), wire[i], errors, status)
            for i in outcome.unknown:
                self.fail(batch.position(i), wire[i], outcome.reason, status)
        if outcome.raw is not None and len(self.report.raw) < self.keep:
            self.report.raw.append(outcome.raw)

    def dead_letter(
        self,
        position: int,
        line: int | None,
        status: int | None,
        errors: Errors | None,
        reason: str | None,
        item: Any,
    ) -> None:
        assert self.dead is not None
        if self.lost_at is None:
            record = {
                "position": position,
                "line": line,
                "status": status,
                "errors": errors,
                "reason": reason,
                "item": item,
            }
            try:
                self.dead.write(record)
                return
            except OSError as exc:
                self.dead_letter_broke(exc)
        if self.lost_at is None or position < self.lost_at:
            self.lost_at = position

    def dead_letter_broke(self, exc: OSError) -> None:
        """A write failed: stop, and keep ``consumed`` before what the file lacks."""
        self.stop(exc)
        if self.lost_at is None:
            self.lost_at = self.next_start
        if self.dead is not None:
            with contextlib.suppress(OSError):  # the error that matters is already kept
                self.dead.close()
            self.dead = None

    def flush_dead_letter(self) -> None:
        if self.dead is not None and self.dead.dirty:
            try:
                self.dead.flush()
            except OSError as exc:
                self.dead_letter_broke(exc)

    def settle(self, start: int, end: int) -> None:
        """Source records ``start .. end - 1`` are accounted for; advance ``consumed``.

        The dead letter is flushed first: a record counts as consumed only once
        its line (if it needs one) is in the file.
        """
        self.flush_dead_letter()
        if start != self.next_start:
            self.settled[start] = end
            return
        while end in self.settled:
            end = self.settled.pop(end)
        self.next_start = end
        lost = self.lost_at
        self.report.consumed = end if lost is None else min(end, lost)

    def stop(self, error: BaseException) -> None:
        """Stop reading; ``error`` is raised at the end (the first one wins)."""
        if self.fatal is None:
            self.fatal = error

    def progress(self) -> None:
        report = self.report
        stats = self.stats
        report.requests = stats.requests
        report.retries = stats.retries
        report.rate_limit_waits = stats.rate_limit_waits
        report.rate_limited = stats.rate_limited
        report.elapsed = time.perf_counter() - self.started
        if self.on_progress is not None:
            try:
                self.on_progress(report)
            except Exception:
                log.exception("on_progress callback raised; ingestion goes on")

    # -- the unreachable-API rule ----------------------------------------------------

    def answered(self) -> None:
        """The server answered (any status): it is reachable."""
        self.down_batches = 0
        self.down_since = None
        self.last_answer = _clock()

    def unreachable(self, exc: APIConnectionError, sent_at: float) -> None:
        """A batch could not reach the API after its retries: stop if that lasted."""
        self.down_batches += 1
        if self.down_since is None:
            self.down_since = max(sent_at, self.last_answer)
        down_for = _clock() - self.down_since
        too_many = self.max_down_batches is not None and self.down_batches >= self.max_down_batches
        too_long = self.max_down_for is not None and down_for >= self.max_down_for
        if too_many or too_long:
            error = APIConnectionError(
                f"the API was unreachable for {down_for:.1f} s ({self.down_batches} "
                f"batch(es) in a row could not connect; last: {exc.message}); ingestion "
                "stopped: report.consumed says where to resume",
                method=exc.method,
                path=exc.path,
            )
            error.__cause__ = exc
            self.stop(error)

    # -- producing --------------------------------------------------------------

    def make_batch(self, items: list[Any], offset: int) -> Batch | None:
        """The encoded batch; items that cannot be sent are rejected here.

        Encoding happens here, not when a worker takes the batch: a batch waiting
        in the queue or in flight holds its body, not the caller's objects.
        """
        try:
            batch = Batch(offset, to_wire_items(items))
        except Exception:
            wire = self.wire_by_item(items, offset)
            batch = Batch(offset, wire)
            batch.drop(i for i, w in enumerate(wire) if w is None)
        if self.events and batch.size:
            missing = missing_event_ids(batch.wire)
            if missing and self.require_event_id:
                self.set_aside(batch, missing, lambda i: {"_event_id": [MISSING_EVENT_ID]})
            elif missing:
                batch.idempotent = False  # never retried once it may have reached the server
        if not batch.size:
            return None
        try:
            batch.encode()
        except TypeError:
            self.set_aside(batch, unencodable(batch.wire), unencodable_errors(batch.wire))
            if not batch.size:
                return None
            batch.encode()
        # orjson writes NaN and infinity as null: only a batch with a null can hold one.
        if b"null" in batch.body:
            bad = {i: path for i, w in enumerate(batch.wire) if (path := non_finite(w, ""))}
            if bad:
                self.set_aside(batch, bad, lambda i: {bad[i] or "_": [NON_FINITE]})
                if not batch.size:
                    return None
                batch.encode()
        batch.release()
        return batch

    def set_aside(
        self, batch: Batch, indices: Iterable[int], errors: Callable[[int], Errors]
    ) -> None:
        """Reject the items at ``indices`` before sending and take them out of the batch."""
        indices = list(indices)
        wire = batch.wire
        for i in indices:
            self.reject(batch.position(i), wire[i], errors(i), None)
        batch.drop(indices)

    def wire_by_item(self, items: list[Any], offset: int) -> list[Any]:
        """``make_batch``'s conversion item by item: ``None`` where an item has no wire form."""
        wire: list[Any] = []
        for i, item in enumerate(items):
            try:
                wire.extend(to_wire_items([item]))
            except Exception as exc:
                wire.append(None)
                if isinstance(exc, TypeError):
                    message = f"not a mapping or a model: {type(item).__qualname__}"
                else:
                    message = f"cannot be converted: {type(exc).__name__}: {exc}"
                self.reject(offset + i, item, {"_": [message]}, None)
        return wire

    async def produce(self, source: Source) -> None:
        """Read the source into batches; ``self.pending`` holds the unbatched tail."""
        size = self.batch_size
        # ``pending`` is always ``self.pending`` (a local for speed: this runs per item).
        pending = self.pending
        append = pending.append
        if isinstance(source, AsyncIterable):
            async for item in source:
                append(item)
                if len(pending) >= size:
                    del item  # the batch lets go of the caller's objects once encoded
                    if not await self.flush():
                        return
                    pending = self.pending
                    append = pending.append
        else:
            for item in source:
                append(item)
                if len(pending) >= size:
                    del item
                    if not await self.flush():
                        return
                    pending = self.pending
                    append = pending.append
        await self.flush()

    async def flush(self) -> bool:
        """Queue the pending items as a batch; False once the run must stop."""
        items = self.pending
        self.pending = []
        if items:
            offset = self.report.total
            self.report.total += len(items)
            batch = self.make_batch(items, offset)
            end = offset + len(items)
            # Nothing of the caller's is held while the queue is full (``produce``
            # still refers to this list).
            items.clear()
            if batch is None:
                self.settle(offset, end)
            else:
                try:
                    await self.queue.put(batch)
                except asyncio.CancelledError:
                    self.fail_batch(batch, "not sent: ingestion was cancelled")
                    self.settle(batch.start, batch.end)
                    raise
        return self.fatal is None

    def fail_pending(self, reason: str) -> None:
        """Account for items read from the source but not yet batched."""
        items, self.pending = self.pending, []
        if items:
            offset = self.report.total
            self.report.total += len(items)
            for i, item in enumerate(items):
                try:
                    (wire,) = to_wire_items([item])
                except Exception:
                    wire = item
                self.fail(offset + i, wire, reason)
            self.settle(offset, offset + len(items))

    # -- consuming --------------------------------------------------------------

    async def worker(self) -> None:
        while True:
            batch = await self.queue.get()
            if batch is None:
                return
            try:
                if self.fatal is not None:
                    self.fail_batch(batch, f"not sent: ingestion stopped ({_summary(self.fatal)})")
                else:
                    await self.send_batch(batch)
            except asyncio.CancelledError:
                self.fail_batch(batch, "cancelled while in flight: the outcome is unknown")
                raise
            except Exception as exc:  # a bug: stop rather than lose track of items
                log.exception("unexpected error while accounting for a batch")
                self.stop(exc)
            finally:
                self.settle(batch.start, batch.end)
                self.progress()

    async def send_batch(self, batch: Batch) -> None:
        sent_at = _clock()
        try:
            response = await self.send(
                body=batch.body, idempotent=batch.idempotent, stats=self.stats
            )
        except UnprocessableEntityError as exc:
            self.answered()
            self.read_answer(batch, 422, exc.body)
        except BadRequestError as exc:
            self.answered()
            errors = {"_": [exc.message]}
            wire = batch.wire
            for i in range(batch.size):
                self.reject(batch.position(i), wire[i], errors, 400)
        except _FATAL as exc:
            self.answered()
            self.stop(exc)
            self.fail_batch(batch, str(exc), exc.status)
        except RateLimitError as exc:
            # The limit holds longer than the client waits (max_wait) or keeps answering
            # 429: every batch would meet it, so the run stops (resume after reset_at).
            self.stop(exc)
            self.fail_batch(batch, str(exc), 429)
        except AmbiguousOutcomeError as exc:
            cause = exc.__cause__
            if isinstance(cause, APIConnectionError):
                self.unreachable(cause, sent_at)
            else:
                self.answered()
            self.fail_batch(batch, f"outcome unknown (the batch may have been stored): {exc}")
        except APIConnectionError as exc:
            self.fail_batch(batch, str(exc))
            self.unreachable(exc, sent_at)
        except APIStatusError as exc:
            self.answered()
            if 200 <= exc.status < 300:
                self.read_answer(batch, exc.status, exc.body)
            else:
                self.fail_batch(batch, str(exc), exc.status)
        except ConfigurationError as exc:
            self.stop(exc)
            self.fail_batch(batch, f"not sent: {exc}")
        except InstasentError as exc:
            self.fail_batch(batch, str(exc))
        except Exception as exc:
            # Not the SDK's: a token provider that raised (or a bug). Every batch
            # would meet it again, so this stops the run at once.
            error = ConfigurationError(
                f"sending a batch raised {type(exc).__name__}: {exc} "
                "(a token provider that failed?)"
            )
            error.__cause__ = exc
            if self.fatal is None:
                log.error("ingestion stopped: %s", error, exc_info=exc)
            self.stop(error)
            self.fail_batch(batch, f"not sent: {error}")
        else:
            self.answered()
            self.read_answer(batch, response.status, decode_body(response.body))

    def read_answer(self, batch: Batch, status: int, body: Any) -> None:
        outcome = read_batch(status, body, batch)
        if outcome.accepted == batch.size and outcome.raw is None:
            self.report.accepted += batch.size  # the usual answer: nothing else to record
        else:
            self.record(batch, outcome, status)

    # -- running ----------------------------------------------------------------

    async def run(self, source: Source) -> IngestReport:
        workers = [asyncio.ensure_future(self.worker()) for _ in range(self.concurrency)]
        failure: BaseException | None = None
        try:
            try:
                await self.produce(source)
            except (asyncio.CancelledError, Exception) as exc:  # cancelled, or the source failed
                failure = exc
                self.fail_pending(f"not sent: ingestion stopped ({type(exc).__name__})")
            try:
                await self.finish(workers, failure)
            except asyncio.CancelledError as exc:  # cancelled again: in-flight batches stopped
                failure = exc
        finally:
            if self.dead is not None:
                try:
                    self.dead.close()
                except OSError as exc:
                    self.dead_letter_broke(exc)
        self.progress()
        self.report.sort()
        error = failure if failure is not None else self.fatal
        if error is not None:
            error.report = self.report  # type: ignore[attr-defined]
            raise error
        return self.report

    async def finish(
        self, workers: Sequence[asyncio.Future[None]], failure: BaseException | None
    ) -> None:
        """Let queued and in-flight batches finish, then stop the workers."""
        if failure is not None:
            # Stop reading: batches already queued are not sent, in-flight ones finish.
            while not self.queue.empty():
                batch = self.queue.get_nowait()
                if batch is not None:
                    reason = f"not sent: ingestion stopped ({type(failure).__name__})"
                    self.fail_batch(batch, reason)
                    self.settle(batch.start, batch.end)
        for _ in workers:
            await _put_shielded(self.queue, None)
        gathered = asyncio.gather(*workers)
        # Retrieve the outcome even when nobody awaits it any more (no "never retrieved").
        gathered.add_done_callback(_consume)
        try:
            await asyncio.shield(gathered)
        except asyncio.CancelledError:
            # Cancelled again while waiting for in-flight batches: stop them now.
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise


def _summary(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _put_shielded(queue: asyncio.Queue[Batch | None], value: None) -> None:
    try:
        queue.put_nowait(value)
    except asyncio.QueueFull:
        await asyncio.shield(queue.put(value))


def _check_options(
    source: Any,
    concurrency: int,
    batch_size: int,
    keep_items: int | None,
    locate: Locate | None,
    unreachable_for: float | None,
    unreachable_batches: int | None,
) -> None:
    def integer(value: Any, minimum: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= minimum

    def positive_int(value: Any) -> bool:
        return integer(value, 1)

    if not positive_int(concurrency):
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    if not positive_int(batch_size) or batch_size > BATCH_SIZE:
        raise ValueError(
            f"batch_size must be an integer from 1 to {BATCH_SIZE}, got {batch_size!r}"
        )
    if keep_items is not None and not integer(keep_items, 0):
        raise ValueError(f"keep_items must be an integer >= 0 or None, got {keep_items!r}")
    if unreachable_batches is not None and not positive_int(unreachable_batches):
        raise ValueError(
            f"unreachable_batches must be a positive integer or None, got {unreachable_batches!r}"
        )
    if unreachable_for is not None and (
        isinstance(unreachable_for, bool)
        or not isinstance(unreachable_for, (int, float))
        or not unreachable_for >= 0
    ):
        raise ValueError(f"unreachable_for must be seconds >= 0 or None, got {unreachable_for!r}")
    if locate is not None and not callable(locate):
        raise TypeError(f"locate must be a callable or None, got {type(locate).__name__}")
    if isinstance(source, (str, bytes)) or not isinstance(source, (Iterable, AsyncIterable)):
        raise TypeError(
            f"source must be an iterable or async iterable of items, got {type(source).__name__}"
        )


def report_of(exc: BaseException) -> IngestReport | None:
    """The partial report a stopped ingestion attached to ``exc``, or ``None``.

    That is ``exc.report``; but on Python 3.10, awaiting a task that was cancelled
    raises a new ``CancelledError`` whose ``__context__`` is the one the engine raised
    with the report, so that one is read too.
    """
    for candidate in (exc, exc.__context__):
        report = getattr(candidate, "report", None)
        if isinstance(report, IngestReport):
            return report
    return None


async def run_ingest(
    send: SendBatch,
    source: Source,
    *,
    kind: Literal["contacts", "events"],
    require_event_id: bool = True,
    concurrency: int = 8,
    batch_size: int = BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    dead_letter: str | os.PathLike[str] | None = None,
    keep_items: int | None = DEFAULT_KEEP_ITEMS,
    locate: Locate | None = None,
    unreachable_for: float | None = 30.0,
    unreachable_batches: int | None = None,
) -> IngestReport:
    """Ingest ``source`` with ``send`` (one batch request); see the module docstring.

    ``concurrency`` batches are in flight at once. ``on_progress`` receives the
    live report after every batch. ``dead_letter`` (a path) receives every
    rejected and failed item as an NDJSON line ``{"position", "line", "status",
    "errors", "reason", "item"}`` (``item`` as sent; ``status`` the HTTP status
    of the answer, ``null`` when there was none); it is checked before the first
    item is read and created at its first line. ``keep_items`` caps the rejected
    and failed items (each) and the raw bodies kept on the report (``None``: no
    cap). ``locate(position)`` maps a record's 0-based position in the source to
    its line number, for the report and the dead letter; it is called when an
    item is rejected or fails, never for a position below ``report.consumed``.
    The run stops when the API has been unreachable (every attempt of a batch
    failed to connect or timed out, with no answer since) for
    ``unreachable_for`` seconds, or for ``unreachable_batches`` batches in a row.

    Raises:
        ValueError / TypeError: an option out of range, or a source that is not
            an iterable (before anything is read).
        ConfigurationError: the dead letter cannot be written (before anything is
            read); or the client cannot send (closed, bad token, a token provider
            that raised): reading stops, the partial report is ``exc.report``.
        AuthenticationError / PermissionDeniedError / NotFoundError: the token
            cannot write here; reading stops; ``exc.report``.
        RateLimitError: the rate limit holds longer than the client may wait, or
            still answers 429 after the retries; reading stops; ``exc.report``
            (``exc.reset_at``: when to resume).
        APIConnectionError: the API stayed unreachable (see above); reading
            stopped, in-flight batches finished; ``exc.report``.
        OSError: writing the dead letter failed mid-run; ``exc.report``
            (``consumed`` stops before the first item the file lacks).
        asyncio.CancelledError: after in-flight batches finished; ``exc.report``.
        Exception: whatever the source raised, with ``exc.report`` attached.
    """
    _check_options(
        source, concurrency, batch_size, keep_items, locate, unreachable_for, unreachable_batches
    )
    if dead_letter is not None:
        DeadLetter.check(dead_letter)
    engine = _Engine(
        send,
        kind=kind,
        concurrency=concurrency,
        batch_size=batch_size,
        on_progress=on_progress,
        dead_letter=dead_letter,
        require_event_id=require_event_id,
        keep_items=keep_items,
        locate=locate,
        unreachable_for=unreachable_for,
        unreachable_batches=unreachable_batches,
    )
    return await engine.run(source)
