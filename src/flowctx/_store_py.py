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
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, MappingView, ValuesView
from typing import TYPE_CHECKING, Any, NoReturn, SupportsIndex, cast, final

if TYPE_CHECKING:
    # Statically a Mapping, as the stub declares; at run time a plain class registered with
    # Mapping below (no ABC mixins: every method is its own).
    _MappingBase = Mapping[str, Any]
else:
    _MappingBase = object

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


def _no_class_assignment(self: object, value: object) -> NoReturn:
    raise TypeError(f"'{type(self).__name__}' object is read-only: its __class__ cannot be changed")


class FrozenDict(_MappingBase):
    """A read-only mapping with ``str`` keys whose values are all frozen.

    Not a ``dict`` subclass: ``dict.__setitem__(frozen, ...)``, ``dict.update(frozen, ...)`` and
    every other unbound method of a mutable builtin refuse it (TypeError).  Building one freezes
    its contents (``FrozenDict({"a": []})["a"]`` is a FrozenList).  Compares equal to a ``dict``
    with equal items; ``|`` and ``copy()`` give plain dicts.

    Twin limits (pure Python cannot do better; the compiled store has none of these): the items
    live in a private ``dict`` reachable through the module's internals or ``gc.get_referents``,
    and instances are tracked by the cyclic garbage collector.
    """

    __slots__ = ("_d",)

    def __new__(cls, *args: Any, **kwargs: Any) -> FrozenDict:
        self = object.__new__(cls)
        _set_d(self, _frozen_items(dict(*args, **kwargs), "value", 0))
        return self

    # ------------------------------------------------------------------ reads
    def __getitem__(self, key: str, /) -> Any:
        return _get_d(self)[key]

    def __contains__(self, key: object, /) -> bool:
        return key in _get_d(self)

    def __len__(self) -> int:
        return len(_get_d(self))

    # Iterators and views never hold the private dict: ``gc.get_referents`` of a dict iterator
    # or a ``dict_keys`` view is the dict itself, which would make it writable.  They iterate a
    # tuple snapshot instead (immutable; the dict never changes, so the snapshot is exact).
    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_get_d(self)))

    def __reversed__(self) -> Iterator[str]:
        return reversed(tuple(_get_d(self)))

    def get(self, key: str, default: Any = None) -> Any:
        return _get_d(self).get(key, default)

    def keys(self) -> KeysView[str]:
        return _FrozenKeys(self)

    def values(self) -> ValuesView[Any]:
        return _FrozenValues(self)

    def items(self) -> ItemsView[str, Any]:
        return _FrozenItems(self)

    def copy(self) -> dict[str, Any]:
        """A plain, shallow ``dict`` copy (its values are the frozen values)."""
        return dict(_get_d(self))

    # ------------------------------------------------------------------ comparison, operators
    def __eq__(self, other: object, /) -> bool:
        if isinstance(other, FrozenDict):
            return _get_d(self) == _get_d(other)
        if type(other) is dict:
            return _get_d(self) == other
        if isinstance(other, Mapping):  # a dict subclass too: its __eq__ never sees our dict
            return _get_d(self) == dict(other.items())
        return NotImplemented

    def __ne__(self, other: object, /) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None  # type: ignore[assignment]  # unhashable, like the dict it stands for

    def __or__(self, other: object, /) -> dict[str, Any]:
        if not isinstance(other, Mapping):
            return NotImplemented
        out = dict(_get_d(self))
        out.update(other)
        return out

    def __ror__(self, other: object, /) -> dict[str, Any]:
        if not isinstance(other, Mapping):
            return NotImplemented
        out = dict(other)
        out.update(_get_d(self))
        return out

    # ------------------------------------------------------------------ refused mutators
    def __setitem__(self, key: str, value: Any, /) -> NoReturn:
        _readonly(self)

    def __delitem__(self, key: str, /) -> NoReturn:
        _readonly(self)

    def __ior__(self, other: object, /) -> NoReturn:
        _readonly(self)

    def clear(self) -> NoReturn:
        _readonly(self)

    def pop(self, *args: Any) -> NoReturn:
        _readonly(self)

    def popitem(self) -> NoReturn:
        _readonly(self)

    def setdefault(self, *args: Any) -> NoReturn:
        _readonly(self)

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _readonly(self)

    __class__ = property(lambda self: type(self), _no_class_assignment)

    # ------------------------------------------------------------------ copy, pickle, repr
    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(_get_d(self)),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __repr__(self) -> str:
        return f"FrozenDict({_get_d(self)!r})"


# The items slot is reached only through these two private accessors: with the descriptor gone
# from the class, ``object.__setattr__(frozen, "_d", ...)`` has nothing to set (AttributeError).
# ``__slots__`` goes too (the layout stays): the class then looks like the compiled extension
# type, a mapping with no visible storage (``mypy.stubtest`` checks one stub against both).
_get_d: Callable[[FrozenDict], dict[str, Any]] = FrozenDict.__dict__["_d"].__get__
_set_d: Callable[[FrozenDict, dict[str, Any]], None] = FrozenDict.__dict__["_d"].__set__
delattr(FrozenDict, "_d")
del FrozenDict.__slots__
Mapping.register(FrozenDict)


