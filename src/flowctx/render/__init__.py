"""Templates and conditions: sandboxed, typed, cached Jinja2 (and optional YAQL) over a context.

Public API: :class:`Renderer`, :class:`TaskScope`, :func:`default_renderer`.

* A string that is exactly one ``{{ expr }}`` (or one ``<% expr %>``) renders to the expression's
  native value (``"{{ parameters.n }}"`` -> ``5``; values read from the context come back as the
  store's frozen dict / tuple types, without a copy); anything else renders to ``str``.
* Names: ``parameters``, ``vars`` / ``variables`` / ``workflow``, ``task`` / ``tasks``, ``item``,
  ``index``, ``system``, ``config`` (also as ``pack.config``) / ``keystore`` (when given), bare variable names (variables
  first, then parameters).  Functions: ``ctx()``, ``item()``, ``result()``, ``task_status()``,
  ``succeeded()``, ``failed()``, ``completed()``, ``timed_out()``, ``json()``, ``zip()``,
  ``to_json_string``, ``from_json_string``, ``to_yaml_string``, ``from_yaml_string``,
  ``regex_match``, ``regex_search``, ``regex_replace``, ``now()``, ``uuid()``, ``st2kv()`` / ``kv()``
  (the ``keystore`` values).
* Data is inert: only the strings of the workflow definition are ever compiled; values read from
  the context are never rendered again.
* Every failure is a :class:`flowctx.errors.TemplateError` naming the template, the line and (when
  given) the task and field.
"""
from __future__ import annotations

import itertools
import re
import sys
import threading
import types
from collections.abc import Callable, Mapping
from functools import lru_cache
from time import monotonic as _monotonic
from typing import Any, ClassVar, Literal, overload

from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.parser import Parser
from jinja2.runtime import Undefined
from jinja2.sandbox import safe_range
from jinja2.utils import Namespace

from flowctx._expressions import has_expressions, languages
from flowctx._patterns import lazy_compile
from flowctx.errors import TemplateError
from flowctx.render._functions import LimitError, Limits, make_helpers, plain
from flowctx.render._guard import running as _running
from flowctx.render._jinja import (
    RESULT_NAME,
    FlowEnvironment,
    _FlowContext,
    find_undefined,
)
from flowctx.render._scope import (
    MISSING,
    ExpressionError,
    Scope,
    TaskScope,
    base_resolvers,
)

__all__ = ["Renderer", "TaskScope", "default_renderer"]

_FALSE_TEXT = frozenset({"", "false", "0", "none", "null", "no", "off"})
_RESERVED_FUNCS = frozenset(
    {"ctx", "result", "succeeded", "failed", "completed", "timed_out", "task_status", "json", "zip",
     "to_json_string", "from_json_string", "to_yaml_string", "from_yaml_string", "regex_match",
     "regex_search", "regex_replace", "now", "uuid", "quote", "range", "dict", "namespace", "loop", "true",
     "false", "none", "True", "False", "None"}
)
_VAR_NAMESPACES = frozenset({"vars", "variables", "workflow"})


def _is_template(s: str) -> bool:
    # a complete ``{{ }}`` / ``{% %}`` / ``<% %>``: a lone opener is text, as in Orquesta
    return has_expressions(s)


# ---------------------------------------------------------------------- compiled forms
class _Compiled:
    __slots__ = ("source",)
    kind: ClassVar[str]  # each subclass names its kind: the renderer dispatches on it

    def __init__(self, source: str) -> None:
        self.source = source


class _Text(_Compiled):
    """No template markup: the string is the value."""

    __slots__ = ()
    kind = "text"


class _Failed(_Compiled):
    """A string that does not compile (syntax error, mixed languages, missing yaql)."""

    __slots__ = ("reason", "position")
    kind = "failed"

    def __init__(self, source: str, reason: str, position: int | None) -> None:
        super().__init__(source)
        self.reason = reason
        self.position = position

    def error(self) -> TemplateError:
        return TemplateError(self.reason, source=self.source, position=self.position)


