"""YAML text -> a tree of located nodes (the first job of loading a workflow).

Safe by construction: the document is read as a stream of YAML *events* (PyYAML's C parser when
available) and the tree is built here, iteratively, so that

* only plain YAML data is accepted: any tag other than the standard scalar / sequence / mapping
  tags (``!!python/object``, ``!custom`` ...) is refused, nothing is ever constructed from a tag;
* alias expansion is bounded before anything is expanded: a "billion laughs" document is refused
  after :data:`MAX_NODES` nodes in all, and aliases may add at most :data:`MAX_ALIAS_NODES` nodes
  and :data:`MAX_ALIAS_BYTES` characters of scalar text (200 aliases of one 1 MB string would
  otherwise hand 200 MB to everything downstream); nesting depth is bounded by :data:`MAX_DEPTH`;
* every node knows its line and column (a :class:`~flowctx.spec.model.Loc`).

Nothing here knows about workflows: :mod:`flowctx.spec.orquesta` and :mod:`flowctx.spec.listform`
turn the tree into the model.
"""
from __future__ import annotations

import sys
from typing import Any, cast

import yaml

from flowctx.errors import WorkflowError
from flowctx.spec.model import Loc
from flowctx.spec.problems import Problem

__all__ = [
    "MAX_ALIAS_BYTES", "MAX_ALIAS_NODES", "MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "YMap", "YNode", "YScalar", "YSeq", "fail", "parse_yaml",
    "type_name",
]

MAX_NODES = 200_000
#: Upper bound on the nodes that aliases (``*name``) add to the document, all aliases together.
MAX_ALIAS_NODES = 20_000
#: Upper bound on the scalar text (characters) that aliases add to the document, all together.
MAX_ALIAS_BYTES = 4 * 1024 * 1024
#: Upper bound on mapping/sequence nesting.
MAX_DEPTH = 64
#: Upper bound on the size of a workflow file (checked by the loader before parsing).
MAX_BYTES = 16 * 1024 * 1024

_SafeParser: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

_YAML = "tag:yaml.org,2002:"
# ``!!timestamp`` (a plain ``2020-01-01`` resolves to it) is kept as the text written: a date
# object is not a JSON-like value, so a context could never hold it (``flowctx validate`` said ok,
# ``flowctx run`` then refused the value).  ``!!binary`` (bytes) is refused for the same reason.
_TIMESTAMP_TAG = _YAML + "timestamp"
_SCALAR_TAGS = {_YAML + t for t in ("null", "bool", "int", "float", "str", "timestamp")}
_MERGE_TAG = _YAML + "merge"
_STR_TAG = _YAML + "str"
_SEQ_TAGS = {None, "!", _YAML + "seq"}
_MAP_TAGS = {None, "!", _YAML + "map"}


class YNode:
    __slots__ = ("loc", "size", "weight")

    loc: Loc
    size: int
    #: Characters of scalar text in the node (and everything inside it).
    weight: int


class YScalar(YNode):
    __slots__ = ("value", "tag", "style")

    def __init__(self, value: Any, tag: str, style: str | None, loc: Loc) -> None:
        self.value = value
        self.tag = tag
        self.style = style
        self.loc = loc
        self.size = 1
        self.weight = len(value) if isinstance(value, str) else 8


class YSeq(YNode):
    __slots__ = ("items",)

    def __init__(self, loc: Loc) -> None:
        self.items: list[YNode] = []
        self.loc = loc
        self.size = 1
        self.weight = 0


class YMap(YNode):
    __slots__ = ("pairs", "dups", "bad_keys")

    def __init__(self, loc: Loc) -> None:
        #: Key/value pairs, filled in by _finish_map once the mapping is read: every key is a
        #: (hashable) scalar; the other keys are in ``bad_keys``, repeated ones in ``dups``.
        self.pairs: list[tuple[YScalar, YNode]] = []
        self.dups: list[YScalar] = []
        self.bad_keys: list[YNode] = []
        self.loc = loc
        self.size = 1
        self.weight = 0

    def get(self, key: str) -> YNode | None:
        for k, v in self.pairs:
            if isinstance(k, YScalar) and k.value == key:
                return v
        return None


def type_name(node: YNode | None) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    v = cast(YScalar, node).value  # the one other kind of node
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


def _at(event: yaml.Event) -> tuple[int, int]:
    """1-based line and column where a parser event starts (the parser always sets the mark)."""
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def fail(message: str, file: str | None, line: int | None = None, column: int | None = None) -> WorkflowError:
    loc = Loc(file, line or 1, column or 1)
    problem = Problem("error", message, loc)
    return WorkflowError(str(problem), file=file, line=loc.line, column=loc.column, problems=[problem])