class _FrozenKeys(KeysView[str]):
    """``FrozenDict.keys()``: set-like, and holds the FrozenDict, never its private dict."""

    __slots__ = ()
    _mapping: FrozenDict  # set by MappingView.__init__ (not in typeshed)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_get_d(self._mapping)))

    def __repr__(self) -> str:
        return f"frozen_keys({list(self)!r})"


class _FrozenValues(ValuesView[Any]):
    """``FrozenDict.values()``: holds the FrozenDict, never its private dict."""

    __slots__ = ()
    _mapping: FrozenDict  # set by MappingView.__init__ (not in typeshed)

    def __iter__(self) -> Iterator[Any]:
        return iter(tuple(_get_d(self._mapping).values()))

    def __repr__(self) -> str:
        return f"frozen_values({list(self)!r})"


class _FrozenItems(ItemsView[str, Any]):
    """``FrozenDict.items()``: set-like, holds the FrozenDict, never its private dict."""

    __slots__ = ()
    _mapping: FrozenDict  # set by MappingView.__init__ (not in typeshed)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(tuple(_get_d(self._mapping).items()))

    def __repr__(self) -> str:
        return f"frozen_items({list(self)!r})"


def _wrap(d: dict[str, Any]) -> FrozenDict:
    """A FrozenDict over ``d`` (whose values must already be frozen; ``d`` is not copied)."""
    self = object.__new__(FrozenDict)
    _set_d(self, d)
    return self


class FrozenList(tuple[Any, ...]):
    """A read-only sequence whose items are all frozen.

    A ``tuple`` subclass (tuples have no mutators, so no unbound builtin method can change one)
    that also refuses the list mutators with TypeError, compares equal to a ``list`` with equal
    items, and gives plain lists from ``+``, ``*`` and slicing, so ``ctx().seen + ['b']`` and
    ``['z'] + ctx().seen`` work as they do on lists.  Building one freezes its items.
    """

    __slots__ = ()

    def __new__(cls, iterable: Iterable[Any] = ()) -> FrozenList:
        items = []
        i = 0
        for v in iterable:
            items.append(_freeze(v, f"value[{i}]", 1))
            i += 1
        return tuple.__new__(cls, items)

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

    def __getitem__(self, index: Any, /) -> Any:
        if type(index) is slice:
            return list(tuple.__getitem__(self, index))
        return tuple.__getitem__(self, index)

    # list results on purpose (see the class docstring), as the stub declares: not tuple-compatible
    def __add__(self, other: object, /) -> list[Any]:  # type: ignore[override]
        if isinstance(other, (list, tuple)):
            return [*self, *other]
        return NotImplemented

    def __radd__(self, other: object, /) -> list[Any]:
        if isinstance(other, (list, tuple)):
            return [*other, *self]
        return NotImplemented

    def __mul__(self, n: SupportsIndex, /) -> list[Any]:  # type: ignore[override]  # a list, as above
        if not hasattr(type(n), "__index__"):
            return NotImplemented
        return list(self) * n

    __rmul__ = __mul__  # type: ignore[assignment]  # a list, as above

    # Equal to a list with equal items (as well as to a tuple), so that a stored list still
    # compares equal to the list it was made from, in user code and in templates.
    def __eq__(self, other: object, /) -> bool:
        if isinstance(other, list):
            return tuple.__eq__(self, tuple(other))
        return tuple.__eq__(self, other)

    def __ne__(self, other: object, /) -> bool:
        if isinstance(other, list):
            return tuple.__ne__(self, tuple(other))
        return tuple.__ne__(self, other)

    __hash__ = tuple.__hash__

    __class__ = property(lambda self: type(self), _no_class_assignment)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList:
        return self

    def __repr__(self) -> str:
        return f"FrozenList({list(self)!r})"


_new_list = tuple.__new__


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
        return _wrap(_frozen_items(value, path, depth))
    if isinstance(value, Mapping):  # a FrozenDict subclass too: re-frozen as a FrozenDict
        return _freeze(dict(value.items()), path, depth)
    if isinstance(value, (list, tuple)):
        # Plain loops, not comprehensions: a comprehension is one more Python frame per level,
        # which would hit the recursion limit before the documented _MAX_DEPTH.
        items = []
        i = 0
        for v in value:
            items.append(_freeze(v, f"{path}[{i}]", depth + 1))
            i += 1
        return _new_list(FrozenList, items)
    if isinstance(value, (str, int, float)):  # subclasses (IntEnum, str subclasses): plain copy
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        return str(value)
    if isinstance(value, MappingView):  # d.keys() / d.values() / d.items(): a list (items: pairs)
        return _freeze(list(cast(Iterable[Any], value)), path, depth)  # typeshed's MappingView is not iterable
    raise _type_error(path, value)


