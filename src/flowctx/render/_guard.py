"""Run-time guards shared by the Jinja and YAQL front ends (issue 11 hardening).

* **Time.** The render being evaluated on this thread is registered here (:func:`running`), so
  work that does not go through the step counter -- a regular expression, a long C call -- can
  still see the render's deadline.  Regular expressions run on the ``regex`` engine with the
  render's *remaining* time as their timeout (stdlib ``re`` cannot be interrupted).
* **Size.** Upper bounds, computed *before* building, of what ``str.format`` / ``%``-format /
  the growing ``str`` and ``bytes`` methods / HTML and URL escaping produce, so a template cannot
  allocate past the output cap by amplification (``('{0}' * 1000).format(big)``).
* **Mutation.** :func:`mutating_call` recognises any callable that would write into a frozen
  store value or into a mutable builtin, however it was reached (``dict.update``, a subscripted
  ``dict[...]`` alias, a bound method, a slot wrapper).
"""
from __future__ import annotations

import re as _stdlib_re
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from flowctx.render._functions import LimitError, Limits

__all__ = [
    "running",
    "remaining_time",
    "check_deadline",
    "rx_compile",
    "rx_search",
    "rx_match",
    "rx_sub",
    "printf_bound",
    "str_method_bound",
    "escaped_len",
    "quoted_len",
    "mutating_call",
    "frozen_types",
    "DEFAULT_TIMEOUT",
]

DEFAULT_TIMEOUT = 10.0

# ---------------------------------------------------------------------- the running render
_tls = threading.local()
scope_local = _tls  # the running scope as ``.scope``: read directly by YAQL's compiled call sites


class running:  # noqa: N801 - used as ``with running(scope):``
    """Context manager: ``scope`` is the render running on this thread (nests correctly)."""

    __slots__ = ("scope", "prev")

    def __init__(self, scope: Any) -> None:
        self.scope = scope

    def __enter__(self) -> Any:
        self.prev = getattr(_tls, "scope", None)
        _tls.scope = self.scope
        return self.scope

    def __exit__(self, *exc: Any) -> None:
        _tls.scope = self.prev


def current_scope() -> Any:
    return getattr(_tls, "scope", None)


def _limit_of(scope: Any) -> float:
    r = getattr(scope, "renderer", None)
    return getattr(r, "timeout", DEFAULT_TIMEOUT)


def remaining_time() -> float:
    """Seconds left before the running render's deadline (DEFAULT_TIMEOUT outside a render)."""
    s = current_scope()
    if s is None:
        return DEFAULT_TIMEOUT
    deadline = s.deadline
    now = time.monotonic()
    if not deadline:
        s.deadline = deadline = now + _limit_of(s)
    remaining: float = deadline - now
    return remaining


def time_limit_error(where: str = "") -> LimitError:
    limit = _limit_of(current_scope())
    return LimitError(f"template exceeded the time limit ({limit} s){where}")


def check_deadline(where: str = "") -> None:
    """Raise the time-limit error if the running render is past its deadline."""
    if remaining_time() <= 0:
        raise time_limit_error(where)


# ---------------------------------------------------------------------- regular expressions
#: The ``regex`` engine compiles a fixed repeat by unrolling it (``(?:a{65535}){65535}`` would
#: take hours, and compiling cannot be interrupted): patterns whose unrolled size passes this are
#: refused before they are compiled.
MAX_PATTERN_COST = 50_000

if sys.version_info >= (3, 11):
    from re import _parser as _sre_parse  # type: ignore[attr-defined]  # private, not in typeshed
else:  # pragma: no cover - Python 3.10
    import sre_parse as _sre_parse

_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


def _pattern_cost(seq: Any) -> int:
    total = 0
    for op, av in seq:
        name = str(op)
        if name in _REPEATS:
            lo, _hi, sub = av
            total += _pattern_cost(sub) * max(1, lo) + 1
        elif name == "SUBPATTERN":
            total += _pattern_cost(av[-1]) + 1
        elif name == "BRANCH":
            total += sum(_pattern_cost(b) for b in av[1]) + 1
        elif name in ("ASSERT", "ASSERT_NOT"):
            total += _pattern_cost(av[1]) + 1
        elif name == "ATOMIC_GROUP":
            total += _pattern_cost(av) + 1
        elif name == "GROUPREF_EXISTS":
            total += _pattern_cost(av[1]) + (_pattern_cost(av[2]) if av[2] else 0) + 1
        else:
            total += 1
        if total > MAX_PATTERN_COST:
            return total
    return total


def _rx() -> Any:
    """The ``regex`` module, imported on the first regular expression (a run that uses none does
    not pay for its import: ``tests/test_cold_start.py``)."""
    import regex

    return regex


