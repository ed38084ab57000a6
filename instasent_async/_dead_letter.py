"""The dead letter: rejected and failed items as NDJSON lines, one file per run."""

from __future__ import annotations

import os
from typing import IO, Any

import orjson

from ._errors import ConfigurationError

__all__ = ["DeadLetter"]


class DeadLetter:
    """Rejected and failed items as NDJSON lines; the file is created at the first line."""

    __slots__ = ("_file", "_path", "dirty")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = path
        self._file: IO[bytes] | None = None
        self.dirty = False

    @staticmethod
    def check(path: str | os.PathLike[str]) -> None:
        """Check that the file can be written, without creating it.

        Raises:
            ConfigurationError: the path is a directory, its directory does not
                exist or cannot be written, or the existing file cannot be written.
        """
        name = os.fspath(path)
        where = f"cannot write the dead letter {name!r}"
        if os.path.isdir(name):
            raise ConfigurationError(f"{where}: it is a directory")
        if os.path.exists(name):
            try:
                with open(name, "ab"):
                    pass
            except OSError as exc:
                raise ConfigurationError(f"{where}: {exc.strerror or exc}") from None
            return
        parent = os.path.dirname(os.path.abspath(name))
        if not os.path.isdir(parent):
            raise ConfigurationError(f"{where}: the directory {parent!r} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigurationError(f"{where}: the directory {parent!r} is not writable")

    def write(self, record: dict[str, Any]) -> None:
        """Append one line (``OSError`` when the file cannot be written)."""
        try:
            line = orjson.dumps(record, default=repr, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            line = orjson.dumps({**record, "item": repr(record["item"])}, default=repr)
        if self._file is None:
            self._file = open(self._path, "wb")  # noqa: SIM115 - closed in close()
        self._file.write(line + b"\n")
        self.dirty = True

    def flush(self) -> None:
        if self._file is not None and self.dirty:
            self.dirty = False
            self._file.flush()

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()
