"""JSON encoding of the values the state store keeps (results, published values, parameters,
output, errors, metrics).

Every value a workflow context can hold is stored *losslessly*: context values are JSON-like
(frozen sequences are ``tuple`` subclasses, which ``json`` writes natively, frozen mappings go through
the encoder's ``default`` as mappings); an ``int`` too long for Python's decimal conversion limit (4,300 digits)
is kept as a tagged hexadecimal string, and a string with a lone surrogate (not UTF-8) is
written with ASCII escapes, which read back as the same string.  ``bytes`` and sets are kept as
tagged values.  Anything else — an arbitrary object, a structure nested deeper than the encoder
allows, a mapping with non-string keys that JSON would silently turn into strings — is refused
with :class:`CodecError` (a ``ValueError``): recording a ``repr`` instead would hand a resume a
different value than the live run had.  A state file is data: no pickle, nothing in it is ever
executed on load.

:func:`loads` is strict as well: text that is not JSON, or a tagged value whose payload is
damaged, raises :class:`CodecError`; the state store turns it into one
:class:`~flowctx.errors.StateError` naming the execution and the field.
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

_TAG = "__flowctx_value__"


class CodecError(ValueError):
    """A value the state codec cannot store, or stored text it cannot read."""


class _Unstorable(Exception):
    def __init__(self, obj: Any) -> None:
        super().__init__(obj)
        self.obj = obj


_STORES = ("flowctx._store", "flowctx._store_py")
_FROZEN_DICTS: set[type] = set()  # either store's FrozenDict, once seen


def _default(obj: Any) -> Any:
    cls = type(obj)
    if cls in _FROZEN_DICTS or cls.__name__ == "FrozenDict" and cls.__module__ in _STORES:
        # not a dict subclass, so json's C encoder cannot walk it: a shallow copy (one C call;
        # its values are frozen, FrozenList is a tuple) lets the encoder go on.  1 MB: ~13 ms
        # compiled, against ~15.5 ms thawing the whole tree first (a second tree allocated, then
        # freed) and ~36 ms on the twin going through the Mapping protocol
        _FROZEN_DICTS.add(cls)
        return obj.copy()
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {_TAG: "bytes", "data": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, (set, frozenset)):
        return {_TAG: "set", "data": list(obj)}
    raise _Unstorable(obj)


_encoder = json.JSONEncoder(default=_default, separators=(",", ":"), ensure_ascii=False, check_circular=True)
# Frozen values are acyclic by construction (DESIGN: immutable, built bottom-up), so their
# encoder skips json's cycle bookkeeping (a dict insert and delete per container: ~15% of the
# time of a 1 MB result).
_frozen_encoder = json.JSONEncoder(default=_default, separators=(",", ":"), ensure_ascii=False, check_circular=False)
_ascii_encoder = json.JSONEncoder(default=_default, separators=(",", ":"), ensure_ascii=True, check_circular=True)
_encode_str = json.encoder.encode_basestring  # (C) what _encoder writes for a str
_SMALL = 1 << 62  # ints below this are decimal text at once (far from the digit limit)
_BIG = 4000  # digits: ints with more are stored as hexadecimal (no decimal conversion limit)


def _tag_big_ints(value: Any, depth: int = 0) -> Any:
    """``value`` with every int too long for decimal text replaced by a tagged hex string."""
    if depth > 10_000:  # pragma: no cover - the encoder refuses such depths first
        raise RecursionError
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        if value.bit_length() > _BIG * 3:  # ~ > 3,600 decimal digits: keep well clear of the limit
            return {_TAG: "int", "data": format(value, "x") if value >= 0 else "-" + format(-value, "x")}
        return value
    if isinstance(value, Mapping):
        return {k: _tag_big_ints(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tag_big_ints(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return {_TAG: "set", "data": [_tag_big_ints(v, depth + 1) for v in value]}
    return value


def _frozen_types() -> tuple[type, ...]:
    from flowctx._backend import frozen_types  # the store's types, chosen by the selector

    return frozen_types()


_FROZEN: tuple[type, ...] | None = None


def _check_keys(value: Any, depth: int = 0) -> None:
    """Refuse mappings whose keys JSON would change (1 -> "1"): the value would not round-trip.
    Frozen context values only ever have string keys: they are not walked."""
    global _FROZEN
    if _FROZEN is None:
        _FROZEN = _frozen_types()
    if isinstance(value, _FROZEN):
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise CodecError(f"a mapping key {k!r} is not a string (JSON would store it as {json.dumps(str(k))})")
            if type(v) not in _LEAVES:
                _check_keys(v, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            if type(v) not in _LEAVES:  # a list of 1,000 strings (parameters) is one pass, no calls
                _check_keys(v, depth + 1)


_LEAVES = frozenset({str, int, float, bool, type(None)})


def dumps(value: Any) -> str:
    """``value`` as compact JSON text that :func:`loads` turns back into an equal value;
    :class:`CodecError` (with a one-line reason) for a value that cannot be stored so."""
    cls = type(value)
    if cls is str:  # fast path for plain scalars (most item results): no encoder set-up, no checks
        if value.isascii():
            return _encode_str(value)
    elif value is None:
        return "null"
    elif cls is bool:
        return "true" if value else "false"
    elif cls is int and -_SMALL < value < _SMALL:
        return int.__repr__(value)
    encoder = _encoder
    frozen = cls.__module__ in _STORES and cls.__name__ in ("FrozenDict", "FrozenList")
    if frozen:
        encoder = _frozen_encoder  # a frozen result or value: JSON-like, str keys, acyclic
    try:
        try:
            text = encoder.encode(value)
        except ValueError as exc:
            if "integer string conversion" not in str(exc) and "int_max_str_digits" not in str(exc):
                raise
            text = encoder.encode(_tag_big_ints(value))
    except _Unstorable as exc:
        raise CodecError(
            f"a value of type {type(exc.obj).__name__!r} cannot be stored (only JSON-like values: "
            "None, bool, int, float, str, lists and mappings with string keys)"
        ) from None
    except RecursionError:
        raise CodecError("the value is nested too deeply to be stored") from None
    except ValueError as exc:  # a circular structure
        raise CodecError(f"the value cannot be stored ({exc})") from None
    except TypeError as exc:  # non-str keys of a kind JSON refuses (tuples, objects)
        raise CodecError(f"the value cannot be stored ({exc})") from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: escape it (json.loads gives it back)
            try:
                text = _ascii_encoder.encode(_tag_big_ints(value))
            except (ValueError, TypeError, RecursionError, _Unstorable) as exc:  # pragma: no cover
                raise CodecError(f"the value cannot be stored ({exc})") from None
    if not frozen and ":" in text:  # frozen mappings only ever have str keys
        _check_keys(value)
    return text


def text(value: str | None) -> str | None:
    """A message (task error) as text SQLite can store: lone surrogates become ``\\udXXX``."""
    if value is None:
        return None
    value = str(value)
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 2 and _TAG in obj and "data" in obj:
        kind = obj[_TAG]
        data = obj["data"]
        try:
            if kind == "bytes":
                return base64.b64decode(data, validate=True)
            if kind == "int":
                return -int(data[1:], 16) if data.startswith("-") else int(data, 16)
            if kind == "set":
                try:
                    return set(data)
                except TypeError:  # unhashable members
                    return data
            if kind == "repr":  # written by flowctx < 0.3 for values it could not store
                return data
        except (binascii.Error, ValueError, TypeError, AttributeError) as exc:
            raise CodecError(f"a damaged {kind} value ({exc})") from None
    return obj


def loads(text: str | bytes | None) -> Any:
    """The value :func:`dumps` wrote (``None`` for SQL NULL); :class:`CodecError` if ``text``
    is not what :func:`dumps` writes."""
    if text is None:
        return None
    try:
        return json.loads(text, object_hook=_hook)
    except json.JSONDecodeError as exc:
        raise CodecError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    except (TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise CodecError(f"not valid JSON ({type(exc).__name__})") from None