def check_pattern(pattern: str, flags: int = 0) -> None:
    """Refuse a pattern that is not valid ``re`` syntax or whose compiled size is unbounded."""
    try:
        parsed = _sre_parse.parse(pattern, flags & ~_rx().V0)
        cost = _pattern_cost(parsed)
    except RecursionError:
        raise LimitError("regular expression nested too deeply") from None
    except (_stdlib_re.error, ValueError, OverflowError) as exc:
        raise RegexError(str(exc)) from None
    if cost > MAX_PATTERN_COST:
        raise LimitError(f"regular expression too large (its repeats unroll to more than {MAX_PATTERN_COST} steps)")


@lru_cache(maxsize=512)
def rx_compile(pattern: str, flags: int = 0) -> Any:
    """``regex`` pattern in its ``re``-compatible mode (V0), checked first (check_pattern); cached.

    The syntax accepted is Python's ``re`` syntax (what Orquesta accepts); matching runs on the
    ``regex`` engine because only it can be interrupted (``timeout=``)."""
    check_pattern(pattern, flags)
    regex = _rx()
    return regex.compile(pattern, flags | regex.V0)


def _timeout() -> float:
    t = remaining_time()
    if t <= 0:
        raise time_limit_error(" before a regular expression ran")
    return t


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, timeout=_timeout(), **kwargs)
    except TimeoutError:
        raise time_limit_error(" in a regular expression") from None


def rx_search(pattern: Any, string: str, flags: int = 0) -> Any:
    p = pattern if not isinstance(pattern, str) else rx_compile(pattern, flags)
    return _timed(p.search, string)


def rx_match(pattern: Any, string: str, flags: int = 0) -> Any:
    p = pattern if not isinstance(pattern, str) else rx_compile(pattern, flags)
    return _timed(p.match, string)


def rx_sub(pattern: Any, repl: Any, string: str, count: int = 0, flags: int = 0) -> str:
    p = pattern if not isinstance(pattern, str) else rx_compile(pattern, flags)
    out: str = _timed(p.sub, repl, string, count)
    return out


def rx_split(pattern: Any, string: str, maxsplit: int = 0) -> list[Any]:
    parts: list[Any] = _timed(pattern.split, string, maxsplit)
    return parts


def rx_finditer(pattern: Any, string: str) -> Any:
    """Matches one by one, each step under the remaining time."""
    pos = 0
    n = len(string)
    while pos <= n:
        m = _timed(pattern.search, string, pos)
        if m is None:
            return
        yield m
        pos = m.end() if m.end() > m.start() else m.end() + 1


def rx_escape(string: str) -> str:
    return _rx().escape(string)  # type: ignore[no-any-return]


# the flag values ``re`` and ``regex`` share (tests/test_cold_start.py checks them against both)
IGNORECASE = 2
MULTILINE = 8
DOTALL = 16


#: a pattern that is not valid ``re`` syntax (check_pattern raises it before ``regex`` is asked)
RegexError = _stdlib_re.error


def __getattr__(name: str) -> Any:
    """``PATTERN_TYPE`` (the ``regex`` pattern type), imported on first use like ``regex``."""
    if name == "PATTERN_TYPE":
        return type(_rx().compile("."))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------- size bounds
_INT_CONV = frozenset("diouxXc")
_FLOAT_CONV = frozenset("eEfFgG")


def _repr_bound(v: Any, limits: Limits, budget: int) -> int:
    if isinstance(v, str):
        if v.isascii() and v.isprintable():
            return len(v) + 2 + v.count("\\") + v.count("'")
        return 10 * len(v) + 2
    return 10 * limits.approx_size(v, budget)


def value_bound(v: Any, conv: str, precision: int | None, limits: Limits, budget: int) -> int:
    """Upper bound of the text one ``%``/``{}`` conversion of ``v`` produces."""
    if conv in ("r", "a"):
        return _repr_bound(v, limits, budget)
    if conv in _INT_CONV or conv in _FLOAT_CONV:
        if isinstance(v, bool) or v is None:
            return 8
        if isinstance(v, int):
            n = v.bit_length() // 3 + 4
        elif isinstance(v, float):
            n = 330
        else:
            n = limits.approx_size(v, budget)
        return n + (precision or 6) + 4
    if isinstance(v, str):
        return len(v) if precision is None else min(len(v), precision)
    return limits.approx_size(v, budget)


def _printf_number(fmt: str, k: int, n: int, limits: Limits) -> tuple[int | None, int]:
    if k < n and fmt[k] == "*":
        raise LimitError("'*' widths in % formatting are not allowed in templates")
    j = k
    while j < n and fmt[j].isdigit():
        j += 1
    if j == k:
        return None, k
    if j - k > 7 or int(fmt[k:j]) > limits.max_size:
        raise limits.fail("this % format width")
    return int(fmt[k:j]), j


