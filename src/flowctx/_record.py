"""``record``: flowctx's value classes, dataclasses that cost no code generation at import.

On CPython 3.10-3.13 ``@dataclass`` writes the source of ``__init__``, ``__repr__``, ``__eq__``,
``__hash__`` and, for a frozen class, ``__setattr__`` / ``__delattr__``, and compiles it at import:
~0.1-0.2 ms per method on this project's machines, 1-2 ms per class, ~20 ms for the 21 classes a
``flowctx run`` defines -- a fifth of what ``import jinja2, yaml`` costs (the cold-start bar of the
engine-overhead issue).  ``record`` makes the same class without compiling anything: the class is
still a real dataclass (``dataclasses.fields``, ``replace``, ``asdict``, ``is_dataclass`` work, the
``Field`` objects are dataclasses' own), made with ``init=False, repr=False, eq=False``, and the
methods dataclasses would have generated are shared functions that read the fields' plan from
the class.  Their behaviour is dataclasses': positional and keyword arguments, defaults and
``default_factory``, ``__post_init__``, the ``TypeError`` messages of a bad call, ``repr`` of the
fields with ``repr=True`` (recursion shown as ``...``), equality by the fields with
``compare=True`` between instances of the same class, the hash of a frozen class by its compare
fields, ``FrozenInstanceError`` on assignment, and pickling / copying of frozen slotted classes.
``tests/test_record.py`` checks each of these against ``@dataclass``.

The price is the call: the shared ``__init__`` loops over the fields (~2.4 µs for six fields
against ~1.5 µs generated), so the classes made for every action call (``ActionCall``,
``Outcome``, ``TaskScope``) write their ``__init__`` out in the class body, which ``record``
keeps (as ``@dataclass`` does).  Type checkers see ``dataclasses.dataclass`` itself (below), so
constructor calls are checked as before.  ``inspect.signature`` of a record class with the
shared ``__init__`` shows ``(*args, **kwargs)``.
"""
from __future__ import annotations

import dataclasses
import reprlib
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

__all__ = ["record"]

_T = TypeVar("_T")
_MISSING: Any = dataclasses.MISSING
_REQUIRED = object()  # a field with neither default nor default_factory
_FACTORY = object()  # marks the default_factory entry of a field's fill


def _plan(cls: type) -> None:
    """Works out once what the shared methods read: init names and fills, repr / compare / hash
    names, and whether ``__post_init__`` is to be called."""
    init_names: list[str] = []
    fills: list[tuple[object, Any]] = []  # (None, default) / (_FACTORY, factory) / (_REQUIRED, None)
    repr_names: list[str] = []
    compare_names: list[str] = []
    hash_names: list[str] = []
    later: list[tuple[Callable[[Any, Any], None], object, Any]] = []  # init=False fields with a default
    initvar = getattr(dataclasses, "_FIELD_INITVAR", None)
    for f in cls.__dataclass_fields__.values():  # type: ignore[attr-defined]
        # what the shared __init__ does not do: refused at definition, not misbehaving later
        if f._field_type is initvar:
            raise TypeError(f"record {cls.__qualname__}: InitVar fields are not supported ({f.name!r})")
        if getattr(f, "kw_only", False) is True:
            raise TypeError(f"record {cls.__qualname__}: keyword-only fields are not supported ({f.name!r})")
    for f in dataclasses.fields(cls):
        if not f.init:
            if f.default is not _MISSING:
                later.append((_putter(cls, f.name), None, f.default))
            elif f.default_factory is not _MISSING:
                later.append((_putter(cls, f.name), _FACTORY, f.default_factory))
        if f.init:
            init_names.append(f.name)
            if f.default is not _MISSING:
                fills.append((None, f.default))
            elif f.default_factory is not _MISSING:
                fills.append((_FACTORY, f.default_factory))
            else:
                if fills and fills[-1][0] is not _REQUIRED:
                    raise TypeError(f"non-default argument {f.name!r} follows default argument")
                fills.append((_REQUIRED, None))
        if f.repr:
            repr_names.append(f.name)
        if f.compare:
            compare_names.append(f.name)
        if f.hash if f.hash is not None else f.compare:
            hash_names.append(f.name)
    # how each init field is set: a slot's own setter (a member descriptor's ``__set__``: 2-3x
    # faster than ``object.__setattr__``, which a frozen class needs to get past its
    # ``__setattr__``), else ``object.__setattr__`` by name
    puts = tuple(_putter(cls, name) for name in init_names)
    cls._flowctx_set = puts  # type: ignore[attr-defined]  # written-out __init__s use it too
    cls._flowctx_record = _Plan(  # type: ignore[attr-defined]
        cls, tuple(init_names), tuple(fills), tuple(repr_names), tuple(compare_names), tuple(hash_names),
        tuple(f.name for f in dataclasses.fields(cls)), getattr(cls, "__post_init__", None) is not None,
        tuple(later),
    )


class _Plan:
    """What the shared methods of one record class read (``cls._flowctx_record``)."""

    __slots__ = ("owner", "init_names", "fills", "repr_names", "compare_names", "hash_names", "field_names",
                 "field_set", "post_init", "later")

    def __init__(self, owner: type, init_names: tuple[str, ...], fills: tuple[tuple[object, Any], ...],
                 repr_names: tuple[str, ...], compare_names: tuple[str, ...], hash_names: tuple[str, ...],
                 field_names: tuple[str, ...], post_init: bool,
                 later: tuple[tuple[Callable[[Any, Any], None], object, Any], ...]) -> None:
        self.owner = owner  # the record class itself (a plain subclass inherits the plan)
        self.init_names = init_names
        self.fills = fills
        self.repr_names = repr_names
        self.compare_names = compare_names
        self.hash_names = hash_names
        self.field_names = field_names
        self.field_set = frozenset(field_names)
        self.post_init = post_init
        self.later = later  # (setter, _FACTORY or None, value) of each init=False field with a default


