"""Pure-Python twin of the compiled context store (``ext/_store.pyx``).

This module is the reference behaviour: the compiled module has the same public names,
signatures, semantics and error messages (``tests/test_api_parity.py`` and the differential
tests keep them in lockstep; ``_store.pyi`` describes both).

Design
------
A :class:`Context` is a small handle over four namespace dicts (``parameters``, ``variables``,
``task_results``, ``system``) plus the per-item ``item`` / ``index``.  Namespaces are
:class:`FrozenDict` objects shared between handles: ``clone()`` and ``with_item()`` copy four
references and never touch the data (O(1) whatever the bytes held).  A write copies the one
namespace it changes (O(keys in that namespace), never O(bytes)) unless the handle is the sole
owner of it; once a namespace has been shared (by a clone or by handing out a view) neither side
writes to it in place again.  Values are frozen once on the way in, so reads are zero-copy and
nothing read back from the store can be mutated.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, NoReturn

__all__ = [
    "Context",
    "FrozenDict",
    "FrozenList",
    "freeze",
    "thaw",
    "store_stats",
    "reset_store_stats",
]

_NAMESPACES = ("parameters", "variables", "task_results", "system")
_EXPORT_KEYS = frozenset(_NAMESPACES + ("item", "index"))
_MAX_DEPTH = 500


def _readonly(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(f"'{type(self).__name__}' object is read-only (values in a flowctx context are frozen)")


class FrozenDict(dict):  # type: ignore[type-arg]
    """A read-only ``dict``: reads are plain dict reads, every mutation raises TypeError."""

    __slots__ = ()

    __setitem__ = _readonly
    __delitem__ = _readonly
    __ior__ = _readonly
    clear = _readonly
    pop = _readonly
    popitem = _readonly
    setdefault = _readonly
    update = _readonly

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


class FrozenList(tuple):  # type: ignore[type-arg]
    """A read-only sequence (a tuple that also refuses the list mutators with TypeError)."""

    __slots__ = ()

    append = _readonly
    extend = _readonly
    insert = _readonly
    pop = _readonly
    remove = _readonly
    clear = _readonly
    sort = _readonly
    reverse = _readonly
    __setitem__ = _readonly
    __delitem__ = _readonly

    # Equal to a list with equal items (as well as to a tuple), so that a stored list still
    # compares equal to the list it was made from, in user code and in templates.
    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):
            return tuple.__eq__(self, tuple(other))
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        if isinstance(other, list):
            return tuple.__ne__(self, tuple(other))
        return tuple.__ne__(self, other)

    __hash__ = tuple.__hash__

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList:
        return self

    def __repr__(self) -> str:
        return f"FrozenList({list(self)!r})"


def _type_error(path: str, value: object) -> TypeError:
    return TypeError(
        f"value for {path!r} has unsupported type {type(value).__name__!r}: a context holds only "
        "JSON-like values (None, bool, int, float, str, list/tuple, dict with str keys)"
    )


def _freeze(value: Any, path: str, depth: int) -> Any:
    cls = type(value)
    if value is None or cls is str or cls is int or cls is float or cls is bool:
        return value
    if cls is FrozenDict or cls is FrozenList:
        return value
    if depth > _MAX_DEPTH:
        raise ValueError(f"value for {path!r} is nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                if not isinstance(k, str):
                    raise TypeError(
                        f"key {k!r} in {path!r} has unsupported type {type(k).__name__!r}: "
                        "mapping keys must be str"
                    )
                k = str(k)
            out[k] = _freeze(v, f"{path}.{k}", depth + 1)
        return FrozenDict(out)
    if isinstance(value, Mapping):
        return _freeze(dict(value), path, depth)
    if isinstance(value, (list, tuple)):
        # Plain loops, not comprehensions: a comprehension is one more Python frame per level,
        # which would hit the recursion limit before the documented _MAX_DEPTH.
        items = []
        i = 0
        for v in value:
            items.append(_freeze(v, f"{path}[{i}]", depth + 1))
            i += 1
        return FrozenList(items)
    if isinstance(value, (str, int, float)):  # subclasses (IntEnum, str subclasses): plain copy
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        return str(value)
    raise _type_error(path, value)


def freeze(value: Any, name: str = "value") -> Any:
    """Return a deeply read-only copy of a JSON-like value (already-frozen parts are reused).

    ``name`` is used in error messages to say which key held the offending value.
    """
    return _freeze(value, name, 0)


def thaw(value: Any) -> Any:
    """Return plain, mutable ``dict`` / ``list`` copies of a (frozen) value."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out[k] = thaw(v)
        return out
    if isinstance(value, (list, tuple)):
        items = []
        for v in value:
            items.append(thaw(v))
        return items
    return value


