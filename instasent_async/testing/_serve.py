"""Run the fake server standalone: ``python -m instasent_async.testing``."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import ipaddress
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ._server import FakeInstasent

__all__ = ["add_arguments", "build_parser", "is_loopback", "main", "run", "serve"]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    allow_public: bool = False,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[FakeInstasent], None] | None = None,
    **kwargs: Any,
) -> None:
    """Run a :class:`FakeInstasent` on ``host:port`` until ``stop`` is set or the task is
    cancelled (SIGINT/SIGTERM set ``stop`` when running in the main thread on Unix).

    ``kwargs`` go to :class:`FakeInstasent` (``rate_limit``, ``window``, ``batch_shape``,
    ``clock_offset``, ``seed``, ``product_token``, ``datasource_token``...). ``on_ready``
    is called with the started fake (it prints the base URL and tokens in :func:`main`).

    Raises:
        ValueError: ``host`` is not a loopback address and ``allow_public`` is false.
        OSError: the address cannot be bound.
    """
    if not allow_public and not is_loopback(host):
        raise ValueError(
            f"refusing to listen on non-loopback host {host!r}: the fake server has no real "
            "security; pass allow_public=True (--allow-public) if you mean it"
        )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or not supported by this platform/loop
    # Not ``async with``: entering starts the fake on a free port, and start() on a
    # started fake keeps that port.
    fake = FakeInstasent(**kwargs)
    try:
        await fake.start(host, port)
        if on_ready is not None:
            on_ready(fake)
        await stop.wait()
    finally:
        await fake.close()
        for signum in installed:
            loop.remove_signal_handler(signum)


def _rate_limit(text: str) -> int | None:
    if text.lower() in ("none", "off", "0"):
        return None
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1, or 'none'")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of :func:`run` to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (::1 for IPv6)")
    parser.add_argument("--port", type=int, default=8080, help="default: 8080; 0 picks a free port")
    parser.add_argument("--allow-public", action="store_true", help="allow a non-loopback --host")
    fake = {name: p.default for name, p in inspect.signature(FakeInstasent).parameters.items()}
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        default=fake["rate_limit"],
        help="requests per window per bucket, or none (default %(default)s)",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=fake["window"],
        help="rate-limit window in seconds (default %(default)s)",
    )
    parser.add_argument(
        "--batch-shape",
        choices=("documented", "activepieces"),
        default=fake["batch_shape"],
        help="the body of 202/422 answers to ingest batches: 'documented' (the API "
        "reference's shape, default) or 'activepieces' (the other shape seen in the wild); "
        "the SDK reads both",
    )
    parser.add_argument(
        "--clock-offset",
        type=float,
        default=fake["clock_offset"],
        help="seconds added to the server clock",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--no-seed", action="store_true", help="start with no demo data")
    parser.add_argument("--product-token", help="fixed product token (default: random)")
    parser.add_argument("--datasource-token", help="fixed datasource token (default: random)")


def build_parser(prog: str = "python -m instasent_async.testing") -> argparse.ArgumentParser:
    """The command-line options of :func:`main`, under the program name ``prog``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a fake Instasent API server (in-memory) until Ctrl-C.",
    )
    add_arguments(parser)
    return parser


def _announce(fake: FakeInstasent, out: TextIO) -> None:
    print(f"Fake Instasent listening on {fake.base_url}", file=out)
    if fake.product_token:
        print("project: proj_demo  datasources: ds_demo, ds_other", file=out)
        print(f"product token: {fake.product_token}", file=out)
        print(f"datasource token (ds_demo): {fake.datasource_token}", file=out)
        print(
            f"try: INSTASENT_TOKEN={fake.product_token} instasent-async whoami "
            f"--base-url {fake.base_url} --project proj_demo",
            file=out,
        )
    print("Press Ctrl-C to stop.", file=out, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 after Ctrl-C, 2 on bad input)."""
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Serve with the options of :func:`add_arguments` until Ctrl-C; return the exit status.

    0 after Ctrl-C; 1 when the address cannot be bound; 2 for a non-loopback ``--host``
    without ``--allow-public``.
    """
    if not args.allow_public and not is_loopback(args.host):
        print(
            f"error: refusing to listen on {args.host!r}: use --allow-public to serve "
            "beyond loopback",
            file=sys.stderr,
        )
        return 2

    def ready(fake: FakeInstasent) -> None:
        fake.latency = args.latency
        _announce(fake, sys.stdout)

    try:
        asyncio.run(
            serve(
                args.host,
                args.port,
                allow_public=args.allow_public,
                on_ready=ready,
                rate_limit=args.rate_limit,
                window=args.window,
                batch_shape=args.batch_shape,
                clock_offset=args.clock_offset,
                seed=not args.no_seed,
                product_token=args.product_token,
                datasource_token=args.datasource_token,
            )
        )
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
