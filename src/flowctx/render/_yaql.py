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
from typing import Any

from flowctx._backend import frozen_types
from flowctx._expressions import YAQL_RE, yaql_spans  # ``<% expr %>``: the rule the loader and validator share
from flowctx.render._functions import LimitError, Limits
from flowctx.render._scope import MISSING, ExpressionError, Scope

__all__ = ["YaqlFront", "split_yaql", "YAQL_RE"]

_SCOPE_KEY = "$__flowctx"


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
            return out(obj, frozen_types())

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
            scope: Scope = context[_SCOPE_KEY]
            return scope

        @specs.parameter("name", yaqltypes.StringConstant())
        @specs.name("#get_context_data")
        def get_context_data(name: str, context: Any) -> Any:
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

        def reg(fn: Any, name: str) -> None:
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
            reg(blocked(fname), fname)

        def pow_(a: Any, b: Any, c: Any = None) -> Any:
            if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1 and c is None:
                if a.bit_length() * b > 64 * 1024:
                    raise LimitError("pow(): result too large")
            return pow(a, b) if c is None else pow(a, b, c)

        reg(pow_, "pow")

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

        reg(distinct, "distinct")

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

        reg(str_, "str")

        for hname, fn in helpers.items():
            reg(fn, hname)  # zip() is size-checked by the helper itself

        _guard_all_functions(root, limits)

    def parse(self, text: str) -> Any:
        parts = _split_top_level_commas(text)
        with self._lock:  # the ply parser is not thread-safe
            if len(parts) > 1:
                # `<% item(member), item(message) %>` (Orquesta's with-multi-items): a comma list
                # of expressions is a list of their values
                return _ExpressionList([self.engine(p) for p in parts])
            return self.engine(text)

    def evaluate(self, expr: Any, scope: Scope) -> Any:
        child = self.root.create_child_context()
        child[_SCOPE_KEY] = scope
        return expr.evaluate(context=child)


# ---------------------------------------------------------------------- limits on every call
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

        def guarded(*args: Any, **kwargs: Any) -> Any:
            s = current_scope()
            if s is not None:
                s.tick()
            if pre is not None:
                pre(args)
            res = payload(*args, **kwargs)
            t = type(res)
            if t is str:
                if len(res) > cap:
                    raise limits.fail(f"YAQL {name.lstrip('#')}()")
            elif hasattr(t, "__next__"):
                # a lazy result (select, where, ...): what it yields is counted against the cap
                return _capped(res, name)
            return res

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