def _putter(cls: type, name: str) -> Callable[[Any, Any], None]:
    slot = cls.__dict__.get(name)
    if isinstance(slot, types.MemberDescriptorType):
        put: Callable[[Any, Any], None] = slot.__set__
        return put

    def put_attribute(obj: Any, value: Any) -> None:
        object.__setattr__(obj, name, value)

    return put_attribute


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    plan = cls._flowctx_record
    names, fills = plan.init_names, plan.fills
    given = len(args)
    if given > len(names):
        required = sum(1 for kind, _ in fills if kind is _REQUIRED) + 1  # and self
        takes = f"from {required} to {len(names) + 1}" if required <= len(names) else str(required)
        raise TypeError(
            f"{cls.__qualname__}.__init__() takes {takes} positional argument{'s' if takes != '1' else ''} "
            f"but {given + 1} were given"
        )
    puts = cls._flowctx_set
    for put, value in zip(puts, args):
        put(self, value)
    if kwargs:
        for name in names[:given]:
            if name in kwargs:
                raise TypeError(f"{cls.__qualname__}.__init__() got multiple values for argument {name!r}")
    missing = []
    for i in range(given, len(names)):
        name = names[i]
        if name in kwargs:
            value = kwargs.pop(name)
        else:
            kind, value = fills[i]
            if kind is _FACTORY:
                value = value()
            elif kind is _REQUIRED:
                missing.append(name)
                continue
        puts[i](self, value)
    if missing:  # worded as CPython words it
        quoted = [repr(n) for n in missing]
        listed = quoted[0] if len(quoted) == 1 else (
            " and ".join(quoted) if len(quoted) == 2 else ", ".join(quoted[:-1]) + ", and " + quoted[-1]
        )
        raise TypeError(
            f"{cls.__qualname__}.__init__() missing {len(missing)} required positional "
            f"argument{'s' if len(missing) > 1 else ''}: {listed}"
        )
    if kwargs:
        name = next(iter(kwargs))
        raise TypeError(f"{cls.__qualname__}.__init__() got an unexpected keyword argument {name!r}")
    for put, kind, value in plan.later:
        put(self, value() if kind is _FACTORY else value)
    if plan.post_init:
        self.__post_init__()


@reprlib.recursive_repr()
def _repr(self: Any) -> str:
    cls = type(self)
    fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in cls._flowctx_record.repr_names)
    return f"{cls.__qualname__}({fields})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    names = self._flowctx_record.compare_names
    return tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)


def _hash(self: Any) -> int:
    return hash(tuple(getattr(self, n) for n in self._flowctx_record.hash_names))


def _frozen_owner(self: Any, name: str, verb: str) -> Any:
    """dataclasses' rule: the record's own instances and its fields are frozen; a plain subclass
    may set and delete attributes of its own (returns the record class to defer to)."""
    plan = self._flowctx_record
    if type(self) is plan.owner or name in plan.field_set:
        raise dataclasses.FrozenInstanceError(f"cannot {verb} field {name!r}")
    return plan.owner


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    owner = _frozen_owner(self, name, "assign to")
    super(owner, self).__setattr__(name, value)


def _frozen_delattr(self: Any, name: str) -> None:
    owner = _frozen_owner(self, name, "delete")
    super(owner, self).__delattr__(name)


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, name) for name in self._flowctx_record.field_names]


def _setstate(self: Any, state: list[Any]) -> None:
    for name, value in zip(self._flowctx_record.field_names, state):
        object.__setattr__(self, name, value)


def _install(cls: type, name: str, value: Any) -> None:
    """Sets a generated method unless the class body wrote its own (as ``@dataclass`` does)."""
    if name not in cls.__dict__:
        setattr(cls, name, value)


def _record(
    cls: type | None = None, /, *, frozen: bool = False, eq: bool = True, slots: bool = False
) -> Any:
    def wrap(cls: type) -> type:
        own_hash = "__hash__" in cls.__dict__ and cls.__dict__["__hash__"] is not None
        if frozen and ("__setattr__" in cls.__dict__ or "__delattr__" in cls.__dict__):
            raise TypeError(f"frozen record {cls.__qualname__} cannot define __setattr__ / __delattr__")
        cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False, slots=slots)
        # what the class does, as @dataclass would say it: a dataclass subclass reads it (a
        # frozen one refuses a base that says it is not frozen, a plain one one that is)
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        params.init, params.repr, params.eq, params.frozen = True, True, eq, frozen
        _plan(cls)
        _install(cls, "__init__", _init)
        _install(cls, "__repr__", _repr)
        if eq:
            _install(cls, "__eq__", _eq)
            if not own_hash:  # dataclasses' rule: eq and frozen -> hash by the fields; eq alone -> unhashable
                cls.__hash__ = _hash if frozen else None  # type: ignore[assignment]
        if frozen:
            cls.__setattr__ = _frozen_setattr  # type: ignore[method-assign,assignment]
            cls.__delattr__ = _frozen_delattr  # type: ignore[method-assign,assignment]
            if slots:  # unpickling / copying sets the slots without __setattr__
                _install(cls, "__getstate__", _getstate)
                _install(cls, "__setstate__", _setstate)
        return cls

    return wrap if cls is None else wrap(cls)


if TYPE_CHECKING:
    # type checkers know @dataclass: they see the constructor, fields and frozenness of a record
    from dataclasses import dataclass as record
else:
    record: Callable[..., Any] = _record
