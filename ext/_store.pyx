# cython: language_level=3
"""Compiled context store (built into ``flowctx._store``).

The twin ``flowctx._store_py`` is the reference: same public names, signatures, semantics and
error messages.  See its module docstring for the design (namespace-level copy-on-write over
shared FrozenDicts, O(1) clone / with_item, values frozen once on the way in).

Thread safety: every state change of a handle (the ownership bits and namespace pointers) happens
while holding the GIL with no Python code running in between, so concurrent use of one handle
never tears it; values are frozen before the handle is touched.
"""
from cpython.dict cimport PyDict_SetItem, PyDict_DelItem, PyDict_GetItemWithError, PyDict_Update, PyDict_Size, PyDict_Contains
from cpython.ref cimport PyObject
from collections.abc import Mapping
cimport cython

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


cdef class FrozenDict(dict):
    """A read-only ``dict``: reads are plain dict reads, every mutation raises TypeError."""

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

    def __reduce__(self):
        return (FrozenDict, (dict(self),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self):
        return f"FrozenDict({dict.__repr__(self)})"


class FrozenList(tuple):
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
    def __eq__(self, other):
        if isinstance(other, list):
            return tuple.__eq__(self, tuple(other))
        return tuple.__eq__(self, other)

    def __ne__(self, other):
        if isinstance(other, list):
            return tuple.__ne__(self, tuple(other))
        return tuple.__ne__(self, other)

    __hash__ = tuple.__hash__

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self):
        return f"FrozenList({list(self)!r})"


cdef object _type_error(str path, object value):
    return TypeError(
        f"value for {path!r} has unsupported type {type(value).__name__!r}: a context holds only "
        "JSON-like values (None, bool, int, float, str, list/tuple, dict with str keys)"
    )


