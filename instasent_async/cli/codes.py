"""The exit codes of ``instasent-async``, and the error that means "usage" (code 2)."""

from __future__ import annotations

__all__ = [
    "EXIT_API",
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "UsageError",
]

EXIT_OK = 0
"""Success (for ``ingest``: every item accepted)."""
EXIT_REJECTED = 1
"""An ingestion finished, but some items were rejected or failed."""
EXIT_USAGE = 2
"""Bad command line, bad or empty input file, or bad configuration (no token...)."""
EXIT_API = 3
"""The API refused the work or could not be reached (token rejected, not found...)."""
EXIT_INTERRUPTED = 130
"""Interrupted by Ctrl-C (SIGINT)."""
EXIT_BROKEN_PIPE = 141
"""Whoever read the output stopped reading (``| head``): what a shell reports for SIGPIPE."""


class UsageError(Exception):
    """A command-line or configuration problem: printed as ``error: ...``, exit code 2."""
