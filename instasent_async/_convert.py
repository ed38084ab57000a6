"""Wire conversion of every model: a readable reference, and generated fast paths beside it.

Why not plain cattrs: the wire format is not a mapping of fields. Custom
attributes sit at the top level of a contact, unknown keys and explicit nulls go
to ``extra``, one field may be read from several keys, values are coerced (``"1"``
for a bool) and must still round-trip exactly. So each wire model (see
``models._base``) gets a :class:`_Plan`, computed once from its fields' wire
metadata, and two implementations read it:

* **the reference** (:func:`_reference_structurer`, :func:`_reference_unstructurer`):
  a loop over the input's keys, a loop over the model's fields. It handles every
  case; the rules of the models' docstrings are written against it.
* **the fast paths** (:func:`_fast_structurer`, :func:`_fast_unstructurer`): the
  same rules as straight-line code generated per model for the common case (a
  ``dict`` of well-typed values in; an object built in Python out), handing
  anything else to the reference. Property tests hold each equal to the
  reference on generated input. They stay only while their benchmark rows show
  they earn it (``benchmarks/README.md``, "Conversion").

**Registry.** Every model's hooks live in the plain dicts below, keyed by class;
every SDK path and the public :func:`to_dict` / :func:`from_dict` find them
there with one dict lookup. cattrs is the public entry for everything else, not
the registry: :data:`converter` has the same hooks registered, so containers
(``list[Contact]``) and other attrs classes (``IngestReport``) go through cattrs
and reach the same hook for each model. cattrs' dispatch is never on a
per-request path.

Dates are written as ``YYYY-MM-DDTHH:MM:SS.sssZ`` (UTC, milliseconds, as
JavaScript's ``toISOString``); ``dict`` fields (attributes, extra, event
parameters) are passed through, never walked.
"""

from __future__ import annotations

import datetime as _dt
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

import attrs
import cattrs
import orjson
from cattrs.preconf.orjson import make_converter

from .models import WIRE_MODELS, DatasourceStats
from .models._base import (
    ISO_READS_Z,
    UTC,
    WIRE,
    format_datetime,
    parse_datetime,
    to_aware,
)

__all__ = [
    "converter",
    "from_dict",
    "structure",
    "structurer",
    "to_dict",
    "to_wire_items",
    "unstructure",
]

T = TypeVar("T")

converter: cattrs.Converter = make_converter(detailed_validation=False)
"""cattrs' entry (orjson preconf): containers and other attrs classes; models use their hooks."""

_Hook = Callable[[Any], Any]
_BatchHook = Callable[[list[Any]], list[Any]]

# The hooks the SDK uses (the fast paths where a model has them).
_STRUCTURERS: dict[type, _Hook] = {}
_UNSTRUCTURERS: dict[type, _Hook] = {}
_BATCH_UNSTRUCTURERS: dict[type, _BatchHook] = {}
# The reference implementation of each (what the fast paths fall back to).
_REFERENCE_STRUCTURERS: dict[type, _Hook] = {}
_REFERENCE_UNSTRUCTURERS: dict[type, _Hook] = {}
_MISSING: Final = object()


class _Reject(Exception):
    """A wire value does not fit its field: it is kept in ``extra`` instead."""


# --- coercions: wire value -> field value (raise _Reject when it does not fit) ----------

_TRUE: Final = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE: Final = frozenset({"0", "false", "no", "off", "n", "f"})


def _to_str(value: Any) -> Any:
    if type(value) is str:
        return value
    if type(value) is int or type(value) is float:
        return str(value)
    raise _Reject


def _to_bool(value: Any) -> Any:
    if type(value) is bool:
        return value
    if type(value) is str:
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    elif type(value) is int and value in (0, 1):
        return value == 1
    raise _Reject


def _to_int(value: Any) -> Any:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is str:
        try:
            return int(value.strip())
        except ValueError:
            raise _Reject from None
    raise _Reject


def _to_datetime(value: Any) -> Any:
    try:
        return parse_datetime(value)
    except ValueError:
        raise _Reject from None


def _to_strlist(value: Any) -> Any:
    if type(value) is list:
        return value
    if type(value) is str:
        return [value]
    if type(value) is tuple:
        return list(value)
    raise _Reject


