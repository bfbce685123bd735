"""Orquesta native v1 (``version: 1.0``, ``tasks:`` as a mapping) -> model pieces."""
from __future__ import annotations

from typing import Any

from flowctx.spec.model import Loc, ParameterSpec, TaskSpec
from flowctx.spec.shapes import NO_DEFAULT, Builder
from flowctx.spec.yaml_source import YMap, YNode, YScalar, type_name

__all__ = ["ORQUESTA_TASK_KEYS", "ORQUESTA_WORKFLOW_KEYS", "OrquestaBuilder"]

ORQUESTA_WORKFLOW_KEYS = ("version", "description", "input", "vars", "tasks", "output")
ORQUESTA_TASK_KEYS = ("action", "input", "with", "join", "retry", "delay", "next")


class OrquestaBuilder(Builder):
    """The Orquesta parts: ``input`` (names or name: default), ``tasks`` as a mapping."""

    def orquesta_tasks(self, tnode: YNode) -> dict[str, TaskSpec]:
        tasks: dict[str, TaskSpec] = {}
        if isinstance(tnode, YMap):
            for dup in tnode.dups:
                first = next(k for k, _ in tnode.pairs if getattr(k, "value", None) == dup.value)
                self.error(dup, f"duplicate task name '{dup.value}' (first defined at line "
                           f"{first.loc.line})", str(dup.value))
            for bad in tnode.bad_keys:
                self.error(bad, "invalid task name: task names must be strings")
            for key, value in tnode.pairs:
                name = key.value
                if not isinstance(name, str):
                    name = str(name)
                tasks[name] = self.orquesta_task(name, key, value)
        elif not (isinstance(tnode, YScalar) and tnode.value is None):
            self.error(tnode, "'tasks' must be a mapping of task name to task (Orquesta) or a list"
                       f" of tasks (list form), got {type_name(tnode)}")
        return tasks

    def orquesta_inputs(self, node: YNode, locs: dict[str, Loc]) -> list[ParameterSpec]:
        out = []
        for name, value, vnode in self.pairs(node, "input", locs, "parameters", allow_names=True):
            if value is NO_DEFAULT:
                out.append(ParameterSpec(name=name, loc=vnode.loc))
            else:
                out.append(ParameterSpec(name=name, has_default=True, default=value, loc=vnode.loc))
        return out


    def orquesta_task(self, name: str, key: YNode, node: YNode) -> TaskSpec:
        locs: dict[str, Loc] = {"name": key.loc}
        if isinstance(node, YScalar) and node.value is None:
            return TaskSpec(name=name, loc=key.loc, locs=locs)
        if not isinstance(node, YMap):
            self.error(node, f"task '{name}' must be a mapping, got {type_name(node)}", name)
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

