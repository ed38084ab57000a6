"""``instasent-async serve-fake``: the fake Instasent server, standalone, until Ctrl-C."""

from __future__ import annotations

import argparse
from typing import Any

from ..testing._serve import add_arguments
from ..testing._serve import run as serve

__all__ = ["register", "run"]


def register(commands: Any) -> None:
    """Add the ``serve-fake`` command to the ``commands`` sub-parsers."""
    parser = commands.add_parser(
        "serve-fake",
        help="run the fake Instasent server on loopback (prints the tokens to use)",
        description="Run a fake Instasent API server (in-memory, seeded with a demo "
        "project and tokens) on loopback until Ctrl-C.",
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; return the exit code (see ``testing._serve.run``)."""
    return serve(args)