class _JinjaNative(_Compiled):
    """Exactly one ``{{ expr }}`` (or a bare condition): evaluates to the native value."""

    __slots__ = ("template", "root", "line_offset", "direct")
    kind = "jinja_native"

    def __init__(self, source: str, template: Any, line_offset: int, direct: Any = None) -> None:
        super().__init__(source)
        self.template = template
        self.root = template.root_render_func
        self.line_offset = line_offset
        # ``{{ item() }}`` / ``{{ item }}``: read the item off the context handle without a Jinja
        # render (the with-items hot path); returns MISSING outside with-items -> the template runs
        self.direct = direct


class _JinjaText(_Compiled):
    """Any other Jinja template: renders to ``str``."""

    __slots__ = ("template", "root")
    kind = "jinja_text"

    def __init__(self, source: str, template: Any) -> None:
        super().__init__(source)
        self.template = template
        self.root = template.root_render_func


class _Yaql(_Compiled):
    """``<% %>`` expressions: one alone is native, several are interpolated into the text."""

    __slots__ = ("parts", "native", "direct")
    kind = "yaql"

    def __init__(self, source: str, parts: list[tuple[bool, Any, int]], native: bool, direct: Any = None) -> None:
        super().__init__(source)
        self.parts = parts
        self.native = native
        self.direct = direct  # ``<% item() %>``: as _JinjaNative.direct


def _item_of(ctx: Any) -> Any:
    # the item is frozen when the item context is made (``with_item``): returned as it is, as
    # the Jinja path returns it; outside with-items (no index) the template runs and says why
    return MISSING if getattr(ctx, "index", None) is None else ctx.item


def _direct_reader(expr: Any) -> Any:
    """A reader for an expression that is only ``item()`` or ``item`` (else None)."""
    if isinstance(expr, nodes.Call):
        if expr.args or expr.kwargs or expr.dyn_args is not None or expr.dyn_kwargs is not None:
            return None
        expr = expr.node
    if type(expr) is nodes.Name and expr.name == "item" and expr.ctx == "load":
        return _item_of
    return None


