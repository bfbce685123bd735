"""The Jinja2 front end: a sandboxed, immutable environment with size/step guards.

* ``ImmutableSandboxedEnvironment`` + ``StrictUndefined``; unsafe attributes raise at once
  (they never turn into an Undefined that ``is defined`` could probe).
* ``*``, ``**``, ``+``, ``%`` are intercepted (``call_binop``) and size-checked *before* they run,
  which also stops Jinja from folding ``'a' * 10**9`` at compile time.
* ``~`` (concat), str methods with a width/growth argument, and the filters that can grow their
  input are size-checked; every call and loop iteration counts against a step/time budget.
* Templates are rendered against a :class:`flowctx.render._scope.Scope` (the context handle,
  looked up lazily); the sandbox's own ``range`` is part of that scope, so no render path can see
  Python's ``range``.
"""
from __future__ import annotations

import re
import types
from collections.abc import Callable, Mapping
from functools import update_wrapper
from typing import TYPE_CHECKING, Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS, make_attrgetter, sync_do_slice
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter, safe_range
from jinja2.utils import Namespace
from markupsafe import Markup

from flowctx._patterns import lazy_compile
from flowctx.render import _guard
from flowctx.render._functions import _DIGITS, LimitError, Limits, plain
from flowctx.render._scope import MISSING, Scope

__all__ = ["FlowEnvironment", "RESULT_NAME"]

RESULT_NAME = "_flowctx_result"
_BuiltinMethod = types.BuiltinMethodType
_Method = types.MethodType
# The workflow functions a Scope hands out as bound methods (item(), ctx(), result(), ...): known
# safe, never marked unsafe / pass_context, so FlowEnvironment.call may call them directly.
_SCOPE_FUNCS = frozenset(f for name, f in vars(Scope).items() if name.startswith("fn_") or name == "loop")