_EMPTY = FrozenDict()
_lock = threading.Lock()
_stats = {"clones": 0, "items": 0, "merges": 0}


def store_stats() -> dict[str, int]:
    """Process-wide counters: ``clones`` (clone()), ``items`` (with_item()), ``merges``."""
    return dict(_stats)


def reset_store_stats() -> None:
    """Set the process-wide counters back to zero."""
    with _lock:
        for k in _stats:
            _stats[k] = 0


def _freeze_namespace(ns: str, data: Mapping[str, Any] | None) -> FrozenDict:
    if data is None:
        return _EMPTY
    if type(data) is FrozenDict:
        return data
    if not isinstance(data, Mapping):
        raise TypeError(f"{ns} must be a mapping, not {type(data).__name__!r}")
    out = {}
    for k, v in data.items():
        if not isinstance(k, str):
            raise TypeError(f"key {k!r} in {ns} has unsupported type {type(k).__name__!r}: keys must be str")
        out[str(k)] = _freeze(v, str(k), 0)
    return FrozenDict(out)


def _approx_bytes(value: Any) -> int:
    if value is None or value is True or value is False:
        return 1
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, (int, float)):
        return 8
    if isinstance(value, dict):
        n = 2
        for k, v in value.items():
            n += len(k) + 3 + _approx_bytes(v)
        return n
    if isinstance(value, (list, tuple)):
        n = 2
        for v in value:
            n += 1 + _approx_bytes(v)
        return n
    return 8


