"""Helper functions shared by the Jinja and YAQL front ends, and the size guards.

Every helper that can build a large string or list checks the size it is about to build *before*
building it (``_Limits``), so a template cannot allocate its way around the output cap.
"""
from __future__ import annotations

import itertools
import json as _json
import string
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import yaml

from flowctx._patterns import lazy_compile

__all__ = ["Limits", "LimitError", "plain"]


class LimitError(Exception):
    """A template tried to exceed a resource limit (size, steps, time)."""


def plain(value: Any) -> Any:
    """Deep copy of a (frozen) value into plain dicts and lists (for JSON/YAML dumping)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


_DIGITS = lazy_compile(r"\d+")
_formatter = string.Formatter()


class Limits:
    """Size checks bound to one renderer's ``max_output``."""

    __slots__ = ("max_size",)

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size

    # ------------------------------------------------------------------ generic
    def fail(self, what: str) -> LimitError:
        return LimitError(f"{what} would exceed the template size limit ({self.max_size} characters)")

    def check_len(self, n: int, what: str) -> None:
        if n > self.max_size:
            raise self.fail(what)

    def approx_size(self, value: Any, budget: int | None = None) -> int:
        """Approximate length of ``str(value)``; stops (returning > budget) once over budget.

        Walks containers iteratively, so shared references (``[a, a]`` nested n times) cannot make
        the walk itself exponential: it stops as soon as the running total passes the budget.
        """
        if budget is None:
            budget = self.max_size
        total = 0
        stack = [value]
        pop = stack.pop
        push = stack.extend
        while stack:
            v = pop()
            if isinstance(v, str):
                total += len(v) + 2
            elif isinstance(v, (bytes, bytearray)):
                total += len(v) + 3
            elif isinstance(v, Mapping):
                total += 2 + 4 * len(v)
                if total > budget:
                    return total
                push(v.keys())
                push(v.values())
            elif isinstance(v, (list, tuple, set, frozenset)):
                total += 2 + 2 * len(v)
                if total > budget:
                    return total
                push(v)
            elif isinstance(v, int) and not isinstance(v, bool):
                total += max(1, v.bit_length() * 3 // 10 + 1)
            else:
                total += 24
            if total > budget:
                return total
        return total

    def check_value(self, value: Any, what: str = "the value") -> None:
        if isinstance(value, str):
            if len(value) > self.max_size:
                raise self.fail(what)
            return
        if self.approx_size(value) > self.max_size:
            raise self.fail(what)

    def to_str(self, value: Any) -> str:
        """``str(value)`` for output, frozen containers shown as plain dicts/lists, size-checked."""
        t = type(value)
        if t is str:
            text: str = value
            return text
        if t is int or t is float or t is bool or value is None:
            return str(value)  # Python itself refuses int -> str beyond 4300 digits
        if isinstance(value, str):
            return str(value)
        if isinstance(value, (Mapping, list, tuple)):
            self.check_value(value, "rendering this value")
            return str(plain(value))
        return str(value)

    # ------------------------------------------------------------------ operators
    def binop(self, op: str, left: Any, right: Any) -> Any:
        if op == "*":
            seq, n = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(n, int) and isinstance(seq, (str, bytes, list, tuple)):
                if n > 0:
                    if isinstance(seq, (str, bytes)):
                        size = len(seq)
                    else:
                        size = self.approx_size(seq, self.max_size // n + 1)
                    if size * n > self.max_size:
                        raise self.fail("repeating a sequence")
            elif isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > 64 * 1024:
                    raise self.fail("this multiplication")
            return left * right
        if op == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                if left.bit_length() * right > 64 * 1024:
                    raise self.fail("this power")
            return left**right
        if op == "+":
            if isinstance(left, (str, bytes, list, tuple)) and isinstance(right, (str, bytes, list, tuple)):
                if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
                    if len(left) + len(right) > self.max_size:
                        raise self.fail("concatenation")
                else:
                    budget = self.max_size
                    if self.approx_size(left, budget) + self.approx_size(right, budget) > budget:
                        raise self.fail("concatenation")
                    if isinstance(left, list) != isinstance(right, list) and not isinstance(left, (str, bytes)) \
                            and not isinstance(right, (str, bytes)):
                        # a list read from the context is a (frozen) tuple: list + list as in Python
                        return [*left, *right]
            return left + right
        if op == "%":
            if isinstance(left, (str, bytes)):
                self.check_printf(left, right)
            return left % right
        if op == "//":
            return left // right
        if op == "/":
            return left / right
        if op == "-":
            return left - right
        raise LimitError(f"operator {op!r} is not supported")

    def check_printf(self, fmt: str | bytes, args: Any) -> None:
        # every conversion counted where it occurs ('%(a)s' * 1000 % {'a': big} costs 1000 * big)
        from flowctx.render._guard import printf_bound

        printf_bound(fmt, args, self)

    def check_format(self, fmt: str, args: Any = (), kwargs: Any = None) -> None:
        """Check a ``str.format`` template: no nested fields in specs, widths within the limit."""
        try:
            parsed = list(_formatter.parse(fmt))
        except ValueError as exc:
            raise LimitError(f"bad format string: {exc}") from None
        for _lit, _field, spec, _conv in parsed:
            if spec:
                # nested fields ('{:{w}}') are resolved and checked field by field while the
                # result is built (flowctx.render._jinja._BoundedFormat.format_field)
                for d in _DIGITS.findall(spec):
                    if int(d) > self.max_size:
                        raise self.fail("this format width")
        budget = self.max_size
        if len(fmt) + self.approx_size(args, budget) + self.approx_size(kwargs or {}, budget) > budget:
            raise self.fail("formatting")

    def check_str_method(self, name: str, s: str | bytes | bytearray, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Pre-check the str/bytes methods whose result can be much larger than their input."""
        n = len(s)
        if name in ("center", "ljust", "rjust", "zfill"):
            width = args[0] if args else kwargs.get("width", 0)
            if isinstance(width, int) and width > self.max_size:
                raise self.fail(f"{name}()")
        elif name == "expandtabs":
            tab = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(tab, int) and n * max(tab, 1) > self.max_size:
                raise self.fail("expandtabs()")
        elif name == "replace":
            if len(args) >= 2:
                old, new = args[0], args[1]
                count = s.count(old) if old else n + 1
                if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
                    count = min(count, args[2])
                if n + count * max(0, len(new) - len(old)) > self.max_size:
                    raise self.fail("replace()")
        elif name == "join":
            items = list(args[0]) if args else []
            total = sum(len(x) if isinstance(x, (str, bytes)) else 0 for x in items)
            if total + n * max(0, len(items) - 1) > self.max_size:
                raise self.fail("join()")
        elif name == "translate":
            table = args[0] if args else None
            if isinstance(table, Mapping):
                longest = max((len(v) for v in table.values() if isinstance(v, (str, bytes))), default=1)
                if n * longest > self.max_size:
                    raise self.fail("translate()")
        elif name in ("format", "format_map") and isinstance(s, str):
            self.check_format(s, args, kwargs)


# ---------------------------------------------------------------------- helper functions
_SURROGATE_ESCAPE = lazy_compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _json_text(text: str | bytes, what: str) -> Any:
    """``json.loads``, refusing a lone surrogate (``"\\ud800"``): Python's parser accepts one,
    but such a string is not Unicode text; once in the context it broke everything that writes
    text out (the CLI's output, a shell command, durable state) with UnicodeEncodeError.  Only
    a text that has such an escape is scanned (a proper pair decodes to one character)."""
    if isinstance(text, str) and not text.isascii():
        _refuse_surrogates(text, what)
    value = _json.loads(text)
    if isinstance(text, str) and _SURROGATE_ESCAPE.search(text) is not None:
        _refuse_surrogates(value, what)
    return value


def _refuse_surrogates(value: Any, what: str) -> None:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"{what}: the JSON text holds a lone surrogate (\\ud800-\\udfff without "
                                 "its pair), which is not valid Unicode text") from None
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


class _PlainYamlLoader(getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader):  # type: ignore[misc]
    """``yaml.safe_load`` that builds only JSON-like values (what a context can hold): a
    timestamp stays the text written (``2020-01-01``, not a ``date``), and ``!!binary`` /
    ``!!set`` / ``!!omap`` / ``!!pairs`` are refused (bytes, sets and pair lists are not)."""


def _yaml_text(loader: Any, node: Any) -> str:
    text: str = loader.construct_scalar(node)
    return text


def _yaml_refused(loader: Any, node: Any) -> Any:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    raise TypeError(f"from_yaml_string(): YAML tag {tag!r} is not allowed (only JSON-like values: "
                    "null, bool, int, float, str, list, mapping)")


_PlainYamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _yaml_text)
for _tag in ("binary", "set", "omap", "pairs"):
    _PlainYamlLoader.add_constructor("tag:yaml.org,2002:" + _tag, _yaml_refused)


def make_helpers(limits: Limits, keystore: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The helper functions (also used as Jinja filters), bound to ``limits`` (and, for
    ``st2kv`` / ``kv``, to the key-value store values ``keystore``)."""

    def to_json_string(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
        from flowctx.render._guard import bounded_dumps

        if indent is not None and (not isinstance(indent, int) or indent > 16):
            raise LimitError("to_json_string(): indent must be an int <= 16")
        return bounded_dumps(value, limits, "to_json_string()", indent=indent, sort_keys=bool(sort_keys))

    def from_json_string(value: Any) -> Any:
        if not isinstance(value, (str, bytes)):
            raise TypeError(f"from_json_string() needs a string, not {type(value).__name__!r}")
        return _json_text(value, "from_json_string()")

    def json_(value: Any) -> Any:
        # Orquesta's json(): a mapping is returned as it is, a string is parsed, anything else
        # (numbers, booleans, lists, null) is a type error.
        if isinstance(value, Mapping):
            return value
        if isinstance(value, str):
            return _json_text(value, "json()")
        raise TypeError(f"json() needs a JSON string or a mapping, not {type(value).__name__!r}")

    def to_yaml_string(value: Any, indent: int | None = None) -> str:
        from flowctx.render._guard import bounded_yaml_dump

        return bounded_yaml_dump(value, limits, "to_yaml_string()", default_flow_style=False, sort_keys=False,
                                 indent=indent)

    def from_yaml_string(value: Any) -> Any:
        if not isinstance(value, (str, bytes)):
            raise TypeError(f"from_yaml_string() needs a string, not {type(value).__name__!r}")
        return yaml.load(value, Loader=_PlainYamlLoader)  # noqa: S506 - a SafeLoader subclass

    # Regular expressions run on the ``regex`` engine under the render's remaining time
    # (flowctx.render._guard): stdlib ``re`` cannot be interrupted by a time limit.
    from flowctx.render import _guard

    def regex_match(value: Any, pattern: str, ignorecase: bool = False) -> bool:
        return _guard.rx_match(pattern, str(value), _guard.IGNORECASE if ignorecase else 0) is not None

    def regex_search(value: Any, pattern: str, ignorecase: bool = False) -> bool:
        return _guard.rx_search(pattern, str(value), _guard.IGNORECASE if ignorecase else 0) is not None

    def regex_replace(value: Any, pattern: str, replacement: str = "", ignorecase: bool = False) -> str:
        text = str(value)
        total = [len(text)]

        def repl(m: Any) -> str:
            out: str = m.expand(replacement)
            total[0] += len(out) - (m.end() - m.start())
            if total[0] > limits.max_size:
                raise limits.fail("regex_replace()")
            return out

        return _guard.rx_sub(pattern, repl, text, 0, _guard.IGNORECASE if ignorecase else 0)

    def now(utc: bool = True) -> str:
        return datetime.now(timezone.utc).isoformat() if utc else datetime.now().astimezone().isoformat()

    def uuid() -> str:
        import uuid as _uuid  # on first use: a run that never calls uuid() does not import it

        return str(_uuid.uuid4())

    def zip_(*seqs: Any, pad: Any = None) -> Any:
        # Orquesta's zip(): null counts as an empty list, one list is returned as it is, and
        # several are zipped to the *longest*, the shorter ones padded with ``pad`` (null).
        seqs = tuple([] if s is None else s for s in seqs)
        if len(seqs) == 1:
            return seqs[0]
        for s in seqs:
            if not hasattr(s, "__iter__"):
                raise TypeError(f"zip() needs lists, not {type(s).__name__!r}")
        seqs = tuple(s if hasattr(s, "__len__") else list(itertools.islice(s, limits.max_size + 1)) for s in seqs)
        longest = max((len(s) for s in seqs), default=0)
        limits.check_len(longest * max(len(seqs), 1), "zip()")
        return [list(t) for t in itertools.zip_longest(*seqs, fillvalue=pad)]

    def quote(value: Any) -> str:
        """``shlex.quote``: one shell word, whatever the value holds (issue 11.12)."""
        import shlex

        text = value if isinstance(value, str) else limits.to_str(value)
        limits.check_len(len(text) + 2 + 4 * text.count("'"), "quote()")
        return shlex.quote(text)

    return {
        "quote": quote,
        "to_json_string": to_json_string,
        "from_json_string": from_json_string,
        "to_yaml_string": to_yaml_string,
        "from_yaml_string": from_yaml_string,
        "regex_match": regex_match,
        "regex_search": regex_search,
        "regex_replace": regex_replace,
        "now": now,
        "uuid": uuid,
        "json": json_,
        "zip": zip_,
        **make_kv_helpers(keystore),
    }


# ---------------------------------------------------------------------- key-value store (cli-ops)
def make_kv_helpers(keystore: Mapping[str, Any] | None) -> dict[str, Any]:
    """``st2kv('system.name')`` (StackStorm's spelling; ``decrypt`` is accepted, values are
    stored unencrypted) and ``kv('name')`` over the store's values; an unknown key, or no store,
    is an error naming the key."""
    from flowctx.kv import lookup

    values: Mapping[str, Any] = keystore if keystore is not None else {}

    def st2kv(key: Any, decrypt: bool = False) -> Any:
        return lookup(values, key, "st2kv")

    def kv(key: Any) -> Any:
        return lookup(values, key, "kv")

    return {"st2kv": st2kv, "kv": kv}


def helper_names() -> frozenset[str]:
    """The names of every helper function (what a validator can treat as known functions)."""
    return frozenset(make_helpers(Limits(1)))
