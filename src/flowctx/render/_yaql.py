"""The YAQL front end (optional: needs the ``yaql`` package, ``pip install flowctx[yaql]``).

The context is never converted for YAQL: the workflow functions (``ctx()``, ``item()``,
``result()`` ...) read the frozen namespaces of the handle lazily, and ``$name`` look-ups go
through an overridden ``#get_context_data`` that resolves them on demand.  Values handed to YAQL
are the store's frozen mapping / tuple-subclass types, which YAQL's own collection functions accept
as they are.  Results that still hold frozen store values are returned without copying.
"""
from __future__ import annotations

import collections.abc  # noqa: F401  (yaql 3.x uses collections.abc without importing it)
import threading
from collections.abc import Mapping
from functools import partial
from sys import getsizeof
from typing import Any

from flowctx._backend import frozen_types
from flowctx._expressions import YAQL_RE, yaql_spans  # ``<% expr %>``: the rule the loader and validator share
from flowctx.render._functions import LimitError, Limits
from flowctx.render._guard import scope_local as _scope_tls
from flowctx.render._scope import MISSING, CtxView, ExpressionError, Scope

__all__ = ["YaqlFront", "split_yaql", "YAQL_RE"]

_SCOPE_KEY = "$__flowctx"
_NO_DATA: Mapping[str, Any] = {}  # a context without yaql's ``_data`` (scope_of)


def split_yaql(source: str) -> list[tuple[bool, str, int]]:
    """Split a string into (is_expression, text, offset) parts.  A ``<%`` with no ``%>`` after it
    is text (Orquesta: only complete ``<% %>`` are expressions)."""
    parts: list[tuple[bool, str, int]] = []
    pos = 0
    for start, end in yaql_spans(source):
        if start > pos:
            parts.append((False, source[pos:start], pos))
        parts.append((True, source[start + 2 : end - 2], start))
        pos = end
    if pos < len(source):
        parts.append((False, source[pos:], pos))
    return parts


