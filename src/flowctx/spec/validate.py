"""Static checks of a loaded workflow, and validation of run parameters against their schema.

:func:`validate` returns every problem at once (the loader's structural problems plus the
semantic checks below), each printed as ``file:line:col: error: message [task]``:

* names: reserved task names (the engine commands), task names that cannot be written in ``do``;
* graph: unknown transition targets (with a "did you mean"), no start task, unreachable tasks,
  a ``join`` that can never be satisfied;
* values: retry count / delay / backoff limits, concurrency and batch size, delay and timeout;
* templates: syntax errors (through the renderer's own check) named with the field they are in,
  conditions that are not templates, and (warnings) references to variables that nothing defines
  (``ctx().x``, ``ctx(x)``, ``vars.x``, ``variables.x``, ``workflow.x``);
* parameters: schemas that are not valid JSON schema, defaults that do not satisfy their schema.
"""
from __future__ import annotations

import copy
import functools
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from flowctx._expressions import lone_openers
from flowctx._patterns import lazy_compile
from flowctx.errors import TemplateError, WorkflowError
from flowctx.spec import flow, references
from flowctx.spec.model import ENGINE_COMMANDS, Loc, TaskSpec, Transition, WorkflowSpec
from flowctx.spec.problems import Kind, Problem
from flowctx.spec.shapes import did_you_mean, is_template

_CLOSERS = {"{{": "}}", "{%": "%}", "<%": "%>"}

__all__ = ["Problem", "validate", "validate_parameters", "raise_for_problems", "referenced_variables"]

_TASK_NAME_RE = lazy_compile(r"^[^\s,]+$")
_ACTION_RE = lazy_compile(
    r"^[A-Za-z0-9_][\w\-]*(\.[\w\-]+)+$"  # pack.action
    r"|^[^\s]+\.ya?ml$"  # a workflow file
    r"|^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$"  # module:function
)

# Statically knowable references to workflow variables.
# (a name followed by ``(`` is a method call, ``ctx().keys()``; quotes must match, ``ctx('x')``)
_VAR_PATTERNS = (
    lazy_compile(r"(?<![\w.])ctx\(\s*\)\s*\.\s*(?P<name>[A-Za-z_]\w*)\b(?!\s*\()"),
    lazy_compile(r"(?<![\w.])ctx\(\s*\)\s*\[\s*(['\"])(?P<name>[A-Za-z_]\w*)\1\s*\]"),
    lazy_compile(r"(?<![\w.])ctx\(\s*(['\"]?)(?P<name>[A-Za-z_]\w*)\1\s*\)"),
    lazy_compile(r"(?<![\w.])(?:vars|variables|workflow)\s*\.\s*([A-Za-z_]\w*)"),
    lazy_compile(r"(?<![\w.])(?:vars|variables|workflow)\s*\[\s*['\"]([A-Za-z_]\w*)['\"]\s*\]"),
)
# A with-items string: one expression (the items themselves), names having been split off.
_ONE_EXPRESSION = lazy_compile(r"^\s*(\{\{.*\}\}|<%.*%>)\s*$", re.S)
_YAQL_ROOT = lazy_compile(r"(?<![\w.$])\$\.([A-Za-z_]\w*)")
_YAQL_BLOCK = lazy_compile(r"<%(.*?)%>", re.S)
# Methods of a mapping: ``vars.get('x')`` / ``workflow.items()`` are not variables.
_NOT_VARIABLES = frozenset({"get", "items", "keys", "values", "and", "or", "not", "in", "is", "if", "else"})


def referenced_variables(source: str) -> set[str]:
    """Names of workflow variables a template reads through ``ctx()`` / ``vars`` / ``workflow``."""
    found: set[str] = set()
    for pattern in _VAR_PATTERNS:
        found.update(m.group(m.re.groupindex.get("name", 1)) for m in pattern.finditer(source))
    for block in _YAQL_BLOCK.findall(source):
        for m in _YAQL_ROOT.finditer(block):
            # inside a call (`.select($.n)`) `$` is the current element, not the context
            before = block[: m.start()]
            if before.count("(") - before.count(")") <= 0:
                found.add(m.group(1))
    return found - _NOT_VARIABLES


