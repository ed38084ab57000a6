"""``python -m instasent_async``: the ``instasent-async`` command line."""

from __future__ import annotations

from .cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