class YaqlFront:
    """One YAQL engine and root context per renderer (built once; evaluation is per child)."""

    def __init__(self, limits: Limits, helpers: Mapping[str, Any], reserved: frozenset[str]) -> None:
        import yaql
        from yaql.language import exceptions, specs, utils, yaqltypes

        self.exceptions = exceptions
        self.limits = limits
        self._lock = threading.Lock()
        max_items = limits.max_size
        no_value = utils.NO_VALUE

        def out(obj: Any, frozen: tuple[type, ...], depth: int = 0) -> Any:
            if isinstance(obj, frozen) or obj is None or isinstance(obj, (str, int, float, bool)):
                return obj
            if depth > 200:
                raise LimitError("YAQL result is nested too deeply")
            if isinstance(obj, Mapping):
                return {out(k, frozen, depth + 1): out(v, frozen, depth + 1) for k, v in obj.items()}
            if isinstance(obj, (list, tuple, set, frozenset)) or utils.is_iterable(obj):
                res = []
                for i, v in enumerate(obj):
                    if i >= max_items:
                        raise LimitError(f"YAQL result has more than {max_items} items")
                    res.append(out(v, frozen, depth + 1))
                return res
            return obj

        @specs.name("#finalize")
        def finalize(obj: Any) -> Any:
            t = type(obj)
            if t is str or t is int or t is bool or t is float or obj is None:
                return obj  # what out() returns for them, without looking up the frozen types
            return out(obj, frozen_types())

        finalize._flowctx_finalize = True  # see _CallSites.statement

        _NOT_LAZY.update(t for t in (*frozen_types(), CtxView) if not hasattr(t, "__next__"))
        self.engine = yaql.factory.YaqlFactory().create(
            options={
                "yaql.limitIterators": max_items,
                "yaql.memoryQuota": 8 * limits.max_size + 4096,
                "yaql.convertInputData": False,
            }
        )
        # YAQL's own regex functions use stdlib ``re`` (not interruptible): flowctx registers
        # equivalents on the ``regex`` engine under the render's time limit (_register_regex).
        root = yaql.create_context(finalizer=finalize, delegates=False, regex=False)
        root = root.create_child_context()
        _register_regex(root, specs, yaqltypes)
        self.root = root

        def scope_of(context: Any) -> Scope:
            # the evaluation's own context holds it (YaqlFront.evaluate); a child looks it up
            scope: Scope | None = getattr(context, "_data", _NO_DATA).get(_SCOPE_KEY)
            if scope is None:
                scope = context[_SCOPE_KEY]
            return scope

        @specs.parameter("name", yaqltypes.StringConstant())
        @specs.name("#get_context_data")
        def get_context_data(name: str, context: Any) -> Any:
            if name == _SCOPE_KEY:  # the evaluation's own state (the scope), never a template's value
                raise ExpressionError(f"unknown name {name!r}")
            v = context.get_data(name, no_value)
            if v is not no_value:
                return v
            s = scope_of(context)
            key = name[1:]
            if key in ("", "1"):
                return s.fn_ctx()
            if key in reserved:
                v = s.lookup(key)
                if v is not MISSING:
                    return v
            raise ExpressionError(f"unknown name {name!r}")

        def reg(fn: Any, name: str, reads_scope: bool = True) -> None:
            # reads_scope: the function only reads the scope off its context (no child needed)
            if reads_scope:
                fn._flowctx_reads_scope = True
            root.register_function(fn, name=name)

        reg(get_context_data, "#get_context_data")
        reg(lambda context, key=None: scope_of(context).fn_ctx(key), "ctx")

        def item_(context: Any, key: Any = None) -> Any:
            return scope_of(context).fn_item(MISSING if key is None else key)

        reg(item_, "item")
        reg(lambda context: scope_of(context).fn_result(), "result")
        reg(lambda context: scope_of(context).fn_succeeded(), "succeeded")
        reg(lambda context: scope_of(context).fn_failed(), "failed")
        reg(lambda context: scope_of(context).fn_completed(), "completed")
        reg(lambda context: scope_of(context).fn_timed_out(), "timed_out")
        reg(lambda context, name=None, route=None: scope_of(context).fn_task_status(name, route), "task_status")

        def task_(context: Any, name: Any = None) -> Any:
            return scope_of(context).lookup("task")(name)

        reg(task_, "task")

        # Iteration sources are bounded: range() yields through the step/time budget, and the
        # unbounded generators of the standard library are disabled.
        @specs.parameter("stop", int)
        def range1(context: Any, stop: int) -> Any:
            return range3(context, 0, stop)

        @specs.parameter("start", int)
        @specs.parameter("stop", int)
        @specs.parameter("step", int)
        def range3(context: Any, start: int, stop: int, step: int = 1) -> Any:
            rng = range(start, stop, step)
            if len(rng) > max_items:
                raise LimitError(f"range() of {len(rng)} items exceeds the limit ({max_items})")
            return scope_of(context).loop(rng)

        reg(range1, "range")
        reg(range3, "range")

        def blocked(fname: str) -> Any:
            @specs.extension_method
            def fn(*args: Any) -> Any:
                raise ExpressionError(f"{fname}() is disabled in flowctx templates (unbounded iteration)")

            return fn

        for fname in ("sequence", "repeat", "cycle", "generate", "generateMany"):
            reg(blocked(fname), fname, False)

        def pow_(a: Any, b: Any, c: Any = None) -> Any:
            if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1 and c is None:
                if a.bit_length() * b > 64 * 1024:
                    raise LimitError("pow(): result too large")
            return pow(a, b) if c is None else pow(a, b, c)

        reg(pow_, "pow", False)

        # distinct(): YAQL hashes the members (or their keys); the store's frozen mappings are not
        # hashable, so compare a hashable copy of each key (what YAQL's own input conversion makes).
        @specs.parameter("collection", yaqltypes.Iterable())
        @specs.parameter("key_selector", yaqltypes.Lambda())
        @specs.extension_method
        def distinct(engine: Any, collection: Any, key_selector: Any = None) -> Any:
            seen: set[Any] = set()
            for t in collection:
                key = utils.convert_input_data(t if key_selector is None else key_selector(t))
                if key not in seen:
                    seen.add(key)
                    utils.limit_memory_usage(engine, (1, seen))
                    yield t

        reg(distinct, "distinct", False)

        # str(): YAQL shows a list as a tuple ("(1, 2)"), as it sees its own converted input; the
        # store's frozen values are shown the same way (not as "FrozenList([1, 2])").
        def yaql_view(v: Any, depth: int = 0) -> Any:
            if depth > 200:
                raise LimitError("str(): value is nested too deeply")
            if isinstance(v, Mapping):
                return {k: yaql_view(x, depth + 1) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return tuple(yaql_view(x, depth + 1) for x in v)
            return v

        @specs.parameter("value", nullable=True)
        def str_(value: Any) -> str:
            if value is None:
                return "null"
            if value is True:
                return "true"
            if value is False:
                return "false"
            if isinstance(value, (Mapping, list, tuple)):
                limits.check_value(value, "str()")
                return str(yaql_view(value))
            return str(value)

        reg(str_, "str", False)

        for hname, fn in helpers.items():
            reg(fn, hname, False)  # zip() is size-checked by the helper itself

        _guard_all_functions(root, limits)

        self.calls = _CallSites(self.root, self.engine)

    def parse(self, text: str) -> Any:
        parts = _split_top_level_commas(text)
        with self._lock:  # the ply parser is not thread-safe
            if len(parts) > 1:
                # `<% item(member), item(message) %>` (Orquesta's with-multi-items): a comma list
                # of expressions is a list of their values
                return _ExpressionList([self.calls.statement(self.engine(p)) for p in parts])
            return self.calls.statement(self.engine(text))

    def evaluate(self, expr: Any, scope: Scope) -> Any:
        child = self.root.create_child_context()
        child._data[_SCOPE_KEY] = scope  # child[_SCOPE_KEY] = scope (the key is a normalized name)
        return expr.evaluate(context=child)


# ---------------------------------------------------------------------- limits on every call
# result types that are no iterator (YaqlFront adds the store's frozen types and ctx()'s view)
_NOT_LAZY: set[type] = {int, float, bool, type(None), dict, list, tuple}


def _yaql_prechecks(limits: Limits) -> dict[str, Any]:
    """Name -> check(args) run before a YAQL function builds its result (size amplification)."""
    cap = limits.max_size
    fail = limits.fail

    def concat(args: tuple[Any, ...]) -> None:
        if sum(len(a) for a in args if isinstance(a, str)) > cap:
            raise fail("YAQL concat()")

    def mul(args: tuple[Any, ...]) -> None:
        if len(args) < 2:
            return
        a, b = args[0], args[1]
        if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool) and not isinstance(b, bool):
            if a.bit_length() + b.bit_length() > 64 * 1024:
                raise fail("YAQL multiplication")
        elif isinstance(a, str) and isinstance(b, int) and len(a) * b > cap:
            raise fail("YAQL string repetition")
        elif isinstance(b, str) and isinstance(a, int) and len(b) * a > cap:
            raise fail("YAQL string repetition")

    def plus(args: tuple[Any, ...]) -> None:
        if len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
            if len(args[0]) + len(args[1]) > cap:
                raise fail("YAQL concatenation")

    plus._flowctx_str_first = True  # type: ignore[attr-defined]  # a no-op unless args[0] is a str (_Site.choose)

    def replace(args: tuple[Any, ...]) -> None:
        if len(args) >= 3 and all(isinstance(a, str) for a in args[:3]):
            rest = tuple(a for a in args[3:4] if isinstance(a, int) and a >= 0)
            limits.check_str_method("replace", args[0], args[1:3] + rest, {})
        elif len(args) >= 3 and isinstance(args[0], str) and isinstance(args[2], Mapping):
            longest = max((len(limits.to_str(v)) for v in args[2].values()), default=1)
            if len(args[0]) * max(1, longest) > cap:
                raise fail("YAQL replace()")

    def str_(args: tuple[Any, ...]) -> None:
        if args:
            limits.check_value(args[0], "YAQL str()")

    def shift(args: tuple[Any, ...]) -> None:
        if len(args) >= 2 and isinstance(args[0], int) and isinstance(args[1], int):
            if args[0].bit_length() + args[1] > 64 * 1024:
                raise fail("YAQL shiftBitsLeft()")

    return {
        "concat": concat,
        "#operator_*": mul,
        "#operator_+": plus,
        "replace": replace,
        "str": str_,
        "shiftBitsLeft": shift,
    }


def _bounded_join(limits: Limits, payload: Any) -> Any:
    """YAQL join() that stops as soon as the text passes the cap (the sequence may be lazy)."""
    swapped = getattr(payload, "__name__", "") == "join_"  # separator.join(sequence)

    def join(a: Any, b: Any, str_delegate: Any) -> str:
        sequence, separator = (b, a) if swapped else (a, b)
        parts = []
        n = 0
        for x in sequence:
            s = str_delegate(x)
            n += len(s) + len(separator)
            if n > limits.max_size + len(separator):
                raise limits.fail("YAQL join()")
            parts.append(s)
        joined: str = separator.join(parts)
        return joined

    return join


