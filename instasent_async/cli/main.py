"""The ``instasent-async`` entry point: the parser, the dispatch and the exit codes.

Commands: ``whoami`` (check a token), ``ingest contacts|events FILE`` (NDJSON or CSV
with a progress bar and a final report), ``serve-fake`` (the fake server standalone)
and ``demo`` (fake server in-process, realistic ingestion, segment scroll, direct SMS).
Each lives in its own module and registers its sub-parser here.

Exit codes (``codes.py``): 0 success; 1 an ingestion finished with rejected or failed
items; 2 usage, bad or empty input, or configuration errors; 3 API errors (token
rejected, not found, server unreachable...); 130 interrupted by Ctrl-C; 141 the reader
of the output went away (``| head``), quietly, as other command-line tools do.

The token comes from ``--token`` or ``INSTASENT_TOKEN`` and is never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from . import demo, ingest, serve_fake, whoami
from .access import add_access_options
from .codes import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from .output import warn

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``instasent-async`` and its commands."""
    parser = argparse.ArgumentParser(
        prog="instasent-async",
        description="Command line for the Instasent Product and Ingest APIs.",
        epilog="Exit codes: 0 ok, 1 items rejected or failed, 2 usage or bad input, "
        "3 API error, 130 interrupted, 141 output closed by its reader.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    access = argparse.ArgumentParser(add_help=False)
    add_access_options(access)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    whoami.register(commands, access)
    ingest.register(commands, access)
    serve_fake.register(commands)
    demo.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Synchronous: it runs its own event loop, so call it from plain code, not from a
    coroutine.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code: int = args.run(args)
    except UsageError as exc:
        warn(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        warn("\ninterrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Nobody reads stdout any more: no traceback, and no second error when
        # Python flushes it at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code