def _renderer() -> Any:
    try:
        from flowctx.render import default_renderer

        return default_renderer()
    except Exception:  # pragma: no cover - a broken renderer must not break validation
        return None


def _template_checker() -> Callable[[str, bool], None] | None:
    """The renderer's syntax check ``(source, is_condition)``, or None without a renderer."""
    try:
        from flowctx.render import default_renderer
    except ImportError:
        return None
    try:
        renderer = default_renderer()
    except Exception:  # pragma: no cover - a broken renderer must not break validation
        return None
    check = getattr(renderer, "check", None)
    if not callable(check):
        return None

    def run(source: str, condition: bool) -> None:
        if condition:
            try:
                check(source, condition=True)
                return
            except TypeError:  # a renderer without the ``condition`` keyword
                pass
        check(source)

    return run


class _Checker:
    def __init__(self, spec: WorkflowSpec, extra_names: frozenset[str] = frozenset(),
                 actions: Any = None, extra_functions: frozenset[str] = frozenset()) -> None:
        self.spec = spec
        self.extra_functions = extra_functions
        self.extra_names = extra_names
        self.actions = actions
        self.renderer = _renderer()
        self._function_names: dict[str, frozenset[str] | None] = {}
        self._children: dict[str, WorkflowSpec] = {}
        self.problems: list[Problem] = list(spec.load_problems)
        self.default_loc = spec.loc or Loc(spec.file, 1, 1)
        self.check_template = _template_checker()
        self.defined: set[str] = set()
        self._seen_templates: set[tuple[str, Loc | None, str]] = set()

    def error(self, loc: Loc | None, message: str, task: str | None = None, kind: Kind = "syntax") -> None:
        self.problems.append(Problem("error", message, loc or self.default_loc, task, kind))

    def warning(self, loc: Loc | None, message: str, task: str | None = None, kind: Kind = "syntax") -> None:
        self.problems.append(Problem("warning", message, loc or self.default_loc, task, kind))

    # -- driver ----------------------------------------------------------------------------
    def run(self) -> list[Problem]:
        spec = self.spec
        self.defined = {p.name for p in spec.parameters} | {name for name, _ in spec.vars}
        for task in _all_tasks(spec.tasks.values()):
            self.defined.update(name for name, _ in task.publish)
            for tr in task.transitions:
                self.defined.update(name for name, _ in tr.publish)

        if spec.syntax == "orquesta" and spec.version is not None and str(spec.version).strip() != "1.0":
            self.error(spec.locs.get("version", spec.loc),
                       f"unsupported Orquesta version {spec.version!r}: Orquesta workflows are version 1.0 "
                       "(the only version Orquesta knows)", kind="syntax")
        tasks_loc = spec.locs.get("tasks", spec.loc)
        if not spec.tasks:
            if not any(p.is_error for p in self.problems):
                self.error(tasks_loc, "the workflow has no tasks", kind="syntax")
        else:
            self.check_graph(spec.tasks, tasks_loc, top=True)
            self.check_flow(spec.tasks)
        for task in _all_tasks(spec.tasks.values()):
            self.check_task(task)
        self.check_parameters()
        for name, value in spec.vars:
            self.templates(value, spec.locs, f"vars.{name}", None)
        for name, value in spec.output:
            self.templates(value, spec.locs, f"output.{name}", None)
        unique: dict[str, Problem] = {}
        for p in self.problems:
            unique.setdefault(str(p), p)
        return sorted(unique.values(), key=Problem.sort_key)

    # -- graph -----------------------------------------------------------------------------
    def check_graph(self, tasks: Mapping[str, TaskSpec], tasks_loc: Loc | None, top: bool) -> None:
        names = list(tasks)
        choices = names + sorted(ENGINE_COMMANDS)
        inbound: dict[str, list[str]] = {n: [] for n in names}
        for task in tasks.values():
            if task.name in ENGINE_COMMANDS:
                self.error(task.locs.get("name", task.loc),
                           f"task name '{task.name}' is reserved (it is an engine command: "
                           f"{', '.join(sorted(ENGINE_COMMANDS))})", task.name, kind="semantics")
            elif not task.name or not _TASK_NAME_RE.match(task.name):
                self.error(task.locs.get("name", task.loc),
                           f"invalid task name {task.name!r}: task names cannot contain spaces or commas",
                           task.name, kind="semantics")
            for tr in task.transitions:
                for i, target in enumerate(tr.targets):
                    if target in inbound:
                        if task.name not in inbound[target]:
                            inbound[target].append(task.name)
                    elif target not in ENGINE_COMMANDS:
                        loc = tr.locs.get(f"targets.{i}", tr.loc)
                        # an error in both syntaxes (a list-form ``decision`` default included)
                        self.error(loc, f"transition to unknown task '{target}'{did_you_mean(target, choices)}",
                                   task.name, kind="semantics")
        starts = [n for n in names if not inbound[n]]
        if not starts:
            what = "every task" if top else "every sub-task"
            self.error(tasks_loc, f"no start task: {what} is the target of a transition, so nothing can "
                                  "run first", kind="semantics")
            return
        reached: set[str] = set()
        todo = list(starts)
        while todo:
            n = todo.pop()
            if n in reached:
                continue
            reached.add(n)
            for tr in tasks[n].transitions:
                todo.extend(t for t in tr.targets if t in tasks and t not in reached)
        for n in names:
            if n not in reached:
                self.error(tasks[n].locs.get("name", tasks[n].loc),
                           f"task '{n}' is unreachable: it is only reached from tasks that are never "
                           f"started (start tasks: {', '.join(starts)})", n, kind="semantics")
        for task in tasks.values():
            if task.join is None:
                continue
            loc = task.locs.get("join", task.loc)
            sources = inbound[task.name]
            if isinstance(task.join, int) and not isinstance(task.join, bool) and task.join > len(sources):
                shown = f" ({', '.join(sources)})" if sources else ""
                self.error(loc, f"join: {task.join} can never be satisfied: only {len(sources)} "
                                f"task{'s' if len(sources) != 1 else ''} lead to '{task.name}'{shown}",
                           task.name, kind="semantics")
            elif not sources:
                self.warning(loc, f"'join' has no effect: no transition leads to '{task.name}'", task.name)
        for task in tasks.values():
            if task.subtasks:
                self.check_graph({t.name: t for t in task.subtasks}, task.locs.get("tasks", task.loc), top=False)

    def check_flow(self, tasks: Mapping[str, TaskSpec]) -> None:
        """The checks that follow the flow (:mod:`flowctx.spec.flow`)."""
        if self.spec.syntax == "orquesta":
            for loc, message, task in flow.context_problems(self.spec, set(self.extra_names)):
                self.error(loc, message, task, kind="context")
            for name in flow.unreachable_joins(tasks):
                t = tasks[name]
                self.error(t.locs.get("join", t.loc),
                           f"join task '{name}' is unreachable: nested forks from tasks reached by several "
                           "transitions lead to it, so the level at which it joins is ambiguous", name,
                           kind="semantics")
        for cycle in flow.endless_cycles(tasks, flow.reachable(tasks)):
            t = tasks[cycle[0]]
            shown = " -> ".join(cycle + [cycle[0]]) if len(cycle) > 1 else f"{cycle[0]} -> {cycle[0]}"
            self.warning(t.locs.get("name", t.loc),
                         f"cycle {shown} has no conditional exit: no transition in it depends on data "
                         "(only on task status), so it runs until a task fails", cycle[0], kind="semantics")

    # -- task fields -----------------------------------------------------------------------
    def check_action(self, task: TaskSpec) -> None:
        """The action (or sub-workflow file) a task runs, and the input names it is given (see
        :mod:`flowctx.spec.references` for which actions are checked)."""
        loc = task.locs.get("action", task.loc)
        path = references.subworkflow_path(task, self.spec.file)
        if path is not None:
            self.check_subworkflow(task, path, task.locs.get("workflow", loc))
            return
        if task.type != "action" or not task.action or is_template(task.action):
            return
        if task.action.endswith((".yaml", ".yml")):
            return
        from flowctx.actions import DEFAULT_REGISTRY

        registry = self.actions if self.actions is not None else DEFAULT_REGISTRY
        aspec = registry.get(task.action)
        if aspec is None and self.actions is not None:  # the action set is known: resolve it
            from flowctx.errors import ActionError

            try:
                aspec = self.actions.resolve(task.action)
            except ActionError as exc:
                self.error(loc, str(exc), task.name, kind="semantics")
                return
        if aspec is None:
            if task.action.startswith("core.") and task.action not in references.ST2_CORE_ACTIONS:
                builtins = sorted(s.name for s in DEFAULT_REGISTRY if s.name.startswith("core."))
                self.error(loc, f"unknown action '{task.action}': there is no such flowctx built-in"
                                f"{did_you_mean(task.action, builtins)} (built-ins: {', '.join(builtins)})",
                           task.name, kind="semantics")
            return
        if not isinstance(task.input, Mapping) or any(not isinstance(k, str) or is_template(k) for k in task.input):
            return
        if any(p.task == task.name and ("'input'" in p.message or "inline parameters" in p.message)
               for p in self.spec.load_problems):
            return  # the input could not be read: its names are not known
        for problem in aspec.check_inputs(task.input):
            m = re.match(r"unexpected input '([^']+)'", problem)
            where = _nearest(task.locs, f"input.{m.group(1)}") if m else None
            self.error(where or task.locs.get("input", loc), problem, task.name, kind="semantics")

    def check_subworkflow(self, task: TaskSpec, path: str, loc: Loc | None) -> None:
        if not os.path.isfile(path):
            self.error(loc, f"sub-workflow file not found: {path}", task.name, kind="semantics")
            return
        child = self._children.get(path)
        if child is None:
            from flowctx.spec.loader import load_workflow

            try:
                child = load_workflow(path, validate=False)
            except WorkflowError as exc:
                first = str(exc).splitlines()[0]
                self.error(loc, f"sub-workflow {path} cannot be loaded: {first}", task.name, kind="semantics")
                return
            self._children[path] = child
        if not isinstance(task.input, Mapping) or any(not isinstance(k, str) or is_template(k) for k in task.input):
            return
        names, required = references.declared_inputs(child)
        for key in task.input:
            if key not in names:
                shown = ", ".join(sorted(names)) or "none"
                self.error(_nearest(task.locs, f"input.{key}") or loc,
                           f"input '{key}' is not an input of sub-workflow {path}{did_you_mean(key, names)} "
                           f"(it declares: {shown})", task.name, kind="semantics")
        for key in sorted(required - set(task.input)):
            self.error(task.locs.get("input", loc), f"missing required input '{key}' of sub-workflow {path}",
                       task.name, kind="semantics")

    def functions(self, source: str, loc: Loc | None, field: str, task: str | None) -> None:
        """Calls to functions no expression can call (the renderer's own list of functions)."""
        renderer = self.renderer
        if renderer is None:
            return
        for language, name in references.called_functions(source, renderer):
            known = self._function_names.get(language)
            if language not in self._function_names:
                try:
                    known = self._function_names[language] = renderer.function_names(language)
                except Exception:  # pragma: no cover - a renderer without the list: no check
                    known = self._function_names[language] = None
            if known is not None and name not in known and name not in self.extra_functions:
                self.error(loc, f"unknown function '{name}()' in '{field}'{did_you_mean(name, known)}", task,
                           kind="expression")

    _SHELL_ACTIONS = frozenset({"core.local", "core.local_sudo", "core.remote", "core.remote_sudo"})
    _JINJA_EXPR = lazy_compile(r"\{\{-?(.*?)-?\}\}", re.S)

    def shell_quoting(self, task: TaskSpec) -> None:
        """Warn when a string shell ``cmd`` interpolates an expression that is not ``| quote``d
        (``quote(...)`` in YAQL): a value with a space, ``;`` or ``$(...)`` would be run as shell.
        A ``cmd`` that is one whole expression, or a list (``[prog, arg, ...]``), is not warned."""
        cmd = task.input.get("cmd") if isinstance(task.input, Mapping) else None
        if task.action not in self._SHELL_ACTIONS or not isinstance(cmd, str) or not is_template(cmd):
            return
        exprs = [m.group(1).strip() for m in self._JINJA_EXPR.finditer(cmd)]
        exprs += [m.group(1).strip() for m in _YAQL_BLOCK.finditer(cmd)]
        if len(exprs) == 1 and cmd.strip() in (f"{{{{ {exprs[0]} }}}}", f"<% {exprs[0]} %>"):
            return  # the whole command is the value of one expression, not an interpolation
        bad = [e for e in exprs if not re.search(r"\|\s*quote\s*$", e)
               and not (e.startswith("quote(") and e.endswith(")"))]
        if bad:
            self.warning(task.locs.get("input.cmd", task.locs.get("input", task.loc)),
                         f"string 'cmd' interpolates {bad[0]!r} without '| quote': a value with spaces or shell "
                         "characters would be run as shell (use '{{ x | quote }}', or the list form "
                         "cmd: [prog, arg, ...])", task.name)

    def check_task(self, task: TaskSpec) -> None:
        name = task.name
        locs = task.locs
        if task.action is not None and not is_template(task.action) and not _ACTION_RE.match(task.action):
            self.error(locs.get("action", task.loc),
                       f"invalid action name {task.action!r}: expected 'pack.action', 'module:function' or a "
                       "workflow file (.yaml)", name)
        self.templates(task.action, locs, "action", name)
        self.check_action(task)
        self.shell_quoting(task)
        if isinstance(task.input, str):  # one expression giving the whole input mapping
            self.templates(task.input, locs, "input", name)
        else:
            for key, value in task.input.items():
                self.templates(value, locs, f"input.{key}", name)
        if task.when is not None:
            self.condition(task.when, locs.get("when", task.loc), "when", name)
        if task.with_items is not None:
            w = task.with_items
            if not task.action and task.type == "action":
                self.error(locs.get("with.items", w.loc), "a with-items task needs an 'action' (what to run for "
                           "each item)", name, kind="semantics")
            if isinstance(w.items, str):
                if not is_template(w.items):
                    self.error(locs.get("with.items", w.loc),
                               f"with-items must be a template or a list, got the plain string {w.items!r}", name)
                elif not _ONE_EXPRESSION.match(w.items):
                    self.error(locs.get("with.items", w.loc),
                               f"malformed with-items {w.items!r}: expected one expression, or "
                               "'x in <expression>' / 'x, y in <expression>'", name)
                self.templates(w.items, locs, "with.items", name)
            else:
                self.templates(w.items, locs, "with.items", name)
            self.number(w.concurrency, locs.get("with.concurrency", w.loc), "concurrency", name, integer=True,
                        minimum=1)
            self.number(w.batch_size, locs.get("with.batch_size", w.loc), "batch_size", name, integer=True,
                        minimum=1)
        if task.retry is not None:
            r = task.retry
            self.number(r.count, locs.get("retry.count", r.loc), "retry.count", name, integer=True, minimum=1)
            self.number(r.delay, locs.get("retry.delay", r.loc), "retry.delay", name, minimum=0)
            self.number(r.max_delay, locs.get("retry.max_delay", r.loc), "retry.max_delay", name, minimum=0,
                        exclusive=True)
            if r.when is not None:
                self.condition(r.when, locs.get("retry.when", r.loc), "retry.when", name)
        self.number(task.delay, locs.get("delay", task.loc), "delay", name, minimum=0)
        self.number(task.timeout, locs.get("timeout", task.loc), "timeout", name, minimum=0, exclusive=True)
        for pname, value in task.publish:
            self.templates(value, locs, f"publish.{pname}", name)
        for tr in task.transitions:
            self.check_transition(tr, task)

    def check_transition(self, tr: Transition, task: TaskSpec) -> None:
        if tr.when is not None:
            self.condition(tr.when, tr.locs.get("when", tr.loc), "when", task.name)
        for pname, value in tr.publish:
            self.templates(value, tr.locs, f"publish.{pname}", task.name, fallback=tr.loc)

    def condition(self, source: Any, loc: Loc | None, field: str, task: str | None) -> None:
        if isinstance(source, str) and not is_template(source):
            self.warning(loc, f"condition {source!r} in '{field}' is not a template ({{{{ ... }}}} or "
                              "<% ... %>): a non-empty string is always true", task)
            return
        self.template(source, loc, field, task, condition=True)

    def number(self, value: Any, loc: Loc | None, field: str, task: str, *, integer: bool = False,
               minimum: float = 0, exclusive: bool = False) -> None:
        if value is None:
            return
        kind = "an integer" if integer else "a number"
        if isinstance(value, str):
            if is_template(value):
                self.template(value, loc, field, task)
                return
            self.error(loc, f"'{field}' must be {kind} or a template, got {value!r}", task)
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            self.error(loc, f"'{field}' must be {kind} or a template, got {_describe(value)}", task)
            return
        if isinstance(value, float) and not math.isfinite(value):
            self.error(loc, f"'{field}' must be a finite number, got {value}", task)
            return
        if value < minimum or (exclusive and value == minimum):
            bound = f"greater than {minimum}" if exclusive else (
                f"at least {minimum}" if minimum else "zero or more")
            self.error(loc, f"'{field}' must be {bound}, got {value}", task)

    # -- templates -------------------------------------------------------------------------
    def templates(self, value: Any, locs: Mapping[str, Loc], path: str, task: str | None,
                  fallback: Loc | None = None) -> None:
        """Check every template string inside ``value`` (nested lists/dicts included)."""
        for sub_path, text in _strings(value, path):
            lone = lone_openers(text)
            if not lone and not is_template(text):
                continue
            loc = _nearest(locs, sub_path) or fallback
            if loc is None and task is not None:
                t = _find_task(self.spec, task)
                loc = t.loc if t else None
            for opener in lone:  # plain text by Orquesta's rule: most often a typo
                closer = _CLOSERS[opener]
                self.warning(loc, f"'{opener}' in '{sub_path}' has no closing '{closer}' after it: that part is "
                                  f"plain text, not an expression (close it with '{closer}' to render it)", task)
            self.template(text, loc, sub_path, task)

    def template(self, source: Any, loc: Loc | None, field: str, task: str | None, *,
                 condition: bool = False) -> None:
        if not isinstance(source, str) or not is_template(source):
            return
        key = (source, loc, field)
        if key in self._seen_templates:
            return
        self._seen_templates.add(key)
        if self.check_template is not None:
            try:
                self.check_template(source, condition)
            except TemplateError as exc:
                reason = exc.reason if getattr(exc, "reason", None) else str(exc)
                self.error(loc, f"template syntax error in '{field}': {reason}", task, kind="expression")
                return
            except Exception as exc:  # pragma: no cover - renderer bug: report, do not crash
                self.error(loc, f"template in '{field}' cannot be checked: {type(exc).__name__}: {exc}", task,
                           kind="expression")
                return
        self.functions(source, loc, field, task)
        names = referenced_variables(source)
        if self.spec.syntax == "orquesta":
            names -= set(flow.ctx_references(source))  # checked along the flow (check_flow)
        for name in sorted(names):
            if name not in self.defined:
                self.warning(loc, f"variable '{name}' in '{field}' is never defined (not an input, a var, or "
                                  f"published by any task){did_you_mean(name, self.defined)}", task)

    # -- parameters ------------------------------------------------------------------------
    def check_parameters(self) -> None:
        if not any(p.schema for p in self.spec.parameters):
            return  # nothing to check (and jsonschema stays unimported)
        try:
            import jsonschema
        except ImportError:  # pragma: no cover - a hard dependency
            return
        validator_cls = jsonschema.Draft202012Validator
        for p in self.spec.parameters:
            if not p.schema:
                continue
            declared_type = p.schema.get("type")
            if isinstance(declared_type, str) and declared_type not in _JSON_TYPES:
                self.error(p.loc, f"invalid schema for parameter '{p.name}': unknown type "
                                  f"'{declared_type}'{did_you_mean(declared_type, _JSON_TYPES)}")
                continue
            schema_problem = _schema_problem(p.schema)
            if schema_problem is not None:
                self.error(p.loc, f"invalid schema for parameter '{p.name}': {schema_problem}")
                continue
            if p.has_default and p.default is not None:
                errors = list(validator_cls(dict(p.schema)).iter_errors(p.default))
                if errors:
                    loc = self.spec.locs.get(f"parameters.{p.name}.default", p.loc)
                    self.error(loc, f"default of parameter '{p.name}' does not match its schema: "
                                    f"{errors[0].message}")