def _guard_all_functions(root: Any, limits: Limits) -> None:
    """Wrap every function visible from ``root`` (YAQL's standard library and ours).

    Each call ticks the render's step/time budget, runs a size pre-check for the functions that
    can amplify their input, and refuses a string result above the cap -- so a YAQL reduction
    (``range(26).aggregate($1 * $1, 3)``) or a chain of ``+`` is bounded in both time and size.
    Function definitions are cloned (yaql may share them between contexts) and swapped in place.
    """
    from flowctx.render._guard import current_scope

    checks = _yaql_prechecks(limits)
    lazy_types: dict[type, bool] = {}  # result type -> whether it is an iterator (hasattr per call is slow)
    cap = limits.max_size
    approx = limits.approx_size

    def _capped(it: Any, name: str) -> Any:
        total = 0
        for x in it:
            total += len(x) if type(x) is str else approx(x, cap - total + 1)
            if total > cap:
                raise limits.fail(f"YAQL {name.lstrip('#')}()")
            yield x

    def wrap(fd: Any) -> Any:
        payload = fd.payload
        name = fd.name
        pre = checks.get(name)
        if name == "join":
            payload = _bounded_join(limits, payload)

        def post(res: Any) -> Any:
            # the checks on a result whose type is not in _NOT_LAZY
            t = type(res)
            if t is str:
                if len(res) > cap:
                    raise limits.fail(f"YAQL {name.lstrip('#')}()")
                return res
            lazy = lazy_types.get(t)
            if lazy is None:
                lazy = hasattr(t, "__next__")
                if len(lazy_types) < 1024:
                    lazy_types[t] = lazy
            # a lazy result (select, where, ...): what it yields is counted against the cap
            return _capped(res, name) if lazy else res

        def guarded(*args: Any, **kwargs: Any) -> Any:
            s = current_scope()
            if s is not None:
                s.tick()
            if pre is not None:
                pre(args)
            res = payload(*args, **kwargs)
            return res if type(res) in _NOT_LAZY else post(res)

        if getattr(payload, "_flowctx_reads_scope", False):
            guarded._flowctx_reads_scope = True  # type: ignore[attr-defined]
        guarded._flowctx_inner = payload  # type: ignore[attr-defined]  # which yaql function it guards
        # what a compiled call site needs to do guarded's work in its own frame (_Site.run)
        guarded._flowctx_unwrapped = (payload, post, pre)  # type: ignore[attr-defined]
        c = fd.clone()
        c.payload = guarded
        return c

    ctx = root
    seen = set()
    while ctx is not None and id(ctx) not in seen:
        seen.add(id(ctx))
        fns = getattr(ctx, "_functions", None)  # yaql.language.contexts.Context storage
        if isinstance(fns, dict):
            for fname, defs in list(fns.items()):
                if fname.startswith("#get_context_data") or fname == "#finalize":
                    continue
                fns[fname] = {wrap(fd) for fd in defs}
        ctx = getattr(ctx, "parent", None)


# ---------------------------------------------------------------------- regular expressions
def _register_regex(root: Any, specs: Any, yaqltypes: Any) -> None:
    """YAQL's regex functions (same names, signatures and results), on the ``regex`` engine with
    the render's remaining time as timeout (flowctx.render._guard)."""
    from flowctx.render import _guard

    rx_type = _guard.PATTERN_TYPE

    def compiled(pattern: Any) -> Any:
        return pattern if isinstance(pattern, rx_type) else _guard.rx_compile(pattern, 0)

    @specs.parameter("pattern", yaqltypes.String())
    def regex(pattern: str, ignore_case: bool = False, multi_line: bool = False, dot_all: bool = False) -> Any:
        flags = (
            (_guard.IGNORECASE if ignore_case else 0)
            | (_guard.MULTILINE if multi_line else 0)
            | (_guard.DOTALL if dot_all else 0)
        )
        return _guard.rx_compile(pattern, flags)

    @specs.parameter("regexp", rx_type)
    @specs.parameter("string", yaqltypes.String())
    @specs.method
    def matches(regexp: Any, string: str) -> bool:
        return _guard.rx_search(regexp, string) is not None

    @specs.parameter("string", yaqltypes.String())
    @specs.parameter("regexp", yaqltypes.String())
    @specs.method
    @specs.name("matches")
    def matches_(string: str, regexp: str) -> bool:
        return _guard.rx_search(regexp, string) is not None

    @specs.parameter("regexp", rx_type)
    @specs.parameter("string", yaqltypes.String())
    @specs.name("#operator_=~")
    def match_op_rx(string: str, regexp: Any) -> bool:
        return _guard.rx_search(regexp, string) is not None

    @specs.parameter("pattern", yaqltypes.String())
    @specs.parameter("string", yaqltypes.String())
    @specs.name("#operator_=~")
    def match_op_str(string: str, pattern: str) -> bool:
        return _guard.rx_search(pattern, string) is not None

    @specs.parameter("regexp", rx_type)
    @specs.parameter("string", yaqltypes.String())
    @specs.name("#operator_!~")
    def not_match_op_rx(string: str, regexp: Any) -> bool:
        return _guard.rx_search(regexp, string) is None

    @specs.parameter("pattern", yaqltypes.String())
    @specs.parameter("string", yaqltypes.String())
    @specs.name("#operator_!~")
    def not_match_op_str(string: str, pattern: str) -> bool:
        return _guard.rx_search(pattern, string) is None

    def publish(context: Any, m: Any) -> None:
        context["$1"] = {"value": m.group(), "start": m.start(0), "end": m.end(0)}
        for i, g in enumerate(m.groups(), 1):
            context["$" + str(i + 1)] = {"value": g, "start": m.start(i), "end": m.end(i)}
        for key, g in m.groupdict().items():
            context["$" + key] = {"value": g, "start": m.start(key), "end": m.end(key)}

    @specs.parameter("regexp", rx_type)
    @specs.parameter("string", yaqltypes.String())
    @specs.parameter("selector", yaqltypes.Lambda(with_context=True))
    @specs.method
    def search(context: Any, regexp: Any, string: str, selector: Any = None) -> Any:
        m = _guard.rx_search(regexp, string)
        if m is None:
            return None
        if selector is None:
            return m.group()
        child = context.create_child_context()
        publish(child, m)
        return selector(child)

    @specs.parameter("regexp", rx_type)
    @specs.parameter("string", yaqltypes.String())
    @specs.parameter("selector", yaqltypes.Lambda(with_context=True))
    @specs.method
    @specs.name("searchAll")
    def search_all(context: Any, regexp: Any, string: str, selector: Any = None) -> Any:
        for m in _guard.rx_finditer(regexp, string):
            if selector is None:
                yield m.group()
            else:
                child = context.create_child_context()
                publish(child, m)
                yield selector(child)

    @specs.parameter("regexp", rx_type)
    @specs.parameter("string", yaqltypes.String())
    @specs.parameter("max_split", int)
    @specs.method
    def split(regexp: Any, string: str, max_split: int = 0) -> Any:
        return _guard.rx_split(regexp, string, max_split)

    @specs.parameter("regexp", rx_type)
    @specs.parameter("string", yaqltypes.String())
    @specs.parameter("max_split", int)
    @specs.method
    @specs.name("split")
    def split_string(string: str, regexp: Any, max_split: int = 0) -> Any:
        return _guard.rx_split(regexp, string, max_split)

    def bounded_sub(regexp: Any, repl: Any, string: str, count: int) -> str:
        return _guard.rx_sub(compiled(regexp), repl, string, count)

    @specs.parameter("regexp", rx_type)
    @specs.parameter("string", yaqltypes.String())
    @specs.parameter("repl", yaqltypes.String())
    @specs.parameter("count", int)
    @specs.method
    def replace(regexp: Any, string: str, repl: str, count: int = 0) -> str:
        return bounded_sub(regexp, repl, string, count)

    @specs.parameter("regexp", rx_type)
    @specs.parameter("string", yaqltypes.String())
    @specs.parameter("repl", yaqltypes.String())
    @specs.parameter("count", int)
    @specs.method
    @specs.name("replace")
    def replace_string(string: str, regexp: Any, repl: str, count: int = 0) -> str:
        return bounded_sub(regexp, repl, string, count)

    @specs.parameter("regexp", rx_type)
    @specs.parameter("string", yaqltypes.String())
    @specs.parameter("repl", yaqltypes.Lambda(with_context=True))
    @specs.parameter("count", int)
    @specs.method
    @specs.name("replaceBy")
    def replace_by(context: Any, regexp: Any, string: str, repl: Any, count: int = 0) -> str:
        def fn(m: Any) -> str:
            child = context.create_child_context()
            publish(child, m)
            out: str = repl(child)
            return out

        return bounded_sub(regexp, fn, string, count)

    @specs.parameter("regexp", rx_type)
    @specs.parameter("string", yaqltypes.String())
    @specs.parameter("repl", yaqltypes.Lambda(with_context=True))
    @specs.parameter("count", int)
    @specs.method
    @specs.name("replaceBy")
    def replace_by_string(context: Any, string: str, regexp: Any, repl: Any, count: int = 0) -> str:
        out: str = replace_by(context, regexp, string, repl, count)  # replace_by is wrapped by yaql's untyped decorators
        return out

    @specs.parameter("string", yaqltypes.String())
    @specs.name("escapeRegex")
    def escape_regex(string: str) -> str:
        return _guard.rx_escape(string)

    @specs.name("isRegex")
    def is_regex(value: Any) -> bool:
        return isinstance(value, rx_type)

    for fn in (regex, matches, matches_, match_op_rx, match_op_str, not_match_op_rx, not_match_op_str, search,
               search_all, split, split_string, replace, replace_string, replace_by, replace_by_string,
               escape_regex, is_regex):
        root.register_function(fn)


