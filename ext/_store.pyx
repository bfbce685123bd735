# cython: language_level=3
# cython: freethreading_compatible=True
"""Compiled context store (built into ``flowctx._store``).

The twin ``flowctx._store_py`` is the reference: same public names, signatures, semantics and
error messages.  See its module docstring for the design (namespace-level copy-on-write over
shared FrozenDicts, O(1) clone / with_item, values frozen once on the way in).

Frozen values
-------------
``FrozenDict`` is an extension type over a private ``dict`` (not a ``dict`` subclass, so no
unbound ``dict`` method applies to it); ``FrozenList`` is a ``tuple`` subclass (tuples have no
mutators) whose type is made immutable (no attribute of the class can be replaced, no
``__class__`` assignment).  Both freeze what they are built from, so a frozen container only ever
holds frozen containers and scalars: values are acyclic, and the store keeps them out of the
cyclic garbage collector (``FrozenDict`` is a non-GC type, its private dict and every
``FrozenList`` are untracked once built), so a full collection does not walk a large context.

Thread safety
-------------
Every read or change of a handle's state (the ownership bits and the namespace pointers) runs in
a critical section on the handle (``cython.critical_section``: a per-object lock on free-threaded
CPython, nothing on a GIL build, where the GIL already makes each of these sections atomic: no
Python code runs inside them).  The process-wide counters are updated atomically on
free-threaded builds.  Values are frozen before the handle is touched, and a frozen value is
immutable, so reading one needs no lock.
"""
from cpython.dict cimport PyDict_SetItem, PyDict_DelItem, PyDict_GetItemWithError, PyDict_Update, PyDict_Contains, PyDict_Copy, PyDict_Next
from cpython.ref cimport PyObject, Py_INCREF
from cpython.object cimport PyTypeObject
from collections.abc import Mapping
from collections.abc import ItemsView as _ItemsView, KeysView as _KeysView, MappingView as _MappingView, ValuesView as _ValuesView
cimport cython

cdef extern from *:
    """
    #if defined(Py_GIL_DISABLED)
      #if defined(_MSC_VER)
        #include <intrin.h>
        #define FLOWCTX_INC(x) _InterlockedExchangeAdd64((volatile __int64 *)&(x), 1)
        #define FLOWCTX_LOAD(x) _InterlockedExchangeAdd64((volatile __int64 *)&(x), 0)
        #define FLOWCTX_STORE0(x) _InterlockedExchange64((volatile __int64 *)&(x), 0)
      #else
        #define FLOWCTX_INC(x) __atomic_fetch_add(&(x), 1, __ATOMIC_RELAXED)
        #define FLOWCTX_LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
        #define FLOWCTX_STORE0(x) __atomic_store_n(&(x), 0, __ATOMIC_RELAXED)
      #endif
    #else
      #define FLOWCTX_INC(x) ((x)++)
      #define FLOWCTX_LOAD(x) (x)
      #define FLOWCTX_STORE0(x) ((x) = 0)
    #endif

    static void flowctx_untrack(PyObject *o) {
        if (PyObject_GC_IsTracked(o)) PyObject_GC_UnTrack(o);
    }

    /* a ``cls`` (tuple subtype) instance holding the items of the list ``items`` */
    static PyObject *flowctx_tuple_new(PyObject *cls, PyObject *items) {
        PyObject *args = PyTuple_Pack(1, items);
        PyObject *r;
        if (args == NULL) return NULL;
        r = PyTuple_Type.tp_new((PyTypeObject *)cls, args, NULL);
        Py_DECREF(args);
        return r;
    }

    static int flowctx_set_tp_new(PyObject *t, newfunc f) {
        ((PyTypeObject *)t)->tp_new = f;
        PyType_Modified((PyTypeObject *)t);
        return 0;
    }

    static int flowctx_make_immutable(PyObject *t) {
    #ifdef Py_TPFLAGS_IMMUTABLETYPE
        ((PyTypeObject *)t)->tp_flags |= Py_TPFLAGS_IMMUTABLETYPE;
        PyType_Modified((PyTypeObject *)t);
    #endif
        return 0;
    }
    """
    long long FLOWCTX_INC(long long x) nogil
    long long FLOWCTX_LOAD(long long x) nogil
    void FLOWCTX_STORE0(long long x) nogil
    void flowctx_untrack(object o)
    int flowctx_make_immutable(object t) except -1
    ctypedef PyObject* (*newfunc)(PyTypeObject*, PyObject*, PyObject*) except NULL
    object flowctx_tuple_new(object cls, list items)
    int flowctx_set_tp_new(object t, newfunc f) except -1

