"""YAML (Orquesta native v1 or the list form) -> :class:`~flowctx.spec.model.WorkflowSpec`.

Safe by construction: the document is read as a stream of YAML *events* (PyYAML's C parser when
available) and the tree is built here, iteratively, so that

* only plain YAML data is accepted: any tag other than the standard scalar / sequence / mapping
  tags (``!!python/object``, ``!custom`` ...) is refused, nothing is ever constructed from a tag;
* alias expansion is bounded (a "billion laughs" document is refused after :data:`MAX_NODES`
  expanded nodes, before anything is expanded), and so is nesting depth (:data:`MAX_DEPTH`);
* every node knows its line and column, so every model node gets a :class:`Loc`.

Loading never executes anything and never raises anything but :class:`flowctx.errors.WorkflowError`.
Structural problems (unknown keys, wrong shapes, duplicate names ...) are collected, not raised,
into ``WorkflowSpec.load_problems``; :func:`load_workflow` raises them (with the semantic checks of
:mod:`flowctx.spec.validate`) unless ``validate=False``.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable
from typing import Any

import yaml

from flowctx.errors import WorkflowError
from flowctx.spec.model import (
    Loc,
    ParameterSpec,
    RetrySpec,
    TaskSpec,
    Transition,
    WithItems,
    WorkflowSpec,
)
from flowctx.spec.problems import Problem

__all__ = ["load_workflow", "parse_inline_params", "MAX_NODES", "MAX_DEPTH", "MAX_BYTES"]

#: Upper bound on the number of nodes of the document *after* alias expansion.
MAX_NODES = 200_000
#: Upper bound on mapping/sequence nesting.
MAX_DEPTH = 64
#: Upper bound on the size of a workflow file.
MAX_BYTES = 16 * 1024 * 1024

_SafeParser: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_YAML + t for t in ("null", "bool", "int", "float", "str", "timestamp", "binary")}
_MERGE_TAG = _YAML + "merge"
_STR_TAG = _YAML + "str"
_SEQ_TAGS = {None, "!", _YAML + "seq"}
_MAP_TAGS = {None, "!", _YAML + "map"}


# --------------------------------------------------------------------------------------------
# YAML -> located node tree
# --------------------------------------------------------------------------------------------


class YNode:
    __slots__ = ("loc", "size")

    loc: Loc
    size: int


class YScalar(YNode):
    __slots__ = ("value", "tag", "style")

    def __init__(self, value: Any, tag: str, style: str | None, loc: Loc) -> None:
        self.value = value
        self.tag = tag
        self.style = style
        self.loc = loc
        self.size = 1


class YSeq(YNode):
    __slots__ = ("items",)

    def __init__(self, loc: Loc) -> None:
        self.items: list[YNode] = []
        self.loc = loc
        self.size = 1


class YMap(YNode):
    __slots__ = ("pairs", "dups", "bad_keys")

    def __init__(self, loc: Loc) -> None:
        self.pairs: list[tuple[YNode, YNode]] = []
        self.dups: list[YNode] = []
        self.bad_keys: list[YNode] = []
        self.loc = loc
        self.size = 1

    def get(self, key: str) -> YNode | None:
        for k, v in self.pairs:
            if isinstance(k, YScalar) and k.value == key:
                return v
        return None


def _type_name(node: YNode | None) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    v = node.value
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return type(v).__name__


def _fail(message: str, file: str | None, line: int | None = None, column: int | None = None) -> WorkflowError:
    loc = Loc(file, line or 1, column or 1)
    problem = Problem("error", message, loc)
    return WorkflowError(str(problem), file=file, line=loc.line, column=loc.column, problems=[problem])


def _parse_yaml(text: str, file: str | None) -> YNode:
    """Build the located node tree of a single YAML document (iteratively, bounded)."""
    parser = _SafeParser(text)
    try:
        anchors: dict[str, YNode] = {}
        stack: list[list[Any]] = []  # [node, anchor, pending_key]
        root: YNode | None = None
        total = 0
        documents = 0

        def loc_of(event: Any) -> Loc:
            mark = event.start_mark
            return Loc(file, mark.line + 1, mark.column + 1)

        def attach(node: YNode) -> None:
            nonlocal root
            if not stack:
                root = node
                return
            frame = stack[-1]
            parent = frame[0]
            parent.size += node.size
            if isinstance(parent, YSeq):
                parent.items.append(node)
            elif frame[2] is None:
                frame[2] = node
            else:
                parent.pairs.append((frame[2], node))
                frame[2] = None

        while True:
            event = parser.get_event()
            if event is None or isinstance(event, yaml.StreamEndEvent):
                break
            if isinstance(event, (yaml.StreamStartEvent, yaml.DocumentEndEvent)):
                continue
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _fail(
                        "a workflow file holds one YAML document, found a second one",
                        file, event.start_mark.line + 1, event.start_mark.column + 1,
                    )
                continue
            if isinstance(event, yaml.AliasEvent):
                target = anchors.get(event.anchor)
                if target is None:
                    raise _fail(f"unknown YAML alias '*{event.anchor}'", file,
                                event.start_mark.line + 1, event.start_mark.column + 1)
                total += target.size
                if total > MAX_NODES:
                    raise _fail(
                        f"document too large: more than {MAX_NODES} nodes once aliases are expanded"
                        " (YAML alias bomb?)", file, event.start_mark.line + 1, event.start_mark.column + 1,
                    )
                attach(target)
                continue
            total += 1
            if total > MAX_NODES:
                raise _fail(f"document too large: more than {MAX_NODES} nodes", file,
                            event.start_mark.line + 1, event.start_mark.column + 1)
            if isinstance(event, yaml.ScalarEvent):
                tag = event.tag
                if tag is None or tag == "!":
                    tag = parser.resolve(yaml.ScalarNode, event.value, event.implicit)
                if tag not in _SCALAR_TAGS and tag != _MERGE_TAG:
                    raise _fail(f"YAML tag '{_short_tag(event.tag)}' is not allowed (workflow files hold plain "
                                "data)", file, event.start_mark.line + 1, event.start_mark.column + 1)
                if tag == _MERGE_TAG:
                    value: Any = "<<"
                elif tag == _STR_TAG:
                    value = event.value
                else:
                    try:
                        value = parser.construct_object(
                            yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style),
                        )
                    except (ValueError, OverflowError, yaml.YAMLError, TypeError) as exc:
                        shown = event.value if len(event.value) <= 40 else event.value[:37] + "..."
                        reason = str(exc).split(":")[0]
                        raise _fail(f"invalid {tag[len(_YAML):]} value {shown!r}: {reason}",
                                    file, event.start_mark.line + 1, event.start_mark.column + 1) from None
                node: YNode = YScalar(value, tag, event.style, loc_of(event))
                if event.anchor:
                    anchors[event.anchor] = node
                attach(node)
                continue
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                is_seq = isinstance(event, yaml.SequenceStartEvent)
                if event.tag not in (_SEQ_TAGS if is_seq else _MAP_TAGS):
                    raise _fail(f"YAML tag '{_short_tag(event.tag)}' is not allowed (workflow files hold plain "
                                "data)", file, event.start_mark.line + 1, event.start_mark.column + 1)
                if len(stack) >= MAX_DEPTH:
                    raise _fail(f"document nested deeper than {MAX_DEPTH} levels", file,
                                event.start_mark.line + 1, event.start_mark.column + 1)
                stack.append([YSeq(loc_of(event)) if is_seq else YMap(loc_of(event)), event.anchor, None])
                continue
            if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                node, anchor, _ = stack.pop()
                if isinstance(node, YMap):
                    _finish_map(node)
                if anchor:
                    anchors[anchor] = node
                attach(node)
                continue
        if root is None:
            raise _fail("the workflow file is empty", file)
        return root
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        msg = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise _fail(f"invalid YAML: {msg}", file, mark.line + 1 if mark else None,
                    mark.column + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise _fail(f"invalid YAML: {exc}", file) from None
    finally:
        try:
            parser.dispose()
        except Exception:  # pragma: no cover
            pass


def _short_tag(tag: str | None) -> str:
    tag = tag or ""
    return "!!" + tag[len(_YAML):] if tag.startswith(_YAML) else tag


def _finish_map(node: YMap) -> None:
    """Check keys (scalars, no duplicates) and apply YAML merge keys (``<<: *base``)."""
    explicit: list[tuple[YNode, YNode]] = []
    merged: list[tuple[YNode, YNode]] = []
    for key, value in node.pairs:
        if isinstance(key, YScalar) and key.tag == _MERGE_TAG:
            sources = value.items if isinstance(value, YSeq) else [value]
            for src in sources:
                if isinstance(src, YMap):
                    merged.extend(src.pairs)
                else:
                    node.bad_keys.append(key)
            continue
        explicit.append((key, value))
    seen: set[Any] = set()
    pairs: list[tuple[YNode, YNode]] = []
    for key, value in explicit:
        if not isinstance(key, YScalar) or not _hashable(key.value):
            node.bad_keys.append(key)
            continue
        hk = _key_id(key.value)
        if hk in seen:
            node.dups.append(key)
            continue
        seen.add(hk)
        pairs.append((key, value))
    extra = []
    for key, value in merged:
        if isinstance(key, YScalar) and _hashable(key.value):
            hk = _key_id(key.value)
            if hk not in seen:
                seen.add(hk)
                extra.append((key, value))
    node.pairs = extra + pairs


def _hashable(v: Any) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def _key_id(v: Any) -> tuple[str, Any]:
    return (type(v).__name__, v)


# --------------------------------------------------------------------------------------------
# Inline parameters: ``core.echo message="hi" n=3`` / ``publish: a=<% x %> b=...``
# --------------------------------------------------------------------------------------------

_KEY_RE = re.compile(r"([A-Za-z_][\w.-]*)=")
_CLOSERS = {"<%": "%>", "{{": "}}", "{%": "%}"}


class InlineParamsError(ValueError):
    pass


def _scan_template(s: str, i: int) -> int:
    """Index just past the template that starts at ``s[i]`` (``<% %>``, ``{{ }}``, ``{% %}``)."""
    closer = _CLOSERS[s[i:i + 2]]
    j = s.find(closer, i + 2)
    if j < 0:
        raise InlineParamsError(f"unterminated {s[i:i + 2]!r}")
    return j + 2


def _convert_bare(raw: str) -> Any:
    if raw in ("true", "false", "null") or re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", raw):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def parse_inline_params(text: str) -> list[tuple[str, Any]]:
    """Parse ``key=value key2="quoted value" key3=<% expr with spaces %>`` into ordered pairs.

    Values: ``"..."`` (JSON string escapes) and ``'...'`` are unquoted; ``[...]`` / ``{...}``
    are JSON when they parse as JSON; ``true`` / ``false`` / ``null`` / numbers are converted;
    anything else (including embedded ``<% %>`` / ``{{ }}``) is kept as a string.
    Raises :class:`InlineParamsError` on text that is not ``key=value`` pairs.
    """
    pairs: list[tuple[str, Any]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return pairs
        m = _KEY_RE.match(text, i)
        if not m:
            raise InlineParamsError(f"expected key=value at {text[i:i + 30]!r}")
        key = m.group(1)
        i = m.end()
        if i >= n or text[i].isspace():
            pairs.append((key, ""))
            continue
        ch = text[i]
        if ch in "\"'":
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if (text[j] == "\\" and ch == '"') else 1
            if j >= n:
                raise InlineParamsError(f"unterminated quote in value of {key!r}")
            raw = text[i:j + 1]
            i = j + 1
            if ch == '"':
                try:
                    value: Any = json.loads(raw)
                except ValueError:
                    value = raw[1:-1]
            else:
                value = raw[1:-1]
            pairs.append((key, value))
            continue
        if ch in "[{" and text[i:i + 2] not in _CLOSERS:
            depth, j, quote = 0, i, None
            while j < n:
                c = text[j]
                if quote:
                    if c == "\\":
                        j += 1
                    elif c == quote:
                        quote = None
                elif c in "\"'":
                    quote = c
                elif c in "[{":
                    depth += 1
                elif c in "]}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            raw = text[i:j + 1]
            i = j + 1
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
            pairs.append((key, value))
            continue
        j = i
        while j < n and not text[j].isspace():
            if text[j:j + 2] in _CLOSERS:
                j = _scan_template(text, j)
            else:
                j += 1
        pairs.append((key, _convert_bare(text[i:j])))
        i = j


# --------------------------------------------------------------------------------------------
# Node tree -> model
# --------------------------------------------------------------------------------------------

ORQUESTA_WORKFLOW_KEYS = ("version", "description", "input", "vars", "tasks", "output")
ORQUESTA_TASK_KEYS = ("action", "input", "with", "join", "retry", "delay", "next")
LIST_WORKFLOW_KEYS = (
    "ref", "label", "description", "version", "parameters", "output", "vars", "tasks", "output_map",
)
LIST_TASK_KEYS = (
    "name", "type", "description", "action", "input", "when", "with_items", "concurrency",
    "batch_size", "retry", "timeout", "delay", "join", "publish", "next", "on_success",
    "on_failure", "on_complete", "on_timeout", "decision", "tasks", "workflow",
)
NEXT_KEYS = ("when", "publish", "do")
RETRY_KEYS = ("when", "count", "delay", "backoff", "max_delay")
WITH_KEYS = ("items", "concurrency", "batch_size")
DECISION_KEYS = ("when", "next", "default")
PARAMETER_KEYS = (
    "type", "required", "default", "enum", "items", "description", "properties", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
    "pattern", "minItems", "maxItems", "uniqueItems", "additionalProperties", "title", "const",
    "multipleOf", "secret", "immutable", "position", "examples", "oneOf", "anyOf", "allOf", "not",
    "$ref", "nullable",
)
TASK_TYPES = ("action", "parallel", "workflow")
BACKOFFS = ("constant", "linear", "exponential")
CONDITION_SHORTCUTS = {
    "on_success": "{{ succeeded() }}",
    "on_failure": "{{ failed() }}",
    "on_complete": "{{ completed() }}",
    "on_timeout": "{{ timed_out() }}",
}
_TEMPLATE_MARKERS = ("{{", "{%", "<%")
_NAMED_ITEMS_RE = re.compile(r"^\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s+in\s+(\S.*?)\s*$", re.S)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def is_template(value: Any) -> bool:
    return isinstance(value, str) and any(m in value for m in _TEMPLATE_MARKERS)


def _single_expression(text: str) -> tuple[str, str] | None:
    """``("{{", expr)`` / ``("<%", expr)`` if ``text`` is exactly one expression, else None."""
    s = text.strip()
    for opener, closer in (("{{", "}}"), ("<%", "%>")):
        if s.startswith(opener) and s.endswith(closer):
            inner = s[2:-2]
            if opener not in inner and closer not in inner:
                return opener, inner.strip()
    return None


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


class _Builder:
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
            assert isinstance(key, YScalar)
            name = key.value
            if not isinstance(name, str) or name not in allowed:
                self.error(key, f"unknown key '{name}' in {what}{did_you_mean(str(name), allowed)}", task)
                continue
            out[name] = (key, value)
        return out

    def check_keys(self, node: YMap, what: str, task: str | None = None) -> None:
        for key in node.dups:
            self.error(key, f"duplicate key '{key.value}' in {what}", task)  # type: ignore[attr-defined]
        for key in node.bad_keys:
            self.error(key, f"invalid key in {what}: keys must be plain scalars", task)

    def plain(self, node: YNode) -> Any:
        """The plain Python value of a node (dicts, lists, scalars)."""
        if isinstance(node, YScalar):
            return node.value
        if isinstance(node, YSeq):
            return [self.plain(item) for item in node.items]
        assert isinstance(node, YMap)
        return {k.value: self.plain(v) for k, v in node.pairs}  # type: ignore[attr-defined]

    def record(self, locs: dict[str, Loc], path: str, node: YNode) -> None:
        """Record the Loc of ``node`` (and of everything inside it) under ``path``."""
        todo = [(path, node)]
        while todo:
            p, n = todo.pop()
            locs[p] = n.loc
            if isinstance(n, YSeq):
                todo.extend((f"{p}.{i}", item) for i, item in enumerate(n.items))
            elif isinstance(n, YMap):
                todo.extend((f"{p}.{k.value}", v) for k, v in n.pairs)  # type: ignore[attr-defined]

    def string(self, node: YNode, what: str, task: str | None = None, *, allow_none: bool = False) -> str | None:
        if isinstance(node, YScalar):
            v = node.value
            if v is None and allow_none:
                return None
            if isinstance(v, str):
                return v
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return str(v)
        self.error(node, f"'{what}' must be a string, got {_type_name(node)}", task)
        return None

    def scalar(self, node: YNode, what: str, task: str | None = None) -> Any:
        """A scalar value (number, string/template, bool, None) for a numeric field."""
        if isinstance(node, YScalar):
            return node.value
        self.error(node, f"'{what}' must be a number or a template, got {_type_name(node)}", task)
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
            if not isinstance(name, str) or not name:
                self.error(key, f"names in '{what}' must be strings, got {_type_name(key)}", task)
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
                add(k, v, k.value, self.plain(v))  # type: ignore[attr-defined]
            return out
        if isinstance(node, YSeq):
            for item in node.items:
                if isinstance(item, YMap) and len(item.pairs) == 1 and not item.dups:
                    k, v = item.pairs[0]
                    add(k, v, k.value, self.plain(v))  # type: ignore[attr-defined]
                elif allow_names and isinstance(item, YScalar) and isinstance(item.value, str):
                    add(item, None, item.value, _NO_DEFAULT)
                else:
                    shape = "names or one-key mappings" if allow_names else "one-key mappings (name: value)"
                    self.error(item, f"items of '{what}' must be {shape}, got {_type_name(item)}"
                               + (" with several keys" if isinstance(item, YMap) else ""), task)
            return out
        shape = "a list of one-key mappings or a mapping"
        if allow_string:
            shape += " or a 'name=value ...' string"
        self.error(node, f"'{what}' must be {shape}, got {_type_name(node)}", task)
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
                           f"got {_type_name(item)}", task)
        return names

    # -- whole workflow -----------------------------------------------------------------------
    def workflow(self, root: YNode, source: str | None) -> WorkflowSpec:
        file = self.file
        if not isinstance(root, YMap):
            self.error(root, f"a workflow must be a mapping, got {_type_name(root)}")
            return WorkflowSpec(tasks={}, file=file, source=source, loc=root.loc,
                                load_problems=tuple(self.problems))
        tasks_node = root.get("tasks")
        syntax = "list" if isinstance(tasks_node, YSeq) else "orquesta"
        if tasks_node is None and any(root.get(k) is not None for k in ("ref", "parameters", "output_map", "label")):
            syntax = "list"
        allowed = LIST_WORKFLOW_KEYS if syntax == "list" else ORQUESTA_WORKFLOW_KEYS
        what = "workflow" if syntax == "orquesta" else "workflow (list form)"
        f = self.fields(root, allowed, what)
        locs: dict[str, Loc] = {}
        kw: dict[str, Any] = {}
        for name in ("version", "description", "ref", "label"):
            if name in f:
                kw[name] = self.string(f[name][1], name, allow_none=True)
                locs[name] = f[name][1].loc

        if syntax == "orquesta":
            params = self.orquesta_inputs(f["input"][1], locs) if "input" in f else []
        else:
            params = self.list_parameters(f["parameters"][1], locs) if "parameters" in f else []
        vars_: list[tuple[str, Any]] = []
        if "vars" in f:
            vars_ = [(n, v) for n, v, _ in self.pairs(f["vars"][1], "vars", locs, "vars")]
        output: list[tuple[str, Any]] = []
        output_schema = None
        if syntax == "orquesta" and "output" in f:
            output = [(n, v) for n, v, _ in self.pairs(f["output"][1], "output", locs, "output")]
        if syntax == "list":
            if "output" in f:
                node = f["output"][1]
                if isinstance(node, YMap):
                    output_schema = self.plain(node)
                    self.record(locs, "output_schema", node)
                elif isinstance(node, YSeq):
                    output = [(n, v) for n, v, _ in self.pairs(node, "output", locs, "output")]
                elif not (isinstance(node, YScalar) and node.value is None):
                    self.error(node, f"'output' must be a JSON schema (a mapping), got {_type_name(node)}")
            if "output_map" in f:
                output += [(n, v) for n, v, _ in self.pairs(f["output_map"][1], "output_map", locs, "output")]

        tasks: dict[str, TaskSpec] = {}
        if "tasks" not in f:
            if tasks_node is None:
                self.error(root, "missing required key 'tasks'")
        else:
            tnode = f["tasks"][1]
            locs["tasks"] = f["tasks"][0].loc
            if syntax == "orquesta":
                if isinstance(tnode, YMap):
                    for dup in tnode.dups:
                        first = next(k for k, _ in tnode.pairs if getattr(k, "value", None) == dup.value)  # type: ignore[attr-defined]
                        self.error(dup, f"duplicate task name '{dup.value}' (first defined at line "  # type: ignore[attr-defined]
                                   f"{first.loc.line})", str(dup.value))  # type: ignore[attr-defined]
                    for bad in tnode.bad_keys:
                        self.error(bad, "invalid task name: task names must be strings")
                    for key, value in tnode.pairs:
                        name = key.value  # type: ignore[attr-defined]
                        if not isinstance(name, str):
                            name = str(name)
                        tasks[name] = self.orquesta_task(name, key, value)
                elif isinstance(tnode, YScalar) and tnode.value is None:
                    pass
                else:
                    self.error(tnode, "'tasks' must be a mapping of task name to task (Orquesta) or a list"
                               f" of tasks (list form), got {_type_name(tnode)}")
            else:
                for t in self.list_tasks(tnode, "tasks", set()):
                    tasks[t.name] = t
        return WorkflowSpec(
            tasks=tasks,
            parameters=tuple(params),
            vars=tuple(vars_),
            output=tuple(output),
            output_schema=output_schema,
            syntax=syntax,  # type: ignore[arg-type]
            file=file,
            source=source,
            loc=root.loc,
            locs=locs,
            load_problems=tuple(self.problems),
            **kw,
        )

    def orquesta_inputs(self, node: YNode, locs: dict[str, Loc]) -> list[ParameterSpec]:
        out = []
        for name, value, vnode in self.pairs(node, "input", locs, "parameters", allow_names=True):
            if value is _NO_DEFAULT:
                out.append(ParameterSpec(name=name, loc=vnode.loc))
            else:
                out.append(ParameterSpec(name=name, has_default=True, default=value, loc=vnode.loc))
        return out

    def list_parameters(self, node: YNode, locs: dict[str, Loc]) -> list[ParameterSpec]:
        if isinstance(node, YScalar) and node.value is None:
            return []
        if not isinstance(node, YMap):
            self.error(node, f"'parameters' must be a mapping of parameter name to schema, got {_type_name(node)}")
            return []
        required_list: set[str] = set()
        props = node
        props_node = node.get("properties")
        type_node = node.get("type")
        if isinstance(props_node, YMap) and isinstance(type_node, YScalar) and type_node.value == "object":
            # A full JSON schema: {type: object, properties: {...}, required: [...]}.
            self.fields(node, ("type", "properties", "required", "additionalProperties", "description",
                               "title"), "parameters schema")
            req = node.get("required")
            if isinstance(req, YSeq):
                required_list = {i.value for i in req.items if isinstance(i, YScalar)}  # type: ignore[misc]
            elif req is not None:
                self.error(req, f"'required' must be a list of parameter names, got {_type_name(req)}")
            props = props_node
        self.check_keys(props, "parameters")
        out = []
        for key, value in props.pairs:
            name = key.value  # type: ignore[attr-defined]
            if not isinstance(name, str):
                self.error(key, f"parameter names must be strings, got {_type_name(key)}")
                continue
            locs[f"parameters.{name}"] = key.loc
            if not isinstance(value, YMap):
                if isinstance(value, YScalar) and value.value is None:
                    out.append(ParameterSpec(name=name, required=name in required_list, loc=key.loc))
                    continue
                self.error(value, f"parameter '{name}' must be a schema (a mapping with 'type', "
                           f"'default', ...), got {_type_name(value)}")
                continue
            f = self.fields(value, PARAMETER_KEYS, f"parameter '{name}'")
            schema = {k: self.plain(v) for k, (_, v) in f.items() if k not in ("required", "default")}
            required = name in required_list
            if "required" in f:
                rnode = f["required"][1]
                if isinstance(rnode, YScalar) and isinstance(rnode.value, bool):
                    required = required or rnode.value
                else:
                    self.error(rnode, f"'required' must be true or false, got {_type_name(rnode)}")
            has_default = "default" in f
            default = self.plain(f["default"][1]) if has_default else None
            if has_default:
                locs[f"parameters.{name}.default"] = f["default"][1].loc
            out.append(ParameterSpec(name=name, schema=schema, required=required,
                                     has_default=has_default, default=default, loc=key.loc))
        return out

    # -- tasks -----------------------------------------------------------------------------
    def task_action(self, f: dict[str, tuple[YScalar, YNode]], task: str, locs: dict[str, Loc],
                    kw: dict[str, Any]) -> None:
        inline: list[tuple[str, Any]] = []
        if "action" in f:
            anode = f["action"][1]
            text = self.string(anode, "action", task, allow_none=True)
            locs["action"] = anode.loc
            if text is not None:
                text = text.strip()
                parts = text.split(None, 1)
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
        inputs: dict[str, Any] = dict(inline)
        if "input" in f:
            inode = f["input"][1]
            if isinstance(inode, YMap):
                self.check_keys(inode, "'input'", task)
                for k, v in inode.pairs:
                    name = k.value  # type: ignore[attr-defined]
                    if not isinstance(name, str):
                        self.error(k, f"input names must be strings, got {_type_name(k)}", task)
                        continue
                    if name in inputs:
                        self.warning(k, f"input '{name}' is also given inline in 'action'; "
                                        "the value under 'input' wins", task)
                    inputs[name] = self.plain(v)
                    self.record(locs, f"input.{name}", v)
            elif not (isinstance(inode, YScalar) and inode.value is None):
                self.error(inode, f"'input' must be a mapping, got {_type_name(inode)}", task)
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
            self.error(items_node, f"'{key}' items must be a template or a list, got {_type_name(items_node)}",
                       task)
            return None
        return WithItems(items=items, names=names, concurrency=conc, batch_size=batch, loc=node.loc)

    def retry(self, node: YNode, task: str, locs: dict[str, Loc]) -> RetrySpec | None:
        if not isinstance(node, YMap):
            self.error(node, f"'retry' must be a mapping (count, delay, ...), got {_type_name(node)}", task)
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
                           else f"'backoff' must be one of {', '.join(BACKOFFS)}, got {_type_name(b)}", task)
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
        self.error(node, f"'{what}' must be a condition (a template string), got {_type_name(node)}", task)
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
        self.error(node, f"'join' must be 'all' or a count, got {_type_name(node)}", task)
        return None

    def next_entries(self, node: YNode, task: str, start: int) -> list[Transition]:
        out: list[Transition] = []
        if isinstance(node, YScalar) and node.value is None:
            return out
        if not isinstance(node, YSeq):
            self.error(node, f"'next' must be a list of {{when, publish, do}} entries, got {_type_name(node)}",
                       task)
            return out
        for item in node.items:
            if not isinstance(item, YMap):
                self.error(item, f"entries of 'next' must be mappings with when/publish/do, got "
                           f"{_type_name(item)}", task)
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

    def orquesta_task(self, name: str, key: YNode, node: YNode) -> TaskSpec:
        locs: dict[str, Loc] = {"name": key.loc}
        if isinstance(node, YScalar) and node.value is None:
            return TaskSpec(name=name, loc=key.loc, locs=locs)
        if not isinstance(node, YMap):
            self.error(node, f"task '{name}' must be a mapping, got {_type_name(node)}", name)
            return TaskSpec(name=name, loc=key.loc, locs=locs)
        f = self.fields(node, ORQUESTA_TASK_KEYS, "task", name)
        kw: dict[str, Any] = {}
        self.task_action(f, name, locs, kw)
        if "with" in f:
            kw["with_items"] = self.with_items(f["with"][1], name, locs, "with")
        if "join" in f:
            kw["join"] = self.join(f["join"][1], name)
            locs["join"] = f["join"][1].loc
        if "retry" in f:
            kw["retry"] = self.retry(f["retry"][1], name, locs)
        if "delay" in f:
            kw["delay"] = self.scalar(f["delay"][1], "delay", name)
            locs["delay"] = f["delay"][1].loc
        if "next" in f:
            kw["transitions"] = tuple(self.next_entries(f["next"][1], name, 0))
        return TaskSpec(name=name, loc=key.loc, locs=locs, **kw)

    def list_tasks(self, node: YNode, what: str, names_seen: set[str]) -> list[TaskSpec]:
        if isinstance(node, YScalar) and node.value is None:
            return []
        if not isinstance(node, YSeq):
            self.error(node, f"'{what}' must be a list of tasks, got {_type_name(node)}")
            return []
        out: list[TaskSpec] = []
        local: dict[str, TaskSpec] = {}
        for item in node.items:
            task = self.list_task(item, names_seen)
            if task is None:
                continue
            if task.name in local or task.name in names_seen:
                first = local.get(task.name)
                where = f" (first defined at line {first.loc.line})" if first and first.loc else ""
                self.error(task.locs.get("name", task.loc), f"duplicate task name '{task.name}'{where}", task.name)
                continue
            local[task.name] = task
            out.append(task)
        names_seen.update(local)
        return out

    def list_task(self, node: YNode, names_seen: set[str]) -> TaskSpec | None:
        if not isinstance(node, YMap):
            self.error(node, f"a task must be a mapping with 'name', 'action', ..., got {_type_name(node)}")
            return None
        name_node = node.get("name")
        name = None
        if name_node is None:
            self.error(node, "task is missing 'name'")
        else:
            name = self.string(name_node, "name")
        if not name:
            return None
        f = self.fields(node, LIST_TASK_KEYS, "task", name)
        locs: dict[str, Loc] = {"name": name_node.loc}  # type: ignore[union-attr]
        kw: dict[str, Any] = {}
        ttype = "action"
        if "type" in f:
            tnode = f["type"][1]
            locs["type"] = tnode.loc
            if isinstance(tnode, YScalar) and tnode.value in TASK_TYPES:
                ttype = tnode.value
            else:
                shown = repr(tnode.value) if isinstance(tnode, YScalar) else _type_name(tnode)
                self.error(tnode, f"unknown task type {shown}: expected one of {', '.join(TASK_TYPES)}"
                           f"{did_you_mean(str(getattr(tnode, 'value', '')), TASK_TYPES)}", name)
        kw["type"] = ttype
        self.task_action(f, name, locs, kw)
        if "when" in f:
            kw["when"] = self.condition(f["when"][1], "when", name)
            locs["when"] = f["when"][1].loc
        if "with_items" in f:
            kw["with_items"] = self.with_items(f["with_items"][1], name, locs, "with_items", f)
        else:
            for orphan in ("concurrency", "batch_size"):
                if orphan in f:
                    self.error(f[orphan][0], f"'{orphan}' only applies to a task with 'with_items'", name)
        if "retry" in f:
            kw["retry"] = self.retry(f["retry"][1], name, locs)
        for key in ("timeout", "delay"):
            if key in f:
                kw[key] = self.scalar(f[key][1], key, name)
                locs[key] = f[key][1].loc
        if "join" in f:
            kw["join"] = self.join(f["join"][1], name)
            locs["join"] = f["join"][1].loc
        if "publish" in f:
            kw["publish"] = tuple((n, v) for n, v, _ in self.pairs(
                f["publish"][1], "publish", locs, "publish", name, allow_string=True))
        if "workflow" in f:
            kw["workflow"] = self.string(f["workflow"][1], "workflow", name)
            locs["workflow"] = f["workflow"][1].loc
        if ttype == "workflow" and "workflow" not in f and not kw.get("action"):
            self.error(locs["type"], "a task of type 'workflow' needs 'workflow' (the sub-workflow file)", name)
        if "tasks" in f:
            if ttype != "parallel":
                self.error(f["tasks"][0], "'tasks' is only allowed in a task of type 'parallel'", name)
            else:
                kw["subtasks"] = tuple(self.list_tasks(f["tasks"][1], "tasks", names_seen))
                locs["tasks"] = f["tasks"][0].loc
        elif ttype == "parallel":
            self.error(locs["type"], "a task of type 'parallel' needs 'tasks' (the sub-tasks to run)", name)
        if ttype == "parallel" and kw.get("action"):
            self.error(locs["action"], "a task of type 'parallel' has no 'action' (it runs its 'tasks')", name)

        transitions: list[Transition] = []
        for key, (knode, vnode) in f.items():
            if key == "next":
                if isinstance(vnode, YScalar) and isinstance(vnode.value, str):
                    tl: dict[str, Loc] = {}
                    targets = self.targets(vnode, "next", tl, name)
                    transitions.append(Transition(when="{{ succeeded() }}", targets=tuple(targets),
                                                  loc=knode.loc, locs=tl))
                else:
                    transitions.extend(self.next_entries(vnode, name, len(transitions)))
            elif key in CONDITION_SHORTCUTS:
                tl = {"when": knode.loc}
                targets = self.targets(vnode, key, tl, name)
                if targets:
                    transitions.append(Transition(when=CONDITION_SHORTCUTS[key], targets=tuple(targets),
                                                  loc=knode.loc, locs=tl))
            elif key == "decision":
                transitions.extend(self.decision(vnode, name))
        kw["transitions"] = tuple(transitions)
        return TaskSpec(name=name, loc=node.loc, locs=locs, **kw)

    def decision(self, node: YNode, task: str) -> list[Transition]:
        out: list[Transition] = []
        if not isinstance(node, YSeq):
            self.error(node, f"'decision' must be a list of branches ({{when, next}} or {{default}}), "
                       f"got {_type_name(node)}", task)
            return out
        group = f"{task}.decision"
        default_seen: YNode | None = None
        for item in node.items:
            if not isinstance(item, YMap):
                self.error(item, f"a decision branch must be a mapping ({{when, next}} or {{default: task}}), "
                           f"got {_type_name(item)}", task)
                continue
            f = self.fields(item, DECISION_KEYS, "decision branch", task)
            locs: dict[str, Loc] = {}
            if "default" in f:
                if "when" in f or "next" in f:
                    self.error(item, "a decision branch has either 'default' or 'when' and 'next'", task)
                if default_seen is not None:
                    self.error(f["default"][0], f"more than one 'default' branch in 'decision' "
                               f"(first at line {default_seen.loc.line})", task)
                    continue
                default_seen = f["default"][0]
                targets = self.targets(f["default"][1], "default", locs, task)
                locs["when"] = item.loc
                out.append(Transition(when="{{ succeeded() }}", targets=tuple(targets), group=group,
                                      otherwise=True, loc=item.loc, locs=locs))
                continue
            if "next" not in f:
                self.error(item, "a decision branch needs 'next' (the task to run)", task)
                continue
            if "when" not in f:
                self.error(item, "a decision branch needs 'when' (or is the 'default' branch)", task)
                continue
            when = self.condition(f["when"][1], "when", task)
            locs["when"] = f["when"][1].loc
            targets = self.targets(f["next"][1], "next", locs, task)
            out.append(Transition(when=and_condition("{{ succeeded() }}", when), targets=tuple(targets),
                                  group=group, loc=item.loc, locs=locs))
        if out and default_seen is not None and not out[-1].otherwise:
            # the default branch fires only when no other branch did: keep it last
            out.sort(key=lambda t: t.otherwise)
        return out


class _NoDefault:
    def __repr__(self) -> str:
        return "<no default>"


_NO_DEFAULT = _NoDefault()


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _looks_like_path(text: str) -> bool:
    """One line that cannot be a workflow (no ':' for a mapping, no flow collection or comment):
    read it as a file name, so a missing file says so instead of "got a string"."""
    return bool(text.strip()) and not any(c in text for c in ":{}[]#\"'\x00")


def _read(path_or_text: Any, file: str | None) -> tuple[str, str | None]:
    data: Any
    if isinstance(path_or_text, os.PathLike) or (
        isinstance(path_or_text, str)
        and "\n" not in path_or_text
        and len(path_or_text) < 4096
        and (
            path_or_text.endswith((".yaml", ".yml"))
            or os.path.exists(path_or_text)  # a directory too: "Is a directory", not "got a string"
            or _looks_like_path(path_or_text)
        )
    ):
        path = os.fspath(path_or_text)
        file = file or (path.decode(errors="replace") if isinstance(path, bytes) else path)
        try:
            size = os.path.getsize(path)
            if size > MAX_BYTES:
                raise _fail(f"workflow file too large ({size} bytes, at most {MAX_BYTES})", file)
            with open(path, "rb") as fh:
                data = fh.read(MAX_BYTES + 1)
        except OSError as exc:
            raise _fail(f"cannot read workflow file: {exc.strerror or exc}", file) from None
        except ValueError as exc:  # a NUL in the name
            raise _fail(f"cannot read workflow file: {exc}", file) from None
    else:
        data = path_or_text
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        if len(data) > MAX_BYTES:
            raise _fail(f"workflow too large ({len(data)} bytes, at most {MAX_BYTES})", file)
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            raise _fail(f"workflow file is not valid UTF-8 (byte 0x{data[exc.start]:02x})", file, line,
                        column) from None
    if not isinstance(data, str):
        raise _fail(f"load_workflow() takes a path or YAML text, got {type(data).__name__}", file)
    if len(data) > MAX_BYTES:
        raise _fail(f"workflow too large ({len(data)} characters, at most {MAX_BYTES})", file)
    return data, file


def load_workflow(path_or_text: Any, *, file: str | None = None, validate: bool = True) -> WorkflowSpec:
    """Load a workflow (Orquesta native v1 or list form) from a path or from YAML text.

    ``file`` names the source in messages when text is passed.  With ``validate=True`` (the
    default) every problem of :func:`flowctx.spec.validate` is checked and a
    :class:`~flowctx.errors.WorkflowError` listing all errors is raised if there is any (warnings
    do not raise).  With ``validate=False`` only unreadable YAML raises; structural problems are
    kept in ``spec.load_problems``.
    """
    try:
        text, file = _read(path_or_text, file)
        root = _parse_yaml(text, file)
        builder = _Builder(file)
        spec = builder.workflow(root, text)
    except WorkflowError:
        raise
    except RecursionError:
        raise _fail("workflow too deeply nested", file) from None
    except MemoryError:
        raise _fail("workflow too large to load", file) from None
    except Exception as exc:  # pragma: no cover - a loader bug must still surface as WorkflowError
        raise _fail(f"internal error while loading the workflow: {type(exc).__name__}: {exc}", file) from exc
    if validate:
        from flowctx.spec.validate import raise_for_problems, validate as _validate

        raise_for_problems(_validate(spec), spec)
    return spec