# ---------------------------------------------------------------------- call sites, resolved once
class _CallSites:
    """Parse once, resolve once: a parsed YAQL statement as a tree of call sites.

    yaql resolves every function call on every evaluation: it collects the overloads of the name
    through the context chain, matches each against the argument expressions, evaluates the
    arguments, asks each remaining overload for a delegate (one closure per argument) and calls it
    in a new child context -- ~70 µs for ``item() + ''`` on this machine, where Jinja takes 5.

    Here the first two steps happen once per call site, when the expression is parsed: the
    evaluation context is always a fresh child of the renderer's root (which holds every function
    and never changes after ``YaqlFront`` is built), so the overloads and their match against the
    argument expressions are the same on every evaluation.  At run time a site evaluates its
    arguments (as yaql does, in order), picks the overload by the argument types -- remembered per
    type tuple when every remaining overload's checks depend on the type only -- converts the
    arguments with the overload's own parameter types and calls the same (guarded) payload, so
    the step budget, size checks, results and errors are yaql's.  Anything else (an overload
    taking a lambda or an unevaluated expression, keyword arguments, a parameter type whose check
    looks at the value, a name with no overload) is evaluated by yaql itself, unchanged.
    """

    MEMO_MAX = 64  # argument-type tuples remembered per site (a site sees one or two in practice)

    def __init__(self, root: Any, engine: Any) -> None:
        from yaql.language import exceptions, expressions, runner, specs, utils, yaqltypes

        self.root = root
        self.engine = engine
        self.x = exceptions
        self.e = expressions
        self.specialization = runner._is_specialization_of  # yaql's own tie-break between overloads
        self.no_value = utils.NO_VALUE
        self.no_default = specs.NO_DEFAULT
        self.limit = utils.limit_memory_usage
        self.quota: int = utils.get_memory_quota(engine)
        self.iterable_dicts = bool(engine.options.get("yaql.iterableDicts", False))
        t = yaqltypes
        self.t = t
        self.default_validator = t.PythonType(object).validators[0].__code__
        # parameter types whose convert() is the value itself once check() passed (plus yaql's
        # memory check): PythonType without a converter and the subclasses that keep that
        # (String: plus str() of a non-str value)
        self.plain_types = frozenset((t.PythonType, t.Integer, t.Number, t.Sequence, t.String))
        self.string_type = t.String
        from yaql.standard_library.yaqlized import Yaqlized
        from yaql.yaqlization import YAQLIZATION_ATTR

        self.yaqlized_type = Yaqlized
        self.yaqlization_attr: str = YAQLIZATION_ATTR
        self.scope_readers: set[Any] = set()  # payloads (guarded) of flowctx's own scope-reading functions
        # validators per class that come with the class itself (all type-based)
        self.own_validators = {t.PythonType: 1, t.Integer: 1, t.Number: 1, t.Sequence: 1, t.Iterable: 1,
                               t.Iterator: 2, t.String: 1, t.DateTime: 1}
        # yaql's `and` / `or`: they call each lambda argument once with no arguments, so a compiled
        # body can be handed over as a plain thunk over the call's context (yaql's Lambda would
        # wrap it in a closure over two new child contexts that receive no names)
        # ... and yaql's `.` (`op_dot`) calls its method lambda once with the receiver only
        from yaql.standard_library import boolean, system

        thunked = (boolean.and_, boolean.or_)
        self.thunk_payloads: set[Any] = set()
        self.method_thunk_payloads: set[Any] = set()
        ctx = root
        while ctx is not None:
            for defs in getattr(ctx, "_functions", {}).values():
                self.scope_readers.update(fd.payload for fd in defs if getattr(fd.payload, "_flowctx_reads_scope", False))
                self.thunk_payloads.update(fd.payload for fd in defs if getattr(fd.payload, "_flowctx_inner", None) in thunked)
                self.method_thunk_payloads.update(
                    fd.payload for fd in defs if getattr(fd.payload, "_flowctx_inner", None) is system.op_dot
                )
            ctx = ctx.parent
        self.constant_types = frozenset((t.Constant, t.StringConstant, t.Keyword, t.BooleanConstant, t.NumericConstant))
        from yaql.language.contexts import Context

        self.plain_context = Context

    # -------------------------------------------------------------- compile time
    def statement(self, stmt: Any) -> Any:
        """A parsed ``yaql`` statement -> an object with ``evaluate(context=...)``."""
        run = self._site("#finalize", (stmt.expression,))
        if run is None:
            return stmt
        out = _Statement(run, self.x.WrappedException)
        levels = self.root.collect_functions("#finalize")
        inner = run.__self__.evals[0]
        if inner is not None and len(levels) == 1 and len(levels[0]) == 1:
            fd = next(iter(levels[0]))
            if getattr(fd.payload, "_flowctx_finalize", False):
                # flowctx's own finalizer, the only overload, takes any value (a nullable object
                # parameter; not a guarded call): the site's dispatch always ends in this call
                out.lean = (inner, fd.payload, self.quota, self.x.MemoryQuotaExceededException)
        return out

    def _evaluator(self, node: Any) -> Any:
        e = self.e
        if isinstance(node, e.Wrap):
            return self._evaluator(node.expr)
        if isinstance(node, e.Function) and not isinstance(node, e.Statement):
            run = self._site(node.name, node.args)
            if run is not None:
                return run
        engine, no_value = self.engine, self.no_value
        return lambda ctx: node(no_value, ctx, engine)

    def _runtime_type_only(self, vt: Any) -> int:
        """How ``vt.check(value)`` depends on the value: 1 on ``type(value)`` only, 2 on the type
        and whether the value is yaqlized (its ``__yaqlization__`` settings: none on every store
        value and builtin), 0 on anything else."""
        t = self.t
        if isinstance(vt, t.HiddenParameterType):
            return 1  # never checked
        if isinstance(vt, t.LazyParameterType):
            return 1  # checks the argument's node: the same every time
        cls = type(vt)
        if cls in self.constant_types:
            return 1  # a constant argument is the same node every time; anything else fails
        if cls is self.yaqlized_type:
            return 2
        if cls in (t.AnyOf, t.Chain):
            return min((self._runtime_type_only(x) for x in vt.types), default=1, key=_strictness)
        if cls is t.NotOfType:
            return self._runtime_type_only(vt.smart_type)
        n = self.own_validators.get(cls)
        if n is None or len(vt.validators) != n:
            return 0
        return int(cls is not t.PythonType or vt.validators[0].__code__ is self.default_validator)

    def _site(self, name: str, nodes: tuple[Any, ...], method: bool = False) -> Any:
        """A compiled call of ``name`` on the argument expressions ``nodes`` (a method call when
        ``method``: the receiver value comes first at run time), or None for yaql's own path."""
        e, t = self.e, self.t
        if any(isinstance(n, e.MappingRuleExpression) for n in nodes):
            return None  # keyword arguments: yaql's path
        recv: list[Any] = []
        if method:
            levels = self.root.collect_functions(name, lambda fd, ctx: fd.is_method)
            # the receiver is a value at run time; at compile time a placeholder expression, which
            # the receiver types below accept without looking (their check runs per call, first)
            nodes = (_RECEIVER, *nodes)
            for fd in (fd for level in levels for fd in level):
                ps = sorted((p for k, p in fd.parameters.items() if p.position is not None and k != "*"
                             and not isinstance(p.value_type, t.HiddenParameterType)), key=lambda p: p.position)
                rp = ps[0] if ps else fd.parameters.get("*")
                if rp is None or type(rp.value_type) not in self.own_validators:
                    return None  # a receiver type that looks at expressions: yaql's path
                recv.append(rp.value_type)
        else:
            levels = self.root.collect_functions(name, lambda fd, ctx: fd.is_function)
        if not levels:
            return None  # yaql raises its own "no function" error at run time
        if len({fd.no_kwargs for level in levels for fd in level}) > 1:
            return None  # yaql calls this ambiguous
        matched: list[list[tuple[Any, Any]]] = []
        type_only = 1
        lazy: set[int] | None = None
        lambdas: dict[int, bool] = {}  # lazy position -> some overload runs a plain lambda there
        for level in levels:
            row = []
            for fd in level:
                mapping = fd.map_args(nodes, {}, self.root, self.engine)
                if mapping is None:
                    continue
                pos, kwd = mapping
                if kwd:
                    return None
                here = {i for i, p in enumerate(pos) if isinstance(p.value_type, t.LazyParameterType)}
                if lazy is None:
                    lazy = here
                elif lazy != here:
                    return None  # yaql calls this ambiguous (per receiver type for a method)
                for i in here:
                    lambdas[i] = lambdas.get(i, False) or _runs_compiled(pos[i].value_type)
                for p in fd.parameters.values():
                    type_only = min(type_only, self._runtime_type_only(p.value_type), key=_strictness)
                row.append((fd, mapping))
            if row:
                row.sort(key=lambda m: id(m[0]))  # yaql iterates a set; any fixed order gives its result
                matched.append(row)
        if not matched:
            return None
        if method and 0 in lambdas:
            return None  # an unevaluated receiver: yaql's path
        args = []
        bodies: dict[int, Any] = {}
        for i, n in enumerate(nodes):
            if method and i == 0:
                continue
            if i in lambdas:
                # an unevaluated argument: yaql's node, which every overload's check sees; the
                # compiled body goes only to a plain lambda parameter (see _runs_compiled)
                args.append(n)
                if lambdas[i] and not isinstance(n, e.Constant):
                    bodies[i] = self._lambda_body(n)
            else:
                args.append(n if isinstance(n, e.Constant) else self._evaluator(n))
        site = _Site(self, name, tuple(args), matched, type_only, tuple(recv) if method else None,
                     bodies)
        return site.run

    def _lambda_body(self, node: Any) -> Any:
        """The node a yaql ``Lambda()`` parameter gets: ``node`` compiled (with and without a
        receiver), still an ``Expression`` with the node's ``uses_receiver``."""
        e = self.e
        run = self._evaluator(node)
        mrun = None
        if type(node) is e.Function:  # a call that a receiver makes a method call (``x.len()``)
            mrun = self._site(node.name, node.args, method=True)
        return _Compiled(self, node, run, mrun)

    def plan(self, fd: Any, nargs: int) -> Any:
        """How to call ``fd.payload`` directly: [(argument index | -1 default | -2 context, param)]
        in the payload's order, or None when yaql's own delegate must build the call
        (keyword-only parameters, hidden parameters other than the context)."""
        t = self.t
        out: list[tuple[int, Any]] = []
        items = fd.parameters.items()
        if any(p.position is None and key != "**" for key, p in items):
            return None
        params = sorted((p for key, p in items if p.position is not None and key != "*"), key=lambda p: p.position)
        hidden = 0
        for i, p in enumerate(params):
            if p.position != i:
                return None
            if isinstance(p.value_type, t.HiddenParameterType):
                if type(p.value_type) is not t.Context:
                    return None
                out.append((-2, p))
                hidden += 1
            elif i - hidden < nargs:
                out.append((i - hidden, p))
            elif p.default is not self.no_default:
                out.append((-1, p))
            else:
                return None
        extra = nargs - (len(params) - hidden)
        if extra > 0:
            star = fd.parameters.get("*")
            if star is None:
                return None
            out.extend((len(params) - hidden + j, star) for j in range(extra))
        return out