__all__ = [
    "Context",
    "FrozenDict",
    "FrozenList",
    "freeze",
    "thaw",
    "store_stats",
    "reset_store_stats",
]

cdef tuple _NAMESPACES = ("parameters", "variables", "task_results", "system")
cdef frozenset _EXPORT_KEYS = frozenset(_NAMESPACES + ("item", "index"))
cdef int _MAX_DEPTH = 500

cdef enum:
    OWN_VARS = 1
    OWN_RESULTS = 2
    OWN_SYSTEM = 4


def _readonly(self, *args, **kwargs):
    raise TypeError(f"'{type(self).__name__}' object is read-only (values in a flowctx context are frozen)")


# Shared by every FrozenDict built empty; never written (in-place writes happen only to a
# Context's private namespaces, which are always fresh dicts).
cdef dict _EMPTY_D = {}


@cython.freelist(64)
@cython.no_gc
@cython.binding(False)  # plain C methods: ``v.get(k)`` costs what ``dict.get`` does (a cyfunction: +20 ns)
cdef class FrozenDict:
    """A read-only mapping with ``str`` keys whose values are all frozen.

    Not a ``dict`` subclass: ``dict.__setitem__(frozen, ...)``, ``dict.update(frozen, ...)`` and
    every other unbound method of a mutable builtin refuse it (TypeError).  Building one freezes
    its contents (``FrozenDict({"a": []})["a"]`` is a FrozenList).  Compares equal to a ``dict``
    with equal items; ``|`` and ``copy()`` give plain dicts.
    """

    cdef dict _d

    def __cinit__(self, *args, **kwargs):
        if args or kwargs:
            self._d = _frozen_items(dict(*args, **kwargs), "value", 0)
        else:
            self._d = _EMPTY_D

    # ------------------------------------------------------------------ reads
    def __getitem__(self, key):
        return self._d[key]

    def __contains__(self, key):
        return key in self._d

    def __len__(self):
        return len(self._d)

    # Iterators and views never hold the private dict: ``gc.get_referents`` of a dict iterator
    # or a ``dict_keys`` view is the dict itself, which would make it writable.  They iterate a
    # tuple snapshot instead (immutable; the dict never changes, so the snapshot is exact).
    def __iter__(self):
        return iter(tuple(self._d))

    def __reversed__(self):
        return reversed(tuple(self._d))

    def get(self, key, default=None):
        return self._d.get(key, default)

    def keys(self):
        return _FrozenKeys(self)

    def values(self):
        return _FrozenValues(self)

    def items(self):
        return _FrozenItems(self)

    def copy(self):
        """A plain, shallow ``dict`` copy (its values are the frozen values)."""
        return dict(self._d)

    # ------------------------------------------------------------------ comparison, operators
    def __eq__(self, other):
        if isinstance(other, FrozenDict):
            return self._d == (<FrozenDict>other)._d
        if type(other) is dict:
            return self._d == other
        if isinstance(other, Mapping):  # a dict subclass too: its __eq__ never sees our dict
            return self._d == dict(other.items())
        return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None

    def __or__(self, other):
        if not isinstance(other, Mapping):
            return NotImplemented
        out = dict(self._d)
        out.update(other)
        return out

    def __ror__(self, other):
        if not isinstance(other, Mapping):
            return NotImplemented
        out = dict(other)
        out.update(self._d)
        return out

    # ------------------------------------------------------------------ refused mutators
    def __setitem__(self, key, value):
        _readonly(self)

    def __delitem__(self, key):
        _readonly(self)

    def __ior__(self, other):
        _readonly(self)

    def clear(self):
        _readonly(self)

    def pop(self, *args):
        _readonly(self)

    def popitem(self):
        _readonly(self)

    def setdefault(self, *args):
        _readonly(self)

    def update(self, *args, **kwargs):
        _readonly(self)

    # ------------------------------------------------------------------ copy, pickle, repr
    def __reduce__(self):
        return (FrozenDict, (dict(self._d),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self):
        return f"FrozenDict({self._d!r})"


Mapping.register(FrozenDict)


class _FrozenKeys(_KeysView):
    """``FrozenDict.keys()``: set-like, and holds the FrozenDict, never its private dict."""

    __slots__ = ()

    def __iter__(self):
        return iter(tuple((<FrozenDict>self._mapping)._d))

    def __repr__(self):
        return f"frozen_keys({list(self)!r})"


class _FrozenValues(_ValuesView):
    """``FrozenDict.values()``: holds the FrozenDict, never its private dict."""

    __slots__ = ()

    def __iter__(self):
        return iter(tuple((<FrozenDict>self._mapping)._d.values()))

    def __repr__(self):
        return f"frozen_values({list(self)!r})"


class _FrozenItems(_ItemsView):
    """``FrozenDict.items()``: set-like, holds the FrozenDict, never its private dict."""

    __slots__ = ()

    def __iter__(self):
        return iter(tuple((<FrozenDict>self._mapping)._d.items()))

    def __repr__(self):
        return f"frozen_items({list(self)!r})"


cdef inline FrozenDict _wrap(dict d):
    """A FrozenDict over ``d`` (its values already frozen; ``d`` is not copied)."""
    cdef FrozenDict o = FrozenDict.__new__(FrozenDict)
    o._d = d
    return o


class FrozenList(tuple):
    """A read-only sequence whose items are all frozen.

    A ``tuple`` subclass (tuples have no mutators, so no unbound builtin method can change one)
    that also refuses the list mutators with TypeError, compares equal to a ``list`` with equal
    items, and gives plain lists from ``+``, ``*`` and slicing, so ``ctx().seen + ['b']`` and
    ``['z'] + ctx().seen`` work as they do on lists.  Building one freezes its items.
    """

    __slots__ = ()

    def __new__(cls, iterable=()):
        return _frozen_list_of(cls, iterable)

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

    def __getitem__(self, index, /):
        if type(index) is slice:
            return list(_tuple_getitem(self, index))
        return _tuple_getitem(self, index)

    def __add__(self, other, /):
        if isinstance(other, (list, tuple)):
            return [*self, *other]
        return NotImplemented

    def __radd__(self, other, /):
        if isinstance(other, (list, tuple)):
            return [*other, *self]
        return NotImplemented

    def __mul__(self, n, /):
        if not hasattr(type(n), "__index__"):
            return NotImplemented
        return list(self) * n

    __rmul__ = __mul__

    # Equal to a list with equal items (as well as to a tuple), so that a stored list still
    # compares equal to the list it was made from, in user code and in templates.
    def __eq__(self, other, /):
        if isinstance(other, list):
            return _tuple_eq(self, tuple(other))
        return _tuple_eq(self, other)

    def __ne__(self, other, /):
        if isinstance(other, list):
            return _tuple_ne(self, tuple(other))
        return _tuple_ne(self, other)

    __hash__ = tuple.__hash__

    def __reduce__(self):
        return (FrozenList, (list(self),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self):
        return f"FrozenList({list(self)!r})"


cdef object _frozen_list_of(object cls, object iterable):
    """``cls(iterable)`` with every item frozen (the only way a FrozenList is built)."""
    cdef list items = []
    cdef Py_ssize_t i = 0
    for v in iterable:
        items.append(_freeze(v, f"value[{i}]", 1))
        i += 1
    fl = flowctx_tuple_new(cls, items)
    if cls is FrozenList:
        flowctx_untrack(fl)
    return fl


cdef PyObject* _frozen_list_tp_new(PyTypeObject* cls, PyObject* args, PyObject* kwds) except NULL:
    # FrozenList's tp_new: a C function (not the generic slot calling __new__), so that
    # ``tuple.__new__(FrozenList, [[]])`` is refused ("not safe") instead of building a frozen
    # list around a mutable one; ``FrozenList(x)`` comes here, ``FrozenList.__new__`` (pickle's
    # way) to the same _frozen_list_of.
    cdef tuple a = <tuple>args
    cdef object iterable = ()
    if kwds is not NULL and len(<dict>kwds):
        if len(<dict>kwds) != 1 or "iterable" not in <dict>kwds or len(a):
            raise TypeError("FrozenList() takes at most 1 argument, 'iterable'")
        iterable = (<dict>kwds)["iterable"]
    elif len(a) > 1:
        raise TypeError(f"FrozenList() takes at most 1 argument ({len(a)} given)")
    elif len(a) == 1:
        iterable = a[0]
    fl = _frozen_list_of(<object>cls, iterable)
    Py_INCREF(fl)
    return <PyObject*>fl


flowctx_set_tp_new(FrozenList, _frozen_list_tp_new)
flowctx_make_immutable(FrozenList)
_tuple_getitem = tuple.__getitem__
_tuple_eq = tuple.__eq__
_tuple_ne = tuple.__ne__


cdef inline object _new_list(list items):
    fl = flowctx_tuple_new(FrozenList, items)
    flowctx_untrack(fl)
    return fl


cdef object _type_error(str path, object value):
    return TypeError(
        f"value for {path!r} has unsupported type {type(value).__name__!r}: a context holds only "
        "JSON-like values (None, bool, int, float, str, list/tuple, dict with str keys)"
    )


cdef object _freeze(object value, str path, int depth):
    cdef type cls = type(value)
    cdef list items
    cdef Py_ssize_t i
    if value is None or cls is str or cls is int or cls is float or cls is bool:
        return value
    if cls is FrozenDict or cls is FrozenList:
        return value
    if depth > _MAX_DEPTH:
        raise ValueError(f"value for {path!r} is nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        return _wrap(_frozen_items(<dict>value, path, depth))
    if isinstance(value, Mapping):  # a FrozenDict subclass too: re-frozen as a FrozenDict
        return _freeze(dict(value.items()), path, depth)
    if isinstance(value, (list, tuple)):
        items = []
        i = 0
        for v in value:
            items.append(_freeze(v, f"{path}[{i}]", depth + 1))
            i += 1
        return _new_list(items)
    if isinstance(value, (str, int, float)):
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        return str(value)
    if isinstance(value, _MappingView):  # d.keys() / d.values() / d.items(): a list (items: pairs)
        return _freeze(list(value), path, depth)
    raise _type_error(path, value)


cdef dict _frozen_items(dict value, str path, int depth):
    """A new dict of ``value``'s items with str keys and frozen values (untracked by the GC)."""
    cdef dict out = {}
    if depth > _MAX_DEPTH:
        raise ValueError(f"value for {path!r} is nested more than {_MAX_DEPTH} levels deep")
    for k, v in value.items():
        if type(k) is not str:
            if not isinstance(k, str):
                raise TypeError(
                    f"key {k!r} in {path!r} has unsupported type {type(k).__name__!r}: "
                    "mapping keys must be str"
                )
            k = str(k)
        out[k] = _freeze(v, f"{path}.{k}", depth + 1)
    flowctx_untrack(out)
    return out


cpdef object freeze(object value, str name="value"):
    """Return a deeply read-only copy of a JSON-like value (already-frozen parts are reused).

    A mapping's ``keys()`` / ``values()`` / ``items()`` view is frozen as a list (of pairs for
    ``items()``), so ``publish: {k: "{{ ctx().d.keys() }}"}`` stores a list.

    ``name`` is used in error messages to say which key held the offending value.
    """
    return _freeze(value, name, 0)


cpdef object thaw(object value):
    """Return plain, mutable ``dict`` / ``list`` copies of a (frozen) value.

    Any mapping becomes a ``dict`` and any list or tuple a ``list`` (the other backend's frozen
    values included); other values are returned as they are.
    """
    return _thaw(value)


cdef object _thaw(object value):
    cdef type cls = type(value)
    if value is None or cls is str or cls is int or cls is float or cls is bool:
        return value
    if cls is FrozenDict:
        return _thaw_dict((<FrozenDict>value)._d)
    if cls is FrozenList or cls is list or cls is tuple:
        return _thaw_seq(value)
    if isinstance(value, dict):
        return _thaw_dict(<dict>value)
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    return value


cdef dict _thaw_dict(dict d):
    cdef dict out = {}
    cdef PyObject* k
    cdef PyObject* v
    cdef Py_ssize_t pos = 0
    cdef type cls
    while PyDict_Next(d, &pos, &k, &v):
        cls = type(<object>v)
        if cls is str or cls is int or cls is float or cls is bool or <object>v is None:
            PyDict_SetItem(out, <object>k, <object>v)
        else:
            PyDict_SetItem(out, <object>k, _thaw(<object>v))
    return out


cdef list _thaw_seq(object seq):
    # a list, a tuple or a FrozenList (a tuple): copied item by item into a new list
    cdef tuple t = tuple(seq) if type(seq) is list else <tuple>seq
    cdef Py_ssize_t i, n = len(t)
    cdef list out = [None] * n
    cdef object v
    cdef type cls
    for i in range(n):
        v = t[i]
        cls = type(v)
        if not (cls is str or cls is int or cls is float or cls is bool or v is None):
            v = _thaw(v)
        out[i] = v
    return out


cdef FrozenDict _EMPTY = FrozenDict()
cdef long long _n_clones = 0
cdef long long _n_items = 0
cdef long long _n_merges = 0


def store_stats():
    """Process-wide counters: ``clones`` (clone()), ``items`` (with_item()), ``merges``."""
    return {"clones": FLOWCTX_LOAD(_n_clones), "items": FLOWCTX_LOAD(_n_items), "merges": FLOWCTX_LOAD(_n_merges)}


def reset_store_stats():
    """Set the process-wide counters back to zero."""
    FLOWCTX_STORE0(_n_clones)
    FLOWCTX_STORE0(_n_items)
    FLOWCTX_STORE0(_n_merges)


cdef FrozenDict _freeze_namespace(str ns, object data):
    cdef dict out
    if data is None:
        return _EMPTY
    if type(data) is FrozenDict:
        return <FrozenDict>data
    if not isinstance(data, Mapping):
        raise TypeError(f"{ns} must be a mapping, not {type(data).__name__!r}")
    out = {}
    for k, v in data.items():
        if not isinstance(k, str):
            raise TypeError(f"key {k!r} in {ns} has unsupported type {type(k).__name__!r}: keys must be str")
        out[str(k)] = _freeze(v, str(k), 0)
    flowctx_untrack(out)
    return _wrap(out)


cdef Py_ssize_t _approx_bytes(object value):
    cdef Py_ssize_t n
    if value is None or value is True or value is False:
        return 1
    if isinstance(value, str):
        return len(<str>value) + 2
    if isinstance(value, (int, float)):
        return 8
    if isinstance(value, FrozenDict):
        value = (<FrozenDict>value)._d
    if isinstance(value, dict):
        n = 2
        for k, v in (<dict>value).items():
            n += len(k) + 3 + _approx_bytes(v)
        return n
    if isinstance(value, (list, tuple)):
        n = 2
        for v in value:
            n += 1 + _approx_bytes(v)
        return n
    return 8


cdef inline void _check_key(str what, object name) except *:
    if type(name) is not str:
        raise TypeError(f"{what} must be a str, not {type(name).__name__!r}")


cdef object _check_index(object index):
    if type(index) is int:
        return index
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"index must be an int, not {type(index).__name__!r}")
    return int(index)


cdef int _uninit() except -1:
    raise TypeError("Context is not initialized (made with Context.__new__ without __init__)")


cdef FrozenDict _merged(FrozenDict base, FrozenDict top):
    cdef dict d
    if base is None or top is None:
        _uninit()
    if not top._d or base is top:
        return base
    if not base._d:
        return top
    d = PyDict_Copy(base._d)
    PyDict_Update(d, top._d)
    return _wrap(d)


@cython.freelist(256)
@cython.no_gc
@cython.final
cdef class Context:
    """A workflow context handle with O(1), isolated clones.

    ``Context(parameters=None, variables=None, task_results=None, system=None)`` freezes the
    given mappings once.  Views (``.parameters`` ...) are read-only snapshots; ``clone()`` and
    ``with_item()`` are O(1); a write through one handle is never seen by another handle.
    """

    cdef FrozenDict _params
    cdef FrozenDict _vars
    cdef FrozenDict _results
    cdef FrozenDict _system
    cdef object _item
    cdef object _index
    cdef int _owned
    cdef object __weakref__

    # No __cinit__: clone() / with_item() / merge() set every field themselves, and a __cinit__
    # (run by every Context.__new__) cost ~8 ns of a ~70 ns clone (measured on the benchmark
    # machine).  The price: an object made by ``Context.__new__(Context)`` without ``__init__``
    # has None namespaces, so the reads below check for that (_uninit) instead of crashing.

    def __init__(self, parameters=None, variables=None, task_results=None, system=None):
        cdef FrozenDict p = _freeze_namespace("parameters", parameters)
        cdef FrozenDict v = _freeze_namespace("variables", variables)
        cdef FrozenDict r = _freeze_namespace("task_results", task_results)
        cdef FrozenDict y = _freeze_namespace("system", system)
        with cython.critical_section(self):
            self._params = p
            self._vars = v
            self._results = r
            self._system = y
            self._item = None
            self._index = None
            self._owned = (
                (OWN_VARS if v is not variables and v is not _EMPTY else 0)
                | (OWN_RESULTS if r is not task_results and r is not _EMPTY else 0)
                | (OWN_SYSTEM if y is not system and y is not _EMPTY else 0)
            )

    # ----------------------------------------------------------------- read-only views
    @property
    def parameters(self):
        """Workflow parameters (read-only mapping)."""
        with cython.critical_section(self):
            return self._params

    @property
    def variables(self):
        """Workflow variables (read-only snapshot)."""
        with cython.critical_section(self):
            self._owned &= ~OWN_VARS
            return self._vars

    @property
    def task_results(self):
        """Task results by task name (read-only snapshot)."""
        with cython.critical_section(self):
            self._owned &= ~OWN_RESULTS
            return self._results

    @property
    def system(self):
        """System values (execution id, timestamps ...; read-only snapshot)."""
        with cython.critical_section(self):
            self._owned &= ~OWN_SYSTEM
            return self._system

    @property
    def item(self):
        """The current with-items element, or None outside an item."""
        with cython.critical_section(self):
            return self._item

    @property
    def index(self):
        """The current with-items index, or None outside an item."""
        with cython.critical_section(self):
            return self._index

    # ----------------------------------------------------------------- variables
    def get_var(self, name, default=None):
        """Return variable ``name`` (frozen, zero-copy) or ``default``."""
        # PyDict_GetItemWithError, not PyDict_GetItem: an unhashable name must raise TypeError
        # (as dict.get does in the twin), not be swallowed into ``default``.
        cdef PyObject* v
        with cython.critical_section(self):
            if self._vars is None:
                _uninit()
            v = PyDict_GetItemWithError(self._vars._d, name)
            if v is NULL:
                return default
            return <object>v

    def has_var(self, name):
        """True if variable ``name`` is set (even to None)."""
        with cython.critical_section(self):
            if self._vars is None:
                _uninit()
            return PyDict_Contains(self._vars._d, name) == 1

    def set_var(self, name, value):
        """Set variable ``name`` to a frozen copy of ``value`` (visible only through this handle)."""
        _check_key("variable", name)
        frozen = _freeze(value, name, 0)
        with cython.critical_section(self):
            self._write(OWN_VARS, name, frozen, False)

    def delete_var(self, name):
        """Remove variable ``name``; KeyError if it is not set."""
        with cython.critical_section(self):
            if self._vars is None:
                _uninit()
            if PyDict_Contains(self._vars._d, name) != 1:
                raise KeyError(name)
            self._write(OWN_VARS, name, None, True)

    cdef inline FrozenDict _ns(self, int bit):
        if bit == OWN_VARS:
            return self._vars
        if bit == OWN_RESULTS:
            return self._results
        return self._system

    cdef int _write(self, int bit, object key, object frozen, bint delete) except -1:
        # Called in a critical section on self.  Write one key of one namespace: in place when
        # this handle alone owns it, else into a private copy (O(keys), never O(bytes)).
        # Copying allocates, an allocation can run a GC pass, a GC pass can run a finalizer
        # (Python code), and Python code can switch threads (or, free-threaded, suspend the
        # critical section): so the copy is installed only if no other thread replaced the
        # namespace meanwhile, otherwise we start over (without this a write could be lost).
        cdef FrozenDict base
        cdef FrozenDict fresh
        cdef dict d
        while True:
            base = self._ns(bit)
            if base is None:
                _uninit()
            if self._owned & bit:
                if delete:
                    PyDict_DelItem(base._d, key)
                else:
                    PyDict_SetItem(base._d, key, frozen)
                return 0
            d = PyDict_Copy(base._d)
            if delete:
                PyDict_DelItem(d, key)
            else:
                PyDict_SetItem(d, key, frozen)
            flowctx_untrack(d)
            # Wrapped before the check: building the FrozenDict runs its __cinit__, which may
            # allocate (and so switch threads) after the check passed; another thread's write
            # installed meanwhile would then be overwritten (seen once as a lost write in
            # tests/test_store_threads.py under load).
            fresh = _wrap(d)
            if self._ns(bit) is base and not (self._owned & bit):
                if bit == OWN_VARS:
                    self._vars = fresh
                elif bit == OWN_RESULTS:
                    self._results = fresh
                else:
                    self._system = fresh
                self._owned |= bit
                return 0

    # ----------------------------------------------------------------- task results / system
    def get_task_result(self, name, default=None):
        """Return the result stored for task ``name`` or ``default``."""
        cdef PyObject* v
        with cython.critical_section(self):
            if self._results is None:
                _uninit()
            v = PyDict_GetItemWithError(self._results._d, name)
            if v is NULL:
                return default
            return <object>v

    def set_task_result(self, name, value):
        """Store a frozen copy of ``value`` as the result of task ``name``."""
        _check_key("task name", name)
        frozen = _freeze(value, name, 0)
        with cython.critical_section(self):
            self._write(OWN_RESULTS, name, frozen, False)

    def set_system(self, key, value):
        """Set system value ``key`` (execution id, timestamps, ...)."""
        _check_key("system key", key)
        frozen = _freeze(value, key, 0)
        with cython.critical_section(self):
            self._write(OWN_SYSTEM, key, frozen, False)

    # ----------------------------------------------------------------- O(1) derivation
    cpdef Context clone(self):
        """Return a new handle over the same data in O(1); later writes are isolated."""
        cdef Context new = Context.__new__(Context)
        with cython.critical_section(self):
            new._params = self._params
            new._vars = self._vars
            new._results = self._results
            new._system = self._system
            new._item = self._item
            new._index = self._index
            self._owned = 0
        FLOWCTX_INC(_n_clones)
        return new

    cpdef Context with_item(self, item, index):
        """Return a clone whose ``item`` / ``index`` are set (O(1) for an already-frozen item)."""
        index = _check_index(index)
        frozen = _freeze(item, "item", 0)
        cdef Context new = Context.__new__(Context)
        with cython.critical_section(self):
            new._params = self._params
            new._vars = self._vars
            new._results = self._results
            new._system = self._system
            self._owned = 0
        new._item = frozen
        new._index = index
        FLOWCTX_INC(_n_items)
        return new

    def merge(self, other):
        """Return a new context for a join: ``other``'s variables, task results and system win.

        Parameters, item and index come from ``self``.  The cost grows with the number of keys,
        never with the bytes held (values are shared, not copied).
        """
        if not isinstance(other, Context):
            raise TypeError(f"merge() needs a Context, not {type(other).__name__!r}")
        cdef Context o = <Context>other
        cdef Context new = Context.__new__(Context)
        with cython.critical_section(self, o):
            new._params = self._params
            new._vars = _merged(self._vars, o._vars)
            new._results = _merged(self._results, o._results)
            new._system = _merged(self._system, o._system)
            new._item = self._item
            new._index = self._index
            self._owned = 0
            o._owned = 0
        FLOWCTX_INC(_n_merges)
        return new

    cdef tuple _fields(self):
        with cython.critical_section(self):
            self._owned = 0
            return (self._params, self._vars, self._results, self._system, self._item, self._index)

    # ----------------------------------------------------------------- export / size
    def export(self):
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
    def from_export(cls, data):
        """Rebuild a context from :meth:`export` output (unknown keys are a ValueError)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"from_export() needs a mapping, not {type(data).__name__!r}")
        unknown = sorted(set(data) - _EXPORT_KEYS)
        if unknown:
            raise ValueError(f"from_export(): unknown key(s) {', '.join(map(repr, unknown))}")
        cdef Context ctx = cls(
            data.get("parameters"), data.get("variables"), data.get("task_results"), data.get("system")
        )
        index = data.get("index")
        if index is None:
            if data.get("item") is not None:
                raise ValueError("from_export(): 'item' is set but 'index' is None")
        else:
            index = _check_index(index)
            item = _freeze(data.get("item"), "item", 0)
            with cython.critical_section(ctx):
                ctx._index = index
                ctx._item = item
        return ctx

    def size(self):
        """Keys and approximate bytes per namespace, computed on demand (O(bytes))."""
        out = {}
        cdef Py_ssize_t total = 0, b
        fields = self._fields()
        for ns, d in zip(_NAMESPACES, fields[:4]):
            if d is None:
                _uninit()
            b = _approx_bytes(d)
            out[ns] = {"keys": len(d), "bytes": b}
            total += b
        out["total_bytes"] = total
        return out

    # ----------------------------------------------------------------- dunders
    def __eq__(self, other):
        if not isinstance(other, Context):
            return NotImplemented
        return self._fields() == (<Context>other)._fields()

    def __ne__(self, other):
        r = self.__eq__(other)
        if r is NotImplemented:
            return r
        return not r

    __hash__ = None

    def __reduce__(self):
        return (_rebuild, (self.export(),))

    def __repr__(self):
        p, v, r, y, item, index = self._fields()
        if p is None:
            _uninit()
        s = f"<Context parameters={len(p)} variables={len(v)} task_results={len(r)} system={len(y)}"
        if index is not None:
            s += f" index={index}"
        return s + ">"


def _rebuild(data):
    return Context.from_export(data)
