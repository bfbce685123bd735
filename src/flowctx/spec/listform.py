"""The original list form (``tasks:`` as a list of ``{name, action, ...}``) -> model pieces.

Its shortcuts become the same model the Orquesta form loads into: ``on_success`` & co. are
transitions with ``succeeded()`` / ``failed()`` / ``completed()`` / ``timed_out()`` conditions,
``decision`` branches share a transition group whose ``default`` fires only when no other did.
"""
from __future__ import annotations

from typing import Any

from flowctx.spec.model import Loc, ParameterSpec, TaskSpec, Transition
from flowctx.spec.shapes import Builder, and_condition, did_you_mean, is_template
from flowctx.spec.yaml_source import YMap, YNode, YScalar, YSeq, type_name

__all__ = [
    "CONDITION_SHORTCUTS", "LIST_TASK_KEYS", "LIST_WORKFLOW_KEYS", "ListFormBuilder", "TASK_TYPES", "translate_c_ternaries",
]

LIST_WORKFLOW_KEYS = (
    "ref", "label", "description", "version", "parameters", "output", "vars", "tasks", "output_map",
)
LIST_TASK_KEYS = (
    "name", "type", "description", "action", "input", "when", "with_items", "concurrency",
    "batch_size", "retry", "timeout", "delay", "join", "publish", "next", "on_success",
    "on_failure", "on_complete", "on_timeout", "decision", "tasks", "workflow",
)
DECISION_KEYS = ("when", "next", "default")
PARAMETER_KEYS = (
    "type", "required", "default", "enum", "items", "description", "properties", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
    "pattern", "minItems", "maxItems", "uniqueItems", "additionalProperties", "title", "const",
    "multipleOf", "secret", "immutable", "position", "examples", "oneOf", "anyOf", "allOf", "not",
    "$ref", "nullable",
)
TASK_TYPES = ("action", "parallel", "workflow")
CONDITION_SHORTCUTS = {
    "on_success": "{{ succeeded() }}",
    "on_failure": "{{ failed() }}",
    "on_complete": "{{ completed() }}",
    "on_timeout": "{{ timed_out() }}",
}


_CONDITION_KEYS = frozenset({"when"})


def translate_c_ternaries(node: YNode, key: str | None = None) -> None:
    """The list form's C-style conditional ``c ? a : b`` (attune's ``output_map`` uses it) becomes
    Jinja's ``(a if c else b)`` in place, in every ``{{ }}`` of the tree and in bare ``when``
    conditions.  Jinja has no ``?`` operator: only text Jinja would reject is changed (a ``?``
    inside a string literal is left alone).  Orquesta-syntax workflows get no such translation:
    there ``?`` is an error, as in Orquesta."""
    if isinstance(node, YScalar):
        value = node.value
        if isinstance(value, str) and "?" in value:
            from flowctx.render._jinja import rewrite_ternaries_in_template, rewrite_ternary

            if is_template(value):
                new = rewrite_ternaries_in_template(value) if "{{" in value else None
            elif key in _CONDITION_KEYS:
                new = rewrite_ternary(value)
            else:
                new = None
            if new is not None:
                node.value = new
    elif isinstance(node, YMap):
        for k, v in node.pairs:
            translate_c_ternaries(v, k.value if isinstance(k.value, str) else None)
    elif isinstance(node, YSeq):
        for item in node.items:
            translate_c_ternaries(item, key)


