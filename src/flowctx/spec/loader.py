"""Load a workflow file: YAML (Orquesta native v1 or the list form) -> :class:`WorkflowSpec`.

This is the entry point; the work is split by job:

* :mod:`flowctx.spec.yaml_source` reads the YAML safely into a tree of located nodes;
* :mod:`flowctx.spec.shapes` holds the node -> model helpers both syntaxes share;
* :mod:`flowctx.spec.orquesta` and :mod:`flowctx.spec.listform` normalise each syntax into the one
  model (:mod:`flowctx.spec.model`);
* :mod:`flowctx.spec.validate` checks the model.

Loading never executes anything and never raises anything but :class:`flowctx.errors.WorkflowError`.
Structural problems (unknown keys, wrong shapes, duplicate names ...) are collected, not raised,
into ``WorkflowSpec.load_problems``; :func:`load_workflow` raises them (with the semantic checks of
:mod:`flowctx.spec.validate`) unless ``validate=False``.
"""
from __future__ import annotations

import os
from typing import Any, Literal

from flowctx.errors import WorkflowError
from flowctx.spec.inline_params import parse_inline_params
from flowctx.spec.listform import LIST_WORKFLOW_KEYS, ListFormBuilder, translate_c_ternaries
from flowctx.spec.model import Loc, TaskSpec, WorkflowSpec
from flowctx.spec.orquesta import ORQUESTA_WORKFLOW_KEYS, OrquestaBuilder
from flowctx.spec.shapes import did_you_mean, is_template
from flowctx.spec.yaml_source import (
    MAX_ALIAS_BYTES,
    MAX_ALIAS_NODES,
    MAX_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    YMap,
    YNode,
    YSeq,
    fail,
    parse_yaml,
    type_name,
)

__all__ = [
    "MAX_ALIAS_BYTES", "MAX_ALIAS_NODES", "MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "did_you_mean", "is_template", "load_workflow",
    "parse_inline_params",
]


class _Builder(OrquestaBuilder, ListFormBuilder):
    """Both syntaxes: which one a file uses is decided by the shape of ``tasks``."""

    def workflow(self, root: YNode, source: str | None) -> WorkflowSpec:
        file = self.file
        if not isinstance(root, YMap):
            self.error(root, f"a workflow must be a mapping, got {type_name(root)}")
            return WorkflowSpec(tasks={}, file=file, source=source, loc=root.loc,
                                load_problems=tuple(self.problems))
        tasks_node = root.get("tasks")
        syntax: Literal["orquesta", "list"] = "list" if isinstance(tasks_node, YSeq) else "orquesta"
        if tasks_node is None and any(root.get(k) is not None for k in ("ref", "parameters", "output_map", "label")):
            syntax = "list"
        if syntax == "list":
            translate_c_ternaries(root)  # the list form's `c ? a : b` is Jinja's `(a if c else b)`
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
            output, output_schema = self.list_output(f, locs)

        tasks: dict[str, TaskSpec] = {}
        if "tasks" not in f:
            if tasks_node is None:
                self.error(root, "missing required key 'tasks'")
        else:
            tnode = f["tasks"][1]
            locs["tasks"] = f["tasks"][0].loc
            if syntax == "orquesta":
                tasks = self.orquesta_tasks(tnode)
            else:
                for t in self.list_tasks(tnode, "tasks", set()):
                    tasks[t.name] = t
        return WorkflowSpec(
            tasks=tasks,
            parameters=tuple(params),
            vars=tuple(vars_),
            output=tuple(output),
            output_schema=output_schema,
            syntax=syntax,
            file=file,
            source=source,
            loc=root.loc,
            locs=locs,
            load_problems=tuple(self.problems),
            **kw,
        )


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
                raise fail(f"workflow file too large ({size} bytes, at most {MAX_BYTES})", file)
            with open(path, "rb") as fh:
                data = fh.read(MAX_BYTES + 1)
        except OSError as exc:
            raise fail(f"cannot read workflow file: {exc.strerror or exc}", file) from None
        except ValueError:  # a NUL in the name (each CPython version words it differently)
            raise fail("cannot read workflow file: the file name contains a NUL character", file) from None
    else:
        data = path_or_text
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        if len(data) > MAX_BYTES:
            raise fail(f"workflow too large ({len(data)} bytes, at most {MAX_BYTES})", file)
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            raise fail(f"workflow file is not valid UTF-8 (byte 0x{data[exc.start]:02x})", file, line,
                        column) from None
    if not isinstance(data, str):
        raise fail(f"load_workflow() takes a path or YAML text, got {type(data).__name__}", file)
    if len(data) > MAX_BYTES:
        raise fail(f"workflow too large ({len(data)} characters, at most {MAX_BYTES})", file)
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
        root = parse_yaml(text, file)
        builder = _Builder(file)
        spec = builder.workflow(root, text)
    except WorkflowError:
        raise
    except RecursionError:
        raise fail("workflow too deeply nested", file) from None
    except MemoryError:
        raise fail("workflow too large to load", file) from None
    except Exception as exc:  # pragma: no cover - a loader bug must still surface as WorkflowError
        raise fail(f"internal error while loading the workflow: {type(exc).__name__}: {exc}", file) from exc
    if validate:
        from flowctx.spec.validate import raise_for_problems
        from flowctx.spec.validate import validate as _validate

        raise_for_problems(_validate(spec), spec)
    return spec