@functools.lru_cache(maxsize=512)
def _schema_problem_cached(schema_json: str) -> str | None:
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(json.loads(schema_json))
    except jsonschema.SchemaError as exc:
        return exc.message
    return None


def _schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why ``schema`` is not a valid JSON schema (None if it is); cached, schemas repeat a lot."""
    try:
        key = json.dumps(schema, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        key = None
    if key is None:
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(dict(schema))
        except jsonschema.SchemaError as exc:
            return exc.message
        return None
    return _schema_problem_cached(key)


_JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object", "null")


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return repr(value)


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    todo = [(path, value)]
    while todo:
        p, v = todo.pop()
        if isinstance(v, str):
            yield p, v
        elif isinstance(v, Mapping):
            todo.extend((f"{p}.{k}", x) for k, x in v.items())
        elif isinstance(v, (list, tuple)):
            todo.extend((f"{p}.{i}", x) for i, x in enumerate(v))


def _nearest(locs: Mapping[str, Loc], path: str) -> Loc | None:
    while path:
        if path in locs:
            return locs[path]
        if "." not in path:
            return None
        path = path.rsplit(".", 1)[0]
    return None


def _all_tasks(tasks: Any) -> Iterator[TaskSpec]:
    todo = list(tasks)[::-1]
    while todo:
        t = todo.pop()
        yield t
        todo.extend(list(t.subtasks)[::-1])


def _find_task(spec: WorkflowSpec, name: str) -> TaskSpec | None:
    for t in _all_tasks(spec.tasks.values()):
        if t.name == name:
            return t
    return None


def validate(spec: WorkflowSpec, *, extra_names: Iterable[str] = (), actions: Any = None,
             extra_functions: Iterable[str] = ()) -> list[Problem]:
    """Every problem of ``spec`` (errors and warnings), sorted by position.

    ``extra_names``: variables the caller puts in the context at run time besides the
    workflow's own inputs and vars (Orquesta's "application context"); referring to them is not
    "referenced before assignment".  ``actions``: an :class:`~flowctx.actions.ActionRegistry`
    holding the whole action set the workflow may call; then every action name must resolve
    (without it only names in flowctx's ``core.`` namespace are checked).  ``extra_functions``:
    functions the caller's renderer adds to flowctx's own (an expression may call them).
    """
    return _Checker(spec, frozenset(extra_names), actions, frozenset(extra_functions)).run()


def raise_for_problems(problems: list[Problem], spec: WorkflowSpec | None = None) -> None:
    """Raise a :class:`WorkflowError` listing every error in ``problems`` (warnings never raise)."""
    errors = [p for p in problems if p.severity == "error"]
    if not errors:
        return
    first = errors[0]
    if len(errors) == 1:
        message = str(first)
    else:
        message = f"{len(errors)} errors in workflow:\n" + "\n".join(str(p) for p in errors)
    raise WorkflowError(
        message,
        file=first.loc.file if first.loc else (spec.file if spec else None),
        line=first.loc.line if first.loc else None,
        column=first.loc.column if first.loc else None,
        task=first.task,
        problems=list(problems),
    )


def validate_parameters(spec: WorkflowSpec, params: Mapping[str, Any] | None = None, *,
                        allow_unknown: bool = False) -> dict[str, Any]:
    """Check run parameters against the workflow's parameter schemas (with ``jsonschema``).

    Returns the parameters with defaults applied (every declared parameter is present: one with
    neither a value nor a default is ``None``, as in Orquesta).  Raises a :class:`WorkflowError`
    listing one message per bad field: missing required parameters, values that do not match
    their schema and (unless ``allow_unknown``) parameters the workflow does not declare.
    """
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise WorkflowError(f"parameters must be a mapping, got {type(params).__name__}", file=spec.file)
    values: dict[str, Any] = dict(params)
    for p in spec.parameters:
        if p.name not in values and p.has_default:
            values[p.name] = copy.deepcopy(p.default)
    schema = spec.parameters_schema()
    for prop in schema["properties"].values():
        prop.pop("default", None)
    declared = {p.name: p for p in spec.parameters}
    problems: list[Problem] = []
    where = spec.loc or Loc(spec.file, 1, 1)

    def add(name: str | None, message: str) -> None:
        p = declared.get(name) if name else None
        problems.append(Problem("error", message, (p.loc if p and p.loc else where)))

    reported: set[str] = set()
    for name in params:
        if name not in declared and not allow_unknown:
            names = list(declared)
            add(None, f"unknown parameter '{name}'{did_you_mean(str(name), names)}"
                      + (f" (declared: {', '.join(names)})" if names else " (the workflow declares none)"))
            reported.add(str(name))
    errors: list[Any] = []
    if any(p.schema for p in spec.parameters):  # jsonschema (~0.1-0.3 s to import) only when needed
        import jsonschema

        validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        try:
            errors = sorted(validator.iter_errors(values), key=lambda e: [str(x) for x in e.absolute_path])
        except jsonschema.SchemaError as exc:  # invalid schema in the workflow: reported by validate()
            raise WorkflowError(f"invalid parameter schema: {exc.message}", file=spec.file) from None
    else:  # no schemas: only `required` can fail, reported as the validator's error would be
        for n in schema["required"]:
            if n not in values and n not in reported:
                reported.add(n)
                add(n, f"missing required parameter '{n}'")
    for err in errors:
        if err.validator == "required" and not err.absolute_path:
            missing = [n for n in schema["required"] if n not in values]
            for n in missing:
                if n not in reported:
                    reported.add(n)
                    add(n, f"missing required parameter '{n}'")
            continue
        if not err.absolute_path:
            continue
        field = str(err.absolute_path[0])
        if field in reported:
            continue
        reported.add(field)
        inner = "".join(f"[{x!r}]" for x in list(err.absolute_path)[1:])
        add(field, f"parameter '{field}'{inner}: {err.message}")
    if problems:
        lines = "\n".join(f"  {p.message}" for p in problems)
        raise WorkflowError(
            f"invalid parameters for workflow '{spec.name}':\n{lines}",
            file=spec.file, line=problems[0].loc.line if problems[0].loc else None,
            problems=problems,
        )
    for p in spec.parameters:
        values.setdefault(p.name, None)
    return values