# ---------------------------------------------------------------------- renderer
class Renderer:
    """Renders templates and evaluates conditions against a context handle.

    ``cache_size`` bounds the compiled-template LRU cache, ``max_output`` the size (characters /
    items) any string or list a template builds may reach; ``config`` / ``keystore`` become the
    names ``config`` / ``keystore``; ``max_steps`` / ``timeout`` bound the calls and loop
    iterations of one render and its wall-clock time.
    """

    def __init__(
        self,
        *,
        cache_size: int = 2048,
        max_output: int = 1_000_000,
        config: Mapping[str, Any] | None = None,
        keystore: Mapping[str, Any] | None = None,
        max_steps: int = 1_000_000,
        timeout: float = 10.0,
    ) -> None:
        from flowctx._backend import store

        self.cache_size = cache_size
        self.max_output = max_output
        self.max_steps = max_steps
        self.timeout = timeout
        self.limits = Limits(max_output)
        resolvers = base_resolvers()
        frozen_kv = store.freeze(keystore, "keystore") if keystore is not None else None
        self.helpers = make_helpers(self.limits, frozen_kv)
        for name, value in (("config", config), ("keystore", keystore)):
            if value is not None:
                frozen = frozen_kv if name == "keystore" else store.freeze(value, name)
                resolvers[name] = lambda s, _v=frozen: _v
                if name == "config":  # StackStorm-style `pack.config.x` reads the same values
                    pack = store.freeze({"config": frozen}, "pack")
                    resolvers["pack"] = lambda s, _v=pack: _v
        for name, fn in self.helpers.items():
            resolvers[name] = lambda s, _f=fn: _f
        resolvers["range"] = lambda s: safe_range
        resolvers["dict"] = lambda s: dict
        resolvers["namespace"] = lambda s: Namespace
        self._resolvers = resolvers
        self.env = FlowEnvironment(self.limits, self.helpers)
        self._yaql: Any = None
        self._yaql_error: str | None = None
        self._yaql_lock = threading.Lock()
        self._template_cache = lru_cache(maxsize=cache_size)(self._compile_template)
        self._condition_cache = lru_cache(maxsize=cache_size)(self._compile_condition)

    # ------------------------------------------------------------------ public API
    def is_template(self, value: Any) -> bool:
        """True if ``value`` is a string holding a complete ``{{ }}``, ``{% %}`` or ``<% %>`` (a
        lone opener, ``100 {% done``, is text, as in Orquesta)."""
        return isinstance(value, str) and _is_template(value)

    def render_template(
        self,
        source: str,
        ctx: Any,
        *,
        scope: TaskScope | None = None,
        task: str | None = None,
        field: str | None = None,
    ) -> Any:
        """Render one string: native value for a single expression, else ``str``."""
        if type(source) is not str:
            if isinstance(source, str):
                source = str(source)
            else:
                return source
        c = self._template_cache(source)
        kind = c.kind
        if kind == "text":
            return source
        if kind == "jinja_native" or kind == "yaql":
            # the kinds with a direct reader (_JinjaNative, _Yaql); no isinstance on this hot path
            direct = c.direct  # type: ignore[attr-defined]
            if direct is not None:
                value = direct(ctx)
                if value is not MISSING:
                    return value
        try:
            return self._run(c, ctx, scope, False)
        except TemplateError as exc:
            if task or field:
                raise exc.with_location(task=task, field=field) from exc.__cause__
            raise

    def render_json(
        self,
        value: Any,
        ctx: Any,
        *,
        scope: TaskScope | None = None,
        task: str | None = None,
        field: str | None = None,
    ) -> Any:
        """Render every template string in a JSON-like value (dict keys too); others untouched."""
        if isinstance(value, str):
            if "{" not in value and "<%" not in value:
                return value
            return self.render_template(value, ctx, scope=scope, task=task, field=field)
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                sub = f"{field}.{k}" if field else str(k)
                # a key with neither ``{`` nor ``<%`` is no template (the same test as for a string
                # value above): no expression scan for the constant keys of every item's input
                if isinstance(k, str) and ("{" in k or "<%" in k) and _is_template(k):
                    k = self.render_template(k, ctx, scope=scope, task=task, field=sub)
                    if not isinstance(k, str):
                        k = self.limits.to_str(k)
                out[k] = self.render_json(v, ctx, scope=scope, task=task, field=sub)
            return out
        if isinstance(value, (list, tuple)):
            return [
                self.render_json(v, ctx, scope=scope, task=task, field=f"{field}[{i}]" if field else f"[{i}]")
                for i, v in enumerate(value)
            ]
        return value

    def evaluate_condition(
        self,
        source: Any,
        ctx: Any,
        *,
        scope: TaskScope | None = None,
        task: str | None = None,
        field: str | None = None,
    ) -> bool:
        """Evaluate a condition (bare expression or one wrapped in ``{{ }}`` / ``<% %>``).

        A single expression gives its Python truthiness; a template that renders to text is false
        when the text is empty, ``false``, ``0``, ``none``, ``null``, ``no`` or ``off``.
        """
        if not isinstance(source, str):
            return bool(source)
        c = self._condition_cache(source)
        try:
            if c.kind == "text":
                return source.strip().lower() not in _FALSE_TEXT
            value = self._run(c, ctx, scope, True)
        except TemplateError as exc:
            if task or field:
                raise exc.with_location(task=task, field=field) from exc.__cause__
            raise
        if isinstance(value, str) and c.kind == "jinja_text" or (isinstance(c, _Yaql) and not c.native):
            return str(value).strip().lower() not in _FALSE_TEXT
        return bool(value)

    def check(self, source: Any, *, condition: bool = False) -> None:
        """Raise TemplateError if ``source`` does not compile (nothing is rendered)."""
        if not isinstance(source, str):
            return
        c = self._condition_cache(source) if condition else self._template_cache(source)
        if isinstance(c, _Failed):
            raise c.error()

    def referenced_variables(self, source: Any) -> set[str]:
        """Best-effort static set of variable names a template reads.

        Covers ``ctx().x``, ``ctx(x)``, ``ctx('x')``, ``vars.x`` / ``variables.x`` /
        ``workflow.x`` (and ``[...]`` with a constant), ``$.x`` in YAQL, and bare names that are not
        one of the reserved names or functions (those may also be parameters).
        """
        if not isinstance(source, str):
            return set()
        if "<%" in source:
            return _yaql_references(source)
        text = source
        if not _is_template(text):
            text = "{{ " + text + " }}"
        try:
            ast = self.env.parse(text)
            return _jinja_references(ast, self._resolvers)
        except (TemplateSyntaxError, RecursionError, MemoryError):
            return set()

    def function_names(self, language: str = "jinja") -> frozenset[str] | None:
        """Names an expression can call as ``name(...)`` in ``language`` (``"jinja"`` or
        ``"yaql"``): flowctx's functions and helpers and the language's own (Jinja globals, the
        YAQL library).  None when that language is not available (YAQL without the yaql package).
        The validator reports calls to any other name, so this is the one list of functions."""
        if language == "yaql":
            front = self._yaql_front()
            if front is None:
                return None
            names: set[str] = set()
            context = getattr(front, "root", None)
            while context is not None:  # the yaql context chain, root library included
                names.update(n for n in getattr(context, "_functions", {}) if n[:1] not in "#*")
                context = getattr(context, "parent", None)
            return frozenset(names)
        return frozenset(n for n in self._resolvers if not n.startswith("_")) | frozenset(self.env.globals)

    def clear_cache(self) -> None:
        """Drop every compiled template."""
        self._template_cache.cache_clear()
        self._condition_cache.cache_clear()

    def cache_info(self) -> Any:
        """``functools`` cache statistics of the template cache."""
        return self._template_cache.cache_info()

    # ------------------------------------------------------------------ compile
    def _compile_template(self, source: str) -> _Compiled:
        if not _is_template(source):
            return _Text(source)
        return self._guarded_compile(self._compile, source, False)

    def _compile_condition(self, source: str) -> _Compiled:
        if not _is_template(source):
            if not source.strip():
                return _Failed(source, "empty condition", None)
            return self._guarded_compile(lambda s, _c: self._compile_jinja_expression(s, s, 0), source, True)
        return self._guarded_compile(self._compile, source, True)

    def _guarded_compile(self, compile_: Callable[[str, bool], _Compiled], source: str, condition: bool) -> _Compiled:
        # Jinja folds constant filter calls while compiling (``'aaa...!' | regex_search(...)``):
        # that runs under this renderer's time limit too.
        scope = Scope(self, None, None)
        scope.deadline = _monotonic() + self.timeout
        with _running(scope):
            return _guarded_compile(compile_, source, condition)

    def _compile(self, source: str, condition: bool) -> _Compiled:
        has_jinja, has_yaql = languages(source)
        if has_yaql and has_jinja:
            return _Failed(
                source, "one language per string: this string mixes YAQL '<% %>' and Jinja '{{ }}'/'{% %}'", None
            )
        if has_yaql:
            return self._compile_yaql(source)
        stripped = source.strip()
        if stripped.startswith("{{") and stripped.endswith("}}"):
            start = source.index("{{") + 2
            end = source.rindex("}}")
            inner_start, inner_end = start, end
            if source[inner_start : inner_start + 1] in ("-", "+"):
                inner_start += 1
            if source[inner_end - 1 : inner_end] == "-" and inner_end - 1 >= inner_start:
                inner_end -= 1
            inner = source[inner_start:inner_end]
            offset = source.count("\n", 0, inner_start)
            native = self._compile_jinja_expression(inner, source, offset, quiet=True)
            if native is not None:
                return native
        try:
            tmpl = self.env.from_string(source)
        except TemplateSyntaxError as exc:
            # no C-style ``c ? a : b`` here (Orquesta rejects it): the list form's loader
            # translates it (flowctx.spec.listform.translate_c_ternaries)
            return _Failed(source, f"syntax error: {exc.message}", exc.lineno)
        except (LimitError, SecurityError, RecursionError, MemoryError) as exc:
            return _Failed(source, f"{type(exc).__name__}: {exc}", None)
        return _JinjaText(source, tmpl)

    @overload
    def _compile_jinja_expression(
        self, expr_source: str, source: str, offset: int, quiet: Literal[False] = False
    ) -> _Compiled: ...
    @overload
    def _compile_jinja_expression(self, expr_source: str, source: str, offset: int, quiet: bool) -> _Compiled | None: ...

    def _compile_jinja_expression(
        self, expr_source: str, source: str, offset: int, quiet: bool = False
    ) -> _Compiled | None:
        """The native form of one Jinja expression; a syntax error is a failed form, or None when
        ``quiet``."""
        env = self.env
        try:
            parser = Parser(env, expr_source, state="variable")
            expr = parser.parse_expression()
            if not parser.stream.eos:
                tok = parser.stream.current
                raise TemplateSyntaxError(f"unexpected {tok.value or tok.type!r} after the expression", tok.lineno)
        except TemplateSyntaxError as exc:
            if quiet:
                return None
            return _Failed(source, f"syntax error: {exc.message}", (exc.lineno or 1) + offset)
        direct = _direct_reader(expr)  # before compiling: the code generator rewrites ``item()``
        body = nodes.Template([nodes.Assign(nodes.Name(RESULT_NAME, "store", lineno=1), expr, lineno=1)], lineno=1)
        body.set_environment(env)
        try:
            tmpl = env.from_string(body)
        except TemplateSyntaxError as exc:
            return _Failed(source, f"syntax error: {exc.message}", (exc.lineno or 1) + offset)
        except (LimitError, SecurityError, RecursionError, MemoryError) as exc:
            return _Failed(source, f"{type(exc).__name__}: {exc}", None)
        return _JinjaNative(source, tmpl, offset, direct)

    def _yaql_front(self) -> Any:
        if self._yaql is None and self._yaql_error is None:
            with self._yaql_lock:
                if self._yaql is None and self._yaql_error is None:
                    try:
                        from flowctx.render import _yaql

                        reserved = frozenset(k for k in self._resolvers if not k.startswith("_"))
                        self._yaql = _yaql.YaqlFront(self.limits, self.helpers, reserved)
                    except ImportError as exc:
                        self._yaql_error = (
                            f"YAQL expressions ('<% %>') need the yaql package: pip install 'flowctx[yaql]' ({exc})"
                        )
        return self._yaql

    def _compile_yaql(self, source: str) -> _Compiled:
        front = self._yaql_front()
        if front is None:
            return _Failed(source, self._yaql_error or "YAQL is not available", None)
        from flowctx.render._yaql import split_yaql

        try:
            raw = split_yaql(source)
        except ValueError as exc:
            return _Failed(source, f"syntax error: {exc}", None)
        parts: list[tuple[bool, Any, int]] = []
        for is_expr, text, off in raw:
            line = source.count("\n", 0, off) + 1
            if not is_expr:
                parts.append((False, text, line))
                continue
            if not text.strip():
                return _Failed(source, "syntax error: empty '<% %>' expression", line)
            try:
                parts.append((True, front.parse(text.strip()), line))
            except front.exceptions.YaqlException as exc:
                return _Failed(source, f"YAQL syntax error: {exc}", line)
            except Exception as exc:  # noqa: BLE001 - ply raises plain exceptions on odd input
                return _Failed(source, f"YAQL syntax error: {type(exc).__name__}: {exc}", line)
        exprs = [p for p in parts if p[0]]
        native = len(exprs) == 1 and all(p[0] or not p[1].strip() for p in parts)
        direct = None
        if native:
            parts = exprs
            if "".join(source.split())[2:-2] == "item()":  # `<% item() %>`, spaced any way
                direct = _item_of
        return _Yaql(source, parts, native, direct)

    # ------------------------------------------------------------------ run
    def _run(self, c: Any, ctx: Any, task_scope: TaskScope | None, condition: bool) -> Any:
        scope = Scope(self, ctx, task_scope)
        # The time limit starts now and is visible to everything the template starts (regular
        # expressions get the remaining time as their timeout; YAQL calls tick the budget).
        scope.deadline = _monotonic() + self.timeout
        with _running(scope):
            return self._run_in(c, scope)

    def _run_in(self, c: Any, scope: Scope) -> Any:
        kind = c.kind
        env = self.env
        # The Jinja context is built directly over the scope (what ``new_context(scope,
        # shared=True)`` does, minus copying the environment globals' keys each time).
        ctx_class = _FlowContext
        if kind == "jinja_text":
            tmpl = c.template
            try:
                # the scope is the parent mapping: _FlowContext only reads it by key
                jctx = ctx_class(env, scope, tmpl.name, tmpl.blocks)  # type: ignore[arg-type]
                limit = self.max_output
                n = 0
                parts: list[str] = []
                append = parts.append
                for p in c.root(jctx):
                    n += len(p)
                    if n > limit:
                        raise LimitError(f"template output exceeds the size limit ({limit} characters)")
                    append(p)
                return "".join(parts)
            except TemplateError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure becomes a TemplateError
                raise self._runtime_error(exc, c, tmpl, 0) from exc
        if kind == "jinja_native":
            tmpl = c.template
            try:
                jctx = ctx_class(env, scope, tmpl.name, tmpl.blocks)  # type: ignore[arg-type]  # as above
                for _ in c.root(jctx):
                    pass
                value = jctx.vars[RESULT_NAME]
                if isinstance(value, Undefined):
                    value._fail_with_undefined_error()
                t = type(value)
                if t is types.GeneratorType:  # map/select/unique/batch ...: a list, as Orquesta gives
                    value = list(itertools.islice(value, self.max_output + 1))
                    if len(value) > self.max_output:
                        raise LimitError(f"the result would exceed the template size limit ({self.max_output} items)")
                    t = list
                if t is list or t is dict or t is tuple:
                    bad = find_undefined(value)
                    if bad is not MISSING:
                        bad._fail_with_undefined_error()
                    self.limits.check_value(value, "the result")
                elif t is str and len(value) > self.max_output:
                    raise LimitError(f"template output exceeds the size limit ({self.max_output} characters)")
                return value
            except TemplateError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise self._runtime_error(exc, c, tmpl, c.line_offset) from exc
        if kind == "yaql":
            return self._run_yaql(c, scope)
        if kind == "failed":
            raise c.error()
        return c.source  # pragma: no cover - text is handled by the callers

    def _run_yaql(self, c: _Yaql, scope: Scope) -> Any:
        front = self._yaql
        if c.native:
            _, expr, line = c.parts[0]
            return self._eval_yaql(front, expr, scope, c, line)
        out = []
        n = 0
        to_str = self.limits.to_str
        for is_expr, item, line in c.parts:
            if is_expr:
                v = self._eval_yaql(front, item, scope, c, line)
                s = to_str(v)  # as Orquesta interpolates YAQL values into text (True, None)
            else:
                s = item
            n += len(s)
            if n > self.max_output:
                raise TemplateError(
                    f"template output exceeds the size limit ({self.max_output} characters)", source=c.source, position=line
                )
            out.append(s)
        return "".join(out)

    def _eval_yaql(self, front: Any, expr: Any, scope: Scope, c: _Yaql, line: int) -> Any:
        try:
            return front.evaluate(expr, scope)
        except TemplateError:
            raise
        except Exception as exc:  # noqa: BLE001
            reason = _reason(exc)
            if isinstance(exc, front.exceptions.NoFunctionRegisteredException):
                reason = f"unknown YAQL function: {exc}"
            elif isinstance(exc, front.exceptions.MemoryQuotaExceededException):
                reason = f"YAQL expression exceeds the size limit ({self.max_output} characters)"
            elif isinstance(exc, front.exceptions.CollectionTooLargeException):
                reason = f"YAQL collection exceeds the size limit ({self.max_output} items)"
            raise TemplateError(reason, source=c.source, position=line) from exc

    def _runtime_error(self, exc: BaseException, c: _Compiled, tmpl: Any, offset: int) -> TemplateError:
        line = None
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if code.co_filename == "<template>" or code.co_filename == tmpl.filename:
                try:
                    line = tmpl.get_corresponding_lineno(tb.tb_lineno)
                except Exception:  # noqa: BLE001
                    pass
            tb = tb.tb_next
        if line is not None:
            line += offset
        return TemplateError(_reason(exc), source=c.source, position=line)