def _to_dict(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value
    raise _Reject


def _to_models(model: type) -> _Hook:
    def coerce(value: Any) -> Any:
        if type(value) is not list or not all(isinstance(v, Mapping) for v in value):
            raise _Reject
        struct = _STRUCTURERS[model]
        return [struct(v) for v in value]

    return coerce


_COERCE: Final[dict[str, _Hook | None]] = {
    "str": _to_str,
    "bool": _to_bool,
    "int": _to_int,
    "datetime": _to_datetime,
    "strlist": _to_strlist,
    "dict": _to_dict,
    "any": None,
}

# Values of these exact types are taken as they are (no coercion call).
_FAST_TYPE: Final[dict[str, type]] = {
    "str": str,
    "bool": bool,
    "int": int,
    "strlist": list,
    "dict": dict,
}


# --- writers: field value -> wire value ---------------------------------------------------


def _from_datetime(value: Any) -> Any:
    return format_datetime(value) if hasattr(value, "utcoffset") else value


def _from_models(value: Any) -> Any:
    return [unstructure(v) for v in value]


# The kinds whose values are not written as they are.
_WRITE: Final[dict[str, _Hook]] = {"datetime": _from_datetime, "models": _from_models}


# --- the plan of one model ----------------------------------------------------------------


@attrs.frozen(slots=True)
class _Field:
    """One wire field: its attribute, its wire key and how its value is converted."""

    name: str
    key: str
    kind: str
    aliases: tuple[str, ...]
    coerce: _Hook | None  # wire -> Python; None: taken as is
    fast_type: type | None  # a value of exactly this type needs no coercion
    write: _Hook | None  # Python -> wire; None: written as is


@attrs.frozen(slots=True)
class _Plan:
    """What both implementations need to know about one model."""

    cls: type
    fields: tuple[_Field, ...]
    # wire key -> (field, whether the key is the field's own rather than an alias)
    by_key: dict[str, tuple[_Field, bool]]
    # Contacts: unknown keys without a leading "_" are custom attributes, not extra.
    split: bool


def _plan(cls: type) -> _Plan:
    fields: list[_Field] = []
    for field in attrs.fields(cls):
        spec = field.metadata.get(WIRE)
        if spec is None:
            continue
        models = spec.kind == "models"
        fields.append(
            _Field(
                name=field.name,
                key=spec.key,
                kind=spec.kind,
                aliases=spec.aliases,
                coerce=_to_models(spec.model) if models else _COERCE[spec.kind],
                fast_type=_FAST_TYPE.get(spec.kind),
                write=_WRITE.get(spec.kind),
            )
        )
    by_key: dict[str, tuple[_Field, bool]] = {}
    for f in fields:
        by_key[f.key] = (f, True)
        for alias in f.aliases:
            by_key[alias] = (f, False)
    split = "attributes" in {f.name for f in attrs.fields(cls)}
    return _Plan(cls, tuple(fields), by_key, split)


# --- the reference ------------------------------------------------------------------------


def _reference_structurer(plan: _Plan) -> _Hook:
    """Build a model from any mapping, key by key.

    A known key's value is coerced to its field's type; a value that does not
    fit, an explicit null and a second key for a field already read go to
    ``extra``, as do unknown keys (for contacts, unknown keys without a leading
    ``_`` are custom ``attributes``). When the field's value would be written
    back differently (a coerced value, an alias key), the key and the original
    value are remembered in ``_wire`` so the round trip is exact.
    """
    cls, by_key, split = plan.cls, plan.by_key, plan.split
    qualname = cls.__qualname__

    def structure_reference(data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise TypeError(
                f"cannot build {qualname} from {type(data).__name__}: expected a mapping"
            )
        kw: dict[str, Any] = {}
        extra: dict[Any, Any] = {}
        attributes: dict[Any, Any] = {}
        wire: dict[str, tuple[Any, Any, Any]] = {}
        for key, value in data.items():
            known = by_key.get(key)
            if known is None:
                if split and not (type(key) is str and key[:1] == "_"):
                    attributes[key] = value
                else:
                    extra[key] = value
                continue
            field, primary = known
            if value is None or field.name in kw:
                extra[key] = value
                continue
            converted = value
            if field.coerce is not None and type(value) is not field.fast_type:
                try:
                    converted = field.coerce(value)
                except _Reject:
                    extra[key] = value
                    continue
            kw[field.name] = converted
            if converted is not value or not primary:
                # Snapshot lists so an in-place change is seen as a change.
                seen = converted[:] if type(converted) is list else converted
                wire[field.name] = (key, seen, value)
        if split:
            kw["attributes"] = attributes
        obj = cls(**kw, extra=extra)
        if wire:
            obj._wire = wire
        return obj

    structure_reference.__qualname__ = f"structure_reference_{qualname}"
    return structure_reference


def _reference_unstructurer(plan: _Plan) -> _Hook:
    """The wire dict of a model: ``extra``, then ``attributes``, then each field set.

    A ``None`` field is not written, nor an empty nested list the input did not
    have. A field whose value is still what was read (``_wire``) is written as it
    was read, under the key it was read from; any other value in canonical form.
    """
    fields, split = plan.fields, plan.split

    def unstructure_reference(obj: Any) -> dict[Any, Any]:
        out: dict[Any, Any] = dict(obj.extra)
        if split:
            out.update(obj.attributes)
        wire = obj._wire or {}
        for field in fields:
            value = getattr(obj, field.name)
            if value is None:
                continue
            key = field.key
            memory = wire.get(field.name)
            if memory is not None:
                key, seen, original = memory
                if field.kind != "models" and value == seen:
                    out[key] = original
                    continue
            elif field.kind == "models" and not value:
                continue
            out[key] = value if field.write is None else field.write(value)
        return out

    unstructure_reference.__qualname__ = f"unstructure_reference_{plan.cls.__qualname__}"
    return unstructure_reference


# --- the fast paths -----------------------------------------------------------------------


def _fast_structurer(plan: _Plan, reference: _Hook) -> _Hook:
    """Generate the structure hook's fast path.

    It handles a ``dict`` whose known keys hold values of their field's type (an
    ISO string for datetimes) and no alias key; on anything else (a null, a value
    to coerce or keep in ``extra``, an alias, a nested list) it hands the whole
    input to ``reference``. One straight line per field instead of a lookup per
    input key; when :func:`_direct_init` allows it, the object's slots are set
    directly instead of calling the attrs ``__init__`` (keyword parsing and the
    converter's setattr hook were half the cost of building a contact).
    """
    cls = plan.cls
    direct = _direct_init(plan)
    namespace: dict[str, Any] = {
        "cls": cls,
        "reference": reference,
        "MISSING": _MISSING,
        "parse_datetime": parse_datetime,
        # What parse_datetime does first for a string, without the call (3.11+).
        "fromisoformat": _dt.datetime.fromisoformat if ISO_READS_Z else parse_datetime,
        "UTC": UTC,
        "KNOWN": frozenset(f.key for f in plan.fields),
        "ALIASES": frozenset(alias for f in plan.fields for alias in f.aliases),
        # The slot's own setter: skips the attrs __setattr__ hook of classes with converters.
        "set_wire": cls.__dict__["_wire"].__set__,
    }
    lines = [
        "def hook(data):",
        "    if type(data) is not dict:",
        "        return reference(data)",
        "    get = data.get",
        "    found = 0",
        "    wire = None",
    ]
    for f in plan.fields:
        local, key = f"f_{f.name}", repr(f.key)
        lines += [
            f"    value = get({key}, MISSING)",
            "    if value is MISSING:",
            f"        {local} = {'[]' if f.kind == 'models' else 'None'}",
        ]
        if f.kind == "datetime":
            lines += [
                "    elif type(value) is str:",
                "        try:",
                f"            {local} = fromisoformat(value)",
                "        except ValueError:",
                "            try:",
                f"                {local} = parse_datetime(value)",
                "            except ValueError:",
                "                return reference(data)",
                f"        if {local}.tzinfo is None:",
                f"            {local} = {local}.replace(tzinfo=UTC)",
                "        found += 1",
                "        if wire is None:",
                "            wire = {}",
                f"        wire[{f.name!r}] = ({key}, {local}, value)",
            ]
        elif f.kind == "any":
            lines += [
                "    elif value is not None:",
                f"        {local} = value",
                "        found += 1",
            ]
        elif f.fast_type is not None:
            lines += [
                f"    elif type(value) is {f.fast_type.__name__}:",
                f"        {local} = value",
                "        found += 1",
            ]
        lines += ["    else:", "        return reference(data)"]
    lines += [
        "    extra = {}",
        "    attributes = {}" if plan.split else "",
        "    if found != len(data):",
        "        for key, value in data.items():",
        "            if key in KNOWN:",
        "                continue",
        "            if key in ALIASES:",
        "                return reference(data)",
    ]
    if plan.split:
        lines += [
            "            if type(key) is str and key[:1] == '_':",
            "                extra[key] = value",
            "            else:",
            "                attributes[key] = value",
        ]
    else:
        lines += ["            extra[key] = value"]
    values = [(f.name, f"f_{f.name}") for f in plan.fields]
    values += [("attributes", "attributes")] if plan.split else []
    if direct:
        namespace["new"] = object.__new__
        lines.append("    obj = new(cls)")
        for index, (name, local) in enumerate([*values, ("extra", "extra"), ("_wire", "wire")]):
            namespace[f"set_{index}"] = cls.__dict__[name].__set__
            lines.append(f"    set_{index}(obj, {local})")
        lines.append("    return obj")
    else:
        arguments = ", ".join(f"{name}={local}" for name, local in values)
        lines += [
            f"    obj = cls({arguments}, extra=extra)",
            "    if wire is not None:",
            "        set_wire(obj, wire)",
            "    return obj",
        ]
    hook: _Hook = _compile(lines, namespace, "hook", f"structure_{cls.__qualname__}")
    return hook


def _direct_init(plan: _Plan) -> bool:
    """True when setting the slots builds what ``cls(...)`` builds from the fast path's values.

    That holds when every field is a slot of the class itself, the fast path
    gives every field a value (the wire fields, ``attributes``, ``extra``,
    ``_wire``), no field has a validator, the only converter is ``to_aware`` on
    datetime fields (``parse_datetime`` already returns aware datetimes) and there
    is no ``__attrs_pre_init__``/``__attrs_post_init__``. A model that grows
    anything else is built through its ``__init__`` again, automatically.
    """
    cls = plan.cls
    kinds = {f.name: f.kind for f in plan.fields}
    given = set(kinds) | {"extra", "_wire"} | ({"attributes"} if plan.split else set())
    if hasattr(cls, "__attrs_pre_init__") or hasattr(cls, "__attrs_post_init__"):
        return False
    for field in attrs.fields(cls):
        if field.name not in given or field.validator is not None:
            return False
        if field.converter is not None and (
            field.converter is not to_aware or kinds.get(field.name) != "datetime"
        ):
            return False
        if type(cls.__dict__.get(field.name)) is not types.MemberDescriptorType:
            return False
    return {field.name for field in attrs.fields(cls)} == given


def _fast_unstructurer(plan: _Plan, reference: _Hook) -> tuple[_Hook, _BatchHook]:
    """Generate the unstructure hooks of objects built in Python (no ``_wire`` memory).

    One ``if`` per field instead of a loop over the fields (about three times
    faster: the per-item cost of bulk writes from models). Two hooks come out,
    one for an object and one for a list (one call per batch); an object read
    from the wire goes to ``reference``. The list hook writes each datetime field
    of the whole list with one ``orjson.dumps`` (see :func:`_datetime_lines`).
    """
    namespace: dict[str, Any] = {
        "reference": reference,
        "UTC": UTC,
        "datetime": _dt.datetime,
        "dumps": orjson.dumps,
        "loads": orjson.loads,
        "UTC_Z": orjson.OPT_UTC_Z,
    }
    for index, f in enumerate(plan.fields):
        if f.write is not None:
            namespace[f"write_{index}"] = f.write
    dated = [index for index, f in enumerate(plan.fields) if f.kind == "datetime"]
    many = [
        "def hook_many(items):",
        "    result = []",
        "    append = result.append",
        *(f"    {kind}_{i} = []" for i in dated for kind in ("dates", "outs")),
        "    for obj in items:",
        *_unstructure_lines(plan, "        ", many=True),
        *(line for i in dated for line in _datetime_lines(i, plan.fields[i].key)),
        "    return result",
    ]
    one = ["def hook(obj):", *_unstructure_lines(plan, "    ", many=False)]
    name = plan.cls.__qualname__
    hook: _Hook = _compile(one, namespace, "hook", f"unstructure_{name}")
    hook_many: _BatchHook = _compile(many, namespace, "hook_many", f"unstructure_many_{name}")
    return hook, hook_many


def _unstructure_lines(plan: _Plan, pad: str, *, many: bool) -> list[str]:
    """The body of an unstructure hook for one ``obj`` (inside the loop when ``many``)."""

    def done(value: str) -> str:
        # Out of the function, or on to the next item of the loop.
        return f"append({value}); continue" if many else f"return {value}"

    lines = [
        "if obj._wire is not None:",
        f"    {done('reference(obj)')}",
        "extra = obj.extra",
        "out = {**extra} if extra else {}",
    ]
    if plan.split:
        lines += ["attributes = obj.attributes", "if attributes:", "    out.update(attributes)"]
    for index, f in enumerate(plan.fields):
        key = repr(f.key)
        lines.append(f"value = obj.{f.name}")
        # An empty nested list is omitted: the input (if any) did not have it.
        lines.append("if value:" if f.kind == "models" else "if value is not None:")
        if f.write is None:
            lines.append(f"    out[{key}] = value")
        elif f.kind != "datetime":
            lines.append(f"    out[{key}] = write_{index}(value)")
        elif many:
            # The datetime holds the key's place; the list's are written after the loop.
            lines += [
                "    if value.tzinfo is UTC and type(value) is datetime:",
                f"        out[{key}] = value",
                f"        dates_{index}.append(value)",
                f"        outs_{index}.append(out)",
                "    else:",
                f"        out[{key}] = write_{index}(value)",
            ]
        else:
            # format_datetime inlined for an exact UTC datetime (the common case).
            lines += [
                "    if value.tzinfo is UTC and type(value) is datetime:",
                "        raw = dumps(value, option=UTC_Z)",
                f"        out[{key}] = raw[1:24].decode() + 'Z' if value.microsecond "
                "else raw[1:-2].decode() + '.000Z'",
                "    else:",
                f"        out[{key}] = write_{index}(value)",
            ]
    lines.append(done("out"))
    return [pad + line for line in lines]


def _datetime_lines(index: int, key: str) -> list[str]:
    """After the list hook's loop: write field ``index``'s UTC datetimes as text.

    One ``orjson.dumps`` for the whole list gives ``...THH:MM:SSZ`` for whole
    seconds and ``...THH:MM:SS.ffffffZ`` otherwise; each text is then cut to
    milliseconds, which is ``format_datetime``'s text (a property test holds the
    two equal).
    """
    return [
        f"    if dates_{index}:",
        f"        texts = loads(dumps(dates_{index}, option=UTC_Z))",
        f"        for out, text in zip(outs_{index}, texts, strict=True):",
        f"            out[{key!r}] = text[:23] + 'Z' if len(text) > 20 else text[:-1] + '.000Z'",
    ]


def _compile(lines: list[str], namespace: dict[str, Any], name: str, qualname: str) -> Any:
    source = "\n".join(line for line in lines if line)
    exec(compile(source, f"<{qualname}>", "exec"), namespace)
    function = namespace[name]
    function.__qualname__ = qualname
    return function


# --- the registry -------------------------------------------------------------------------


def _structure_stats(data: Any) -> DatasourceStats:
    if isinstance(data, dict):
        return DatasourceStats(data)
    if isinstance(data, Mapping):
        return DatasourceStats(dict(data))
    return DatasourceStats({"value": data})


def _unstructure_stats(obj: DatasourceStats) -> dict[str, Any]:
    return obj.data


def _register(cls: type, struct: _Hook, unstruct: _Hook) -> None:
    _STRUCTURERS[cls] = struct
    _UNSTRUCTURERS[cls] = unstruct

    def cattrs_hook(data: Any, _cls: Any) -> Any:
        return struct(data)

    converter.register_structure_hook(cls, cattrs_hook)
    converter.register_unstructure_hook(cls, unstruct)


for _cls in WIRE_MODELS:
    _p = _plan(_cls)
    _REFERENCE_STRUCTURERS[_cls] = _reference_structurer(_p)
    _REFERENCE_UNSTRUCTURERS[_cls] = _reference_unstructurer(_p)
    _one, _BATCH_UNSTRUCTURERS[_cls] = _fast_unstructurer(_p, _REFERENCE_UNSTRUCTURERS[_cls])
    _register(_cls, _fast_structurer(_p, _REFERENCE_STRUCTURERS[_cls]), _one)
_register(DatasourceStats, _structure_stats, _unstructure_stats)


# --- entry points -------------------------------------------------------------------------


def structure(data: Any, cls: type[T]) -> T:
    """Build a ``cls`` (a model, or any type the converter knows: ``list[Contact]``...).

    Wire models never fail on unexpected content: unknown keys and values that
    do not fit their field are kept in ``extra``.

    Raises:
        TypeError: ``data`` is not a mapping where a model is expected.
    """
    hook = _STRUCTURERS.get(cls)
    if hook is not None:
        result: T = hook(data)
        return result
    return converter.structure(data, cls)


def structurer(cls: type[T]) -> Callable[[Any], T]:
    """The function ``structure(data, cls)`` calls, to call it without the lookup."""
    hook = _STRUCTURERS.get(cls)
    if hook is not None:
        return hook

    def general(data: Any) -> T:
        return converter.structure(data, cls)

    return general


def unstructure(obj: Any) -> Any:
    """The wire form of ``obj``: a model becomes a dict; a mapping is returned as is.

    A mapping is returned untouched (the same object, no copy), which is the fast
    path for callers that already hold wire dicts.
    """
    if type(obj) is dict:
        return obj
    hook = _UNSTRUCTURERS.get(type(obj))
    if hook is not None:
        return hook(obj)
    if isinstance(obj, Mapping):
        return obj
    return converter.unstructure(obj)


def to_dict(model: Any) -> dict[str, Any]:
    """The wire form of a model as a new JSON-ready dict (what the SDK sends and reads).

    Reserved keys keep their leading underscore (``{"_user_id": ..., "_email": ...}``),
    custom attributes sit at the top level, ``extra`` is merged in, datetimes are
    ``YYYY-MM-DDTHH:MM:SS.sssZ`` text, and ``None`` fields are left out. Other
    attrs classes of the SDK (``IngestReport``, ``RejectedItem``...) become plain
    dicts of their fields. Return it from a FastAPI endpoint as is, or validate
    it into a pydantic model whose fields use the wire keys as aliases.

    Raises:
        TypeError: ``model`` is not an attrs instance (a model of this SDK).
    """
    if not attrs.has(type(model)):
        raise TypeError(
            f"to_dict() takes a model such as Contact or Event, not {type(model).__name__}"
        )
    result: dict[str, Any] = unstructure(model)
    return result


def from_dict(data: Mapping[str, Any], cls: type[T]) -> T:
    """Build a model of class ``cls`` from its wire form (the inverse of :func:`to_dict`).

    ``from_dict(to_dict(m), type(m)) == m``; unknown keys and values that do not
    fit their field are kept in ``extra``, never refused. ``cls`` may also be a
    container of models (``list[Contact]``).

    Raises:
        TypeError: ``data`` is not a mapping.
    """
    return structure(data, cls)


def reference_hooks(cls: type[T]) -> tuple[Callable[[Any], T], Callable[[T], dict[str, Any]]]:
    """The reference (structure, unstructure) of a wire model: what the fast paths equal.

    The one internal hook ``benchmarks/convert.py`` measures the generated hooks against.

    Raises:
        KeyError: ``cls`` is not a wire model.
    """
    return _REFERENCE_STRUCTURERS[cls], _REFERENCE_UNSTRUCTURERS[cls]


def to_wire_items(items: Iterable[Any]) -> list[Any]:
    """The wire form of a batch: models unstructured, mappings passed through as is.

    Raises:
        TypeError: an item is neither a mapping nor an attrs model (the message
            names its position in ``items`` and its type).
    """
    if type(items) is list:
        kinds = set(map(type, items))
        if len(kinds) == 1:
            # One kind of item (the usual batch): no per-item dispatch.
            (kind,) = kinds
            if kind is dict:
                return items[:]
            many = _BATCH_UNSTRUCTURERS.get(kind)
            if many is not None:
                return many(items)
    out: list[Any] = []
    append = out.append
    hooks = _UNSTRUCTURERS
    for position, item in enumerate(items):
        if type(item) is dict:
            append(item)
            continue
        hook = hooks.get(type(item))
        if hook is not None:
            append(hook(item))
        elif isinstance(item, Mapping):
            append(item)
        elif attrs.has(type(item)):
            append(converter.unstructure(item))
        else:
            raise TypeError(
                f"item at position {position} is a {type(item).__qualname__}: expected a "
                "mapping or a model such as Contact or Event"
            )
    return out
