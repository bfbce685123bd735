"""Node tree -> model: the shape checks and the parts both syntaxes share.

:class:`Builder` turns located YAML nodes (:mod:`flowctx.spec.yaml_source`) into model pieces and
collects every structural problem (unknown keys, wrong shapes, duplicate names ...) as a
:class:`~flowctx.spec.problems.Problem` instead of raising.  What is common to both syntaxes lives
here: key/shape helpers, ``action`` + ``input`` (with inline parameters), ``with`` items,
``retry``, ``join``, conditions and ``next: [{when, publish, do}]`` entries.  The syntax-specific
parts are in :mod:`flowctx.spec.orquesta` and :mod:`flowctx.spec.listform`.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from flowctx._expressions import has_expressions
from flowctx._patterns import lazy_compile
from flowctx.spec.inline_params import InlineParamsError, parse_inline_params
from flowctx.spec.model import Loc, RetrySpec, Transition, WithItems
from flowctx.spec.problems import Problem
from flowctx.spec.yaml_source import YMap, YNode, YScalar, YSeq, type_name

__all__ = ["NO_DEFAULT", "Builder", "and_condition", "did_you_mean", "is_template"]

NEXT_KEYS = ("when", "publish", "do")
RETRY_KEYS = ("when", "count", "delay", "backoff", "max_delay")
WITH_KEYS = ("items", "concurrency", "batch_size")
BACKOFFS = ("constant", "linear", "exponential")
_NAMED_ITEMS_RE = lazy_compile(r"^\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s+in\s+(\S.*?)\s*$", re.S)


class _NoDefault:
    def __repr__(self) -> str:
        return "<no default>"


#: Marks an Orquesta ``input`` entry written as a bare name (no default).
NO_DEFAULT = _NoDefault()


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or ``""``."""
    import difflib  # only for a misspelt name

    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def is_template(value: Any) -> bool:
    """A string holding a complete expression (``{{ }}``, ``{% %}``, ``<% %>``): the renderer's rule."""
    return has_expressions(value)


def _single_expression(text: str) -> tuple[str, str] | None:
    """``("{{", expr)`` / ``("<%", expr)`` if ``text`` is exactly one expression, else None."""
    s = text.strip()
    for opener, closer in (("{{", "}}"), ("<%", "%>")):
        if s.startswith(opener) and s.endswith(closer):
            inner = s[2:-2]
            if opener not in inner and closer not in inner:
                return opener, inner.strip()
    return None


def _split_action(text: str) -> list[str]:
    """``"pack.action k=v ..."`` -> ``[name, rest]``.  The name may be an expression
    (``<% ctx().action %>``, rendered by the engine when the task runs): it is kept whole."""
    for opener, closer in (("<%", "%>"), ("{{", "}}")):
        if text.startswith(opener):
            end = text.find(closer, 2)
            if end < 0:
                return [text]
            name, rest = text[:end + 2], text[end + 2:].strip()
            return [name, rest] if rest else [name]
    return text.split(None, 1)


def and_condition(first: str, when: Any) -> str:
    """``first`` (a ``{{ fn() }}`` condition) and-ed with the condition ``when``."""
    if when is None or when is True:
        return first
    fn = first.strip()[2:-2].strip()
    if isinstance(when, str):
        single = _single_expression(when)
        if single is not None:
            opener, expr = single
            closer = "}}" if opener == "{{" else "%>"
            return f"{opener} {fn} and ({expr}) {closer}"
        if not is_template(when):
            return f"{{{{ {fn} and ({when}) }}}}"
    return f"{{{{ {fn} and ({json.dumps(when) if not isinstance(when, str) else when}) }}}}"