def printf_bound(fmt: str | bytes, args: Any, limits: Limits) -> int:
    """Upper bound of ``len(fmt % args)``, raising LimitError as soon as it passes the cap.

    Every conversion is counted where it occurs, so ``'%(a)s' * 1000 % {'a': big}`` costs
    1000 * len(big), not len(big).
    """
    text = fmt if isinstance(fmt, str) else fmt.decode("latin-1")
    cap = limits.max_size
    n = len(text)
    positional = list(args) if isinstance(args, tuple) else [args]
    mapping = args if isinstance(args, Mapping) else None
    argi = 0
    total = 0
    i = 0
    while True:
        j = text.find("%", i)
        if j < 0:
            total += n - i
            break
        total += j - i
        k = j + 1
        key = None
        if k < n and text[k] == "(":
            depth, start = 1, k + 1
            k += 1
            while k < n and depth:
                if text[k] == "(":
                    depth += 1
                elif text[k] == ")":
                    depth -= 1
                k += 1
            key = text[start : k - 1]
        while k < n and text[k] in "-#0 +":
            k += 1
        width, k = _printf_number(text, k, n, limits)
        precision = None
        if k < n and text[k] == ".":
            precision, k = _printf_number(text, k + 1, n, limits)
            precision = precision or 0
        while k < n and text[k] in "hlL":
            k += 1
        if k >= n:
            break  # incomplete format: Python raises ValueError itself
        conv = text[k]
        k += 1
        if conv == "%":
            total += max(1, width or 0)
        else:
            if key is not None:
                v = mapping.get(key, "") if mapping is not None else ""
            else:
                v = positional[argi] if argi < len(positional) else ""
                argi += 1
            total += max(width or 0, value_bound(v, conv, precision, limits, cap - total + 1))
        if total > cap:
            raise limits.fail("% formatting")
        i = k
    if total > cap:
        raise limits.fail("% formatting")
    return total


def _codec_factor(encoding: Any, errors: Any) -> int:
    enc = str(encoding).lower().replace("_", "-")
    if enc in ("utf-8", "utf8", "ascii", "us-ascii", "latin-1", "latin1", "iso-8859-1", "cp1252"):
        f = 4 if enc in ("utf-8", "utf8") else 1
    elif enc.startswith("utf-16") or enc.startswith("utf-32") or enc in ("utf16", "utf32"):
        f = 4
    else:
        f = 12
    err = str(errors)
    if err in ("xmlcharrefreplace", "backslashreplace"):
        f = max(f, 12)
    elif err not in ("strict", "ignore", "replace", "surrogateescape", "surrogatepass"):
        f = max(f, 100)  # namereplace and friends
    return f


_CASE = frozenset(("upper", "lower", "casefold", "title", "capitalize", "swapcase"))
_SAME = frozenset(
    ("strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "partition", "rpartition",
     "removeprefix", "removesuffix")
)