def _strictness(level: int) -> int:
    """Order of the _runtime_type_only levels: 0 (per value) < 2 (per type, no __dict__) < 1."""
    return (0, 2, 1)[level]


class _Statement:
    """A compiled statement (``evaluate(context=...)`` like yaql's)."""

    __slots__ = ("run", "wrapped", "lean")

    def __init__(self, run: Any, wrapped: type[BaseException]) -> None:
        self.run = run  # the #finalize call site
        self.wrapped = wrapped
        # (expression, finalize, quota, quota error) when the site's call is known (statement())
        self.lean: tuple[Any, Any, int, Any] | None = None

    def evaluate(self, context: Any = None) -> Any:
        try:
            lean = self.lean
            if lean is None:
                return self.run(context)
            result = lean[1](lean[0](context))
            if lean[2] > 0 and getsizeof(result, 0) > lean[2]:  # as the site checks a call's result
                raise lean[3]()
            return result
        except self.wrapped as exc:  # as yaql's Statement: the StopIteration a call raised
            raise exc.wrapped.with_traceback(exc.__traceback__) from None  # type: ignore[attr-defined]


_NO_RECEIVER: Any = object()  # _Site.run called as a function (not a method)
_DIRECT: Any = object()  # a plan's "fast" flag when the payload takes the evaluated values unchanged (truthy)
_NATIVE: Any = object()  # ... when the site does what the function does itself (_Site.native)