def parse_yaml(text: str, file: str | None) -> YNode:
    """Build the located node tree of a single YAML document (iteratively, bounded)."""
    parser = _SafeParser(text)
    try:
        anchors: dict[str, YNode] = {}
        stack: list[list[Any]] = []  # [node, anchor, pending_key, raw pairs (a mapping's, as read)]
        root: YNode | None = None
        total = 0
        alias_nodes = 0
        alias_bytes = 0
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
            parent.weight += node.weight
            if isinstance(parent, YSeq):
                parent.items.append(node)
            elif frame[2] is None:
                frame[2] = node
            else:
                frame[3].append((frame[2], node))
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
                    raise fail(
                        "a workflow file holds one YAML document, found a second one",
                        file, *_at(event),
                    )
                continue
            if isinstance(event, yaml.AliasEvent):
                target = anchors.get(event.anchor or "")  # an alias event always names its anchor
                if target is None:
                    raise fail(f"unknown YAML alias '*{event.anchor}'", file,
                                *_at(event))
                total += target.size
                alias_nodes += target.size
                alias_bytes += target.weight
                if alias_nodes > MAX_ALIAS_NODES or alias_bytes > MAX_ALIAS_BYTES:
                    raise fail(
                        f"YAML aliases expand too much: more than {MAX_ALIAS_NODES} nodes or "
                        f"{MAX_ALIAS_BYTES} characters added through aliases (this one, '*{event.anchor}', "
                        f"brings the total to {alias_nodes} nodes, {alias_bytes} characters)",
                        file, *_at(event),
                    )
                if total > MAX_NODES:
                    raise fail(
                        f"document too large: more than {MAX_NODES} nodes once aliases are expanded"
                        " (YAML alias bomb?)", file, *_at(event),
                    )
                attach(target)
                continue
            total += 1
            if total > MAX_NODES:
                raise fail(f"document too large: more than {MAX_NODES} nodes", file,
                            *_at(event))
            if isinstance(event, yaml.ScalarEvent):
                tag = event.tag
                if tag is None or tag == "!":
                    tag = parser.resolve(yaml.ScalarNode, event.value, event.implicit)
                if tag not in _SCALAR_TAGS and tag != _MERGE_TAG:
                    raise fail(f"YAML tag '{_short_tag(event.tag)}' is not allowed (workflow files hold plain "
                                "data)", file, *_at(event))
                if tag == _MERGE_TAG:
                    value: Any = "<<"
                elif tag == _STR_TAG or tag == _TIMESTAMP_TAG:
                    value = event.value
                else:
                    try:
                        value = parser.construct_object(
                            # the C parser's marks are yaml._yaml.Mark, not the pure one the stub names; only
                            # used in error text
                            yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark,  # type: ignore[arg-type]
                                            event.style),
                        )
                    except (ValueError, OverflowError, yaml.YAMLError, TypeError) as exc:
                        shown = event.value if len(event.value) <= 40 else event.value[:37] + "..."
                        reason = _scalar_reason(tag, event.value, exc)
                        raise fail(f"invalid {tag[len(_YAML):]} value {shown!r}: {reason}",
                                    file, *_at(event)) from None
                node: YNode = YScalar(value, tag, event.style, loc_of(event))
                if event.anchor:
                    anchors[event.anchor] = node
                attach(node)
                continue
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                is_seq = isinstance(event, yaml.SequenceStartEvent)
                if event.tag not in (_SEQ_TAGS if is_seq else _MAP_TAGS):
                    raise fail(f"YAML tag '{_short_tag(event.tag)}' is not allowed (workflow files hold plain "
                                "data)", file, *_at(event))
                if len(stack) >= MAX_DEPTH:
                    raise fail(f"document nested deeper than {MAX_DEPTH} levels", file,
                                *_at(event))
                stack.append([YSeq(loc_of(event)) if is_seq else YMap(loc_of(event)), event.anchor, None, []])
                continue
            if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                node, anchor, _, raw = stack.pop()
                if isinstance(node, YMap):
                    _finish_map(node, raw)
                if anchor:
                    anchors[anchor] = node
                attach(node)
                continue
        if root is None:
            raise fail("the workflow file is empty", file)
        return root
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        msg = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise fail(f"invalid YAML: {msg}", file, mark.line + 1 if mark else None,
                    mark.column + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise fail(f"invalid YAML: {exc}", file) from None
    finally:
        try:
            parser.dispose()
        except Exception:  # pragma: no cover
            pass


def _short_tag(tag: str | None) -> str:
    tag = tag or ""
    return "!!" + tag[len(_YAML):] if tag.startswith(_YAML) else tag


def _finish_map(node: YMap, raw: list[tuple[YNode, YNode]]) -> None:
    """Check keys (scalars, no duplicates) and apply YAML merge keys (``<<: *base``): ``raw``
    are the pairs as read; ``node.pairs`` gets those that pass."""
    explicit: list[tuple[YNode, YNode]] = []
    merged: list[tuple[YScalar, YNode]] = []
    for key, value in raw:
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
    pairs: list[tuple[YScalar, YNode]] = []
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


def _scalar_reason(tag: str, text: str, exc: BaseException) -> str:
    """Why a scalar could not be read, in flowctx's words (not the wording of one CPython version)."""
    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    if tag.endswith(":int") and limit and sum(c.isdigit() for c in text) > limit:
        return f"more than {limit} digits (Python's limit for reading an integer from text)"
    return str(exc).split(":")[0]
