"""``python -m instasent_async.testing``: run the fake server until Ctrl-C."""

from __future__ import annotations

from ._serve import main

if __name__ == "__main__":
    raise SystemExit(main())
