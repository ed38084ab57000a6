"""A deliberately cheap Instasent look-alike for the benchmarks, run in its own process.

A raw ``asyncio.Protocol`` HTTP/1.1 keep-alive responder: no framework, responses
built from precomputed bytes, so the client under test is what gets measured. It
answers two routes:

- ``GET /v1/project/{p}/audience/user/{id}``: 200 with a 15-key contact in an
  ``{"entity": ...}`` envelope (the same precomputed body for every id);
- ``POST /v1/project/{p}/datasource/{ds}/stream/events``: 202 with the documented
  per-item body (``{"entity": {"successful", "failed", "items"}}``) for the JSON array
  it received; for the datasource ``REJECTING_DATASOURCE`` every item is rejected (422,
  same shape).

Every response carries ``Date`` and the three ``X-RateLimit-*`` headers with a
generous limit (the client's governor is exercised but never has to wait):
fixed 60-second windows aligned to the epoch minute, ``Remaining`` counting down,
one window per bearer token (as each Instasent organization has its own).

Run it as ``python benchmarks/_server.py``: it binds 127.0.0.1 on a free port, prints
``PORT <n>`` on stdout and serves until its stdin closes (the parent exited or
called ``stop()``), SIGTERM, or ``--max-seconds``. ``serve()`` does all of that from
a benchmark script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import orjson

RATE_LIMIT = 10_000_000
"""Requests per 60-second window the server announces (never reached)."""
WINDOW = 60

CONTACT: dict[str, Any] = {
    "id": "aud_7f3a9c21b4e84d0f",
    "_user_id": "USER-000042",
    "_first_name": "Lucía",
    "_last_name": "Fernández Ortega",
    "_email": "lucia.fernandez@example.com",
    "_phone_mobile": "+34600123456",
    "_client_tags": ["vip", "newsletter", "madrid"],
    "_date_updated": "2024-05-01T10:20:30.000Z",
    "_email_verified": True,
    "_phone_mobile_verified": False,
    # custom attributes
    "plan": "pro",
    "city": "Madrid",
    "lifetime_value": 1234.5,
    "orders": 17,
    "birthday": "1990-02-14",
}
"""The contact every audience GET answers with (10 reserved keys + 5 custom attributes)."""

CONTACT_BODY = orjson.dumps({"entity": CONTACT})
REJECTING_DATASOURCE = "ds_reject"
"""Events sent to this datasource are all rejected (a 422 with per-item errors)."""
_REJECTION = {"_event_type": ["Unknown event type"]}
_MAX_HEAD = 16 * 1024
_MAX_BODY = 8 * 1024 * 1024


class _Clock:
    """The per-second part of the headers, rebuilt when the second changes."""

    __slots__ = ("block", "second", "used", "window")

    def __init__(self) -> None:
        self.second = -1
        self.window = -1
        self.used = 0
        self.block = b""

    def headers(self) -> bytes:
        """``Date``, ``Limit``, ``Remaining`` and ``Reset`` lines for one response."""
        now = int(time.time())
        if now != self.second:
            self.second = now
            window = now - now % WINDOW
            if window != self.window:
                self.window = window
                self.used = 0
            self.block = (
                f"Date: {formatdate(now, usegmt=True)}\r\n"
                f"X-RateLimit-Limit: {RATE_LIMIT}\r\n"
                f"X-RateLimit-Reset: {window + WINDOW}\r\n"
            ).encode()
        self.used += 1
        return self.block + b"X-RateLimit-Remaining: %d\r\n" % (RATE_LIMIT - self.used)


def _response(status: bytes, clock: _Clock, body: bytes) -> bytes:
    return b"".join(
        (
            status,
            b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body),
            clock.headers(),
            b"\r\n",
            body,
        )
    )


def events_answer(body: bytes, reject: bool = False) -> tuple[bytes, bytes]:
    """Status line and body of the answer to an events batch (shape 4.3 (a)).

    ``reject``: every item is rejected.
    """
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError:
        return b"HTTP/1.1 400 Bad Request\r\n", b'{"message":"Malformed JSON"}'
    if type(items) is not list:
        return b"HTTP/1.1 400 Bad Request\r\n", b'{"message":"Body should be an array"}'
    answers = [
        {
            "status": "error",
            "_user_id": it.get("_user_id"),
            "_event_id": it.get("_event_id"),
            "errors": _REJECTION,
        }
        if reject and type(it) is dict
        else {"status": "success", "_user_id": it.get("_user_id"), "_event_id": it.get("_event_id")}
        if type(it) is dict
        else {"status": "error", "errors": {"_": ["Item should be an object"]}}
        for it in items
    ]
    failed = sum(1 for a in answers if a["status"] != "success")
    answer = {"entity": {"successful": len(answers) - failed, "failed": failed, "items": answers}}
    status = (
        b"HTTP/1.1 422 Unprocessable Entity\r\n"
        if failed == len(answers) and answers
        else (b"HTTP/1.1 202 Accepted\r\n")
    )
    return status, orjson.dumps(answer)


class _Http(asyncio.Protocol):
    __slots__ = ("buf", "clocks", "transport")

    def __init__(self, clocks: dict[bytes, _Clock]) -> None:
        # One rate-limit window per token (as each Instasent organization has its
        # own), shared by every connection.
        self.clocks = clocks
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        transport = self.transport
        # One request per turn normally; the loop also drains pipelined requests.
        while buf and transport is not None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    self._fail(b"431 Request Header Fields Too Large")
                    return
                break
            head = buf[:end]
            length = 0
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at + 2)
                try:
                    length = int(lower[at + 17 : stop if stop >= 0 else None])
                except ValueError:
                    self._fail(b"400 Bad Request")
                    return
                if length > _MAX_BODY:
                    self._fail(b"413 Content Too Large")
                    return
            elif b"\r\ntransfer-encoding:" in lower:
                self._fail(b"411 Length Required")
                return
            total = end + 4 + length
            if len(buf) < total:
                break
            body = buf[end + 4 : total]
            buf = buf[total:]
            transport.write(self._answer(head, lower, body))
        self.buf = buf

    def _answer(self, head: bytes, lower: bytes, body: bytes) -> bytes:
        line_end = head.find(b"\r\n")
        at = lower.find(b"\r\nauthorization: bearer ")
        token = b""
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            token = head[at + 24 : stop if stop >= 0 else None]
        clock = self.clocks.get(token)
        if clock is None:
            clock = self.clocks[token] = _Clock()
        try:
            method, target, _version = head[: line_end if line_end >= 0 else None].split(b" ", 2)
        except ValueError:
            return _response(b"HTTP/1.1 400 Bad Request\r\n", clock, b'{"message":"?"}')
        if not token:
            return _response(b"HTTP/1.1 401 Unauthorized\r\n", clock, b'{"message":"Unauthorized"}')
        parts = target.split(b"?", 1)[0].split(b"/")
        # ['', 'v1', 'project', p, ...]
        if len(parts) >= 5 and parts[1] == b"v1" and parts[2] == b"project":
            if method == b"GET" and len(parts) == 7 and parts[4:6] == [b"audience", b"user"]:
                return _response(b"HTTP/1.1 200 OK\r\n", clock, CONTACT_BODY)
            if (
                method == b"POST"
                and len(parts) == 8
                and parts[4] == b"datasource"
                and parts[6:8] == [b"stream", b"events"]
            ):
                status, answer = events_answer(body, parts[5] == REJECTING_DATASOURCE.encode())
                return _response(status, clock, answer)
        return _response(b"HTTP/1.1 404 Not Found\r\n", clock, b'{"message":"Not Found"}')

    def _fail(self, status: bytes) -> None:
        if self.transport is not None:
            self.transport.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            self.transport.close()
        self.buf = b""


async def _main(port: int, max_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    clocks: dict[bytes, _Clock] = {}
    server = await loop.create_server(
        lambda: _Http(clocks), "127.0.0.1", port, backlog=1024, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {bound}\n")
    sys.stdout.flush()
    done = loop.create_future()

    def stop() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.add_signal_handler(signal.SIGINT, stop)
    # The parent holds our stdin: EOF means it is gone or wants us to stop.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    eof = asyncio.ensure_future(reader.read())
    eof.add_done_callback(lambda _f: stop())
    timer = loop.call_later(max_seconds, stop)
    try:
        await done
    finally:
        timer.cancel()
        eof.cancel()
        server.close()


class Server:
    """A running benchmark server process; ``base_url`` is its ``/v1`` root."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far (Linux ``/proc``)."""
        with open(f"/proc/{self.proc.pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Ask the server to stop and wait for it (killed after 5 seconds)."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@contextlib.contextmanager
def serve(max_seconds: float = 600.0) -> Iterator[Server]:
    """Start the server in a child process on a free loopback port; stop it on exit.

    Raises:
        RuntimeError: the server did not report its port within 20 seconds.
    """
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--max-seconds", str(max_seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    server: Server | None = None
    try:
        assert proc.stdout is not None
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=20):
                raise RuntimeError("the benchmark server did not start within 20 seconds")
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the benchmark server did not start: {line!r}")
        server = Server(proc, int(line.split()[1]))
        yield server
    finally:
        if server is not None:
            server.stop()
        elif proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument(
        "--max-seconds", type=float, default=600.0, help="stop after this long regardless"
    )
    args = parser.parse_args()
    asyncio.run(_main(args.port, args.max_seconds))


if __name__ == "__main__":
    main()