def _yaql_expression_base() -> type:
    from yaql.language.expressions import Expression

    base: type = Expression
    return base


class _Compiled(_yaql_expression_base()):  # type: ignore[misc]
    """A lambda argument's node, compiled: what a yaql ``Lambda()`` parameter gets in its place.

    yaql calls it as it calls any expression node, ``node(receiver, context, engine)``.  It runs
    the compiled form only in a plain child chain of the evaluation's own context (no function
    registered on the way, as ``def`` does): anywhere else -- a context a function built and
    handed over -- the original node runs, so yaql resolves the names there itself.
    """

    def __init__(self, cs: _CallSites, node: Any, run: Any, mrun: Any) -> None:
        self.cs = cs
        self.node = node
        self.run = run
        self.mrun = mrun
        self.no_value = cs.no_value
        self.uses_receiver = node.uses_receiver

    def __call__(self, receiver: Any, context: Any, engine: Any) -> Any:
        cs = self.cs
        c = context
        plain = cs.plain_context
        while c is not cs.root:
            if type(c) is not plain or c._functions:
                return self.node(receiver, context, engine)
            c = c.parent
            if c is None:
                return self.node(receiver, context, engine)
        if receiver is cs.no_value:
            return self.run(context)
        if self.mrun is not None:
            return self.mrun(context, receiver)
        return self.node(receiver, context, engine)

    def __str__(self) -> str:
        return str(self.node)


def _constant(value: Any, *ctx: Any) -> Any:
    """A constant lambda argument of ``and`` / ``or``, called (``partial(_constant, v)``: with no
    argument by yaql's ``and_``, with the context by _yaql_and)."""
    return value


# yaql's `and` / `or` / `.` (boolean.and_, boolean.or_, system.op_dot), as _Site.native calls them
def _yaql_and(left: Any, right: Any, ctx: Any, vals: Any) -> Any:
    v = left(ctx)
    return right(ctx) if v else v


def _yaql_or(left: Any, right: Any, ctx: Any, vals: Any) -> Any:
    v = left(ctx)
    return v if v else right(ctx)


def _yaql_dot(body: _Compiled, mrun: Any, ctx: Any, vals: Any) -> Any:
    """What yaql's method ``Lambda`` does with a compiled body (``mrun``: its method form, or
    None): run it on the receiver ``vals[0]`` (a child context of the call's only where yaql's
    own node runs: the compiled forms read names the same in either and make their own children
    for calls)."""
    receiver = vals[0]
    if receiver is body.no_value:
        return body.run(ctx)
    if mrun is not None:
        return mrun(ctx, receiver)
    return body.node(receiver, ctx.create_child_context(), body.cs.engine)


def _method_thunk(body: _Compiled, ctx: Any, receiver: Any) -> Any:
    """The same as the function of the receiver that yaql's ``op_dot`` is handed (kind 6)."""
    return _yaql_dot(body, body.mrun, ctx, (receiver,))


class _Receiver(_yaql_expression_base()):  # type: ignore[misc]
    """The receiver's place among a method's arguments when its overloads are matched at
    compile time (never evaluated)."""

    uses_receiver = False


_RECEIVER = _Receiver()


def _runs_compiled(vt: Any) -> bool:
    """Whether a parameter of type ``vt`` gets a lambda argument's compiled body: a yaql
    ``Lambda`` run in a child of the call's own context (not ``with_context``: the context a
    function passes may hold functions it defined).  Expression types and the rest get yaql's node."""
    from yaql.language import yaqltypes

    return type(vt) is yaqltypes.Lambda and not vt.with_context