def _guarded_compile(compile_: Callable[[str, bool], _Compiled], source: str, condition: bool) -> _Compiled:
    """Compile, turning the parser's and compiler's own failures on hostile input (``((((...``
    3,000 deep, huge literals) into a failed template instead of a bare exception."""
    try:
        return compile_(source, condition)
    except RecursionError:
        return _Failed(source, "template nested too deeply (expression recursion limit)", None)
    except MemoryError:
        return _Failed(source, "template too large to compile", None)
    except (LimitError, SecurityError) as exc:
        return _Failed(source, f"{type(exc).__name__}: {exc}", None)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UndefinedError):
        text = exc.message or str(exc)
        return f"undefined: {_plain_type_names(text)}"
    if isinstance(exc, SecurityError):
        return f"unsafe operation blocked by the sandbox: {exc}"
    if isinstance(exc, (LimitError, ExpressionError)):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "template recursion too deep"
    if isinstance(exc, MemoryError):
        return "template ran out of memory"
    if isinstance(exc, OverflowError):
        return f"limit exceeded: {exc}"
    return f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------- static analysis
_YAQL_CTX_NAME = lazy_compile(r"\bctx\(\s*['\"]?([A-Za-z_][\w]*)['\"]?\s*\)")
_YAQL_CTX_ATTR = lazy_compile(r"\bctx\(\s*\)\s*\.\s*([A-Za-z_]\w*)")
_YAQL_DOLLAR = lazy_compile(r"\$\s*\.\s*([A-Za-z_]\w*)")


