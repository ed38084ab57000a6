"""What every wire model shares: field declarations and datetime handling.

A wire model is an attrs class whose public fields carry :func:`wire`
metadata; the metadata names the wire key(s) and the *kind* of the
value, from which ``_convert`` builds one structure and one unstructure hook
per class. Two fields are common to all of them:

``extra``
    Every key the model does not know, kept as is, plus explicit ``null``s of
    known keys (``{"_email": null}`` leaves ``email`` as ``None`` and keeps
    ``"_email": None`` in ``extra``). ``unstructure`` writes ``extra`` first
    and the fields over it, so setting ``email`` later wins. This is also the
    way to *send* an explicit ``null``: ``Contact(user_id="u", extra={"_email": None})``.

``_wire`` (private)
    For values whose Python form would serialise differently from what the
    server sent (a datetime string in another format, ``"1"`` for a bool, the
    alias key a value came under), the original is remembered so that
    ``unstructure(structure(d)) == d`` holds for any dict ``d``. A value the user
    has since changed is written in canonical form instead. ``attrs.evolve``
    drops this memory (the values stay equal; only their formatting may change).
"""

from __future__ import annotations

import datetime as _dt
import re
import sys
from typing import Any, Final

import attrs
import orjson

__all__ = [
    "KINDS",
    "WIRE",
    "WireSpec",
    "format_datetime",
    "parse_datetime",
    "to_aware",
    "wire",
]

UTC: Final = _dt.timezone.utc

ISO_READS_Z: Final = sys.version_info >= (3, 11)
"""``datetime.fromisoformat`` reads a trailing ``Z`` (and most ISO 8601 forms)."""

WIRE: Final = "instasent_wire"
"""The attrs metadata key holding a field's :class:`WireSpec`."""

KINDS: Final = frozenset({"str", "bool", "int", "datetime", "strlist", "dict", "any", "models"})
"""How a field's wire value is read and written (see ``_convert``)."""


@attrs.frozen(slots=True)
class WireSpec:
    """Where a field lives on the wire and how its value is converted."""

    key: str
    kind: str
    aliases: tuple[str, ...] = ()
    model: type[Any] | None = None

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown wire kind {self.kind!r}")
        if (self.kind == "models") != (self.model is not None):
            raise ValueError("the 'models' kind needs a model class (and only it)")


def to_aware(value: _dt.datetime | None) -> _dt.datetime | None:
    """Make a datetime timezone-aware: a naive one is taken as UTC; ``None`` stays."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def wire(
    key: str,
    kind: str = "str",
    *,
    aliases: tuple[str, ...] = (),
    model: type[Any] | None = None,
) -> dict[str, WireSpec]:
    """The attrs metadata of a wire field stored under ``key``.

    ``kind`` says how its value is read and written (see :data:`KINDS`);
    ``aliases`` are other wire keys read into the same field (the key a value
    came under is remembered for the round trip); ``model`` is the item class
    of a ``"models"`` (list of nested models) field. Use as
    ``attrs.field(default=None, metadata=wire("_user_id"))``; datetime fields
    add ``converter=to_aware``.

    Raises:
        ValueError: an unknown kind, or ``model`` given without ``"models"``.
    """
    return {WIRE: WireSpec(key, kind, aliases, model)}


_ISO_RE: Final = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?"
    r"\s*(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)


def _tz(text: str | None) -> _dt.tzinfo:
    if text is None or text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
    return UTC if minutes == 0 else _dt.timezone(sign * _dt.timedelta(minutes=minutes))


def parse_datetime(value: Any) -> _dt.datetime:
    """Read a wire date/time as an aware datetime.

    Accepts ISO 8601 strings (``Z`` or an offset; a date alone is midnight; no
    offset means UTC), epoch numbers (seconds; values above 10**11 are taken as
    milliseconds) and datetimes (naive ones taken as UTC).

    Raises:
        ValueError: the value is not a date/time in one of those forms.
    """
    if type(value) is str and ISO_READS_Z:
        try:
            parsed = _dt.datetime.fromisoformat(value)
        except ValueError:
            pass  # surrounding blanks, a lowercase "z", a form only the slow path reads...
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if isinstance(value, _dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            # Fast path; on 3.10 it knows neither "Z" nor every ISO form.
            parsed = _dt.datetime.fromisoformat(
                text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
            )
        except ValueError:
            return _parse_iso_slow(value, text)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) > 10**11 else value
        try:
            return _dt.datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"epoch {value!r} is out of range") from exc
    raise ValueError(f"not a date/time: {value!r}")


def _parse_iso_slow(value: str, text: str) -> _dt.datetime:
    match = _ISO_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"not an ISO 8601 date/time: {value!r}")
    g = match.groupdict()
    fraction = (g["f"] or "0")[:6].ljust(6, "0")
    return _dt.datetime(
        int(g["y"]),
        int(g["mo"]),
        int(g["d"]),
        int(g["h"] or 0),
        int(g["mi"] or 0),
        int(g["s"] or 0),
        int(fraction),
        tzinfo=_tz(g["tz"]),
    )


def format_datetime(value: _dt.datetime) -> str:
    """Write a datetime the way the API documents it: UTC, ``YYYY-MM-DDTHH:MM:SS.sssZ``.

    Always three fraction digits, as JavaScript's ``toISOString`` (what Instasent's
    own clients send): sub-millisecond digits are cut, never rounded up into the
    next second. Naive datetimes are taken as UTC.
    """
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    try:
        # orjson formats in C, about 3x faster than isoformat(): '"...THH:MM:SS[.ffffff]Z"'.
        raw = orjson.dumps(value, option=orjson.OPT_UTC_Z)
    except TypeError:  # a datetime subclass (freezegun's, pendulum's): orjson refuses it
        return _format_slow(value)
    if value.microsecond:
        return raw[1:24].decode() + "Z"
    return raw[1:-2].decode() + ".000Z"


def _format_slow(value: _dt.datetime) -> str:
    """``format_datetime`` of a UTC datetime, in pure Python (the reference form)."""
    v = value  # a plain datetime of the same fields: a subclass may format its own way
    plain = _dt.datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)
    return plain.isoformat(timespec="milliseconds") + "Z"