class Context:
    """A workflow context handle with O(1), isolated clones.

    ``Context(parameters=None, variables=None, task_results=None, system=None)`` freezes the
    given mappings once.  Views (``.parameters`` ...) are read-only snapshots; ``clone()`` and
    ``with_item()`` are O(1); a write through one handle is never seen by another handle.
    """

    __slots__ = ("_params", "_vars", "_results", "_system", "_item", "_index", "_owned", "__weakref__")

    _params: FrozenDict
    _vars: FrozenDict
    _results: FrozenDict
    _system: FrozenDict
    _item: Any
    _index: int | None
    _owned: int

    def __init__(
        self,
        parameters: Mapping[str, Any] | None = None,
        variables: Mapping[str, Any] | None = None,
        task_results: Mapping[str, Any] | None = None,
        system: Mapping[str, Any] | None = None,
    ) -> None:
        self._params = _freeze_namespace("parameters", parameters)
        self._vars = _freeze_namespace("variables", variables)
        self._results = _freeze_namespace("task_results", task_results)
        self._system = _freeze_namespace("system", system)
        self._item = None
        self._index = None
        # Bit set of the namespaces this handle alone holds and may write in place: 1 variables,
        # 2 task_results, 4 system.  A namespace frozen here from the caller's data is private;
        # a FrozenDict passed in (or the shared empty one) is not.
        self._owned = (
            (1 if self._vars is not variables and self._vars is not _EMPTY else 0)
            | (2 if self._results is not task_results and self._results is not _EMPTY else 0)
            | (4 if self._system is not system and self._system is not _EMPTY else 0)
        )

    # ----------------------------------------------------------------- read-only views
    @property
    def parameters(self) -> Mapping[str, Any]:
        """Workflow parameters (read-only mapping)."""
        return self._params

    @property
    def variables(self) -> Mapping[str, Any]:
        """Workflow variables (read-only snapshot)."""
        with _lock:
            self._owned &= ~1
            return self._vars

    @property
    def task_results(self) -> Mapping[str, Any]:
        """Task results by task name (read-only snapshot)."""
        with _lock:
            self._owned &= ~2
            return self._results

    @property
    def system(self) -> Mapping[str, Any]:
        """System values (execution id, timestamps ...; read-only snapshot)."""
        with _lock:
            self._owned &= ~4
            return self._system

    @property
    def item(self) -> Any:
        """The current with-items element, or None outside an item."""
        return self._item

    @property
    def index(self) -> int | None:
        """The current with-items index, or None outside an item."""
        return self._index

    # ----------------------------------------------------------------- variables
    def get_var(self, name: str, default: Any = None) -> Any:
        """Return variable ``name`` (frozen, zero-copy) or ``default``."""
        return self._vars.get(name, default)

    def has_var(self, name: str) -> bool:
        """True if variable ``name`` is set (even to None)."""
        return name in self._vars

    def set_var(self, name: str, value: Any) -> None:
        """Set variable ``name`` to a frozen copy of ``value`` (visible only through this handle)."""
        _check_key("variable", name)
        frozen = _freeze(value, name, 0)
        with _lock:
            if self._owned & 1:
                dict.__setitem__(self._vars, name, frozen)
            else:
                d = FrozenDict(self._vars)
                dict.__setitem__(d, name, frozen)
                self._vars = d
                self._owned |= 1

    def delete_var(self, name: str) -> None:
        """Remove variable ``name``; KeyError if it is not set."""
        with _lock:
            if name not in self._vars:
                raise KeyError(name)
            if self._owned & 1:
                dict.__delitem__(self._vars, name)
            else:
                d = FrozenDict(self._vars)
                dict.__delitem__(d, name)
                self._vars = d
                self._owned |= 1

    # ----------------------------------------------------------------- task results / system
    def get_task_result(self, name: str, default: Any = None) -> Any:
        """Return the result stored for task ``name`` or ``default``."""
        return self._results.get(name, default)

    def set_task_result(self, name: str, value: Any) -> None:
        """Store a frozen copy of ``value`` as the result of task ``name``."""
        _check_key("task name", name)
        frozen = _freeze(value, name, 0)
        with _lock:
            if self._owned & 2:
                dict.__setitem__(self._results, name, frozen)
            else:
                d = FrozenDict(self._results)
                dict.__setitem__(d, name, frozen)
                self._results = d
                self._owned |= 2

    def set_system(self, key: str, value: Any) -> None:
        """Set system value ``key`` (execution id, timestamps, ...)."""
        _check_key("system key", key)
        frozen = _freeze(value, key, 0)
        with _lock:
            if self._owned & 4:
                dict.__setitem__(self._system, key, frozen)
            else:
                d = FrozenDict(self._system)
                dict.__setitem__(d, key, frozen)
                self._system = d
                self._owned |= 4

    # ----------------------------------------------------------------- O(1) derivation
    def clone(self) -> Context:
        """Return a new handle over the same data in O(1); later writes are isolated."""
        new = Context.__new__(Context)
        with _lock:
            new._params = self._params
            new._vars = self._vars
            new._results = self._results
            new._system = self._system
            new._item = self._item
            new._index = self._index
            new._owned = 0
            self._owned = 0
            _stats["clones"] += 1
        return new

    def with_item(self, item: Any, index: int) -> Context:
        """Return a clone whose ``item`` / ``index`` are set (O(1) for an already-frozen item)."""
        index = _check_index(index)
        frozen = _freeze(item, "item", 0)
        new = Context.__new__(Context)
        with _lock:
            new._params = self._params
            new._vars = self._vars
            new._results = self._results
            new._system = self._system
            new._item = frozen
            new._index = index
            new._owned = 0
            self._owned = 0
            _stats["items"] += 1
        return new

    def merge(self, other: Context) -> Context:
        """Return a new context for a join: ``other``'s variables, task results and system win.

        Parameters, item and index come from ``self``.  The cost grows with the number of keys,
        never with the bytes held (values are shared, not copied).
        """
        if not isinstance(other, Context):
            raise TypeError(f"merge() needs a Context, not {type(other).__name__!r}")
        new = Context.__new__(Context)
        with _lock:
            new._params = self._params
            new._vars = _merged(self._vars, other._vars)
            new._results = _merged(self._results, other._results)
            new._system = _merged(self._system, other._system)
            new._item = self._item
            new._index = self._index
            new._owned = 0
            self._owned = 0
            other._owned = 0
            _stats["merges"] += 1
        return new

    # ----------------------------------------------------------------- export / size
    def export(self) -> dict[str, Any]:
        """Return the whole context as plain JSON-compatible dicts and lists."""
        return {
            "parameters": thaw(self._params),
            "variables": thaw(self._vars),
            "task_results": thaw(self._results),
            "system": thaw(self._system),
            "item": thaw(self._item),
            "index": self._index,
        }

    @classmethod
    def from_export(cls, data: Mapping[str, Any]) -> Context:
        """Rebuild a context from :meth:`export` output (unknown keys are a ValueError)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"from_export() needs a mapping, not {type(data).__name__!r}")
        unknown = sorted(set(data) - _EXPORT_KEYS)
        if unknown:
            raise ValueError(f"from_export(): unknown key(s) {', '.join(map(repr, unknown))}")
        ctx = cls(
            data.get("parameters"), data.get("variables"), data.get("task_results"), data.get("system")
        )
        index = data.get("index")
        if index is None:
            if data.get("item") is not None:
                raise ValueError("from_export(): 'item' is set but 'index' is None")
        else:
            ctx._index = _check_index(index)
            ctx._item = _freeze(data.get("item"), "item", 0)
        return ctx

    def size(self) -> dict[str, Any]:
        """Keys and approximate bytes per namespace, computed on demand (O(bytes))."""
        out: dict[str, Any] = {}
        total = 0
        for ns, d in zip(_NAMESPACES, (self._params, self._vars, self._results, self._system)):
            b = _approx_bytes(d)
            out[ns] = {"keys": len(d), "bytes": b}
            total += b
        out["total_bytes"] = total
        return out

    # ----------------------------------------------------------------- templates
    def render_template(self, source: str) -> Any:
        """Render one template string against this context (see :class:`flowctx.Renderer`)."""
        from flowctx.render import default_renderer

        return default_renderer().render_template(source, self)

    def render_json(self, value: Any) -> Any:
        """Render every template string inside a JSON-like value against this context."""
        from flowctx.render import default_renderer

        return default_renderer().render_json(value, self)

    def evaluate_condition(self, source: str) -> bool:
        """Evaluate a condition (bare or ``{{ }}``-wrapped) against this context."""
        from flowctx.render import default_renderer

        return default_renderer().evaluate_condition(source, self)

    # ----------------------------------------------------------------- dunders
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Context):
            return NotImplemented
        return (
            self._params == other._params
            and self._vars == other._vars
            and self._results == other._results
            and self._system == other._system
            and self._item == other._item
            and self._index == other._index
        )

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.export(),))

    def __repr__(self) -> str:
        s = (
            f"<Context parameters={len(self._params)} variables={len(self._vars)} "
            f"task_results={len(self._results)} system={len(self._system)}"
        )
        if self._index is not None:
            s += f" index={self._index}"
        return s + ">"


def _rebuild(data: Mapping[str, Any]) -> Context:
    return Context.from_export(data)


def _merged(base: FrozenDict, top: FrozenDict) -> FrozenDict:
    if not top or base is top:
        return base
    if not base:
        return top
    d = FrozenDict(base)
    dict.update(d, top)
    return d


def _check_key(what: str, name: object) -> None:
    if type(name) is not str:
        raise TypeError(f"{what} must be a str, not {type(name).__name__!r}")


def _check_index(index: object) -> int:
    if type(index) is int:
        return index  # type: ignore[return-value]
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"index must be an int, not {type(index).__name__!r}")
    return int(index)