class Builder:
    """Shared node -> model helpers; the syntax mixins build on them."""

    def __init__(self, file: str | None) -> None:
        self.file = file
        self.problems: list[Problem] = []

    # -- reporting ------------------------------------------------------------------------
    def error(self, where: YNode | Loc | None, message: str, task: str | None = None) -> None:
        loc = where.loc if isinstance(where, YNode) else where
        self.problems.append(Problem("error", message, loc or Loc(self.file, 1, 1), task))

    def warning(self, where: YNode | Loc | None, message: str, task: str | None = None) -> None:
        loc = where.loc if isinstance(where, YNode) else where
        self.problems.append(Problem("warning", message, loc or Loc(self.file, 1, 1), task))

    # -- shape helpers ----------------------------------------------------------------------
    def fields(
        self, node: YMap, allowed: Iterable[str], what: str, task: str | None = None,
    ) -> dict[str, tuple[YScalar, YNode]]:
        """Known keys of a mapping -> (key node, value node); report unknown/duplicate keys."""
        allowed = tuple(allowed)
        self.check_keys(node, what, task)
        out: dict[str, tuple[YScalar, YNode]] = {}
        for key, value in node.pairs:
            name = key.value
            if not isinstance(name, str) or name not in allowed:
                self.error(key, f"unknown key '{name}' in {what}{did_you_mean(str(name), allowed)}", task)
                continue
            out[name] = (key, value)
        return out

    def check_keys(self, node: YMap, what: str, task: str | None = None) -> None:
        for key in node.dups:
            self.error(key, f"duplicate key '{key.value}' in {what}", task)
        for bad in node.bad_keys:
            self.error(bad, f"invalid key in {what}: keys must be plain scalars", task)

    def plain(self, node: YNode) -> Any:
        """The plain Python value of a node (dicts, lists, scalars)."""
        if isinstance(node, YScalar):
            return node.value
        if isinstance(node, YSeq):
            return [self.plain(item) for item in node.items]
        assert isinstance(node, YMap)
        return {k.value: self.plain(v) for k, v in node.pairs}

    def record(self, locs: dict[str, Loc], path: str, node: YNode) -> None:
        """Record the Loc of ``node`` (and of everything inside it) under ``path``."""
        todo = [(path, node)]
        while todo:
            p, n = todo.pop()
            locs[p] = n.loc
            if isinstance(n, YSeq):
                todo.extend((f"{p}.{i}", item) for i, item in enumerate(n.items))
            elif isinstance(n, YMap):
                todo.extend((f"{p}.{k.value}", v) for k, v in n.pairs)

    def string(self, node: YNode, what: str, task: str | None = None, *, allow_none: bool = False) -> str | None:
        if isinstance(node, YScalar):
            v = node.value
            if v is None and allow_none:
                return None
            if isinstance(v, str):
                return v
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return str(v)
        self.error(node, f"'{what}' must be a string, got {type_name(node)}", task)
        return None

    def scalar(self, node: YNode, what: str, task: str | None = None) -> Any:
        """A scalar value (number, string/template, bool, None) for a numeric field."""
        if isinstance(node, YScalar):
            return node.value
        self.error(node, f"'{what}' must be a number or a template, got {type_name(node)}", task)
        return None

    def pairs(
        self, node: YNode, what: str, locs: dict[str, Loc], prefix: str, task: str | None = None,
        *, allow_string: bool = False, allow_names: bool = False,
    ) -> list[tuple[str, Any, YNode]]:
        """Ordered (name, value, value node) from a list of one-key maps, a mapping, or
        (``allow_string``) an inline ``a=1 b=2`` string; ``allow_names``: bare names -> None."""
        out: list[tuple[str, Any, YNode]] = []
        seen: dict[str, YNode] = {}

        def add(key: YNode, value: YNode | None, name: Any, plain: Any) -> None:
            if not isinstance(name, str):
                self.error(key, f"names in '{what}' must be strings, got {type_name(key)}", task)
                return
            if not name:
                self.error(key, f"names in '{what}' cannot be empty", task)
                return
            if name in seen:
                self.error(key, f"'{name}' is defined twice in '{what}'", task)
            seen[name] = key
            out.append((name, plain, value or key))
            self.record(locs, f"{prefix}.{name}", value or key)

        if isinstance(node, YScalar) and node.value is None:
            return out
        if isinstance(node, YScalar) and allow_string and isinstance(node.value, str):
            try:
                parsed = parse_inline_params(node.value)
            except InlineParamsError as exc:
                self.error(node, f"cannot parse '{what}' {node.value!r}: {exc}", task)
                return out
            for name, value in parsed:
                add(node, None, name, value)
                locs[f"{prefix}.{name}"] = node.loc
            return out
        if isinstance(node, YMap):
            self.check_keys(node, f"'{what}'", task)
            for k, v in node.pairs:
                add(k, v, k.value, self.plain(v))
            return out
        if isinstance(node, YSeq):
            for item in node.items:
                if isinstance(item, YMap) and len(item.pairs) == 1 and not item.dups:
                    k, v = item.pairs[0]
                    add(k, v, k.value, self.plain(v))
                elif allow_names and isinstance(item, YScalar) and isinstance(item.value, str):
                    add(item, None, item.value, NO_DEFAULT)
                else:
                    shape = "names or one-key mappings" if allow_names else "one-key mappings (name: value)"
                    self.error(item, f"items of '{what}' must be {shape}, got {type_name(item)}"
                               + (" with several keys" if isinstance(item, YMap) else ""), task)
            return out
        shape = "a list of one-key mappings or a mapping"
        if allow_string:
            shape += " or a 'name=value ...' string"
        self.error(node, f"'{what}' must be {shape}, got {type_name(node)}", task)
        return out

    def targets(self, node: YNode, what: str, locs: dict[str, Loc], task: str | None) -> list[str]:
        """Target names from a list or a comma-separated string."""
        names: list[str] = []
        items: list[YNode]
        if isinstance(node, YScalar) and isinstance(node.value, str):
            for part in node.value.split(","):
                part = part.strip()
                if not part:
                    self.error(node, f"empty task name in '{what}'", task)
                    continue
                locs[f"targets.{len(names)}"] = node.loc
                names.append(part)
            return names
        if isinstance(node, YScalar) and node.value is None:
            return names
        items = node.items if isinstance(node, YSeq) else [node]
        for item in items:
            if isinstance(item, YScalar) and isinstance(item.value, str) and item.value.strip():
                locs[f"targets.{len(names)}"] = item.loc
                names.append(item.value.strip())
            else:
                self.error(item, f"'{what}' must name tasks (a list or a comma-separated string), "
                           f"got {type_name(item)}", task)
        return names

    # -- whole workflow -----------------------------------------------------------------------
    def task_action(self, f: dict[str, tuple[YScalar, YNode]], task: str, locs: dict[str, Loc],
                    kw: dict[str, Any]) -> None:
        inline: list[tuple[str, Any]] = []
        if "action" in f:
            anode = f["action"][1]
            text = self.string(anode, "action", task, allow_none=True)
            locs["action"] = anode.loc
            if text is not None:
                text = text.strip()
                parts = _split_action(text)
                if not parts:
                    self.error(anode, "'action' is empty", task)
                else:
                    kw["action"] = parts[0]
                    if len(parts) > 1:
                        try:
                            inline = parse_inline_params(parts[1])
                        except InlineParamsError as exc:
                            self.error(anode, f"cannot parse the inline parameters of 'action': {exc}", task)
                        for name, _ in inline:
                            locs[f"input.{name}"] = anode.loc
        inputs: dict[str, Any] | str = dict(inline)
        if "input" in f:
            inode = f["input"][1]
            if isinstance(inode, YScalar) and isinstance(inode.value, str) and _single_expression(inode.value):
                # ``input: <% ctx().args %>``: one expression giving the whole mapping at run time
                # (Orquesta accepts it); its names are not known before the run
                locs["input"] = inode.loc
                if inline:
                    self.error(inode, "'input' given as one expression cannot be combined with inline "
                                      "parameters in 'action' (put them in the expression's mapping)", task)
                else:
                    inputs = inode.value
            elif isinstance(inode, YMap):
                assert isinstance(inputs, dict)
                self.check_keys(inode, "'input'", task)
                for k, v in inode.pairs:
                    name = k.value
                    if not isinstance(name, str):
                        self.error(k, f"input names must be strings, got {type_name(k)}", task)
                        continue
                    if name in inputs:
                        self.warning(k, f"input '{name}' is also given inline in 'action'; "
                                        "the value under 'input' wins", task)
                    inputs[name] = self.plain(v)
                    self.record(locs, f"input.{name}", v)
            elif not (isinstance(inode, YScalar) and inode.value is None):
                self.error(inode, f"'input' must be a mapping, got {type_name(inode)} (or one expression "
                                  "giving a mapping: input: <% ctx().args %>)", task)
        kw["input"] = inputs

    def with_items(self, node: YNode, task: str, locs: dict[str, Loc], key: str,
                   extra: dict[str, tuple[YScalar, YNode]] | None = None) -> WithItems | None:
        items_node: YNode | None = node
        conc: Any = None
        batch: Any = None
        if isinstance(node, YMap):
            f = self.fields(node, WITH_KEYS, f"'{key}'", task)
            items_node = f["items"][1] if "items" in f else None
            if items_node is None:
                self.error(node, f"'{key}' needs 'items'", task)
                return None
            if "concurrency" in f:
                conc = self.scalar(f["concurrency"][1], "concurrency", task)
                locs["with.concurrency"] = f["concurrency"][1].loc
            if "batch_size" in f:
                batch = self.scalar(f["batch_size"][1], "batch_size", task)
                locs["with.batch_size"] = f["batch_size"][1].loc
        for name in ("concurrency", "batch_size"):
            if extra and name in extra:
                val = self.scalar(extra[name][1], name, task)
                locs[f"with.{name}"] = extra[name][1].loc
                if name == "concurrency":
                    conc = val
                else:
                    batch = val
        assert items_node is not None
        names: tuple[str, ...] = ()
        self.record(locs, "with.items", items_node)
        if isinstance(items_node, YScalar) and isinstance(items_node.value, str):
            items: Any = items_node.value
            m = _NAMED_ITEMS_RE.match(items)
            if m and not is_template(m.group(1)):
                names = tuple(n.strip() for n in m.group(1).split(","))
                items = m.group(2)
        elif isinstance(items_node, YSeq):
            items = self.plain(items_node)
        else:
            self.error(items_node, f"'{key}' items must be a template or a list, got {type_name(items_node)}",
                       task)
            return None
        return WithItems(items=items, names=names, concurrency=conc, batch_size=batch, loc=node.loc)

    def retry(self, node: YNode, task: str, locs: dict[str, Loc]) -> RetrySpec | None:
        if not isinstance(node, YMap):
            self.error(node, f"'retry' must be a mapping (count, delay, ...), got {type_name(node)}", task)
            return None
        f = self.fields(node, RETRY_KEYS, "'retry'", task)
        kw: dict[str, Any] = {}
        if "count" not in f:
            self.error(node, "'retry' needs 'count'", task)
            return None
        for name in ("count", "delay", "max_delay"):
            if name in f:
                kw[name] = self.scalar(f[name][1], f"retry.{name}", task)
                locs[f"retry.{name}"] = f[name][1].loc
        if kw.get("delay", 0) is None:
            kw["delay"] = 0.0
        if "when" in f:
            kw["when"] = self.condition(f["when"][1], "retry.when", task)
            locs["retry.when"] = f["when"][1].loc
        if "backoff" in f:
            b = f["backoff"][1]
            locs["retry.backoff"] = b.loc
            if isinstance(b, YScalar) and b.value in BACKOFFS:
                kw["backoff"] = b.value
            else:
                self.error(b, f"'backoff' must be one of {', '.join(BACKOFFS)}, got "
                           f"{b.value!r}{did_you_mean(str(b.value), BACKOFFS)}" if isinstance(b, YScalar)
                           else f"'backoff' must be one of {', '.join(BACKOFFS)}, got {type_name(b)}", task)
        return RetrySpec(loc=node.loc, **kw)

    def condition(self, node: YNode, what: str, task: str | None) -> str | None:
        if isinstance(node, YScalar):
            v = node.value
            if v is None or v is True:
                return None
            if v is False:
                return "{{ false }}"
            if isinstance(v, str):
                return v
        self.error(node, f"'{what}' must be a condition (a template string), got {type_name(node)}", task)
        return None

    def join(self, node: YNode, task: str) -> Any:
        if isinstance(node, YScalar):
            v = node.value
            if v == "all" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                return v
            if isinstance(v, int) and not isinstance(v, bool):
                self.error(node, f"'join' must be 'all' or a count of at least 1, got {v}", task)
                return None
            if isinstance(v, str):
                self.error(node, f"'join' must be 'all' or a count, got {v!r}"
                           f"{did_you_mean(v, ['all'])}", task)
                return None
        self.error(node, f"'join' must be 'all' or a count, got {type_name(node)}", task)
        return None

    def next_entries(self, node: YNode, task: str, start: int) -> list[Transition]:
        out: list[Transition] = []
        if isinstance(node, YScalar) and node.value is None:
            return out
        if not isinstance(node, YSeq):
            self.error(node, f"'next' must be a list of {{when, publish, do}} entries, got {type_name(node)}",
                       task)
            return out
        for item in node.items:
            if not isinstance(item, YMap):
                self.error(item, f"entries of 'next' must be mappings with when/publish/do, got "
                           f"{type_name(item)}", task)
                continue
            f = self.fields(item, NEXT_KEYS, "'next' entry", task)
            locs: dict[str, Loc] = {}
            when = None
            if "when" in f:
                when = self.condition(f["when"][1], "when", task)
                locs["when"] = f["when"][1].loc
            publish: list[tuple[str, Any]] = []
            if "publish" in f:
                publish = [(n, v) for n, v, _ in self.pairs(f["publish"][1], "publish", locs, "publish", task,
                                                             allow_string=True)]
            targets: list[str] = []
            if "do" in f:
                targets = self.targets(f["do"][1], "do", locs, task)
            if not targets:
                targets = ["continue"]
                locs.setdefault("targets.0", item.loc)
            out.append(Transition(when=when, targets=tuple(targets), publish=tuple(publish),
                                  loc=item.loc, locs=locs))
        return out
