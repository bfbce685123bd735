"""What a workflow refers to outside itself (used by :mod:`flowctx.spec.validate`): actions,
sub-workflow files and the inputs they declare, and the functions its expressions call.

The rule for actions: a name in flowctx's own ``core.`` namespace must be a built-in (or one of
StackStorm's ``core`` pack actions, which Orquesta files written for st2 call and st2 provides);
any other name is only checked when the caller says the action set is known (``flowctx validate
--actions MODULE``, or a registry passed to :func:`flowctx.spec.validate`).  An action written as
an expression (``<% ctx().action %>``) is rendered when the task runs and is not checked here.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from flowctx._patterns import lazy_compile
from flowctx.spec.model import TaskSpec, WorkflowSpec

__all__ = ["ST2_CORE_ACTIONS", "called_functions", "subworkflow_path"]

#: StackStorm's ``core`` pack (st2 provides them to the Orquesta workflows written for it).
ST2_CORE_ACTIONS = frozenset({
    "core.announcement", "core.ask", "core.echo", "core.error", "core.http", "core.inject_trigger",
    "core.local", "core.local_sudo", "core.noop", "core.pause", "core.remote", "core.remote_sudo",
    "core.sendmail", "core.uuid", "core.winrm_cmd", "core.winrm_ps_cmd", "core.winrm_ps_script",
})

_STRINGS = lazy_compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.S)
_YAQL_CALL = lazy_compile(r"(?<![\w.$#])([A-Za-z_]\w*)\s*\(")
_YAQL_BLOCK = lazy_compile(r"<%(.*?)%>", re.S)
_YAQL_KEYWORDS = frozenset({"and", "or", "not", "in", "mod", "is", "null", "true", "false"})


def subworkflow_path(task: TaskSpec, wf_file: str | None) -> str | None:
    """The sub-workflow file a task runs (relative to the calling file), or None if it runs none
    or the path cannot be known (a template, or a relative path in a workflow given as text)."""
    ref = task.workflow if task.type == "workflow" else task.action
    if not ref or not (task.type == "workflow" or ref.endswith((".yaml", ".yml"))):
        return None
    if any(m in ref for m in ("{{", "{%", "<%")):
        return None
    if os.path.isabs(ref):
        return ref
    if not wf_file:
        return None
    return os.path.join(os.path.dirname(os.path.abspath(wf_file)), ref)


def _jinja_calls(source: str, renderer: Any) -> Iterator[str]:
    from jinja2 import nodes
    from jinja2.exceptions import TemplateSyntaxError

    try:
        ast = renderer.env.parse(source)
    except (TemplateSyntaxError, Exception):  # reported by the syntax check
        return
    local = {n.name for n in ast.find_all(nodes.Macro)}
    local |= {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for call in ast.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name not in local:
            yield call.node.name


def called_functions(source: str, renderer: Any) -> list[tuple[str, str]]:
    """``(language, name)`` of every plain function call ``name(...)`` in a template (method calls
    ``x.f()`` and Jinja filters / tests are not function calls)."""
    out: list[tuple[str, str]] = []
    if "<%" in source:
        for block in _YAQL_BLOCK.findall(source):
            code = _STRINGS.sub("''", block)
            out.extend(("yaql", m.group(1)) for m in _YAQL_CALL.finditer(code)
                       if m.group(1) not in _YAQL_KEYWORDS)
    rest = _YAQL_BLOCK.sub("", source)
    if "{{" in rest or "{%" in rest:
        out.extend(("jinja", n) for n in _jinja_calls(rest, renderer))
    return out


def declared_inputs(child: WorkflowSpec) -> tuple[set[str], set[str]]:
    """(every input name, the required ones without a default) of a sub-workflow."""
    names = {p.name for p in child.parameters}
    required = {p.name for p in child.parameters if p.required and not p.has_default}
    return names, required