class ListFormBuilder(Builder):
    """The list-form parts: ``parameters`` (a JSON schema), ``output``, ``tasks`` as a list."""

    def list_output(self, f: dict[str, tuple[YScalar, YNode]], locs: dict[str, Loc]
                    ) -> tuple[list[tuple[str, Any]], Any]:
        """``output`` (a JSON schema, or a list of name: value) and ``output_map``."""
        output: list[tuple[str, Any]] = []
        output_schema = None
        if "output" in f:
            node = f["output"][1]
            if isinstance(node, YMap):
                output_schema = self.plain(node)
                self.record(locs, "output_schema", node)
            elif isinstance(node, YSeq):
                output = [(n, v) for n, v, _ in self.pairs(node, "output", locs, "output")]
            elif not (isinstance(node, YScalar) and node.value is None):
                self.error(node, f"'output' must be a JSON schema (a mapping), got {type_name(node)}")
        if "output_map" in f:
            output += [(n, v) for n, v, _ in self.pairs(f["output_map"][1], "output_map", locs, "output")]
        return output, output_schema

    def list_parameters(self, node: YNode, locs: dict[str, Loc]) -> list[ParameterSpec]:
        if isinstance(node, YScalar) and node.value is None:
            return []
        if not isinstance(node, YMap):
            self.error(node, f"'parameters' must be a mapping of parameter name to schema, got {type_name(node)}")
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
                required_list = {i.value for i in req.items if isinstance(i, YScalar)}
            elif req is not None:
                self.error(req, f"'required' must be a list of parameter names, got {type_name(req)}")
            props = props_node
        self.check_keys(props, "parameters")
        out = []
        for key, value in props.pairs:
            name = key.value
            if not isinstance(name, str):
                self.error(key, f"parameter names must be strings, got {type_name(key)}")
                continue
            locs[f"parameters.{name}"] = key.loc
            if not isinstance(value, YMap):
                if isinstance(value, YScalar) and value.value is None:
                    out.append(ParameterSpec(name=name, required=name in required_list, loc=key.loc))
                    continue
                self.error(value, f"parameter '{name}' must be a schema (a mapping with 'type', "
                           f"'default', ...), got {type_name(value)}")
                continue
            f = self.fields(value, PARAMETER_KEYS, f"parameter '{name}'")
            schema = {k: self.plain(v) for k, (_, v) in f.items() if k not in ("required", "default")}
            required = name in required_list
            if "required" in f:
                rnode = f["required"][1]
                if isinstance(rnode, YScalar) and isinstance(rnode.value, bool):
                    required = required or rnode.value
                else:
                    self.error(rnode, f"'required' must be true or false, got {type_name(rnode)}")
            has_default = "default" in f
            default = self.plain(f["default"][1]) if has_default else None
            if has_default:
                locs[f"parameters.{name}.default"] = f["default"][1].loc
            out.append(ParameterSpec(name=name, schema=schema, required=required,
                                     has_default=has_default, default=default, loc=key.loc))
        return out

    # -- tasks -----------------------------------------------------------------------------

    def list_tasks(self, node: YNode, what: str, names_seen: set[str]) -> list[TaskSpec]:
        if isinstance(node, YScalar) and node.value is None:
            return []
        if not isinstance(node, YSeq):
            self.error(node, f"'{what}' must be a list of tasks, got {type_name(node)}")
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
            self.error(node, f"a task must be a mapping with 'name', 'action', ..., got {type_name(node)}")
            return None
        name_node = node.get("name")
        name = None
        if name_node is None:
            self.error(node, "task is missing 'name'")
        else:
            name = self.string(name_node, "name")
        if not name or name_node is None:  # (no name without its node)
            return None
        f = self.fields(node, LIST_TASK_KEYS, "task", name)
        locs: dict[str, Loc] = {"name": name_node.loc}
        kw: dict[str, Any] = {}
        ttype = "action"
        if "type" in f:
            tnode = f["type"][1]
            locs["type"] = tnode.loc
            if isinstance(tnode, YScalar) and tnode.value in TASK_TYPES:
                ttype = tnode.value
            else:
                shown = repr(tnode.value) if isinstance(tnode, YScalar) else type_name(tnode)
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
                       f"got {type_name(node)}", task)
            return out
        group = f"{task}.decision"
        default_seen: YNode | None = None
        for item in node.items:
            if not isinstance(item, YMap):
                self.error(item, f"a decision branch must be a mapping ({{when, next}} or {{default: task}}), "
                           f"got {type_name(item)}", task)
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


