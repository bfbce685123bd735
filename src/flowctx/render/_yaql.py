"""The YAQL front end (optional: needs the ``yaql`` package, ``pip install flowctx[yaql]``).

The context is never converted for YAQL: the workflow functions (``ctx()``, ``item()``,
``result()`` ...) read the frozen namespaces of the handle lazily, and ``$name`` look-ups go
through an overridden ``#get_context_data`` that resolves them on demand.  Values handed to YAQL
are the store's frozen mapping / tuple-subclass types, which YAQL's own collection functions accept
as they are.  Results that still hold frozen store values are returned without copying.
"""
from __future__ import annotations

import collections.abc  # noqa: F401  (yaql 3.x uses collections.abc without importing it)
import itertools
import re
import threading
from collections.abc import Mapping
from typing import Any

from flowctx._backend import frozen_types
from flowctx.render._functions import LimitError, Limits
from flowctx.render._scope import MISSING, ExpressionError, Scope

__all__ = ["YaqlFront", "split_yaql", "YAQL_RE"]

# ``<% expr %>`` (non-greedy; an expression cannot contain ``%>``).
YAQL_RE = re.compile(r"<%(.*?)%>", re.S)
_SCOPE_KEY = "$__flowctx"


def split_yaql(source: str) -> list[tuple[bool, str, int]]:
    """Split a string into (is_expression, text, offset) parts; raises ValueError on a lone ``<%``."""
    parts: list[tuple[bool, str, int]] = []
    pos = 0
    for m in YAQL_RE.finditer(source):
        if m.start() > pos:
            parts.append((False, source[pos : m.start()], pos))
        parts.append((True, m.group(1), m.start()))
        pos = m.end()
    if pos < len(source):
        parts.append((False, source[pos:], pos))
    for is_expr, text, off in parts:
        if not is_expr and "<%" in text:
            raise ValueError(f"unterminated '<%' at offset {off + text.index('<%')}")
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
        root = yaql.create_context(finalizer=finalize, delegates=False)
        root = root.create_child_context()
        self.root = root

        def scope_of(context: Any) -> Scope:
            return context[_SCOPE_KEY]

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
