"""The bulk ingestion engine behind ``upsert``, ``add`` and ``ingest``.

It reads any iterable or async iterable, cuts it into batches of up to 100 items,
runs ``concurrency`` batches at once (each request under the client's governor and
retry policy) and accounts for every item read in exactly one bucket of the
``IngestReport``: accepted, rejected (the server's per-item errors) or failed (with
the reason). Memory is bounded: at most ``2 * concurrency + 1`` batches are held
at once, whatever the length of the input.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from itertools import repeat
from typing import IO, Any, Literal, Protocol

import attrs
import orjson

from ._batch import accepted_all, parse_batch
from ._convert import to_wire_items, unstructure
from ._errors import (
    AmbiguousOutcomeError,
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableEntityError,
    decode_body,
)
from ._http.transport import RequestStats, Response
from .models.ingest import UNKNOWN_OUTCOME, BatchOutcome, FailedItem, IngestReport, RejectedItem

__all__ = ["BATCH_SIZE", "ProgressCallback", "SendBatch", "Source", "run_ingest"]

log = logging.getLogger("instasent_async.bulk")

BATCH_SIZE = 100
"""Items per ingest request (the API's maximum)."""

Source = Iterable[Any] | AsyncIterable[Any]
ProgressCallback = Callable[[IngestReport], None]


class SendBatch(Protocol):
    """Sends one encoded batch: ``send(body=..., idempotent=..., stats=...)``."""

    def __call__(
        self, *, body: bytes, idempotent: bool, stats: RequestStats
    ) -> Awaitable[Response]: ...


_FATAL = (AuthenticationError, PermissionDeniedError, NotFoundError)

MISSING_EVENT_ID = (
    "missing _event_id: without it a retry could store the event twice "
    "(pass require_event_id=False to send such events without automatic retries)"
)


@attrs.define(slots=True)
class _Batch:
    """Items to send together; item i is at input position ``position(i)``.

    The positions are ``offset, offset + 1, ...`` until items are set aside
    (``keep``); only then is the ``positions`` list built. Once the batch is
    checked, ``seal`` encodes the request body and lets go of the wire dicts: a
    batch in flight holds its items and one ``bytes`` body, nothing the garbage
    collector has to walk. ``wire`` reads the body again when an error needs
    the items as sent (a rejection, a dead letter).
    """

    items: list[Any]
    _wire: list[Any] | None
    offset: int
    idempotent: bool
    positions: list[int] | None = None
    body: bytes = b""

    @property
    def wire(self) -> list[Any]:
        """The wire form of the items (decoded from the body once sealed)."""
        if self._wire is None:
            self._wire = orjson.loads(self.body)
        return self._wire

    def position(self, i: int) -> int:
        """The input position of item ``i``."""
        return self.offset + i if self.positions is None else self.positions[i]

    def keep(self, indices: list[int]) -> None:
        """Keep only the items at ``indices`` (the others were accounted for)."""
        self.positions = [self.position(i) for i in indices]
        self.items = [self.items[i] for i in indices]
        wire = self.wire
        self._wire = [wire[i] for i in indices]

    def seal(self) -> None:
        """Encode the body; the wire dicts are dropped (see the class docstring).

        Raises:
            orjson.JSONEncodeError / TypeError: an item cannot be encoded.
        """
        self.body = orjson.dumps(self.wire)
        self._wire = None


class _DeadLetter:
    """Rejected and failed items as NDJSON lines, written as they happen."""

    __slots__ = ("_file", "_path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = path
        self._file: IO[bytes] | None = None

    def write(
        self, status: Literal["rejected", "failed"], position: int, item: Any, detail: Any
    ) -> None:
        if self._file is None:
            self._file = open(self._path, "wb")  # noqa: SIM115 - closed in close()
        key = "errors" if status == "rejected" else "reason"
        record = {"position": position, "status": status, key: detail, "item": _jsonable(item)}
        self._file.write(orjson.dumps(record, default=str) + b"\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _jsonable(item: Any) -> Any:
    if isinstance(item, dict):
        return item
    try:
        return unstructure(item)
    except Exception:  # the item is what made it fail: keep its text
        return repr(item)


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
    ) -> None:
        self.send = send
        self.events = kind == "events"
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.dead = _DeadLetter(dead_letter) if dead_letter is not None else None
        self.require_event_id = require_event_id
        self.report = IngestReport()
        self.stats = RequestStats()
        self.fatal: BaseException | None = None
        self.pending: list[Any] = []
        self.queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=concurrency)
        self.started = time.perf_counter()

    # -- accounting -------------------------------------------------------------

    def reject(self, item: Any, position: int, errors: dict[str, list[str]], wire: Any) -> None:
        self.report.rejected.append(RejectedItem(item, position, errors))
        if self.dead is not None:
            self.dead.write("rejected", position, wire, errors)

    def fail(self, batch: _Batch, reason: str, indices: Iterable[int] | None = None) -> None:
        for i in range(len(batch.items)) if indices is None else indices:
            position = batch.position(i)
            self.report.failed.append(FailedItem(batch.items[i], position, reason))
            if self.dead is not None:
                self.dead.write("failed", position, batch.wire[i], reason)

    def record(self, batch: _Batch, outcome: BatchOutcome) -> None:
        """Account for a parsed answer (its positions are indices into the batch)."""
        self.report.accepted += outcome.accepted
        for rejected in outcome.rejected:
            i = rejected.position
            self.reject(batch.items[i], batch.position(i), rejected.errors, batch.wire[i])
        if outcome.unknown:
            self.fail(batch, UNKNOWN_OUTCOME, outcome.unknown)
        if outcome.raw is not None:
            self.report.raw.append(outcome.raw)

    def progress(self) -> None:
        report = self.report
        report.requests = self.stats.requests
        report.retries = self.stats.retries
        report.rate_limit_waits = self.stats.rate_limit_waits
        report.elapsed = time.perf_counter() - self.started
        if self.on_progress is not None:
            try:
                self.on_progress(report)
            except Exception:
                log.exception("on_progress callback raised; ingestion goes on")

    # -- producing --------------------------------------------------------------

    def make_batch(self, items: list[Any], offset: int) -> _Batch | None:
        """The checked, encoded batch; items that cannot be sent are accounted for here.

        Encoding happens here, not when a worker takes the batch: a batch waiting
        in the queue or in flight holds its items and its body, not wire dicts.
        """
        try:
            # A copy of the list even for dicts: ``wire`` may change.
            batch = _Batch(items, to_wire_items(items), offset, True)
        except TypeError:
            batch = self.make_batch_by_item(items, offset)
        if self.events:
            missing = _missing_event_ids(batch.wire)
            if missing and self.require_event_id:
                for i in missing:
                    self.reject(
                        batch.items[i],
                        batch.position(i),
                        {"_event_id": [MISSING_EVENT_ID]},
                        batch.wire[i],
                    )
                gone = set(missing)
                batch.keep([i for i in range(len(batch.items)) if i not in gone])
            elif missing:
                batch.idempotent = False
        if not batch.items:
            return None
        try:
            batch.seal()
        except (orjson.JSONEncodeError, TypeError):
            if not self.drop_unencodable(batch):
                return None
            batch.seal()
        return batch

    def make_batch_by_item(self, items: list[Any], offset: int) -> _Batch:
        """``make_batch``'s conversion when some item is not a mapping or a model."""
        wire: list[Any] = []
        for item in items:
            try:
                wire.extend(to_wire_items([item]))
            except TypeError:
                wire.append(None)
        batch = _Batch(items, wire, offset, True)
        good = [i for i, w in enumerate(wire) if w is not None]
        for i, w in enumerate(wire):
            if w is None:
                batch.wire[i] = repr(items[i])
                reason = f"not a mapping or a model: {type(items[i]).__qualname__}"
                self.fail(batch, reason, [i])
        batch.keep(good)
        return batch

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
                    if not await self.flush():
                        return
                    pending = self.pending
                    append = pending.append
        else:
            for item in source:
                append(item)
                if len(pending) >= size:
                    if not await self.flush():
                        return
                    pending = self.pending
                    append = pending.append
        await self.flush()

    async def flush(self) -> bool:
        """Queue the pending items as a batch; False once a fatal error stopped us."""
        items = self.pending
        self.pending = []
        offset = self.report.total
        self.report.total += len(items)
        batch = self.make_batch(items, offset) if items else None
        if batch is not None:
            try:
                await self.queue.put(batch)
            except asyncio.CancelledError:
                self.fail(batch, "not sent: ingestion was cancelled")
                raise
        return self.fatal is None

    def fail_pending(self, reason: str) -> None:
        """Account for items read from the source but not yet batched."""
        items, self.pending = self.pending, []
        if items:
            offset = self.report.total
            self.report.total += len(items)
            self.fail(_Batch(items, [_jsonable(i) for i in items], offset, False), reason)

    # -- consuming --------------------------------------------------------------

    async def worker(self) -> None:
        while True:
            batch = await self.queue.get()
            if batch is None:
                return
            if self.fatal is not None:
                self.fail(batch, f"not sent: ingestion stopped after {self.fatal}")
            else:
                try:
                    await self.send_batch(batch)
                except asyncio.CancelledError:
                    self.fail(batch, "cancelled while in flight: the outcome is unknown")
                    raise
                except Exception as exc:  # a bug must not lose the batch's items
                    log.exception("unexpected error while sending a batch")
                    self.fail(batch, f"unexpected error: {exc!r}")
            self.progress()

    async def send_batch(self, batch: _Batch) -> None:
        size = len(batch.items)
        try:
            response = await self.send(
                body=batch.body, idempotent=batch.idempotent, stats=self.stats
            )
            answer = decode_body(response.body)
            if accepted_all(response.status, answer, size):
                self.report.accepted += size  # the usual answer: nothing to record
                return
            outcome = parse_batch(response.status, answer, batch.wire, 0)
        except UnprocessableEntityError as exc:
            outcome = parse_batch(422, exc.body, batch.wire, 0)
        except BadRequestError as exc:
            for i, item in enumerate(batch.items):
                self.reject(item, batch.position(i), {"_": [exc.message]}, batch.wire[i])
            return
        except _FATAL as exc:
            self.fatal = exc
            self.fail(batch, str(exc))
            return
        except AmbiguousOutcomeError as exc:
            self.fail(batch, f"outcome unknown (the batch may have been stored): {exc.message}")
            return
        except (APIStatusError, APIConnectionError) as exc:
            self.fail(batch, str(exc))
            return
        self.record(batch, outcome)

    def drop_unencodable(self, batch: _Batch) -> bool:
        """Fail the items orjson cannot encode; True if any item is left to send."""
        keep: list[int] = []
        for i, wire in enumerate(batch.wire):
            try:
                orjson.dumps(wire)
            except (orjson.JSONEncodeError, TypeError) as exc:
                batch.wire[i] = repr(wire)
                self.fail(batch, f"not JSON-serialisable: {exc}", [i])
            else:
                keep.append(i)
        batch.keep(keep)
        return bool(keep)

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
                self.dead.close()
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
                    self.fail(batch, f"not sent: ingestion stopped ({type(failure).__name__})")
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


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _put_shielded(queue: asyncio.Queue[_Batch | None], value: None) -> None:
    try:
        queue.put_nowait(value)
    except asyncio.QueueFull:
        await asyncio.shield(queue.put(value))


def _event_id(wire: Any) -> bool:
    try:
        value = wire.get("_event_id")
    except AttributeError:
        return False
    return value is not None and value != ""


def _missing_event_ids(wire: list[Any]) -> list[int]:
    """Indices of the wire items without an ``_event_id`` (see ``_event_id``)."""
    try:
        # Wire items are dicts: every id read in C, and none missing, the usual case.
        if all(map(dict.get, wire, repeat("_event_id"))):
            return []
    except TypeError:
        pass
    return [i for i, w in enumerate(wire) if not _event_id(w)]


async def run_ingest(
    send: SendBatch,
    source: Source,
    *,
    kind: Literal["contacts", "events"],
    concurrency: int = 8,
    batch_size: int = BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    dead_letter: str | os.PathLike[str] | None = None,
    require_event_id: bool = True,
) -> IngestReport:
    """Ingest ``source`` with ``send`` (one batch request); see the module docstring.

    Raises:
        ValueError: ``concurrency`` or ``batch_size`` out of range.
        AuthenticationError / PermissionDeniedError / NotFoundError: the token cannot
            write here; reading stops, and the partial report is on ``exc.report``.
        asyncio.CancelledError: after in-flight batches finished; ``exc.report``.
        Exception: whatever the source raised, with ``exc.report`` attached.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not 1 <= batch_size <= BATCH_SIZE
    ):
        raise ValueError(
            f"batch_size must be an integer from 1 to {BATCH_SIZE}, got {batch_size!r}"
        )
    if isinstance(source, (str, bytes)) or not isinstance(source, (Iterable, AsyncIterable)):
        raise TypeError(
            f"source must be an iterable or async iterable of items, got {type(source).__name__}"
        )
    engine = _Engine(
        send,
        kind=kind,
        concurrency=concurrency,
        batch_size=batch_size,
        on_progress=on_progress,
        dead_letter=dead_letter,
        require_event_id=require_event_id,
    )
    return await engine.run(source)