def _yaql_references(source: str) -> set[str]:
    names: set[str] = set()
    for rx in (_YAQL_CTX_NAME, _YAQL_CTX_ATTR, _YAQL_DOLLAR):
        names.update(rx.findall(source))
    return names


def _jinja_references(ast: nodes.Template, resolvers: Mapping[str, Any]) -> set[str]:
    from jinja2 import meta

    names: set[str] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Call)):
        if isinstance(node, nodes.Call):
            fn = node.node
            if isinstance(fn, nodes.Name) and fn.name == "ctx" and node.args:
                arg = node.args[0]
                if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                    names.add(arg.value)
                elif isinstance(arg, nodes.Name):
                    names.add(arg.name)
            continue
        if not isinstance(node, (nodes.Getattr, nodes.Getitem)):  # what find_all was asked for
            continue
        base = node.node
        key: Any = None
        if isinstance(node, nodes.Getattr):
            key = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            key = node.arg.value
        if key is None:
            continue
        if isinstance(base, nodes.Name) and base.name in _VAR_NAMESPACES:
            names.add(key)
        elif (
            isinstance(base, nodes.Call)
            and isinstance(base.node, nodes.Name)
            and base.node.name == "ctx"
            and not base.args
        ):
            names.add(key)
    for name in meta.find_undeclared_variables(ast):
        if name not in resolvers and name not in _RESERVED_FUNCS and name != "item":
            names.add(name)
    return names


# ---------------------------------------------------------------------- default instance
_default: Renderer | None = None
_default_lock = threading.Lock()


def default_renderer() -> Renderer:
    """The process-wide renderer (built on first use; thread-safe)."""
    global _default
    r = _default
    if r is None:
        with _default_lock:
            if _default is None:
                _default = Renderer()
            r = _default
    return r


# keep names used only by type checkers / re-exports visible
_ = (sys, plain)


_INTERNAL_TYPE = r"'flowctx\.[\w.]*?(FrozenDict|FrozenList|CtxView|[A-Za-z]+View|[A-Za-z]+Scope) object' has no attribute"
_PLAIN_NAMES = {"FrozenList": "the list has no attribute", "CtxView": "ctx() has no variable"}


def _plain_type_names(text: str) -> str:
    """Jinja names the object that lacks an attribute by its class; say what it is to a user."""
    # compiled on the first such error (re caches it), not when flowctx is imported
    return re.sub(_INTERNAL_TYPE, lambda m: _PLAIN_NAMES.get(m.group(1), "the mapping has no key"), text)