class _FlowCodeGenerator(CodeGenerator):
    """Rewrites the template tree before compiling it.

    * every ``for`` loop iterates through ``_flowctx_loop(...)`` (step/time budget);
    * ``item(...)`` calls ``_flowctx_item_fn`` (``item`` alone is the current item's value);
    * ``~`` concatenation goes through ``environment.flowctx_concat`` (size-checked).
    """

    def visit_Template(self, node: nodes.Template, frame: Any = None) -> None:
        for loop in node.find_all(nodes.For):
            it = loop.iter
            call = nodes.Call(nodes.Name("_flowctx_loop", "load", lineno=it.lineno), [it], [], None, None, lineno=it.lineno)
            call.set_environment(self.environment)
            loop.iter = call
        for call in node.find_all(nodes.Call):
            fn = call.node
            if isinstance(fn, nodes.Name) and fn.name == "item" and fn.ctx == "load":
                new = nodes.Name("_flowctx_item_fn", "load", lineno=fn.lineno)
                new.set_environment(self.environment)
                call.node = new
        super().visit_Template(node, frame)

    def buffer(self, frame: Any) -> None:
        # Block ``set``, macros, ``call`` and ``filter`` blocks collect their output in a buffer
        # before joining it: that buffer counts what it holds against the size cap.
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.flowctx_buffer()")

    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        self.write("environment.flowctx_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _FlowContext(Context):
    """Jinja context whose parent is a :class:`Scope`: one lazy lookup per name."""

    def resolve_or_missing(self, key: str) -> Any:
        v = self.vars
        if key in v:
            return v[key]
        p: object = self.parent  # a Scope, though Jinja declares a dict
        if type(p) is Scope:
            return p.lookup(key)
        return super().resolve_or_missing(key)


class _CappedBuffer(list):  # type: ignore[type-arg]
    """An output buffer that refuses to hold more than the size cap."""

    __slots__ = ("n", "limits")

    def __init__(self, limits: Limits) -> None:
        super().__init__()
        self.n = 0
        self.limits = limits

    def append(self, s: Any) -> None:
        self.n += len(s)
        if self.n > self.limits.max_size:
            raise LimitError(f"template output exceeds the size limit ({self.limits.max_size} characters)")
        super().append(s)

    def extend(self, parts: Any) -> None:
        for p in parts:
            self.append(p)


def capped_iter(it: Any, limits: Limits, what: str) -> Any:
    """Yield from ``it``, counting the size of what was yielded (and ticking the render's budget):
    a lazy producer (``map``, ``select`` ...) cannot hand more than the size cap to whatever
    collects it (``list``, ``join``, ``sort`` ...)."""
    cap = limits.max_size
    approx = limits.approx_size
    scope = _guard.current_scope()
    total = 0
    for x in it:
        if scope is not None:
            scope.tick()
        total += len(x) if type(x) is str else approx(x, cap - total + 1)
        if total > cap:
            raise limits.fail(what)
        yield x


def _tick(context: Any) -> None:
    p = getattr(context, "parent", None)
    if type(p) is Scope:
        p.tick()


if TYPE_CHECKING:
    from string import Formatter as _FormatterBase  # the formatter this mixin goes in front of
else:
    _FormatterBase = object


class _BoundedFormat(_FormatterBase):
    """``str.format`` fields counted while the result is built: the running total (literal text
    plus every formatted field, widths included) is checked *before* each field is formatted."""

    limits: Limits
    total: int
    factor = 1

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self.limits.check_len(len(format_string), "formatting")
        self.total = sum(len(lit) for lit, *_ in self.parse(format_string))
        return super().vformat(format_string, args, kwargs)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion in ("r", "a"):
            lim = self.limits
            if self.total + _guard.value_bound(value, conversion, None, lim, lim.max_size) > lim.max_size:
                raise lim.fail("formatting")
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        lim = self.limits
        width = 0
        for d in _DIGITS.findall(format_spec):
            if len(d) > 7 or int(d) > lim.max_size:
                raise lim.fail("this format width")
            width = max(width, int(d))
        precision = None
        if "." in format_spec:
            tail = _DIGITS.match(format_spec.split(".", 1)[1])
            precision = int(tail.group()) if tail else None
        conv = format_spec[-1:] if format_spec[-1:].isalpha() else "s"
        bound = self.factor * max(width, _guard.value_bound(value, conv, precision, lim, lim.max_size - self.total + 1))
        if self.total + bound > lim.max_size:
            raise lim.fail("formatting")
        if isinstance(value, _guard.frozen_types()):
            value = plain(value)  # shown as a plain dict / list, like ``{{ x }}``
        out = super().format_field(value, format_spec)
        self.total += len(out)
        return out


class _BoundedFormatter(_BoundedFormat, SandboxedFormatter):
    def __init__(self, env: Any, limits: Limits) -> None:
        super().__init__(env)
        self.limits = limits


class _BoundedEscapeFormatter(_BoundedFormat, SandboxedEscapeFormatter):
    factor = 6

    def __init__(self, env: Any, limits: Limits, escape: Any) -> None:
        super().__init__(env, escape=escape)
        self.limits = limits




class FlowEnvironment(ImmutableSandboxedEnvironment):
    """The sandboxed Jinja environment flowctx renders with."""

    intercepted_binops = frozenset(["*", "**", "+", "%"])
    code_generator_class = _FlowCodeGenerator
    context_class = _FlowContext

    def __init__(self, limits: Limits, helpers: Mapping[str, Any]) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,  # as Orquesta's Jinja: a block tag's line leaves no blank line
            lstrip_blocks=True,
            finalize=limits.to_str,
            cache_size=0,
            auto_reload=False,
        )
        self.limits = limits
        self.globals.clear()
        self.globals.update({"range": safe_range, "dict": dict, "namespace": Namespace})
        self.policies["json.dumps_function"] = self._dumps
        self.filters.update(helpers)
        self.filters.update(_guarded_filters(limits, self))
        self.tests["regex_match"] = helpers["regex_match"]
        self.tests["regex_search"] = helpers["regex_search"]

    # ------------------------------------------------------------------ guards
    def _dumps(self, obj: Any, **kwargs: Any) -> str:
        text = _guard.bounded_dumps(obj, self.limits, "tojson", **kwargs)
        # |tojson then replaces each of < > & ' by a 6-character escape
        extra = 5 * sum(text.count(c) for c in "<>&'")
        self.limits.check_len(len(text) + extra, "tojson")
        return text

    def flowctx_buffer(self) -> _CappedBuffer:
        return _CappedBuffer(self.limits)

    def flowctx_concat(self, parts: tuple[Any, ...]) -> str:
        to_str = self.limits.to_str
        strs = [to_str(p) for p in parts]
        self.limits.check_len(sum(map(len, strs)), "the '~' concatenation")
        return "".join(strs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if isinstance(left, Markup) or isinstance(right, Markup):
            # Markup operators escape the other operand (up to 6x): bound that growth first
            lim = self.limits
            lim.check_len(6 * (lim.approx_size(left) + lim.approx_size(right)), f"the {operator!r} operator")
        return self.limits.binop(operator, left, right)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # Types expose their methods unbound (``dict.update(frozen, ...)``, ``dict.mro()``) and
        # ``dict[...]`` makes an alias that forwards them: nothing of a class is readable from
        # a template except ``dict.fromkeys`` (a constructor).
        if isinstance(obj, type):
            return obj is dict and attr == "fromkeys"
        if isinstance(obj, types.GenericAlias):
            return False
        if attr in _guard.MUTATOR_NAMES and isinstance(obj, _guard.frozen_types()):
            return False  # the store's frozen types are not MutableMappings: name their mutators here
        return super().is_safe_attribute(obj, attr, value)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, type):
            raise SecurityError(f"subscripting the type {obj.__name__!r} is not allowed in templates")
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Any:
        # Jinja's sandboxed str.format / format_map, with the output counted while it is built.
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        f_self = value.__self__
        if not isinstance(f_self, str):
            return None
        str_type = type(f_self)
        is_map = value.__name__ == "format_map"
        limits = self.limits
        env = self

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs = args[0]
                args = ()
            if isinstance(f_self, Markup):
                fmt: Any = _BoundedEscapeFormatter(env, limits, f_self.escape)
            else:
                fmt = _BoundedFormatter(env, limits)
            return str_type(fmt.vformat(f_self, args, kwargs))

        return update_wrapper(wrapper, value)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Workflow data first: ``result.items`` / ``vars.count`` mean the keys, not dict methods.
        if isinstance(obj, dict) or isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        p: object = __context.parent  # a Scope, though Jinja declares a dict
        if type(p) is Scope:
            p.tick()
            if type(__obj) is _Method and __obj.__self__ is p and __obj.__func__ in _SCOPE_FUNCS:
                # Fast path for this scope's own functions: what Context.call would do, without
                # the five failing attribute probes (~5 us per ``item()``) of the generic path.
                if kwargs:
                    kwargs.pop("_block_vars", None)
                    kwargs.pop("_loop_vars", None)
                try:
                    return __obj(*args, **kwargs)
                except StopIteration:
                    return __self.undefined("value was undefined because a callable raised a StopIteration exception")
        if not __self.is_safe_callable(__obj):
            raise SecurityError(f"{__obj!r} is not safely callable")
        why = _guard.mutating_call(__obj, args)
        if why is not None:
            raise SecurityError(f"{why}: templates cannot change values")
        if __obj is dict or __obj is Namespace or (
            type(__obj) is _BuiltinMethod and __obj.__self__ is dict and __obj.__name__ == "fromkeys"
        ):
            # builds a container of references: refuse one whose contents pass the cap (a loop
            # of ``dict(ns.d, **{k: big})`` would otherwise keep every ``big`` alive)
            out = __context.call(__obj, *args, **kwargs)
            if __obj is Namespace:
                kw = {k: v for k, v in kwargs.items() if k not in ("_loop_vars", "_block_vars")}
                __self.limits.check_value([args, kw], "namespace()")
            else:
                __self.limits.check_value(out, "dict()")
            return out
        t = type(__obj)
        if t is _BuiltinMethod or t is _Method:  # str methods, and Markup's Python-level ones
            owner = getattr(__obj, "__self__", None)
            if isinstance(owner, (str, bytes, bytearray)):
                name = __obj.__name__
                if isinstance(owner, Markup):
                    # Markup methods escape their arguments (up to 6x) before the str method runs
                    lim = __self.limits
                    lim.check_len(6 * (len(owner) + lim.approx_size(args) + lim.approx_size(kwargs)), f"{name}()")
                if name in ("format", "format_map") and isinstance(owner, str):
                    # a raw str.format however it got here: the sandboxed, size-counted one
                    return __self.wrap_str_format(__obj)(*args, **kwargs)
                if name == "join" and args and not isinstance(args[0], (list, tuple)):
                    args = (list(args[0]),) + args[1:]  # checked and joined: consume iterators once
                __self.limits.check_str_method(name, owner, args, kwargs)
                bound = _guard.str_method_bound(name, owner, args, kwargs)
                if bound is not None and bound > __self.limits.max_size:
                    raise __self.limits.fail(f"{name}()")
        else:
            wrapped = getattr(__obj, "__wrapped__", None)
            if type(wrapped) is _BuiltinMethod and isinstance(wrapped.__self__, str):
                __self.limits.check_str_method(wrapped.__name__, wrapped.__self__, args, kwargs)
        return __context.call(__obj, *args, **kwargs)