cdef object _freeze(object value, str path, int depth):
    cdef type cls = type(value)
    cdef dict out
    cdef list items
    cdef Py_ssize_t i
    if value is None or cls is str or cls is int or cls is float or cls is bool:
        return value
    if cls is FrozenDict or cls is FrozenList:
        return value
    if depth > _MAX_DEPTH:
        raise ValueError(f"value for {path!r} is nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        out = {}
        for k, v in (<dict>value).items():
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
        items = []
        i = 0
        for v in value:
            items.append(_freeze(v, f"{path}[{i}]", depth + 1))
            i += 1
        return FrozenList(items)
    if isinstance(value, (str, int, float)):
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        return str(value)
    raise _type_error(path, value)


cpdef object freeze(object value, str name="value"):
    """Return a deeply read-only copy of a JSON-like value (already-frozen parts are reused).

    ``name`` is used in error messages to say which key held the offending value.
    """
    return _freeze(value, name, 0)


cpdef object thaw(object value):
    """Return plain, mutable ``dict`` / ``list`` copies of a (frozen) value."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in (<dict>value).items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


cdef FrozenDict _EMPTY = FrozenDict()
cdef Py_ssize_t _n_clones = 0
cdef Py_ssize_t _n_items = 0
cdef Py_ssize_t _n_merges = 0


def store_stats():
    """Process-wide counters: ``clones`` (clone()), ``items`` (with_item()), ``merges``."""
    return {"clones": _n_clones, "items": _n_items, "merges": _n_merges}


def reset_store_stats():
    """Set the process-wide counters back to zero."""
    global _n_clones, _n_items, _n_merges
    _n_clones = 0
    _n_items = 0
    _n_merges = 0


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
    return FrozenDict(out)


cdef Py_ssize_t _approx_bytes(object value):
    cdef Py_ssize_t n
    if value is None or value is True or value is False:
        return 1
    if isinstance(value, str):
        return len(<str>value) + 2
    if isinstance(value, (int, float)):
        return 8
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
    cdef FrozenDict d
    if base is None or top is None:
        _uninit()
    if not top or base is top:
        return base
    if not base:
        return top
    d = FrozenDict(base)
    PyDict_Update(d, top)
    return d


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
    # has None namespaces, so the C-API reads below check for that (_uninit) instead of crashing.

    def __init__(self, parameters=None, variables=None, task_results=None, system=None):
        self._params = _freeze_namespace("parameters", parameters)
        self._vars = _freeze_namespace("variables", variables)
        self._results = _freeze_namespace("task_results", task_results)
        self._system = _freeze_namespace("system", system)
        self._item = None
        self._index = None
        self._owned = (
            (OWN_VARS if self._vars is not variables and self._vars is not _EMPTY else 0)
            | (OWN_RESULTS if self._results is not task_results and self._results is not _EMPTY else 0)
            | (OWN_SYSTEM if self._system is not system and self._system is not _EMPTY else 0)
        )

    # ----------------------------------------------------------------- read-only views
    @property
    def parameters(self):
        """Workflow parameters (read-only mapping)."""
        return self._params

    @property
    def variables(self):
        """Workflow variables (read-only snapshot)."""
        self._owned &= ~OWN_VARS
        return self._vars

    @property
    def task_results(self):
        """Task results by task name (read-only snapshot)."""
        self._owned &= ~OWN_RESULTS
        return self._results

    @property
    def system(self):
        """System values (execution id, timestamps ...; read-only snapshot)."""
        self._owned &= ~OWN_SYSTEM
        return self._system

    @property
    def item(self):
        """The current with-items element, or None outside an item."""
        return self._item

    @property
    def index(self):
        """The current with-items index, or None outside an item."""
        return self._index

    # ----------------------------------------------------------------- variables
    def get_var(self, name, default=None):
        """Return variable ``name`` (frozen, zero-copy) or ``default``."""
        # PyDict_GetItemWithError, not PyDict_GetItem: an unhashable name must raise TypeError
        # (as dict.get does in the twin), not be swallowed into ``default``.
        if self._vars is None:
            _uninit()
        cdef PyObject* v = PyDict_GetItemWithError(self._vars, name)
        if v is NULL:
            return default
        return <object>v

    def has_var(self, name):
        """True if variable ``name`` is set (even to None)."""
        if self._vars is None:
            _uninit()
        return PyDict_Contains(self._vars, name) == 1

    def set_var(self, name, value):
        """Set variable ``name`` to a frozen copy of ``value`` (visible only through this handle)."""
        _check_key("variable", name)
        self._write(OWN_VARS, name, _freeze(value, name, 0), False)

    def delete_var(self, name):
        """Remove variable ``name``; KeyError if it is not set."""
        if self._vars is None:
            _uninit()
        if PyDict_Contains(self._vars, name) != 1:
            raise KeyError(name)
        self._write(OWN_VARS, name, None, True)

    cdef inline FrozenDict _ns(self, int bit):
        if bit == OWN_VARS:
            return self._vars
        if bit == OWN_RESULTS:
            return self._results
        return self._system

    cdef int _write(self, int bit, object key, object frozen, bint delete) except -1:
        # Write one key of one namespace: in place when this handle alone owns it, else into a
        # private copy (O(keys), never O(bytes)).  Copying allocates, an allocation can run a GC
        # pass, a GC pass can run a finalizer (Python code), and Python code can switch threads:
        # so the copy is installed only if no other thread replaced the namespace meanwhile,
        # otherwise we start over (without this a concurrent write could be lost).
        cdef FrozenDict base, d
        while True:
            base = self._ns(bit)
            if base is None:
                _uninit()
            if self._owned & bit:
                if delete:
                    PyDict_DelItem(base, key)
                else:
                    PyDict_SetItem(base, key, frozen)
                return 0
            d = FrozenDict(base)
            if delete:
                PyDict_DelItem(d, key)
            else:
                PyDict_SetItem(d, key, frozen)
            if self._ns(bit) is base and not (self._owned & bit):
                if bit == OWN_VARS:
                    self._vars = d
                elif bit == OWN_RESULTS:
                    self._results = d
                else:
                    self._system = d
                self._owned |= bit
                return 0

    # ----------------------------------------------------------------- task results / system
    def get_task_result(self, name, default=None):
        """Return the result stored for task ``name`` or ``default``."""
        if self._results is None:
            _uninit()
        cdef PyObject* v = PyDict_GetItemWithError(self._results, name)
        if v is NULL:
            return default
        return <object>v

    def set_task_result(self, name, value):
        """Store a frozen copy of ``value`` as the result of task ``name``."""
        _check_key("task name", name)
        self._write(OWN_RESULTS, name, _freeze(value, name, 0), False)

    def set_system(self, key, value):
        """Set system value ``key`` (execution id, timestamps, ...)."""
        _check_key("system key", key)
        self._write(OWN_SYSTEM, key, _freeze(value, key, 0), False)

    # ----------------------------------------------------------------- O(1) derivation
    cpdef Context clone(self):
        """Return a new handle over the same data in O(1); later writes are isolated."""
        global _n_clones
        cdef Context new = Context.__new__(Context)
        new._params = self._params
        new._vars = self._vars
        new._results = self._results
        new._system = self._system
        new._item = self._item
        new._index = self._index
        self._owned = 0
        _n_clones += 1
        return new

    cpdef Context with_item(self, item, index):
        """Return a clone whose ``item`` / ``index`` are set (O(1) for an already-frozen item)."""
        global _n_items
        index = _check_index(index)
        frozen = _freeze(item, "item", 0)
        cdef Context new = Context.__new__(Context)
        new._params = self._params
        new._vars = self._vars
        new._results = self._results
        new._system = self._system
        new._item = frozen
        new._index = index
        self._owned = 0
        _n_items += 1
        return new

    def merge(self, other):
        """Return a new context for a join: ``other``'s variables, task results and system win.

        Parameters, item and index come from ``self``.  The cost grows with the number of keys,
        never with the bytes held (values are shared, not copied).
        """
        global _n_merges
        if not isinstance(other, Context):
            raise TypeError(f"merge() needs a Context, not {type(other).__name__!r}")
        cdef Context o = <Context>other
        cdef Context new = Context.__new__(Context)
        new._params = self._params
        new._vars = _merged(self._vars, o._vars)
        new._results = _merged(self._results, o._results)
        new._system = _merged(self._system, o._system)
        new._item = self._item
        new._index = self._index
        self._owned = 0
        o._owned = 0
        _n_merges += 1
        return new

    # ----------------------------------------------------------------- export / size
    def export(self):
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
            ctx._index = _check_index(index)
            ctx._item = _freeze(data.get("item"), "item", 0)
        return ctx

    def size(self):
        """Keys and approximate bytes per namespace, computed on demand (O(bytes))."""
        out = {}
        cdef Py_ssize_t total = 0, b
        for ns, d in zip(_NAMESPACES, (self._params, self._vars, self._results, self._system)):
            b = _approx_bytes(d)
            out[ns] = {"keys": len(d), "bytes": b}
            total += b
        out["total_bytes"] = total
        return out

    # ----------------------------------------------------------------- templates
    def render_template(self, source):
        """Render one template string against this context (see :class:`flowctx.Renderer`)."""
        from flowctx.render import default_renderer

        return default_renderer().render_template(source, self)

    def render_json(self, value):
        """Render every template string inside a JSON-like value against this context."""
        from flowctx.render import default_renderer

        return default_renderer().render_json(value, self)

    def evaluate_condition(self, source):
        """Evaluate a condition (bare or ``{{ }}``-wrapped) against this context."""
        from flowctx.render import default_renderer

        return default_renderer().evaluate_condition(source, self)

    # ----------------------------------------------------------------- dunders
    def __eq__(self, other):
        if not isinstance(other, Context):
            return NotImplemented
        cdef Context o = <Context>other
        return (
            self._params == o._params
            and self._vars == o._vars
            and self._results == o._results
            and self._system == o._system
            and self._item == o._item
            and self._index == o._index
        )

    def __ne__(self, other):
        r = self.__eq__(other)
        if r is NotImplemented:
            return r
        return not r

    __hash__ = None

    def __reduce__(self):
        return (_rebuild, (self.export(),))

    def __repr__(self):
        s = (
            f"<Context parameters={len(self._params)} variables={len(self._vars)} "
            f"task_results={len(self._results)} system={len(self._system)}"
        )
        if self._index is not None:
            s += f" index={self._index}"
        return s + ">"


def _rebuild(data):
    return Context.from_export(data)
