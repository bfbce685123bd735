"""The normalized, immutable workflow model that both surface syntaxes load into.

Nothing downstream of the loader (validator, engine, graph, rehearsal) needs to know which syntax
a file used: the Orquesta native form and the original list form both become a
:class:`WorkflowSpec`.  ``syntax`` is kept only for messages.

Templates stay as source strings here (``"{{ ... }}"`` or ``"<% ... %>"``); the renderer compiles
and caches them.  Every node carries a :class:`Loc` so errors can name file:line:column.

Conventions the engine relies on
--------------------------------
* ``Transition.when`` is a condition source or ``None`` (always).  The list form's shortcuts are
  expressed with the same functions the Orquesta form uses: ``on_success`` ->
  ``"{{ succeeded() }}"``, ``on_failure`` -> ``"{{ failed() }}"``, ``on_complete`` ->
  ``"{{ completed() }}"``, ``on_timeout`` -> ``"{{ timed_out() }}"``.
* A ``decision`` (list form) becomes transitions sharing one ``group``: the branches keep their
  ``when`` (and-ed with ``succeeded()``) and the ``default`` branch has ``otherwise=True``: it fires
  only when no other transition of the same group fired.
* ``Transition.targets`` are task names or the engine commands in :data:`ENGINE_COMMANDS`.
  An Orquesta ``next`` entry with no ``do`` targets ``("continue",)``.
* ``publish`` is an ordered tuple of ``(name, template-or-value)`` pairs, rendered in order against
  a rolling context.
* ``TaskSpec.publish`` (list form, task level) is applied when the task succeeds, before its
  transitions are evaluated.
* ``TaskSpec.subtasks`` is set for ``type: parallel``: the sub-tasks run side by side, and the
  parallel task completes (succeeded only if all succeeded) when they all have.
* The sub-workflow of ``type: workflow`` is ``TaskSpec.workflow`` (a path, relative to the
  parent file); an ``action`` naming a ``.yaml`` / ``.yml`` file is a sub-workflow too.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any, Literal

from flowctx._record import record

ENGINE_COMMANDS = frozenset({"continue", "noop", "fail", "retry"})

Backoff = Literal["constant", "linear", "exponential"]


@record(frozen=True, slots=True)
class Loc:
    """Where a node was written: file (None for text input), 1-based line and column."""

    file: str | None
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file or '<string>'}:{self.line}:{self.column}"


@record(frozen=True, slots=True)
class Transition:
    """One outbound transition of a task."""

    when: str | None
    targets: tuple[str, ...]
    publish: tuple[tuple[str, Any], ...] = ()
    group: str | None = None
    otherwise: bool = False
    loc: Loc | None = None
    #: Where each part was written, by path relative to the transition: ``"when"``,
    #: ``"targets.0"``, ``"publish.<name>"`` (and nested ``"publish.<name>.<key>"``).
    locs: Mapping[str, Loc] = field(default_factory=dict, compare=False, hash=False, repr=False)


@record(frozen=True, slots=True)
class WithItems:
    """``with`` / ``with_items``: what to iterate and how.

    ``items`` is a template (or a literal list); ``names`` are the item variable names from
    ``x in <expr>`` / ``x, y in <% zip(...) %>`` (empty for the plain form, where ``item()`` is the
    element itself).  ``concurrency`` / ``batch_size`` are ints, templates or None (unlimited).
    """

    items: Any
    names: tuple[str, ...] = ()
    concurrency: int | str | None = None
    batch_size: int | str | None = None
    loc: Loc | None = None


@record(frozen=True, slots=True)
class RetrySpec:
    """Retry of a failed task: ``count`` more attempts while ``when`` holds (default: failed())."""

    count: int | str
    delay: float | str = 0.0
    backoff: Backoff = "constant"
    max_delay: float | None = None
    when: str | None = None
    loc: Loc | None = None


@record(frozen=True, slots=True)
class TaskSpec:
    """One task of the workflow graph."""

    name: str
    action: str | None = None
    #: name -> value (templates rendered at run time), or one expression string that renders
    #: to the whole mapping (``input: <% ctx().args %>``; its names are known only at run time)
    input: Mapping[str, Any] | str = field(default_factory=dict)
    type: Literal["action", "parallel", "workflow"] = "action"
    when: str | None = None
    with_items: WithItems | None = None
    retry: RetrySpec | None = None
    delay: float | str | None = None
    timeout: float | str | None = None
    join: int | Literal["all"] | None = None
    publish: tuple[tuple[str, Any], ...] = ()
    transitions: tuple[Transition, ...] = ()
    subtasks: tuple[TaskSpec, ...] = ()
    workflow: str | None = None
    loc: Loc | None = None
    #: Where each field's value was written, by path relative to the task: ``"action"``,
    #: ``"input.<key>[.<nested>]"``, ``"with.items"``, ``"with.concurrency"``, ``"retry.count"``,
    #: ``"join"``, ``"when"``, ``"publish.<name>"``, ... (missing paths: use ``loc``).
    locs: Mapping[str, Loc] = field(default_factory=dict, compare=False, hash=False, repr=False)


@record(frozen=True, slots=True)
class ParameterSpec:
    """One workflow input/parameter (its JSON-schema fragment is in ``schema``)."""

    name: str
    schema: Mapping[str, Any] = field(default_factory=dict)
    required: bool = False
    has_default: bool = False
    default: Any = None
    loc: Loc | None = None


@record(frozen=True, slots=True)
class WorkflowSpec:
    """A loaded workflow: the one model the engine consumes."""

    tasks: Mapping[str, TaskSpec]
    parameters: tuple[ParameterSpec, ...] = ()
    vars: tuple[tuple[str, Any], ...] = ()
    output: tuple[tuple[str, Any], ...] = ()
    output_schema: Mapping[str, Any] | None = None
    ref: str | None = None
    label: str | None = None
    description: str | None = None
    version: str | None = None
    syntax: Literal["orquesta", "list"] = "orquesta"
    file: str | None = None
    source: str | None = None
    loc: Loc | None = None
    #: Where workflow-level values were written: ``"tasks"``, ``"vars.<name>"``,
    #: ``"output.<name>"``, ``"parameters.<name>"``, ...
    locs: Mapping[str, Loc] = field(default_factory=dict, compare=False, hash=False, repr=False)
    #: Structural problems the loader found (unknown keys, wrong shapes, duplicate names, ...):
    #: :func:`flowctx.spec.validate` reports them together with the semantic checks.
    load_problems: tuple[Any, ...] = field(default=(), compare=False, hash=False, repr=False)

    @property
    def name(self) -> str:
        """A display name: ``ref``, else the file name, else ``"workflow"``."""
        if self.ref:
            return self.ref
        if self.file:
            import os

            return os.path.splitext(os.path.basename(self.file))[0]
        return "workflow"

    def parameters_schema(self) -> dict[str, Any]:
        """The JSON schema (type object) that the workflow's parameters must satisfy."""
        props = {p.name: dict(p.schema) for p in self.parameters}
        for p in self.parameters:
            if p.has_default:
                props[p.name]["default"] = p.default
        return {
            "type": "object",
            "properties": props,
            "required": [p.name for p in self.parameters if p.required],
        }

    def inbound(self) -> dict[str, list[tuple[str, Transition]]]:
        """Task name -> list of (source task, transition) that target it."""
        out: dict[str, list[tuple[str, Transition]]] = {name: [] for name in self.tasks}
        for task in self.tasks.values():
            for tr in task.transitions:
                for target in tr.targets:
                    if target in out:
                        out[target].append((task.name, tr))
        return out

    def start_tasks(self) -> list[str]:
        """Tasks no transition leads to, in declaration order: where a run begins."""
        inbound = self.inbound()
        return [name for name in self.tasks if not inbound[name]]