def str_method_bound(name: str, s: str | bytes | bytearray, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int | None:
    """Upper bound of the size a str/bytes method returns, for methods that may grow (else None)."""
    n = len(s)
    if name in _CASE:
        return n if (isinstance(s, str) and s.isascii()) or not isinstance(s, str) else 3 * n
    if name == "encode" and isinstance(s, str):
        enc = args[0] if args else kwargs.get("encoding", "utf-8")
        err = args[1] if len(args) > 1 else kwargs.get("errors", "strict")
        if s.isascii() and str(err) in ("strict", "ignore", "replace"):
            enc_l = str(enc).lower()
            f = 4 if "32" in enc_l else 2 if "16" in enc_l else 1
            return f * n + 4
        return _codec_factor(enc, err) * n + 4
    if name == "decode" and not isinstance(s, str):
        err = args[1] if len(args) > 1 else kwargs.get("errors", "strict")
        return n if str(err) in ("strict", "ignore", "replace") else 4 * n
    if name == "hex" and not isinstance(s, str):
        sep = args[0] if args else kwargs.get("sep")
        return 2 * n + (n * len(sep) if sep else 0)
    if name in _SAME:
        return n
    return None


_ESC = {"&": 4, "<": 3, ">": 3, '"': 4, "'": 4}


def escaped_len(s: str) -> int:
    """Exact length of ``markupsafe.escape(s)`` without building it."""
    return len(s) + sum(s.count(c) * extra for c, extra in _ESC.items())


_URL_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")


def quoted_len(s: str, safe: bytes = b"") -> int:
    """Exact length of ``urllib.parse.quote(s, safe)`` without building it (up to the utf-8 bytes)."""
    b = s.encode("utf-8", "surrogatepass")
    keep = bytes(sorted(_URL_SAFE | frozenset(safe)))
    unsafe = len(b.translate(None, keep))
    return len(b) + 2 * unsafe


# ---------------------------------------------------------------------- mutation
_MUTATORS = frozenset(
    {
        # dict / MutableMapping
        "clear", "pop", "popitem", "setdefault", "update",
        # list / MutableSequence / bytearray
        "append", "extend", "insert", "remove", "reverse", "sort",
        # set / MutableSet
        "add", "discard", "difference_update", "intersection_update", "symmetric_difference_update",
        # deque
        "appendleft", "extendleft", "popleft", "rotate",
        # slots that write
        "__setitem__", "__delitem__", "__setattr__", "__delattr__", "__init__", "__new__",
        "__setstate__", "__set__", "__delete__", "__set_name__", "__init_subclass__",
        "__ior__", "__iand__", "__ixor__", "__isub__", "__iadd__", "__imul__", "__iconcat__",
        "__setslice__", "__delslice__",
    }
)
MUTATOR_NAMES = _MUTATORS
_DESCRIPTORS = (
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
    types.MethodWrapperType,
    types.BuiltinMethodType,
    types.MethodType,
)


def frozen_types() -> tuple[type, ...]:
    """The store's frozen container types (flowctx._backend.frozen_types) and the read-only
    views the renderer hands out over them (``ctx()``, ``task``)."""
    from flowctx._backend import frozen_types as store_types
    from flowctx.render._scope import CtxView, Tasks

    return store_types() + (CtxView, Tasks)


def mutating_call(obj: Any, args: tuple[Any, ...]) -> str | None:
    """Why calling ``obj(*args)`` could write into a stored or builtin container (else None).

    * an unbound method or slot of any builtin type (``dict.update``, ``dict[0].update``,
      ``list.__setitem__``, ``object.__setattr__``) that mutates, or any unbound method at all
      whose first argument is a frozen store value;
    * a bound mutator whose ``__self__`` is a frozen value or a mutable builtin.
    """
    t = type(obj)
    if t not in _DESCRIPTORS:
        return None
    name = getattr(obj, "__name__", "")
    frozen = frozen_types()
    if t is types.MethodDescriptorType or t is types.WrapperDescriptorType or t is types.ClassMethodDescriptorType:
        owner = getattr(obj, "__objclass__", object)
        if name in _MUTATORS:
            return f"{getattr(owner, '__name__', '?')}.{name}() modifies its argument"
        if args and isinstance(args[0], frozen):
            return f"unbound method {name}() called on a stored value"
        return None
    self_ = getattr(obj, "__self__", None)
    if name in _MUTATORS and (isinstance(self_, frozen) or isinstance(self_, (dict, list, set, bytearray, deque))):
        return f"{type(self_).__name__}.{name}() modifies a value"
    if isinstance(self_, type) and name in _MUTATORS:
        return f"{self_.__name__}.{name}() modifies its argument"
    if isinstance(self_, frozen) and isinstance(obj, types.MethodType) and name in _MUTATORS:
        return f"{name}() modifies a stored value"
    return None


# ---------------------------------------------------------------------- serialisation
def bounded_dumps(value: Any, limits: Limits, what: str, **kwargs: Any) -> str:
    """``json.dumps`` that stops as soon as the text passes the cap (escapes included)."""
    import json

    from flowctx.render._functions import plain

    limits.check_value(value, what)
    cap = limits.max_size
    parts: list[str] = []
    n = 0
    for chunk in json.JSONEncoder(**kwargs).iterencode(plain(value)):
        n += len(chunk)
        if n > cap:
            raise limits.fail(what)
        parts.append(chunk)
    return "".join(parts)


class _CountingStream:
    """A write-only text stream that raises once more than ``cap`` characters were written."""

    __slots__ = ("parts", "n", "limits", "what")

    def __init__(self, limits: Limits, what: str) -> None:
        self.parts: list[str] = []
        self.n = 0
        self.limits = limits
        self.what = what

    def write(self, s: str) -> int:
        self.n += len(s)
        if self.n > self.limits.max_size:
            raise self.limits.fail(self.what)
        self.parts.append(s)
        return len(s)

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        return "".join(self.parts)


def bounded_yaml_dump(value: Any, limits: Limits, what: str, **kwargs: Any) -> str:
    """``yaml.safe_dump`` into a stream that stops at the cap."""
    import yaml

    from flowctx.render._functions import plain

    limits.check_value(value, what)
    out = _CountingStream(limits, what)
    yaml.safe_dump(plain(value), out, **kwargs)
    return out.getvalue()
