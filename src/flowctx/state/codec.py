"""JSON encoding of the values the state store keeps (results, published values, parameters).

Context values are JSON-like already (frozen mappings are ``dict`` subclasses, frozen sequences
``tuple`` subclasses, so ``json`` writes them natively).  An action may still return something
else as an item result; recording must never fail, so ``bytes`` and sets are kept as tagged
values and anything else as a tagged ``repr`` string (a state file is data: no pickle, nothing
in it is ever executed on load).
"""
from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

_TAG = "__flowctx_value__"


def _default(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {_TAG: "bytes", "data": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, (set, frozenset)):
        return {_TAG: "set", "data": list(obj)}
    return {_TAG: "repr", "data": repr(obj)}


_encoder = json.JSONEncoder(default=_default, separators=(",", ":"), ensure_ascii=False, check_circular=False)


def dumps(value: Any) -> str:
    """``value`` as compact JSON text (tagged fallbacks for non-JSON values)."""
    try:
        return _encoder.encode(value)
    except (ValueError, TypeError, RecursionError):  # circular structure, non-str keys ...
        return json.dumps({_TAG: "repr", "data": repr(value)[:100_000]})


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 2 and _TAG in obj and "data" in obj:
        kind = obj[_TAG]
        if kind == "bytes":
            return base64.b64decode(obj["data"])
        if kind == "set":
            try:
                return set(obj["data"])
            except TypeError:  # unhashable members
                return obj["data"]
        if kind == "repr":
            return obj["data"]
    return obj


def loads(text: str | bytes | None) -> Any:
    """The value :func:`dumps` wrote (``None`` for SQL NULL)."""
    if text is None:
        return None
    return json.loads(text, object_hook=_hook)