class _Site:
    """One call site: argument evaluators, the overloads that match them, a per-type memo."""

    __slots__ = ("cs", "name", "args", "matched", "memo", "yaqlized_check", "plans", "recv", "recv_memo",
                 "bodies", "evals", "quota")

    def __init__(self, cs: _CallSites, name: str, args: tuple[Any, ...], matched: list[list[tuple[Any, Any]]],
                 type_only: int, recv: tuple[Any, ...] | None, bodies: dict[int, Any]) -> None:
        self.cs = cs
        self.name = name
        self.args = args
        self.matched = matched
        self.memo: dict[tuple[type, ...], Any] | None = {} if type_only else None
        self.yaqlized_check = type_only == 2  # the memo holds for values that are not yaqlized
        self.plans: dict[int, Any] = {}
        self.recv = recv  # a method: the receiver parameter type of every overload of the name
        self.recv_memo: dict[type, bool] | None = {} if type_only else None
        self.bodies = bodies  # argument index -> a lambda argument's compiled body (_Compiled)
        # per argument: its evaluator, or None for a constant / unevaluated node passed as it is
        node = cs.e.Expression
        self.evals: tuple[Any, ...] = tuple(None if isinstance(a, node) else a for a in args)
        self.quota: int = cs.quota

    def check_receiver(self, ctx: Any, receiver: Any) -> None:
        """Whether some overload of the method takes ``receiver`` (its NoMatchingMethodException if
        none): yaql matches the receiver value first, before it evaluates any other argument."""
        cs = self.cs
        ok = None
        rm = self.recv_memo
        if rm is not None and getattr(receiver, cs.yaqlization_attr, None) is None:
            ok = rm.get(type(receiver))
        if ok is None:
            ok = any(vt.check(receiver, ctx, cs.engine) for vt in self.recv or ())
            if rm is not None and len(rm) < cs.MEMO_MAX and getattr(receiver, cs.yaqlization_attr, None) is None:
                rm[type(receiver)] = ok
        if not ok:
            raise cs.x.NoMatchingMethodException(self.name, receiver)

    def run(self, ctx: Any, receiver: Any = _NO_RECEIVER) -> Any:
        """The call, or the method call ``receiver.name(args)`` of a method site (yaql: the
        receiver is the first argument)."""
        cs = self.cs
        if receiver is not _NO_RECEIVER:  # a method site: the receiver's check first
            rm = self.recv_memo
            if rm is None or rm.get(type(receiver)) is not True or getattr(receiver, cs.yaqlization_attr, None) is not None:
                self.check_receiver(ctx, receiver)
        ev = self.evals  # left to right, as yaql evaluates them; the short forms are the common arities
        n = len(ev)
        if n == 0:
            vals: tuple[Any, ...] = ()
        elif n == 1:
            e = ev[0]
            vals = (self.args[0] if e is None else e(ctx),)
        elif n == 2:
            e, e1 = ev
            a = self.args
            v0 = a[0] if e is None else e(ctx)
            vals = (v0, a[1] if e1 is None else e1(ctx))
        else:
            vals = tuple([a if e is None else e(ctx) for a, e in zip(self.args, ev)])
        if receiver is _NO_RECEIVER:
            receiver = cs.no_value
        else:
            vals = (receiver, *vals)
        memo = self.memo
        if self.yaqlized_check:
            attr = cs.yaqlization_attr
            for v in vals:
                if getattr(v, attr, None) is not None:
                    memo = None  # a yaqlized value: its own settings decide (yaql's check, every time)
                    break
        if memo is not None:
            nv = len(vals)
            if nv == 0:
                key: tuple[type, ...] = ()
            elif nv == 1:
                key = (type(vals[0]),)
            elif nv == 2:
                key = (type(vals[0]), type(vals[1]))
            else:
                key = tuple(map(type, vals))
            hit = memo.get(key)
            if hit is None:
                hit = self.choose(vals, ctx, receiver)
                if len(memo) < cs.MEMO_MAX:
                    memo[key] = hit
        else:
            hit = self.choose(vals, ctx, receiver)
        fd, ops, fast, bare = hit
        quota = self.quota
        # The size check yaql's parameter conversion (SmartType.convert) makes on an argument is
        # left out for a value passed as evaluated: every such value is the result of a call,
        # already checked against the same quota by that call (yaql's runner, or the line at the
        # end of this method) and not changed since -- constants and lambda nodes are checked in
        # ops(), converted values below.
        args: Any
        if fast is _DIRECT or fast is _NATIVE:  # every argument as evaluated, in order
            args = vals
        elif fast:
            args = []
            for op in ops:
                kind = op[0]
                if kind == 0:
                    v = vals[op[1]]
                    if op[2] and v is not None and type(v) is not str:
                        v = str(v)  # yaqltypes.String
                        if quota > 0 and getsizeof(v, 0) > quota:  # what SmartType.convert checks
                            raise cs.x.MemoryQuotaExceededException()
                    args.append(v)
                elif kind == 1:
                    args.append(op[1])
                elif kind == 2:
                    args.append(ctx)
                elif kind == 5:  # and / or: the compiled body as a thunk over this context
                    args.append(partial(self.bodies[op[1]].run, ctx))
                else:  # 6: `.`: the compiled method body as a function of the receiver
                    args.append(partial(_method_thunk, self.bodies[op[1]], ctx))
        elif ops is None:
            args = None
        else:
            args = self.convert(fd, ops, vals, ctx, receiver)
        if args is None:
            result = fd.get_delegate(receiver, cs.engine, ctx, vals, {})()
        elif bare is None:
            result = fd.payload(*args)
        else:  # what the guarded payload does (_guard_all_functions), without its frame
            s = getattr(_scope_tls, "scope", None)  # current_scope().tick(), in this frame
            if s is not None:
                s.steps = steps = s.steps + 1
                if steps & 1023 == 0:
                    s.check_limits()
            if fast is _NATIVE:  # and / or / `.`: what the function does (_Site.native)
                result = ops[0](ops[1], ops[2], ctx, vals)
            else:
                pre = bare[2]
                if pre is not None:
                    pre(args if type(args) is tuple else tuple(args))
                result = bare[0](*args)
            if type(result) not in _NOT_LAZY:
                result = bare[1](result)
        if quota > 0 and getsizeof(result, 0) > quota:  # yaql's check on every call's result
            raise cs.x.MemoryQuotaExceededException()
        return result

    def convert(self, fd: Any, ops: list[tuple[Any, ...]], vals: tuple[Any, ...], ctx: Any,
                receiver: Any) -> list[Any]:
        """The payload's arguments when some parameter type converts on its own."""
        cs = self.cs
        out = []
        child = None
        for op in ops:
            kind = op[0]
            if kind == 0:
                v = vals[op[1]]
                if op[2] and v is not None and type(v) is not str:
                    v = str(v)
                if cs.quota > 0 and getsizeof(v, 0) > cs.quota:
                    raise cs.x.MemoryQuotaExceededException()
                out.append(v)
            elif kind == 1:
                out.append(op[1])
            elif kind == 2:
                out.append(ctx)
            elif kind == 5:  # the quota check yaql's Lambda conversion makes was made in ops()
                out.append(partial(self.bodies[op[1]].run, ctx))
            elif kind == 6:
                out.append(partial(_method_thunk, self.bodies[op[1]], ctx))
            else:
                if child is None:
                    child = ctx.create_child_context()  # as yaql: the call runs in a new child
                if kind == 3:
                    out.append(child)
                    continue
                src, p = op[1], op[2]
                v = vals[src] if src >= 0 else p.default
                if src in self.bodies and _runs_compiled(p.value_type):
                    v = self.bodies[src]  # the compiled body in place of yaql's node
                try:
                    out.append(p.value_type.convert(v, receiver, child, fd, cs.engine))
                except cs.x.ArgumentValueException:
                    raise cs.x.ArgumentException(p.name) from None
        return out

    def ops(self, fd: Any, vals: tuple[Any, ...]) -> tuple[Any, Any]:
        """``cs.plan`` as operations: (0, index, is_string) a run-time plain value; (1, value) a
        constant or default, converted once here; (2,) the context itself (flowctx's own
        functions only read the scope off it); (3,) a new child context; (4, index, param) the
        parameter type's own convert(); (5, index) / (6, index) a compiled lambda body handed to
        ``and`` / ``or`` as a thunk, to ``.`` as a function of the receiver (a constant argument of
        ``and`` / ``or`` is a (1, thunk) returning its value).  The flag is
        ``_DIRECT`` when the payload takes the evaluated values unchanged, else whether no operation
        is 3 or 4."""
        cs = self.cs
        plan = cs.plan(fd, len(vals))
        if plan is None:
            return None, False
        out: list[tuple[Any, ...]] = []
        constant = cs.e.Constant
        for src, p in plan:
            vt = p.value_type
            tv = type(vt)
            if src == -2:
                out.append((2,) if fd.payload in cs.scope_readers else (3,))
                continue
            static = src < 0 or isinstance(vals[src], constant)
            v = p.default if src < 0 else vals[src]
            if tv in cs.plain_types:
                if not static:
                    out.append((0, src, tv is cs.string_type))
                    continue
                if isinstance(v, constant):
                    v = v.value
                if tv is cs.string_type and v is not None and type(v) is not str:
                    v = str(v)
                if not (cs.quota > 0 and getsizeof(v, 0) > cs.quota):
                    out.append((1, v))
                    continue
            elif tv in cs.constant_types and static and isinstance(v, constant):
                out.append((1, v.value if vt.expand else v))
                continue
            elif src >= 0 and _runs_compiled(vt) and (fd.payload in cs.thunk_payloads or fd.payload in cs.method_thunk_payloads):
                lam = self.bodies.get(src, v)  # what yaql's Lambda conversion would get
                # its quota check on it is the same on every call, so it is made here, once (one
                # above the quota takes (4, ...) and fails there as in yaql)
                if not (cs.quota > 0 and getsizeof(lam, 0) > cs.quota):
                    if fd.payload in cs.method_thunk_payloads:
                        if vt.method and lam is not v:
                            out.append((6, src))  # the compiled method body, called with the receiver
                            continue
                    elif not vt.method:
                        if lam is not v:
                            out.append((5, src))  # the compiled body as a thunk (see _CallSites.thunk_payloads)
                            continue
                        if isinstance(v, constant):
                            # yaql's thunk of a constant node returns its value (no call, no step)
                            out.append((1, partial(_constant, v.value)))
                            continue
            out.append((4, src, p))
        if len(out) == len(vals) and all(op[0] == 0 and op[1] == i and not op[2] for i, op in enumerate(out)):
            return out, _DIRECT  # the payload takes the evaluated values as they are
        return out, all(op[0] <= 2 or op[0] >= 5 for op in out)

    def native(self, fd: Any, ops: list[tuple[Any, ...]]) -> tuple[Any, Any, Any] | None:
        """yaql's ``and`` / ``or`` / ``.`` done in the site's own frame: (callee, a, b) for
        ``callee(a, b, ctx, vals)``, or None.  The callees do what the
        yaql functions do with the lambdas ``ops`` would hand them (see ``ops``)."""
        from yaql.standard_library import boolean, system

        inner = fd.payload._flowctx_inner
        if inner is system.op_dot and len(ops) == 2 and ops[0] == (0, 0, False) and ops[1][0] == 6:
            body = self.bodies[ops[1][1]]
            return _yaql_dot, body, body.mrun
        if (inner is boolean.and_ or inner is boolean.or_) and len(ops) == 2:
            runs = []
            for op in ops:
                if op[0] == 5:
                    runs.append(self.bodies[op[1]].run)
                elif op[0] == 1 and type(op[1]) is partial and op[1].func is _constant:
                    runs.append(op[1])
                else:
                    return None
            return (_yaql_and if inner is boolean.and_ else _yaql_or), runs[0], runs[1]
        return None

    @staticmethod
    def may_be_str(fd: Any) -> bool:
        """Whether ``fd``'s first positional parameter can receive a string."""
        first = next((p for p in fd.parameters.values() if p.position == 0), None)
        types = getattr(getattr(first, "value_type", None), "python_type", None)
        if types is None:
            return True
        if not isinstance(types, tuple):
            types = (types,)
        return any(not isinstance(t, type) or issubclass(t, str) or issubclass(str, t) for t in types)

    def choose(self, vals: tuple[Any, ...], ctx: Any, receiver: Any) -> tuple[Any, Any, Any, Any]:
        """The overload yaql would call for these argument values (its errors when none or two)."""
        cs = self.cs
        for row in self.matched:
            winner = None
            for fd, mapping in row:
                try:
                    fd.get_delegate(receiver, cs.engine, ctx, vals, {})  # checks every argument
                except cs.x.ArgumentException:
                    continue
                if winner is not None:
                    if cs.specialization(winner[1], mapping):
                        continue
                    if not cs.specialization(mapping, winner[1]):
                        if receiver is cs.no_value:
                            raise cs.x.AmbiguousFunctionException(self.name)
                        raise cs.x.AmbiguousMethodException(self.name, receiver)
                winner = (fd, mapping)
            if winner is not None:
                fd = winner[0]
                plan = self.plans.get(id(fd))
                if plan is None:
                    ops, fast = self.ops(fd, vals)
                    bare = getattr(fd.payload, "_flowctx_unwrapped", None)
                    if bare is not None and getattr(bare[2], "_flowctx_str_first", False) and not self.may_be_str(fd):
                        bare = (bare[0], bare[1], None)  # e.g. `+` on numbers: its string check cannot apply
                    native = None if bare is None or bare[2] is not None or not fast else self.native(fd, ops)
                    if native is not None:
                        ops, fast = native, _NATIVE
                    plan = self.plans[id(fd)] = (ops, fast, bare)
                return fd, plan[0], plan[1], plan[2]
        if receiver is cs.no_value:
            raise cs.x.NoMatchingFunctionException(self.name)
        raise cs.x.NoMatchingMethodException(self.name, receiver)


class _ExpressionList:
    """A top-level comma list of YAQL expressions; evaluates to the list of their values."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts

    def evaluate(self, context: Any = None, **kwargs: Any) -> list[Any]:
        return [p.evaluate(context=context, **kwargs) for p in self.parts]


def _split_top_level_commas(text: str) -> list[str]:
    """Split on commas outside brackets and string literals (one part when there are none)."""
    if "," not in text:
        return [text]
    from flowctx.render._jinja import _top_level

    cuts = _top_level(text, ",")
    if not cuts:
        return [text]
    bounds = [-1, *cuts, len(text)]
    parts = [text[a + 1 : b].strip() for a, b in zip(bounds, bounds[1:])]
    return parts if all(parts) else [text]