def _frozen_items(value: dict[Any, Any], path: str, depth: int) -> dict[str, Any]:
    """A new dict of ``value``'s items with str keys and frozen values."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"value for {path!r} is nested more than {_MAX_DEPTH} levels deep")
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
    return out


def freeze(value: Any, name: str = "value") -> Any:
    """Return a deeply read-only copy of a JSON-like value (already-frozen parts are reused).

    A mapping's ``keys()`` / ``values()`` / ``items()`` view is frozen as a list (of pairs for
    ``items()``), so ``publish: {k: "{{ ctx().d.keys() }}"}`` stores a list.  ``name`` is used in error messages to say which key held the offending value.
    """
    return _freeze(value, name, 0)


def thaw(value: Any) -> Any:
    """Return plain, mutable ``dict`` / ``list`` copies of a (frozen) value.

    Any mapping becomes a ``dict`` and any list or tuple a ``list`` (the other backend's frozen
    values included); other values are returned as they are.
    """
    cls = type(value)
    if value is None or cls is str or cls is int or cls is float or cls is bool:
        return value
    if isinstance(value, (dict, FrozenDict, Mapping)):
        out = {}
        for k, v in (_get_d(value) if cls is FrozenDict else value).items():  # type: ignore[arg-type]  # cls is type(value)
            out[k] = thaw(v)
        return out
    if isinstance(value, (list, tuple)):
        items = []
        for v in value:
            items.append(thaw(v))
        return items
    return value


_EMPTY = _wrap({})
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
    return _wrap(out)


def _approx_bytes(value: Any) -> int:
    if value is None or value is True or value is False:
        return 1
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, (int, float)):
        return 8
    if isinstance(value, (dict, FrozenDict)):
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


@final
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
        return _get_d(self._vars).get(name, default)

    def has_var(self, name: str) -> bool:
        """True if variable ``name`` is set (even to None)."""
        return name in _get_d(self._vars)

    def set_var(self, name: str, value: Any) -> None:
        """Set variable ``name`` to a frozen copy of ``value`` (visible only through this handle)."""
        _check_key("variable", name)
        self._write(1, name, _freeze(value, name, 0), False)

    def delete_var(self, name: str) -> None:
        """Remove variable ``name``; KeyError if it is not set."""
        with _lock:
            if name not in _get_d(self._vars):
                raise KeyError(name)
            self._write_locked(1, name, None, True)

    def _write(self, bit: int, key: str, frozen: Any, delete: bool) -> None:
        with _lock:
            self._write_locked(bit, key, frozen, delete)

    def _write_locked(self, bit: int, key: str, frozen: Any, delete: bool) -> None:
        # One key of one namespace: in place when this handle alone owns it, else into a private
        # copy (O(keys), never O(bytes)).  The caller holds _lock.
        attr = _NS_ATTR[bit]
        if self._owned & bit:
            d = _get_d(getattr(self, attr))
        else:
            d = dict(_get_d(getattr(self, attr)))
            setattr(self, attr, _wrap(d))
            self._owned |= bit
        if delete:
            del d[key]
        else:
            d[key] = frozen

    # ----------------------------------------------------------------- task results / system
    def get_task_result(self, name: str, default: Any = None) -> Any:
        """Return the result stored for task ``name`` or ``default``."""
        return _get_d(self._results).get(name, default)

    def set_task_result(self, name: str, value: Any) -> None:
        """Store a frozen copy of ``value`` as the result of task ``name``."""
        _check_key("task name", name)
        self._write(2, name, _freeze(value, name, 0), False)

    def set_system(self, key: str, value: Any) -> None:
        """Set system value ``key`` (execution id, timestamps, ...)."""
        _check_key("system key", key)
        self._write(4, key, _freeze(value, key, 0), False)

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
    def _fields(self) -> tuple[Any, ...]:
        # A consistent snapshot of the handle; later writes through it copy (never in place),
        # so the snapshot can be read without the lock.
        with _lock:
            self._owned = 0
            return (self._params, self._vars, self._results, self._system, self._item, self._index)

    def export(self) -> dict[str, Any]:
        """Return the whole context as plain JSON-compatible dicts and lists."""
        p, v, r, y, item, index = self._fields()
        return {
            "parameters": thaw(p),
            "variables": thaw(v),
            "task_results": thaw(r),
            "system": thaw(y),
            "item": thaw(item),
            "index": index,
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
        for ns, d in zip(_NAMESPACES, self._fields()[:4]):
            b = _approx_bytes(d)
            out[ns] = {"keys": len(d), "bytes": b}
            total += b
        out["total_bytes"] = total
        return out

    # ----------------------------------------------------------------- dunders
    def __eq__(self, other: object, /) -> bool:
        if not isinstance(other, Context):
            return NotImplemented
        return self._fields() == other._fields()

    def __ne__(self, other: object, /) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

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
    d = dict(_get_d(base))
    d.update(_get_d(top))
    return _wrap(d)


_NS_ATTR = {1: "_vars", 2: "_results", 4: "_system"}


def _check_key(what: str, name: object) -> None:
    if type(name) is not str:
        raise TypeError(f"{what} must be a str, not {type(name).__name__!r}")


def _check_index(index: object) -> int:
    if type(index) is int:
        return index
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"index must be an int, not {type(index).__name__!r}")
    return int(index)