def _guarded_filters(limits: Limits, env: Any) -> dict[str, Any]:
    to_str = limits.to_str
    orig = FILTERS
    text_filters: Mapping[str, Callable[..., str]] = FILTERS  # the same filters, those that give str
    cap = limits.max_size

    def _text(value: Any) -> str:
        return value if isinstance(value, str) else to_str(value)

    def escape(value: Any) -> Any:
        if hasattr(value, "__html__"):
            return orig["escape"](value)
        text = _text(value)
        limits.check_len(_guard.escaped_len(text), "escape")
        return orig["escape"](text)

    def forceescape(value: Any) -> Any:
        text = str(value.__html__()) if hasattr(value, "__html__") else _text(value)
        limits.check_len(_guard.escaped_len(text), "forceescape")
        return orig["forceescape"](text)

    def urlencode(value: Any) -> str:
        if isinstance(value, str) or not hasattr(value, "__iter__"):
            text = _text(value)
            limits.check_len(_guard.quoted_len(text, b"/"), "urlencode")
            return text_filters["urlencode"](text)
        pairs = list(value.items()) if isinstance(value, Mapping) else list(value)
        total = max(0, len(pairs) - 1)
        for pair in pairs:
            k, v = pair
            total += 1 + _guard.quoted_len(_text(k)) + _guard.quoted_len(_text(v))
            if total > cap:
                raise limits.fail("urlencode")
        return text_filters["urlencode"](pairs)

    def xmlattr(eval_ctx: Any, d: Any, autospace: bool = True) -> str:
        total = 1
        for k, v in d.items():
            if v is None or isinstance(v, Undefined):
                continue
            total += 4 + _guard.escaped_len(_text(k)) + _guard.escaped_len(_text(v))
            if total > cap:
                raise limits.fail("xmlattr")
        return text_filters["xmlattr"](eval_ctx, d, autospace)

    xmlattr.jinja_pass_arg = orig["xmlattr"].jinja_pass_arg  # type: ignore[attr-defined]

    def urlize(eval_ctx: Any, value: Any, trim_url_limit: Any = None, nofollow: bool = False, target: Any = None,
               rel: Any = None, extra_schemes: Any = None) -> str:
        text = _text(value)
        words = len(text.split()) + 1
        per_link = 60 + len(_text(target or "")) + len(_text(rel or "")) + 20 * nofollow
        limits.check_len(12 * len(text) + per_link * words, "urlize")
        return text_filters["urlize"](eval_ctx, text, trim_url_limit, nofollow, target, rel, extra_schemes)

    urlize.jinja_pass_arg = orig["urlize"].jinja_pass_arg  # type: ignore[attr-defined]

    def _case(name: str) -> Any:
        f = text_filters[name]

        def case(s: Any) -> str:
            text = _text(s)
            limits.check_len(_guard.str_method_bound("upper", text, (), {}) or 0, name)
            return f(text)

        case.__name__ = name
        return case

    def sum_(iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
        if attribute is not None:
            iterable = map(make_attrgetter(env, attribute), iterable)
        items = list(iterable)
        if not isinstance(start, (int, float)) or any(not isinstance(x, (int, float)) for x in items):
            limits.check_value([start, items], "sum")
        return sum(items, start)

    def lazy(name: str) -> Any:
        # map / select / reject ... are generators: what they yield is counted (capped_iter)
        f = orig[name]

        def producer(*args: Any, **kwargs: Any) -> Any:
            return capped_iter(f(*args, **kwargs), limits, name)

        producer.__name__ = name
        producer.jinja_pass_arg = f.jinja_pass_arg  # type: ignore[attr-defined]
        return producer

    def plain_str(f: Any) -> Any:
        # flowctx renders text, not HTML: no filter hands out ``Markup``, whose operators and
        # methods escape their arguments (``('x'|safe) + big`` would grow 5x past every check).
        def unmarked(*args: Any, **kwargs: Any) -> Any:
            out = f(*args, **kwargs)
            return str(out) if isinstance(out, Markup) else out

        unmarked.__name__ = getattr(f, "__name__", "filter")
        if hasattr(f, "jinja_pass_arg"):
            unmarked.jinja_pass_arg = f.jinja_pass_arg  # type: ignore[attr-defined]
        return unmarked

    def tojson(eval_ctx: Any, value: Any, indent: Any = None) -> Any:
        if indent is not None and (not isinstance(indent, int) or isinstance(indent, bool) or indent > 16):
            raise LimitError("tojson: indent must be an int <= 16 (template size limit)")
        return orig["tojson"](eval_ctx, value, indent)

    tojson.jinja_pass_arg = orig["tojson"].jinja_pass_arg  # type: ignore[attr-defined]

    def center(value: Any, width: int = 80) -> str:
        if isinstance(width, int) and width > limits.max_size:
            raise limits.fail("center")
        return to_str(value).center(width)

    def indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> str:
        text = to_str(s)
        w = width if isinstance(width, str) else " " * min(int(width), limits.max_size + 1)
        limits.check_len(len(text) + (text.count("\n") + 1) * len(w), "indent")
        return text_filters["indent"](text, w, first, blank)

    def format_(value: Any, *args: Any, **kwargs: Any) -> str:
        if args and kwargs:
            raise TypeError("can't handle positional and keyword arguments at the same time")
        fmt = to_str(value)
        limits.check_printf(fmt, kwargs or args)
        return fmt % (kwargs or args)

    def join(value: Any, d: str = "", attribute: Any = None) -> str:
        items = list(value)
        if attribute is not None:
            # the sandbox's own item/attribute look-up (``a.b`` paths, ints), like Jinja's join
            get = make_attrgetter(env, attribute)
            items = [get(it) for it in items]
        sep = to_str(d)
        budget = limits.max_size
        total = len(sep) * max(0, len(items) - 1)
        for it in items:
            total += len(it) if isinstance(it, str) else limits.approx_size(it, budget)
            if total > budget:
                raise limits.fail("join")
        return sep.join(to_str(it) for it in items)

    def replace(s: Any, old: str, new: str, count: int | None = None) -> str:
        text = to_str(s)
        old, new = to_str(old), to_str(new)
        limits.check_str_method("replace", text, (old, new) if count is None else (old, new, count), {})
        return text.replace(old, new, -1 if count is None else count)

    def batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
        if fill_with is not None and isinstance(linecount, int) and linecount > limits.max_size:
            raise limits.fail("batch")
        return orig["batch"](value, linecount, fill_with)

    def slice_(value: Any, slices: Any = None, fill_with: Any = None, start: Any = None, stop: Any = None,
               end: Any = None, step: Any = None) -> Any:
        if slices is None:
            # Python-style slicing: ``xs | slice(start=1)``, ``xs | slice(1, 3)`` is Jinja's form.
            seq = value if isinstance(value, (list, tuple, str)) else list(value)
            out = seq[start:stop if stop is not None else end:step]
            return list(out) if isinstance(out, tuple) else out
        if isinstance(slices, int) and slices > limits.max_size:
            raise limits.fail("slice")
        return sync_do_slice(value, slices, fill_with)  # FILTERS["slice"] is the async variant: it wants an eval context first

    def wordwrap(s: Any, width: int = 79, break_long_words: bool = True, wrapstring: str | None = None,
                 break_on_hyphens: bool = True) -> str:
        text = to_str(s)
        ws = "\n" if wrapstring is None else to_str(wrapstring)
        limits.check_len(len(text) * (1 + len(ws)), "wordwrap")
        # Jinja's wordwrap needs the environment only for its default newline sequence.
        import textwrap

        return ws.join(
            ws.join(
                textwrap.wrap(line, width=width, expand_tabs=False, replace_whitespace=False,
                              break_long_words=break_long_words, break_on_hyphens=break_on_hyphens)
            )
            for line in text.splitlines()
        )

    def string(value: Any) -> str:
        return to_str(value)

    def pprint(value: Any) -> str:
        import pprint as _pp

        limits.check_value(value, "pprint")
        return _pp.pformat(plain(value))

    def truncate(s: Any, length: int = 255, killwords: bool = False, end: str = "...", leeway: int | None = None) -> str:
        text = to_str(s)
        limits.check_len(len(to_str(end)), "truncate")
        lw = 5 if leeway is None else leeway
        if len(text) <= length + lw:
            return text
        if killwords:
            return text[: length - len(end)] + end
        result = text[: length - len(end)].rsplit(" ", 1)[0]
        return result + end

    return {
        "map": lazy("map"),
        "select": lazy("select"),
        "reject": lazy("reject"),
        "selectattr": lazy("selectattr"),
        "rejectattr": lazy("rejectattr"),
        "safe": plain_str(orig["safe"]),
        "escape": plain_str(escape),
        "e": plain_str(escape),
        "forceescape": plain_str(forceescape),
        "tojson": plain_str(tojson),
        "urlencode": urlencode,
        "xmlattr": plain_str(xmlattr),
        "urlize": plain_str(urlize),
        "striptags": plain_str(orig["striptags"]),
        "upper": _case("upper"),
        "lower": _case("lower"),
        "title": _case("title"),
        "capitalize": _case("capitalize"),
        "sum": sum_,
        "center": center,
        "indent": indent,
        "format": format_,
        "join": join,
        "replace": replace,
        "batch": batch,
        "slice": slice_,
        "wordwrap": wordwrap,
        "string": string,
        "pprint": pprint,
        "truncate": truncate,
    }


def find_undefined(value: Any) -> Any:
    """The first Undefined inside a template-built value (native results), else MISSING."""
    from jinja2.runtime import Undefined

    stack = [value]
    seen = 0
    while stack and seen < 10000:
        v = stack.pop()
        seen += 1
        if isinstance(v, Undefined):
            return v
        t = type(v)
        if t is list or t is tuple:
            stack.extend(v)
        elif t is dict:
            stack.extend(v.values())
    return MISSING


__all__ += ["find_undefined", "LimitError"]


# ---------------------------------------------------------------------- C-style ternary
_QUOTES = "'\""
_OPEN = "([{"
_CLOSE = ")]}"


def _top_level(text: str, chars: str) -> list[int]:
    """Offsets of ``chars`` in ``text`` outside string literals and brackets."""
    out = []
    depth = 0
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in _QUOTES:
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        elif depth == 0 and ch in chars:
            out.append(i)
        i += 1
    return out


def rewrite_ternary(expr: str) -> str | None:
    """``c ? a : b`` -> ``((a) if (c) else (b))`` (right-associative); None if there is none.

    Jinja has no ``?`` operator, so this only ever runs on text Jinja itself would reject; it lets
    list-form workflows written for engines with C-style conditionals keep working.
    """
    marks = _top_level(expr, "?:")
    q = next((i for i in marks if expr[i] == "?"), None)
    if q is None:
        return None
    depth = 0
    colon = None
    for i in marks:
        if i <= q:
            continue
        if expr[i] == "?":
            depth += 1
        elif depth == 0:
            colon = i
            break
        else:
            depth -= 1
    if colon is None:
        return None
    cond, a, b = expr[:q], expr[q + 1 : colon], expr[colon + 1 :]
    a = rewrite_ternary(a) or a
    b = rewrite_ternary(b) or b
    return f"(({a.strip()}) if ({cond.strip()}) else ({b.strip()}))"


_VAR_BLOCK = lazy_compile(r"(\{\{-?)(.*?)(-?\}\})", re.S)


def rewrite_ternaries_in_template(source: str) -> str | None:
    """Apply :func:`rewrite_ternary` inside every ``{{ }}``; None if nothing changed."""
    changed = False

    def sub(m: re.Match[str]) -> str:
        nonlocal changed
        new = rewrite_ternary(m.group(2))
        if new is None:
            return m.group(0)
        changed = True
        return f"{m.group(1)} {new} {m.group(3)}"

    out = _VAR_BLOCK.sub(sub, source)
    return out if changed else None
