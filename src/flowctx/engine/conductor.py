"""The conductor: the deterministic state machine of one workflow execution.

It knows nothing about threads, clocks or action implementations.  A driver (the threaded
:class:`flowctx.engine.runner.Engine`, or the rehearsal in :mod:`flowctx.rehearse`) asks it which
task instances are ready (:meth:`Conductor.ready`), starts them (:meth:`Conductor.begin`), asks for
the action calls to make (:meth:`Conductor.calls_for`) and reports each call's outcome
(:meth:`Conductor.call_done`), and any status a call in flight reports before it (``pending``,
``paused`` ...: :meth:`Conductor.call_status`).  The conductor renders inputs, items, publishes and conditions,
evaluates transitions, stages downstream tasks (routes, joins, engine commands), applies retries
and decides the workflow's status and output.

Context flow: every task instance gets an O(1) clone of its inbound branch's context; each taken
transition publishes into its own clone; a join folds its inbound contexts with ``merge`` in
arrival order; with-items items get ``with_item`` of the task context.  Nothing is ever copied.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from functools import partial
from types import ModuleType
from typing import Any

from flowctx._patterns import lazy_compile
from flowctx._record import record
from flowctx.actions.base import CANCELED, FAILED, SUCCEEDED, TIMEOUT, Outcome
from flowctx.engine.graph import Edge, WorkflowGraph
from flowctx.errors import FlowctxError, TemplateError
from flowctx.spec.model import RetrySpec, TaskSpec, WorkflowSpec

# workflow statuses
RUNNING = "running"
FAILING = "failing"
WF_SUCCEEDED = "succeeded"
WF_FAILED = "failed"
WF_CANCELED = "canceled"
CANCELING = "canceling"  # cancel requested, calls still in flight (Orquesta's status)
PAUSED = "paused"
PAUSING = "pausing"  # pause requested, tasks still running
RESUMING = "resuming"  # resumed or rerun, until a task starts (Orquesta's transient status)

# task statuses beyond the action outcomes
STAGED = "staged"
TASK_RUNNING = "running"
RETRYING = "retrying"  # between a failed attempt and its retry (Orquesta's task status)
SKIPPED = "skipped"
PENDING = "pending"  # the action waits for something outside (an inquiry): Orquesta's status
COMPLETED = frozenset({SUCCEEDED, FAILED, TIMEOUT, CANCELED, SKIPPED})
#: What a call in flight may report before its outcome (:meth:`Conductor.call_status`).
CALL_STATUSES = frozenset({PENDING, PAUSED, PAUSING, CANCELING, TASK_RUNNING})
_PARKED = frozenset({PENDING, PAUSED})  # a call that waits: its task is not active (Orquesta)
_NOT_ACTIVE = frozenset({PENDING, PAUSED, RETRYING})

DEFAULT_RETRY_COMMAND_COUNT = 3  # ``do: retry`` (Orquesta: the task is retried up to 3 times)
#: Task instances one execution may start (engine commands and with-items items not counted):
#: a cycle with no way out (``a -> b -> a``) ends failed here instead of filling memory.
DEFAULT_MAX_TASKS = 100_000
#: Calls of one with-items task without ``concurrency`` handed out at once, a bound on memory
#: (each call in flight holds its call, its outcome and the executor's bookkeeping, ~300 B):
#: :meth:`Conductor.calls_for` hands out up to this many, and more once half of them are done
#: (so a dispatch round stays large).  Far above what a pool runs at once, so the items still
#: run as if all were handed out together (Orquesta); it is a fixed number, so a journal's
#: replay hands out exactly what the live run did.
ITEM_WINDOW = 8192
_SCALARS = frozenset({str, int, float, bool})
_NEXT_FIELD = lazy_compile(r"next\[(\d+)\]\.?(.*)")
_INF = float("inf")
_TASK_KEY = "\x00task:"  # stamp key of a task result (cannot clash with a variable name)


@record(eq=False)
class Staged:
    """A task instance waiting to start: where it came from and the context it will get."""

    task: str
    route: int
    ctx: Any
    order: int
    sources: list[TaskInstance] = field(default_factory=list)
    stamps: dict[str, int] = field(default_factory=dict)
    satisfied: list[str] = field(default_factory=list)
    allowed_after_fail: bool = False
    is_join: bool = False
    join_required: int = 1
    keep_items: dict[int, Any] | None = None  # a rerun without reset: item index -> kept result
    # a rerun instance: where Orquesta enters it in the task sequence (at rerun time), see
    # TaskInstance.slot
    rerun_slot: tuple[int, int, int] | None = None


@record(eq=False, slots=True)  # one per item call: no __dict__ (memory per item)
class ActionCall:
    """One action call the driver must make (after ``delay`` seconds)."""

    instance: TaskInstance
    key: int | str | None  # item index, parallel sub-task name, or None
    action: str | None
    inputs: Mapping[str, Any]
    timeout: float | None
    delay: float = 0.0
    attempt: int = 1
    item: Any = None

    def __init__(  # written out (not record's shared one): one per action call, the fast form
        self, instance: TaskInstance, key: int | str | None, action: str | None, inputs: Mapping[str, Any],
        timeout: float | None, delay: float = 0.0, attempt: int = 1, item: Any = None,
    ) -> None:
        self.instance = instance
        self.key = key
        self.action = action
        self.inputs = inputs
        self.timeout = timeout
        self.delay = delay
        self.attempt = attempt
        self.item = item


@record(eq=False)
class TaskInstance:
    """One run of a task (or one reach of an engine command) on one route."""

    seq: int
    task: str
    route: int
    spec: TaskSpec | None
    ctx: Any
    status: str = TASK_RUNNING
    result: Any = None
    error: str | None = None
    attempts: int = 0
    retries: int = 0  # task-level retries so far (with-items tasks retry all their items)
    fail_err: dict[str, Any] | None = None  # the error logged for the latest failed item
    source: TaskInstance | None = None  # an engine command's entry: the task that reached it
    term: bool = False
    handled: bool = False
    started: float = 0.0
    finished: float | None = None
    out_ctxs: list[tuple[Any, dict[str, int]]] = field(default_factory=list)
    stamps: dict[str, int] = field(default_factory=dict)
    staged_from: Staged | None = None
    superseded: bool = False
    # where the entry is presented in the task sequence (Conductor.presented): (seq, 1, 0) for
    # an entry placed when it entered; a rerun entry is placed where Orquesta enters it, at
    # rerun time, before everything entered after the rerun: (len(sequence) then, 0, its index
    # among that rerun's tasks).  ``seq`` stays the entry's identity (journal, child ids) and
    # its index in Conductor.sequence; only the presentation order moves.
    slot: tuple[int, int, int] = (0, 1, 0)
    # with-items / parallel bookkeeping
    items: list[Any] | None = None
    # (action, inputs, item) per item; an entry becomes None once handed out when the task has
    # no retry policy (only a retry hands an item out again)
    item_calls: list[tuple[str | None, Any, Any] | None] = field(default_factory=list)
    item_results: dict[Any, Any] = field(default_factory=dict)
    item_status: dict[Any, str] = field(default_factory=dict)
    item_errors: dict[Any, str] = field(default_factory=dict)
    next_item: int = 0
    items_done: int = 0
    in_flight: int = 0
    concurrency: int | None = None
    batch_size: int | None = None
    batch_end: int = 0
    item_failed: bool = False
    #: a caller's with-items result for the outcome being recorded (call_done(accumulated_result=))
    caller_result: Any = None
    pending: list[ActionCall] = field(default_factory=list)
    parked: int = 0  # with-items: items in flight that reported pending / paused
    is_command: bool = False
    timeout: float | None = None
    delay: float = 0.0

    @property
    def name(self) -> str:
        """``task`` on route 0, ``task__rN`` otherwise (the conformance-suite notation)."""
        return self.task if self.route == 0 else f"{self.task}__r{self.route}"

    @property
    def done(self) -> bool:
        return self.status in COMPLETED


def _input_mapping(source: Any, rendered: Any, inst: TaskInstance, fld: str) -> Any:
    """A task ``input`` written as one expression must give a mapping (the action's inputs by
    name); a mapping input is returned as rendered."""
    if type(source) is not str:
        return rendered
    if not isinstance(rendered, Mapping):
        raise TemplateError(
            f"the input expression gave {_kind(rendered)}, not a mapping of input names to values",
            source=source, task=inst.task, field=fld,
        )
    bad = [k for k in rendered if not isinstance(k, str)]
    if bad:
        raise TemplateError(
            f"the input expression gave a mapping with a non-string name {bad[0]!r}", source=source,
            task=inst.task, field=fld,
        )
    return dict(rendered)


def _kind(value: Any, limit: int = 80) -> str:
    """``a list [1, 2]``, ``a string 'x'``, ``null``: what a value is, shortly."""
    if value is None:
        return "null"
    if isinstance(value, str):
        kind, text = "a string", repr(value)
    elif isinstance(value, bool):
        kind, text = "a boolean", repr(value)
    elif isinstance(value, (int, float)):
        kind, text = "a number", repr(value)
    elif isinstance(value, Sequence):
        kind, text = "a list", repr(list(value))
    else:
        kind, text = f"a {type(value).__name__}", repr(value)
    return f"{kind} {text if len(text) <= limit else text[: limit - 3] + '...'}"


def _outcome_is_failure(status: str) -> bool:
    return status in (FAILED, TIMEOUT, CANCELED)


class Conductor:
    """State machine of one execution; see the module docstring."""

    def __init__(
        self,
        spec: WorkflowSpec,
        parameters: Mapping[str, Any] | None,
        *,
        renderer: Any,
        store: ModuleType,
        system: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        copy_items: bool = False,
        on_event: Callable[[str, TaskInstance], None] | None = None,
        setup_errors: list[str] | None = None,
        max_tasks: int | None = DEFAULT_MAX_TASKS,
    ) -> None:
        from flowctx.render import TaskScope
        from flowctx.render._scope import RouteStatuses

        self.spec = spec
        self.graph = WorkflowGraph(spec)
        self.renderer = renderer
        self.store = store
        self._Scope = TaskScope
        self._RouteStatuses = RouteStatuses
        self.parameters = dict(parameters or {})
        self.system = dict(system or {})
        #: the application (parent) context: the bottom layer of the workflow context, under the
        #: parameters and vars (Orquesta's ``WorkflowConductor(context=...)``); data, never rendered
        self.context = dict(context or {})
        self.copy_items = copy_items
        self.on_event = on_event
        #: errors found before the run (input defaults that failed to render): logged by start()
        self.setup_errors = list(setup_errors or ())
        self.max_tasks = max_tasks
        self.status = RUNNING
        self.sequence: list[TaskInstance] = []
        self.routes: list[list[str]] = [[]]
        self.errors: list[dict[str, Any]] = []
        self.output: dict[str, Any] | None = None
        self.statuses: dict[str, str] = {}
        self.staged: list[Staged] = []
        self._order = 0
        self._joins: dict[tuple[str, int], Staged] = {}
        self._join_arrivals: dict[tuple[str, int], list[str]] = {}  # sources that reached a join, ever
        self._joins_ran: set[tuple[str, int]] = set()
        self._retry_specs: dict[str, RetrySpec | None] = {}
        self._planned: dict[int, TaskInstance] = {}  # id(Staged) -> its rendering (next_tasks)
        self._last_completed: TaskInstance | None = None
        self._led_to_render_failure: set[int] = set()  # ids of instances whose successor failed to render
        self._paused_from: str | None = None  # running / failing: the status a resume restores
        self._parked: set[int] = set()  # seqs of instances paused / pending by their own calls
        self._task_count = 0
        #: the error that failed the workflow (what ExecutionResult.reason reports)
        self.failure: dict[str, Any] | None = None
        self.initial_ctx: Any = None
        self.finished = False
        self.items_run = 0
        self._clock = 0
        self.stage_count = 0  # bumped whenever something is staged: lets a driver know to look again
        self._active: dict[int, TaskInstance] = {}
        self._plain_scope: Any = None
        #: Durable-state / metrics hook (flowctx.state.journal): sees begins, call outcomes,
        #: control requests and published values; ``None`` for a plain run.
        self.journal: Any = None

    # ================================================================== start
    def start(self) -> None:
        """Build the initial context (parameters, then vars rendered in order) and stage the
        start tasks on route 0."""
        Context = self.store.Context
        failed = False
        # an input default that failed to render fails the run (Orquesta: a failed workflow);
        # the vars are still rendered, each failure logged, as Orquesta does
        for message in self.setup_errors:
            self._request_fail(self._log_error(None, message))
            failed = True
        try:
            variables = {**self.context, **self.parameters} if self.context else self.parameters
            ctx = Context(self.parameters, variables, None, self.system)
        except (TypeError, ValueError) as exc:
            self._request_fail(self._log_error(None, f"invalid parameters: {exc}"))
            self._finish_now(output=False)
            return
        for name, value in self.spec.vars:  # in order, each one seeing those before it
            try:
                ctx.set_var(name, self._value(
                    -1, "vars", name, partial(self.renderer.render_json, value, ctx, field=f"vars.{name}")
                ))
            except (TemplateError, TypeError, ValueError) as exc:
                loc = self.spec.locs.get(f"vars.{name}") if self.spec.locs else None
                where = f"{loc}: " if loc is not None else ""
                self._request_fail(self._log_error(None, f"{where}cannot render variable {name!r}: {exc}"))
                failed = True  # Orquesta renders the remaining vars too and logs each error
        if failed:
            self._finish_now()
            return
        self.initial_ctx = ctx
        starts = self.spec.start_tasks()
        if not starts:
            self._request_fail(
                self._log_error(None, "the workflow has no start task (every task is the target of a transition)")
            )
            self._finish_now()
            return
        for name in starts:
            self._stage(name, 0, ctx.clone(), None, {})

    def _finish_now(self, *, output: bool = True) -> None:
        """The run failed before any task was staged (Orquesta: no route either); the output is
        rendered as for any finished run (Orquesta renders it once the workflow completed)."""
        self.status = WF_FAILED
        self.routes = []
        if output:
            self._render_output()
        self.finished = True

    # ================================================================== scheduling
    def ready(self) -> list[Staged]:
        """Staged instances that may start now, ordered by task name, then route."""
        if self.finished or self.status not in (RUNNING, RESUMING, FAILING):
            return []
        out = []
        for st in self.staged:
            if st.is_join and len(st.satisfied) < st.join_required:
                continue
            if self.status == FAILING and not st.allowed_after_fail:
                continue
            out.append(st)
        out.sort(key=lambda s: (s.task, s.route, s.order))
        return out

    def active(self) -> list[TaskInstance]:
        """Instances started and not yet completed (in start order)."""
        return [i for i in self._active.values() if not i.done]

    def next_tasks(self) -> list[Staged]:
        """Orquesta's ``get_next_tasks``: the staged instances that may start now, each rendered
        (action name, inputs, items, delay, timeout).  When any of them fails to render, none
        is returned: each failure is logged (``task_id``, ``route``), the workflow fails, and a
        task that failed to render is never entered in the sequence.  :meth:`begin` of a returned
        instance reuses its rendering."""
        ready = self.ready()
        if not ready:
            return []
        planned: list[Staged] = []
        failed: list[tuple[Staged, TaskInstance, FlowctxError]] = []
        for st in ready:
            inst = self._planned.get(id(st))
            if inst is not None and inst.staged_from is st:
                planned.append(st)
                continue
            inst = self._new_instance(st)
            try:
                self._plan(inst)
            except FlowctxError as exc:
                failed.append((st, inst, exc))
            else:
                self._planned[id(st)] = inst
                planned.append(st)
        if failed:
            for st, inst, err in failed:
                self._render_failed(st, inst, err)
            return []
        return planned

    def start_ready(self) -> list[TaskInstance]:
        """Start everything :meth:`next_tasks` gives (in that order) and return the instances."""
        if not self.staged:  # the engine loop asks after every outcome: nothing staged, nothing to do
            return []
        return [self.begin(st) for st in self.next_tasks()]

    def begin(self, st: Staged, *, journal_seq: int | None = None) -> TaskInstance:
        """Start one staged instance: render what it needs (unless :meth:`next_tasks` did), then
        enter it in the sequence (a task that fails to render is logged, fails the workflow and
        is not entered).  ``journal_seq``: a durable replay passes the sequence number the
        journal recorded (-1 for a start the task-instance cap refused).  Any staged instance
        may be begun, also one :meth:`ready` no longer lists because the run failed (a driver
        handed it out by :meth:`next_tasks` before the failure reports its start late, as
        Orquesta's caller may): it runs, its outcome and errors are recorded, the status stays
        and nothing new starts after it."""
        inst = self._planned.pop(id(st), None)
        if inst is None or inst.staged_from is not st:
            inst = self._new_instance(st)
            try:
                self._plan(inst)
            except FlowctxError as exc:
                self._render_failed(st, inst, exc)
                return inst
        return self._commit(st, inst, capped=journal_seq == -1)

    def _new_instance(self, st: Staged) -> TaskInstance:
        return TaskInstance(
            seq=-1, task=st.task, route=st.route, spec=self.graph.task(st.task), ctx=st.ctx, staged_from=st,
            stamps=st.stamps,
        )

    def _unstage(self, st: Staged) -> None:
        self.staged.remove(st)
        self._planned.pop(id(st), None)
        if st.is_join:
            key = (st.task, st.route)
            self._joins.pop(key, None)
            self._joins_ran.add(key)

    def _render_failed(self, st: Staged, inst: TaskInstance, exc: FlowctxError) -> None:
        """Orquesta: the error names the task and route; the task never enters the sequence (and
        the instances that staged it are not terminal: their branch did not end there)."""
        self._unstage(st)
        self._led_to_render_failure.update(id(src) for src in st.sources)
        inst.status = FAILED
        inst.error = str(exc)
        inst.started = inst.finished = time.time()
        if self.journal is not None:
            self.journal.began(st, inst)  # seq -1: replay renders it again and fails the same way
        self._request_fail(self._log_exc(inst, exc, route=True))

    def _commit(self, st: Staged, inst: TaskInstance, *, capped: bool = False) -> TaskInstance:
        self._unstage(st)
        if capped or (self.max_tasks is not None and self._task_count >= self.max_tasks):
            inst.status = FAILED
            inst.started = inst.finished = time.time()
            if self.journal is not None:
                self.journal.began(st, inst)
            self._too_many(inst)
            return inst
        self._task_count += 1
        if self.status == RESUMING:
            self.status = RUNNING
        inst.started = time.time()
        inst.seq = len(self.sequence)
        inst.slot = st.rerun_slot or (inst.seq, 1, 0)
        self.sequence.append(inst)
        self._active[inst.seq] = inst
        if self.journal is not None:
            self.journal.began(st, inst)
        self.statuses[st.task] = TASK_RUNNING
        self._emit("start", inst)
        if inst.status == SKIPPED:
            self._complete(inst)  # a false `when`: done at once
        elif inst.items and inst.items_done >= len(inst.items):
            self._finish_items(inst)  # a rerun that kept them all (no items at all: calls_for)
        return inst

    def _too_many(self, inst: TaskInstance) -> None:
        """The task-instance cap: log once, start nothing more, let running work finish."""
        err = self._log_error(
            inst,
            f"the workflow reached its limit of {self._task_count} task instances and was stopped "
            f"before starting another instance of task {inst.task!r} (a cycle with no way out? "
            "raise the limit with Engine(max_tasks=...) / flowctx run --max-tasks)",
        )
        self._request_fail(err)
        self.staged.clear()
        self._planned.clear()
        self._joins.clear()

    def _scope(self, inst: TaskInstance | None, status: str | None = None, result: Any = None) -> Any:
        if inst is not None and inst.route:
            # on a route of a split, task_status() reads that route (and the routes it split from)
            statuses = self._RouteStatuses(self.sequence, self.routes, inst.route)
            return self._Scope(status=status, result=result, statuses=statuses)
        if status is None and result is None:
            scope = self._plain_scope
            if scope is None:
                scope = self._plain_scope = self._Scope(status=None, result=None, statuses=self.statuses)
            return scope
        return self._Scope(status=status, result=result, statuses=self.statuses)

    def _render(self, value: Any, ctx: Any, inst: TaskInstance, fld: str, scope: Any = None) -> Any:
        try:
            return self.renderer.render_json(value, ctx, scope=scope or self._scope(inst), task=inst.task, field=fld)
        except TemplateError:
            raise
        except (TypeError, ValueError) as exc:
            raise TemplateError(str(exc), task=inst.task, field=fld) from None

    def _number(self, value: Any, inst: TaskInstance, fld: str, *, integer: bool = False) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = self._render(value, inst.ctx, inst, fld)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = int(value) if integer else float(value)
            except (TypeError, ValueError):
                raise TemplateError(f"{fld} must be a number, got {value!r}", task=inst.task, field=fld) from None
        if value != value or value in (_INF, -_INF):  # int() of these raises; a delay of them hangs
            raise TemplateError(f"{fld} must be a finite number, got {value!r}", task=inst.task, field=fld)
        if value < 0:
            raise TemplateError(f"{fld} must not be negative, got {value!r}", task=inst.task, field=fld)
        try:
            return int(value) if integer else float(value)
        except OverflowError:
            raise TemplateError(f"{fld} is too large, got {value!r}", task=inst.task, field=fld) from None

    def _plan(self, inst: TaskInstance) -> None:
        """Render everything ``inst`` needs before it starts (raises FlowctxError): a false
        ``when`` marks it skipped; with-items render every item's action and input up front, as
        Orquesta does, so a bad item key or type fails the task before any item runs."""
        spec = inst.spec
        assert spec is not None
        if spec.when is not None:
            ok = self.renderer.evaluate_condition(
                spec.when, inst.ctx, scope=self._scope(inst), task=inst.task, field="when"
            )
            if not ok:
                inst.status = SKIPPED
                return
        inst.timeout = self._number(spec.timeout, inst, "timeout")
        inst.delay = self._number(spec.delay, inst, "delay") or 0.0
        if spec.with_items is not None:
            wi = spec.with_items
            items = self._render(wi.items, inst.ctx, inst, "with.items")
            if isinstance(items, (Mapping, str, bytes)) or not isinstance(items, Sequence):
                raise TemplateError(
                    f"with-items expression must give a list, got {type(items).__name__}", task=inst.task, field="with.items"
                )
            items = list(items)
            if wi.names and len(wi.names) > 1:
                # Orquesta: a list/tuple item is zipped with the names; anything else stays as it is
                items = [
                    dict(zip(wi.names, it)) if isinstance(it, Sequence) and not isinstance(it, (str, bytes)) else it
                    for it in items
                ]
            elif wi.names:
                items = [{wi.names[0]: it} for it in items]
            concurrency = self._number(wi.concurrency, inst, "concurrency", integer=True)
            inst.concurrency = None if concurrency is None else max(concurrency, 1)  # 0 means 1
            inst.batch_size = self._number(wi.batch_size, inst, "batch_size", integer=True) or None
            calls: list[tuple[str | None, Any, Any] | None] = []
            # the per-item path: one clone and one render per item.  The renderer's timing wrapper
            # (metrics) times the whole loop once instead of each item; a literal action name is
            # looked at once.
            renderer = self.renderer
            literal = spec.action is None or not renderer.is_template(spec.action)
            raw = getattr(renderer, "untimed", renderer) if literal else renderer
            render_json = raw.render_json
            scope = self._scope(inst)
            task_input = spec.input
            one_expr = type(task_input) is str  # ``input: <% ... %>``: each item's must be a mapping
            action = spec.action
            with_item = inst.ctx.with_item
            append = calls.append
            t0 = time.perf_counter()
            try:
                for idx, item in enumerate(items):
                    if self.copy_items:  # the deep-copy-per-item baseline kept for benchmarks
                        ictx = self.store.Context.from_export(inst.ctx.export()).with_item(item, idx)
                    else:
                        ictx = with_item(item, idx)
                    if not literal:
                        action = self._action_name(spec.action, ictx, inst)
                    try:
                        rendered = render_json(task_input, ictx, scope=scope, task=inst.task, field="input")
                    except TemplateError:
                        raise
                    except (TypeError, ValueError) as exc:  # as _render says it
                        raise TemplateError(str(exc), task=inst.task, field="input") from None
                    if one_expr:
                        rendered = _input_mapping(task_input, rendered, inst, "input")
                    append((action, rendered, ictx.item))
            finally:
                if raw is not renderer:
                    renderer.timed(time.perf_counter() - t0, len(calls))
            inst.items = items
            inst.item_calls = calls
            keep = inst.staged_from.keep_items if inst.staged_from is not None else None
            for i, res in (keep or {}).items():
                if i < len(items):
                    inst.item_status[i] = SUCCEEDED
                    inst.item_results[i] = res
                    inst.items_done += 1
            return
        if spec.subtasks:
            for sub in spec.subtasks:
                inputs = _input_mapping(sub.input, self._render(sub.input, inst.ctx, inst, f"{sub.name}.input"),
                                        inst, f"{sub.name}.input")
                inst.pending.append(
                    ActionCall(
                        inst, sub.name, self._action_name(sub.action, inst.ctx, inst), inputs,
                        self._number(sub.timeout, inst, "timeout"), inst.delay,
                    )
                )
            return
        action = self._action_name(spec.action, inst.ctx, inst)
        inputs = _input_mapping(spec.input, self._render(spec.input, inst.ctx, inst, "input"), inst, "input")
        inst.pending.append(ActionCall(inst, None, action, inputs, inst.timeout, inst.delay))

    def _action_name(self, action: str | None, ctx: Any, inst: TaskInstance) -> str | None:
        """``action: <% ctx().func %>`` (or Jinja): rendered at run time, as Orquesta does; the
        name it gives is resolved like a literal one (an unknown name fails the task)."""
        if action is None or not self.renderer.is_template(action):
            return action
        name = self._render(action, ctx, inst, "action")
        if not isinstance(name, str) or not name.strip():
            raise TemplateError(
                f"the action expression {action!r} gave {name!r}, not an action name", task=inst.task, field="action"
            )
        return name.strip()

    def calls_for(self, inst: TaskInstance, limit: int | None = None) -> list[ActionCall]:
        """The calls to make now for ``inst`` (at most ``limit``).  A with-items task hands out
        its remaining items while it runs, after a failed item too (Orquesta); it ends once no
        item is in flight, and an item failure ends it then with the items not run left out.
        A with-items task with no items is ``running`` from its start until the driver asks
        for its calls: it then succeeds (result ``[]``) with none (Orquesta: it runs until the
        caller reports it done)."""
        if inst.done or self.status in (WF_CANCELED, CANCELING, PAUSING, PAUSED):
            return []
        out: list[ActionCall] = []
        if inst.items is not None:
            out.extend(self._take_pending(inst, limit))
            n = len(inst.items)
            if n == 0:
                self._finish_items(inst)
                return out
            cap = inst.concurrency
            if cap is None:  # the memory window (ITEM_WINDOW): refilled once half of it is done
                if inst.in_flight > ITEM_WINDOW // 2:
                    return out
                cap = ITEM_WINDOW
            while inst.next_item < n and (limit is None or len(out) < limit):
                if inst.in_flight >= cap:
                    break
                if inst.batch_size is not None:
                    if inst.next_item >= inst.batch_end:
                        if inst.in_flight:
                            break
                        inst.batch_end = inst.next_item + inst.batch_size
                idx = inst.next_item
                inst.next_item += 1
                if inst.item_status.get(idx) == SUCCEEDED:  # kept by a rerun without reset
                    continue
                out.append(self._item_call(inst, idx))
            return out
        return self._take_pending(inst, limit)

    def _take_pending(self, inst: TaskInstance, limit: int | None) -> list[ActionCall]:
        if not inst.pending:
            return []
        n = len(inst.pending) if limit is None else min(limit, len(inst.pending))
        out, inst.pending = inst.pending[:n], inst.pending[n:]
        inst.in_flight += len(out)
        for call in out:
            self.call_started(call)
        return out

    def call_started(self, call: ActionCall) -> None:
        """A driver starts ``call`` (after its delay): a retrying task is running again, and so
        is a paused with-items task of a resumed run (Orquesta: at its next item, not at resume)."""
        inst = call.instance
        if inst.status == RETRYING or inst.status == PAUSED:
            inst.status = TASK_RUNNING
            self.statuses[inst.task] = TASK_RUNNING
            self._parked.discard(inst.seq)
        if self.status == RESUMING:
            self.status = RUNNING

    def call_status(self, call: ActionCall, status: str) -> None:
        """A call in flight reports a status that is not its outcome (Orquesta's action
        execution statuses; :data:`CALL_STATUSES`): its task and the workflow change as
        Orquesta's state machines say, and the call stays in flight until :meth:`call_done`.

        * ``pending`` (the action waits for an answer) / ``paused``: the task is ``pending`` /
          ``paused`` and no longer active.  A pending task pauses the workflow (``pausing``
          while other tasks are active, then ``paused``); a paused one only once nothing else is
          active (another task that completes meanwhile makes the workflow ``pausing``).
        * ``pausing``: the task is ``pausing`` (still active); the workflow does not change.
        * ``canceling``: the task is ``canceling`` and the workflow is canceled (:meth:`cancel`).
        * ``running``: the call runs again (a paused child workflow was resumed): the task is
          ``running``, and a paused (or resuming) workflow is running again.

        With-items: an item that reports ``paused`` / ``pending`` waits; the task is ``pausing``
        while other items run, then ``paused`` (its remaining items start again once it runs).
        Not journaled: a durable run resumed in another process runs the call again.
        """
        if status not in CALL_STATUSES:
            raise ValueError(f"a call may report {', '.join(sorted(CALL_STATUSES))}, not {status!r}")
        inst = call.instance
        if inst.done or self.finished:
            return
        if status == CANCELING:
            self.cancel()  # Orquesta: a canceling task execution cancels the workflow
            if not inst.done:
                inst.status = self.statuses[inst.task] = CANCELING
            return
        items = inst.items is not None
        if status == PAUSING:
            if inst.status == TASK_RUNNING:
                inst.status = self.statuses[inst.task] = PAUSING
            return
        if status == TASK_RUNNING:
            if items:
                if inst.item_status.get(call.key) in _PARKED:
                    inst.parked -= 1
                    del inst.item_status[call.key]
                if inst.status != PAUSED:
                    return  # (Orquesta: a pausing task stays pausing until its items are done)
            elif inst.status not in (PAUSED, PENDING, PAUSING):
                return
            inst.status = self.statuses[inst.task] = TASK_RUNNING
            self._parked.discard(inst.seq)
            if self.status == PAUSED:  # Orquesta: a task running again runs a paused workflow
                self.status = self._paused_from or RUNNING
                self._paused_from = None
            elif self.status == RESUMING:
                self.status = RUNNING
            return
        # pending / paused
        if items:
            if inst.item_status.get(call.key) not in _PARKED:
                inst.parked += 1
            inst.item_status[call.key] = status
            if inst.status == CANCELING:
                if inst.in_flight == inst.parked:
                    self._finish_items(inst)  # Orquesta: canceled once no item runs
                return
            if inst.in_flight > inst.parked:  # other items still run
                if inst.status in (TASK_RUNNING, PAUSED):
                    inst.status = self.statuses[inst.task] = PAUSING
                return
            self._items_paused(inst)
            return
        inst.status = self.statuses[inst.task] = status
        self._parked.add(inst.seq)
        self._task_parked(inst, status)

    def _items_paused(self, inst: TaskInstance) -> None:
        """A with-items task with no item running any more and one waiting (or a pause
        requested) is ``paused``."""
        inst.status = self.statuses[inst.task] = PAUSED
        if inst.parked:
            self._parked.add(inst.seq)
            self._task_parked(inst, PAUSED)
        else:
            self._check_paused()

    def _task_parked(self, inst: TaskInstance, status: str) -> None:
        """The workflow after a task became ``pending`` / ``paused`` (Orquesta's workflow
        machine: pending pauses it, paused only once nothing else is active)."""
        if self.status == CANCELING:
            self._check_canceled()
            return
        if self.status == PAUSING:
            self._check_paused()
            return
        if self.status not in (RUNNING, RESUMING):
            return  # failing: a failed workflow does not pause (Orquesta)
        others = any(i is not inst and i.status not in _NOT_ACTIVE for i in self.active())
        if status == PENDING:
            self._pause_self(PAUSING if others else PAUSED)
        elif self.status == RUNNING and not others:
            self._pause_self(PAUSED)

    def _pause_self(self, status: str) -> None:
        """The workflow pauses because of a task (not a request): ``pausing`` or ``paused``."""
        self._paused_from = self._base_status()
        self.status = status
        if status == PAUSING:
            self._check_paused()

    def _item_call(self, inst: TaskInstance, idx: int) -> ActionCall:
        planned = inst.item_calls[idx]
        assert planned is not None
        action, inputs, item = planned
        if self.retry_spec(inst.task) is None:
            # only a retry of the whole task hands an item out again (a rerun plans anew): the
            # call carries its rendered input from here on, the plan lets go of it (memory)
            inst.item_calls[idx] = None
        inst.in_flight += 1
        self.items_run += 1
        call = ActionCall(inst, idx, action, inputs, inst.timeout, inst.delay, inst.retries + 1, item)
        self.call_started(call)
        return call

    # ================================================================== outcomes
    def call_done(
        self, call: ActionCall, outcome: Outcome, *, accumulated_result: Sequence[Any] | None = None
    ) -> list[ActionCall]:
        """Record one call's outcome; returns follow-up calls (retries) to make.

        ``accumulated_result`` (an item of a with-items task only): the task's result as the
        caller keeps it, one entry per item (Orquesta's ``TaskItemActionExecutionEvent.
        accumulated_result``; its caller st2 passes ``None`` for an item without a result).  It
        is used only when this outcome ends the task: it is then the task's result (what
        ``result()`` publishes and a retry condition sees) instead of the list the conductor
        assembles from the item outcomes.  Without it (the Engine never passes one) the
        conductor's own list is the result.  A value that is not a list, or that a context
        cannot hold, is a :class:`FlowctxError` and nothing is recorded; a durable journal
        records outcomes only, so it cannot be given to a durable run."""
        caller = None if accumulated_result is None else self._caller_result(call, accumulated_result)
        outcome = self._freeze_outcome(call, outcome)
        if self.journal is not None:
            self.journal.call_done(call, outcome)
        inst = call.instance
        inst.in_flight -= 1
        if inst.done:
            return []
        if inst.status == RETRYING and outcome.status == CANCELED and self._canceling():
            # a retry the cancel stopped before it started: Orquesta leaves the task ``retrying``
            # (not active, not where its branch ended) in the canceled workflow
            self._active.pop(inst.seq, None)
            self._check_canceled()
            return []
        if caller is not None:
            inst.caller_result = caller  # for this outcome only (cleared below, or used and cleared)
        if outcome.status == CANCELED and not self._canceling() and not self.finished:
            self.cancel()  # Orquesta: a canceled task execution cancels the workflow
            if inst.done:
                return []
        if inst.status in _PARKED and inst.items is None:
            self._parked.discard(inst.seq)  # the waiting call ended (an inquiry answered ...)
        retry = self._retry_call(call, outcome)
        if retry is not None:
            inst.status = RETRYING
            self.statuses[inst.task] = RETRYING
            if self._canceling():
                # Orquesta evaluates the retry of an attempt that ends while the workflow is
                # canceling: the task is ``retrying``, the retry never runs, and the workflow is
                # canceled once nothing else is active (this task is terminal if that was now)
                self._active.pop(inst.seq, None)
                self._check_canceled()
                if self.status == WF_CANCELED:
                    inst.term = True
                return []
            inst.in_flight += 1
            return [retry]
        if inst.items is not None:
            self._item_done(inst, call, outcome)
            if caller is not None:
                inst.caller_result = None
            return []
        if call.key is not None:  # parallel sub-task
            inst.item_status[call.key] = outcome.status
            inst.item_results[call.key] = outcome.result
            if outcome.error:
                inst.item_errors[call.key] = outcome.error
            if inst.in_flight == 0 and not inst.pending:
                failed = [k for k, s in inst.item_status.items() if s != SUCCEEDED]
                inst.result = self.store.freeze(dict(inst.item_results))
                if failed:
                    inst.status = inst.item_status[failed[0]]
                    inst.error = "; ".join(f"{k}: {inst.item_errors.get(k, inst.item_status[k])}" for k in failed)
                else:
                    inst.status = SUCCEEDED
                self._complete(inst)
            return []
        inst.attempts = call.attempt
        inst.status = outcome.status if outcome.status in COMPLETED else (TASK_RUNNING if outcome.status == "running" else FAILED)
        inst.result = outcome.result
        inst.error = outcome.error
        if inst.status == TASK_RUNNING:  # the action reports it is still running (rehearsal mocks)
            return []
        self._complete(inst)
        return []

    def _caller_result(self, call: ActionCall, result: Sequence[Any]) -> Any:
        """The frozen ``accumulated_result`` of :meth:`call_done` (checked before anything is
        recorded)."""
        inst = call.instance
        where = f"task {inst.task!r} (item {call.key})"
        if inst.items is None or not isinstance(call.key, int):
            raise FlowctxError(f"{where}: accumulated_result is for an item of a with-items task only")
        if getattr(self.journal, "durable", False):
            raise FlowctxError(f"{where}: accumulated_result cannot be given to a durable run (not journaled)")
        if isinstance(result, (str, bytes, Mapping)) or not isinstance(result, Sequence):
            raise FlowctxError(f"{where}: accumulated_result must be a list, got {type(result).__name__}")
        try:
            return self.store.freeze(list(result), "accumulated_result")
        except (TypeError, ValueError) as exc:
            raise FlowctxError(f"{where}: accumulated_result cannot be held by a workflow context: {exc}") from None

    def _freeze_outcome(self, call: ActionCall, outcome: Outcome) -> Outcome:
        """Freeze an action's result once, as it enters the workflow (reads are zero-copy from
        here on); a value a context cannot hold fails the call with a message naming it."""
        result = outcome.result
        if result is None or type(result) in _SCALARS:
            return outcome
        try:
            frozen = self.store.freeze(result, "result")
        except (TypeError, ValueError) as exc:
            where = f" (item {call.key})" if isinstance(call.key, int) else ""
            message = f"action {call.action!r} returned a value a workflow context cannot hold{where}: {exc}"
            return Outcome(FAILED, None, message, outcome.started, outcome.finished)
        if frozen is result:
            return outcome
        return Outcome(outcome.status, frozen, outcome.error, outcome.started, outcome.finished)

    def retry_spec(self, task: str) -> RetrySpec | None:
        """The retry policy of a task: its ``retry`` block, or — Orquesta — a transition to
        ``retry`` (``when`` the transition's condition, default ``completed()``; 3 retries),
        which replaces the block.  A transition to ``retry`` is not an edge of the graph."""
        try:
            return self._retry_specs[task]
        except KeyError:
            pass
        spec = self.graph.task(task)
        retry = spec.retry
        if self.graph.is_command("retry"):
            for tr in spec.transitions:
                if "retry" in tr.targets:
                    retry = RetrySpec(count=DEFAULT_RETRY_COMMAND_COUNT, when=tr.when or "{{ completed() }}", loc=tr.loc)
        self._retry_specs[task] = retry
        return retry

    def _retry_delay(self, inst: TaskInstance, status: str, result: Any, tally: int, error: str | None) -> float | None:
        """The delay before retry number ``tally + 1`` of ``inst`` (whose attempt ended with
        ``status`` / ``result``), or None for no retry.  A bad count, when or delay is logged, the
        outcome stands and the workflow fails with that error."""
        spec = inst.spec
        if spec is None or status == CANCELED or self._base_status() not in (RUNNING, CANCELING):
            return None  # Orquesta: no retry once the workflow has failed or was canceled (while
            # it is canceling the retry is evaluated: the task is left ``retrying``, see call_done)
        retry = self.retry_spec(inst.task)
        if retry is None:
            return None
        try:
            count = self._number(retry.count, inst, "retry.count", integer=True) or 0
            if tally >= count:
                return None
            if retry.when is None:
                again = _outcome_is_failure(status)
            else:
                scope = self._scope(inst, status, result)
                again = self.renderer.evaluate_condition(retry.when, inst.ctx, scope=scope, task=inst.task, field="retry.when")
            if not again:
                return None
            base = self._number(retry.delay, inst, "retry.delay") or 0.0
            max_delay = self._number(retry.max_delay, inst, "retry.max_delay")
        except FlowctxError as exc:  # a retry policy that cannot be evaluated fails the workflow
            self._request_fail(self._log_exc(inst, exc))  # (Orquesta raises); the outcome stands
            return None
        n = tally + 1
        if retry.backoff == "linear":
            delay = base * n
        elif retry.backoff == "exponential":
            delay = base * 2.0 ** min(n - 1, 1023)  # float: no OverflowError after ~1,000 retries
        else:
            delay = base
        if max_delay is not None:
            delay = min(delay, max_delay)
        if _outcome_is_failure(status) and inst.items is None:  # Orquesta logs every failed
            self._log_failed(inst, result, error)  # attempt (items: as each item fails)
        self._emit("retry", inst)
        return delay

    def _retry_call(self, call: ActionCall, outcome: Outcome) -> ActionCall | None:
        if call.instance.items is not None:
            return None  # a with-items task retries as a whole (_finish_items)
        delay = self._retry_delay(call.instance, outcome.status, outcome.result, call.attempt - 1, outcome.error)
        if delay is None:
            return None
        return ActionCall(
            call.instance, call.key, call.action, call.inputs, call.timeout, delay, call.attempt + 1, call.item
        )

    def _item_done(self, inst: TaskInstance, call: ActionCall, outcome: Outcome) -> None:
        idx = call.key
        if inst.parked and inst.item_status.get(idx) in _PARKED:
            inst.parked -= 1  # a paused / pending item ended
        if outcome.status in COMPLETED and inst.item_status.get(idx) not in COMPLETED:
            inst.items_done += 1
        inst.item_status[idx] = outcome.status
        inst.item_results[idx] = outcome.result
        if outcome.status != SUCCEEDED:
            if outcome.status == "running":
                return
            inst.item_failed = True
            inst.item_errors[idx] = outcome.error or outcome.status
            if not (outcome.status == CANCELED and self._canceling()):
                # Orquesta logs an error as each item fails, with that item's result (the same
                # message each time: items failing alike are one entry, as there)
                inst.fail_err = self._log_failed(inst, outcome.result, None)
        self._emit("item", inst)
        assert inst.items is not None
        finished_all = inst.items_done >= len(inst.items)
        active = inst.in_flight - inst.parked  # items running (a paused / pending one waits)
        if active == 0 and (
            (inst.item_failed and not inst.parked) or finished_all or inst.status == CANCELING
        ):
            self._finish_items(inst)
        elif active == 0 and (inst.status == PAUSING or inst.parked):
            # its running items are done and one waits (or the workflow pauses): paused
            self._items_paused(inst)

    def _finish_items(self, inst: TaskInstance) -> None:
        """All items in flight are done: the task's status and result, or a retry of every item
        when the task's retry policy says so.  The result has one entry per item, in item order,
        None for an item with no result (not run, or canceled in flight), as st2 reports it;
        after a failure, as in the result Orquesta's rehearsal reports, it runs up to the last
        item that ran (an item before it that never ran is None; items after it are not
        listed).  A caller's ``accumulated_result`` (:meth:`call_done`) replaces it."""
        assert inst.items is not None
        n = len(inst.items)
        all_ran = inst.items_done >= n and not inst.item_failed
        if inst.item_failed or (inst.status == CANCELING and not all_ran):
            if inst.status != CANCELING:
                n = max(max(inst.item_status, default=-1), max(inst.item_results, default=-1)) + 1
            statuses = [s for s in inst.item_status.values() if s != SUCCEEDED]
            if inst.status == CANCELING:
                status = CANCELED
            else:
                status = TIMEOUT if statuses and all(s == TIMEOUT for s in statuses) else FAILED
            inst.error = "; ".join(f"item {k}: {v}" for k, v in sorted(inst.item_errors.items())) or None
        else:
            status = SUCCEEDED
        result = inst.caller_result
        if result is None:
            result = self.store.freeze([inst.item_results.get(i) for i in range(n)])  # O(items)
        delay = self._retry_delay(inst, status, result, inst.retries, inst.error)
        if delay is not None:  # Orquesta retries a with-items task by running all its items again
            inst.retries += 1
            inst.attempts = inst.retries + 1
            inst.delay = delay
            inst.status = RETRYING
            self.statuses[inst.task] = RETRYING
            inst.error = None
            inst.item_failed = False
            inst.item_status.clear()
            inst.item_results.clear()
            inst.item_errors.clear()
            inst.items_done = 0
            inst.next_item = 0
            inst.batch_end = 0
            return
        inst.status = status
        inst.result = result
        self._complete(inst)

    # ================================================================== completion
    def _record(self, inst: TaskInstance) -> dict[str, Any]:
        rec: dict[str, Any] = {"status": inst.status, "result": inst.result}
        if inst.error is not None:
            rec["error"] = {"message": inst.error}
        else:
            rec["error"] = None
        if inst.items is not None:
            rec["results"] = inst.result
            rec["failed_items"] = [
                {"index": k, "item": inst.items[k] if k < len(inst.items) else None, "error": v}
                for k, v in sorted(inst.item_errors.items())
            ]
        if inst.attempts > 1:
            rec["attempts"] = inst.attempts
        return rec

    def _log_failed(self, inst: TaskInstance, result: Any, error: str | None) -> dict[str, Any]:
        msg = "Execution failed. See result for details."
        if error:
            msg = f"{msg} ({error})"
        return self._log_error(inst, msg, result=result)

    def _complete(self, inst: TaskInstance) -> None:
        """An instance reached a final status: publish, evaluate transitions, stage, decide."""
        inst.finished = time.time()
        # the completion that may end the workflow (a pause ends it later, at the resume:
        # Orquesta then marks no task terminal for it, only the engine command's entry, which
        # carries the same context; a durable replay, where pauses are not journaled, lists it)
        self._last_completed = None if self.status in (PAUSING, PAUSED) else inst
        self._active.pop(inst.seq, None)
        if self._parked:
            self._parked.discard(inst.seq)
        self.statuses[inst.task] = inst.status
        spec = inst.spec
        assert spec is not None
        failed = _outcome_is_failure(inst.status)
        fail_err = None
        if self._canceling():  # a call in flight when the run was canceled: recorded, its
            failed = False  # transitions evaluated (nothing starts), no workflow failure (Orquesta)
            if inst.status != CANCELED and _outcome_is_failure(inst.status):
                self._log_failed(inst, inst.result, inst.error)
        if failed:
            fail_err = inst.fail_err if inst.items is not None and inst.fail_err is not None else (
                self._log_failed(inst, inst.result, inst.error)
            )
        self._emit("finish", inst)
        ctx = inst.ctx.clone()
        stamps = dict(inst.stamps)
        try:
            ctx.set_task_result(inst.task, self._record(inst))
            stamps[_TASK_KEY + inst.task] = self._tick()
            if inst.item_results and spec.subtasks:
                for name, res in inst.item_results.items():
                    ctx.set_task_result(
                        name, {"status": inst.item_status.get(name), "result": res, "error": None}
                    )
                    stamps[_TASK_KEY + name] = self._tick()
        except (TypeError, ValueError) as exc:
            self._request_fail(self._log_error(inst, f"task result cannot be stored: {exc}"))
            inst.term = True
            return
        status_for_scope = SUCCEEDED if inst.status == SKIPPED else inst.status
        scope = self._scope(inst, status_for_scope, inst.result)
        if spec.publish and status_for_scope == SUCCEEDED:  # the list form's task-level publish
            errors = self._publish(ctx, stamps, spec.publish, inst, scope, "publish")
            if errors:
                for err in errors:
                    self._request_fail(self._log_exc(inst, err, route=True))
                inst.term = True
                return
        taken = self._transitions(inst, ctx, stamps, scope)
        if not taken:
            inst.out_ctxs.append((ctx, stamps))
        inst.handled = any(edge.target != "continue" for edge, _ in taken)
        if failed and not inst.handled:
            self._request_fail(fail_err)
        if not spec.transitions or not taken or self._base_status() != RUNNING:
            inst.term = True
        if self._parked and self.status in (RUNNING, RESUMING):
            # Orquesta: a task completing while another is paused / pending pauses the
            # workflow (``pausing`` while tasks are active; a resuming one once none is)
            others = any(i.status not in _NOT_ACTIVE for i in self.active())
            if not others:
                self._pause_self(PAUSED)
            elif self.status == RUNNING:
                self._pause_self(PAUSING)
        self._check_paused()
        self._check_canceled()

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def _publish(
        self, ctx: Any, stamps: dict[str, int], publish: Any, inst: TaskInstance, scope: Any, fld: str
    ) -> list[FlowctxError]:
        """Render ``publish`` into ``ctx`` in order (each value sees those before it); like
        Orquesta, a value that fails is skipped and the rest still render: returns the errors."""
        errors: list[FlowctxError] = []
        for name, value in publish:
            try:
                if self.journal is None:
                    ctx.set_var(name, self._render(value, ctx, inst, f"{fld}.{name}", scope))
                else:  # a durable run renders each publish once: a resume reuses the recorded value
                    ctx.set_var(name, self._value(
                        inst.seq, fld, name, partial(self._render, value, ctx, inst, f"{fld}.{name}", scope)
                    ))
            except FlowctxError as exc:
                errors.append(exc)
                continue
            except (TypeError, ValueError) as exc:  # a value the context cannot hold
                errors.append(TemplateError(str(exc), task=inst.task, field=f"{fld}.{name}"))
                continue
            stamps[name] = self._tick()
        return errors

    def _value(self, seq: int, fld: str, name: str, render: Callable[[], Any]) -> Any:
        """``render()``, or the value the journal recorded for (seq, fld, name) on an earlier run."""
        return render() if self.journal is None else self.journal.value(seq, fld, name, render)

    def _fold(self, acc: Any, acc_stamps: dict[str, int], ctx: Any, stamps: dict[str, int]) -> tuple[Any, dict[str, int]]:
        """Merge a branch into a join's context: per key, the later write wins.

        Values a branch merely inherited (older stamps) never override what another branch
        published after the split.  Cost: O(keys written), never O(bytes)."""
        newer = [k for k, t in stamps.items() if t > acc_stamps.get(k, -1)]
        if not newer:
            return acc, acc_stamps
        out = acc.clone()
        out_stamps = dict(acc_stamps)
        for k in newer:
            if k.startswith(_TASK_KEY):
                name = k[len(_TASK_KEY):]
                out.set_task_result(name, ctx.get_task_result(name))
            else:
                out.set_var(k, ctx.get_var(k))
            out_stamps[k] = stamps[k]
        return out, out_stamps

    def _condition(self, inst: TaskInstance, entry: int, ctx: Any, scope: Any) -> bool | FlowctxError:
        tr = inst.spec.transitions[entry]  # type: ignore[union-attr]
        if tr.when is None:
            return True
        try:
            return bool(self.renderer.evaluate_condition(
                tr.when, ctx, scope=scope, task=inst.task, field=f"next[{entry}].when"
            ))
        except FlowctxError as exc:
            return exc

    def _transitions(self, inst: TaskInstance, ctx: Any, stamps: dict[str, int], scope: Any) -> list[tuple[Edge, Any]]:
        """Evaluate the transitions of a completed instance and stage their targets.

        As in Orquesta, an error in a condition or a publish fails the workflow and is logged once
        per edge it blocks (with ``route`` and ``task_transition_id`` = ``<target>__t<k>``), and
        the other transitions are still evaluated."""
        spec = inst.spec
        assert spec is not None
        entries = spec.transitions
        verdict: dict[int, bool | FlowctxError] = {}
        groups_fired: set[str] = set()
        for entry, tr in enumerate(entries):
            if tr.otherwise:
                continue
            verdict[entry] = v = self._condition(inst, entry, ctx, scope)
            if v is True and tr.group is not None:
                groups_fired.add(tr.group)
        for entry, tr in enumerate(entries):
            if tr.otherwise:
                verdict[entry] = False if tr.group in groups_fired else self._condition(inst, entry, ctx, scope)
        published: dict[int, tuple[Any, dict[str, int], list[FlowctxError]]] = {}
        for entry in sorted(e for e, v in verdict.items() if v is True):
            out = ctx.clone()
            out_stamps = dict(stamps)
            errors = []
            if entries[entry].publish:
                errors = self._publish(out, out_stamps, entries[entry].publish, inst, scope, f"next[{entry}].publish")
            published[entry] = (out, out_stamps, errors)
            if not errors:
                inst.out_ctxs.append((out, out_stamps))
        taken: list[tuple[Edge, Any]] = []
        staged_now: list[Staged] = []
        fail_here = False
        for edge in self.graph.ordered_out_edges(inst.task):
            v = verdict.get(edge.entry, False)
            tid = f"{edge.target}__t{edge.k}"
            if isinstance(v, FlowctxError):
                self._request_fail(self._log_exc(inst, v, route=True, transition=tid))
                continue
            if not v:
                continue
            out, out_stamps, errors = published[edge.entry]
            if errors:
                for exc in errors:
                    self._request_fail(self._log_exc(inst, exc, route=True, transition=tid))
                continue
            if not self.graph.is_command(edge.target) and edge.target not in self.spec.tasks:
                self._request_fail(self._log_error(inst, f"transition to unknown task {edge.target!r}"))
                continue
            taken.append((edge, (out, out_stamps)))
            route = self._route_for(edge, inst.route)
            if self.graph.is_command(edge.target):
                self._command(edge.target, route, inst, out, out_stamps)
                if edge.target == "fail":
                    fail_here = True
            else:
                st = self._stage(edge.target, route, out, inst, out_stamps)
                if st is not None:
                    staged_now.append(st)
        if fail_here:
            for st in staged_now:
                st.allowed_after_fail = True
        return taken

    def _route_for(self, edge: Edge, prev_route: int) -> int:
        target = edge.target
        if not self.graph.is_split(target):
            return prev_route
        old = self.routes[prev_route]
        if edge.route_id in old:
            return prev_route
        self.routes.append(old + [edge.route_id])
        return len(self.routes) - 1

    def _command(self, name: str, route: int, source: TaskInstance, ctx: Any, stamps: dict[str, int]) -> None:
        # an engine command's entry has no transitions: it is terminal (Orquesta), and carries
        # the context of the transition that reached it (the terminal context merges it)
        inst = TaskInstance(
            seq=len(self.sequence), task=name, route=route, spec=None, ctx=ctx, is_command=True, term=True,
            status=FAILED if name == "fail" else SUCCEEDED, stamps=stamps,
        )
        inst.source = source
        inst.slot = (inst.seq, 1, 0)
        inst.out_ctxs.append((ctx, stamps))
        inst.started = inst.finished = time.time()
        self.sequence.append(inst)
        self._emit("command", inst)
        if name == "fail":
            # Orquesta logs the engine command's failure under task_id "fail"; the message names
            # the task whose transition led there (the reason a user sees)
            self._request_fail(self._log_error(
                inst, f"Execution failed. See result for details. (task {source.name!r} transitioned to fail)"
            ))

    def _stage(
        self, task: str, route: int, ctx: Any, source: TaskInstance | None, stamps: dict[str, int],
    ) -> Staged | None:
        self._order += 1
        self.stage_count += 1
        if self.graph.is_join(task):
            key = (task, route)
            arrived = self._join_arrivals.setdefault(key, [])
            if source is not None and source.task not in arrived:
                arrived.append(source.task)
            st = self._joins.get(key)
            if st is None:
                st = Staged(
                    task, route, ctx, self._order, is_join=True, join_required=self.graph.join_required(task),
                    stamps=stamps,
                )
                if key in self._joins_ran:
                    # the barrier already ran on this route and another inbound branch arrives:
                    # Orquesta evaluates the barrier again, counting every branch that ever
                    # arrived, so it runs once more (join: 2 of a, b, c -> barrier after b and c)
                    st.satisfied = list(arrived)
                self._joins[key] = st
                self.staged.append(st)
            else:
                st.ctx, st.stamps = self._fold(st.ctx, st.stamps, ctx, stamps)
                self._planned.pop(id(st), None)  # its context changed: render it again
            if source is not None:
                st.sources.append(source)
                if source.task not in st.satisfied:
                    st.satisfied.append(source.task)
            return st
        st = Staged(task, route, ctx, self._order, sources=[source] if source else [], stamps=stamps)
        self.staged.append(st)
        return st

    # ================================================================== status
    def _log_error(
        self, inst: TaskInstance | None, message: str, *, result: Any = None, route: bool = False,
        transition: str | None = None,
    ) -> dict[str, Any]:
        """Append an error entry (Orquesta's shape: type, message, task_id, route,
        task_transition_id, result) and return it; an identical entry is not logged twice."""
        err: dict[str, Any] = {"type": "error", "message": message}
        if inst is not None:
            err["task_id"] = inst.task
            if inst.route or route:
                err["route"] = inst.route
        if transition is not None:
            err["task_transition_id"] = transition
        if result is not None:
            err["result"] = result
        for old in self.errors:
            if old == err:
                return old
        self.errors.append(err)
        return err

    def _log_exc(
        self, inst: TaskInstance, exc: FlowctxError, *, route: bool = False, transition: str | None = None
    ) -> dict[str, Any]:
        """Log an error raised while evaluating ``inst``; a template error is prefixed with the
        file:line:col of the field it came from (``wf.yaml:12:18: task 'a', field 'input.x' ...``)."""
        message = str(exc)
        field = getattr(exc, "field", None)
        loc = self._field_loc(inst, field) if field else None
        return self._log_error(
            inst, f"{loc}: {message}" if loc is not None else message, route=route, transition=transition
        )

    def _field_loc(self, inst: TaskInstance, field: str) -> Any:
        """Where ``field`` of ``inst``'s task is written (best match; the task itself otherwise)."""
        spec = inst.spec
        if spec is None:
            return None
        locs: Mapping[str, Any] = getattr(spec, "locs", None) or {}
        fallback = spec.loc
        m = _NEXT_FIELD.match(field)
        if m is not None and int(m.group(1)) < len(spec.transitions):
            tr = spec.transitions[int(m.group(1))]
            locs, fallback, field = getattr(tr, "locs", None) or {}, tr.loc or spec.loc, m.group(2)
        parts = re.split(r"[.\[]", field)
        for i in range(len(parts), 0, -1):
            key = ".".join(parts[:i])
            if key in locs:
                return locs[key]
        return fallback

    def _request_fail(self, err: dict[str, Any] | None = None) -> None:
        """Fail the workflow once what runs has finished; ``err`` (the first one given) is what
        failed it, the reason :attr:`ExecutionResult.reason` reports."""
        if self.failure is None and err is not None:
            self.failure = err
        if self.status in (RUNNING, RESUMING, PAUSING, PAUSED):
            self.status = FAILING  # a failure ends a pause too (Orquesta: failed wins over pausing)
            self._paused_from = None

    def _base_status(self) -> str:
        """The status under a pause (running / failing), else the status (resuming: running)."""
        if self.status in (PAUSING, PAUSED) and self._paused_from is not None:
            return self._paused_from
        return RUNNING if self.status == RESUMING else self.status

    # ================================================================== pause
    def pause(self) -> None:
        """Nothing new starts; the status is ``pausing`` while tasks run, ``paused`` once none
        does (a driver that knows nothing runs any more says so with :meth:`mark_paused`)."""
        if self.finished or self.status not in (RUNNING, RESUMING, FAILING):
            return
        # (not journaled: a resumed durable run starts running again)
        self._paused_from = self._base_status()
        self.status = PAUSING
        for inst in self.active():  # Orquesta: a with-items task pauses too (no more items)
            if inst.items is not None and inst.status == TASK_RUNNING:
                inst.status = self.statuses[inst.task] = PAUSING if inst.in_flight > inst.parked else PAUSED
        self._check_paused()

    def _check_paused(self) -> None:
        """A ``pausing`` run with no call of a running task in flight is ``paused``."""
        if self.status != PAUSING:
            return
        for inst in self.active():
            if inst.status in (TASK_RUNNING, PAUSING) and (inst.in_flight > 0 or inst.pending):
                return
        self.status = PAUSED

    def mark_paused(self) -> None:
        """The driver has no call in flight (a delay or retry waits): ``pausing`` is ``paused``."""
        if self.status == PAUSING:
            self.status = PAUSED

    def resume(self) -> None:
        """Continue a pausing or paused run: ``resuming`` (the status it had, if failing) until a
        task or call starts; paused with-items tasks hand out their remaining items again (one
        still ``paused`` is ``running`` once an item starts: :meth:`call_started`)."""
        if self.status not in (PAUSING, PAUSED):
            return
        base = self._paused_from or RUNNING
        self.status = RESUMING if base == RUNNING else base
        self._paused_from = None
        for inst in self.active():
            if inst.items is not None and inst.status == PAUSING and not inst.parked:
                inst.status = self.statuses[inst.task] = TASK_RUNNING

    def is_idle(self) -> bool:
        """Nothing can start and nothing is running: the driver should call :meth:`finalize`."""
        return not self.ready() and not self.active()

    def finalize(self) -> None:
        """Decide the final status (unreachable joins, failures) and render the output."""
        if self.finished:
            return
        if self.active():
            return  # still running (e.g. a rehearsal mock left a task running)
        if self.status == RESUMING:  # resumed with nothing left to start
            self.status = RUNNING
        if self.status == RUNNING:
            for st in list(self._joins.values()):
                if st.satisfied and len(set(st.satisfied)) < st.join_required:
                    err = {
                        "type": "error",
                        "task_id": st.task,
                        "route": st.route,
                        "message": (
                            f'UnreachableJoinError: The join task|route "{st.task}|{st.route}" '
                            "is partially satisfied but unreachable."
                        ),
                    }
                    self.errors.append(err)
                    self._request_fail(err)
        if self.status == RUNNING:
            self.status = WF_SUCCEEDED
        elif self.status == FAILING:
            self.status = WF_FAILED
        to_commands = {id(i.source) for i in self.sequence if i.is_command and i.source is not None}
        for inst in self.sequence:
            if inst.done and not inst.is_command and not inst.term and not inst.superseded:
                # an instance whose successors never started is where its branch ended; one that
                # went on to an engine command is not (the command's entry is), unless it is the
                # completion that ended the workflow (Orquesta marks that one terminal too)
                if id(inst) in to_commands and inst is not self._last_completed:
                    continue
                if id(inst) in self._led_to_render_failure:
                    continue
                if not any(s for s in self.staged for src in s.sources if src is inst) and not self._has_started_successor(inst):
                    inst.term = True
        self._render_output()
        self.finished = True

    def _has_started_successor(self, inst: TaskInstance) -> bool:
        for other in self.sequence:
            st = other.staged_from
            if st is not None and any(src is inst for src in st.sources):
                return True
        return False

    def terminal_context(self) -> Any:
        """The merged out-contexts of the terminal task instances (in completion order)."""
        ctx = None
        acc: dict[str, int] = {}
        terms = [i for i in self.sequence if i.term]
        terms.sort(key=lambda i: (i.finished or 0.0, i.seq))
        for inst in terms:
            for out, stamps in inst.out_ctxs or [(inst.ctx, inst.stamps)]:
                if ctx is None:
                    ctx, acc = out, stamps
                else:
                    ctx, acc = self._fold(ctx, acc, out, stamps)
        if ctx is None:
            ctx = self.initial_ctx if self.initial_ctx is not None else self.store.Context(self.parameters)
        return ctx

    def _render_output(self) -> None:
        """Render ``output`` in order into the terminal context (an entry sees the entries before
        it, as in Orquesta); an entry that fails is logged and left out, the rest still render."""
        if not self.spec.output:
            self.output = {}
            return
        ctx = self.terminal_context().clone()
        out: dict[str, Any] = {}
        scope = self._scope(None)
        locs = self.spec.locs or {}
        for name, value in self.spec.output:
            try:
                rendered = self.renderer.render_json(value, ctx, scope=scope, field=f"output.{name}")
                ctx.set_var(name, rendered)
                out[name] = self.store.thaw(rendered)
            except (FlowctxError, TypeError, ValueError) as exc:
                loc = locs.get(f"output.{name}")
                where = f"{loc}: " if loc is not None else ""
                err = self._log_error(None, f"{where}cannot render output {name!r}: {exc}")
                if self.status == WF_SUCCEEDED:
                    self.status = WF_FAILED
                if self.status == WF_FAILED and self.failure is None:
                    self.failure = err
        self.output = out

    def cancel(self, *, now: bool = False) -> None:
        """Stop: nothing new starts.  While calls are still in flight the status is
        ``canceling`` (a with-items task's too) and their outcomes are recorded as they arrive
        (the driver asks them to stop); ``canceled`` once none is left.  ``now=True`` ends every
        running instance as canceled at once (a run stopped for good, e.g. a state-file abort)."""
        if now and not self.finished:
            if self.status not in (CANCELING, WF_CANCELED) and self.journal is not None:
                self.journal.control("cancel")
            for inst in self.active():
                inst.pending.clear()
                self._cancel_now(inst)
            self.staged.clear()
            self._planned.clear()
            self._joins.clear()
            self._paused_from = None
            self.status = WF_CANCELED
            return
        if self.finished or self.status in (CANCELING, WF_CANCELED):
            return
        if self.journal is not None:
            self.journal.control("cancel")
        self.status = CANCELING
        self._paused_from = None
        self.staged.clear()
        self._planned.clear()
        self._joins.clear()
        for inst in self.active():
            if inst.status == RETRYING or inst.seq in self._parked:
                continue  # Orquesta: a task waiting for its retry (or paused by its call) is not
                # active: it ends when its call reports (the driver asks that call to stop)
            if inst.in_flight > 0:
                if inst.items is not None:
                    inst.status = self.statuses[inst.task] = CANCELING
                continue
            inst.pending.clear()  # nothing in flight: canceled now (Orquesta: no completion
            self._cancel_now(inst, term=False)  # event, so not where its branch ended)
        self._check_canceled()

    def _canceling(self) -> bool:
        return self.status in (CANCELING, WF_CANCELED)

    def _cancel_now(self, inst: TaskInstance, *, term: bool = True) -> None:
        if self._parked:
            self._parked.discard(inst.seq)
        if inst.items is not None and inst.result is None:  # one entry per item, as _finish_items
            inst.result = inst.caller_result
            if inst.result is None:
                inst.result = self.store.freeze([inst.item_results.get(i) for i in range(len(inst.items))])
        inst.caller_result = None
        inst.status = CANCELED
        inst.finished = time.time()
        inst.term = term
        self._active.pop(inst.seq, None)
        self.statuses[inst.task] = CANCELED

    def _check_canceled(self) -> None:
        if self.status == CANCELING and not any(
            i.status != RETRYING and i.seq not in self._parked for i in self.active()
        ):
            self.status = WF_CANCELED

    def finish_canceled(self) -> None:
        """A canceled run ends (what is still active ends as canceled): its output is rendered
        too (Orquesta); errors there are logged and the status stays canceled."""
        for inst in self.active():
            self._cancel_now(inst)
        self.status = WF_CANCELED
        self.finished = True
        self._render_output()

    # ================================================================== rerun
    def rerun(self, tasks: list[tuple[str, int]] | None = None, *, reset_items: bool = False) -> None:
        """Re-open a finished execution: run the given (task, route) instances again (default:
        every failed terminal instance) and let branches that were cut short continue."""
        targets: list[TaskInstance] = []
        latest: dict[tuple[str, int], TaskInstance] = {}
        for inst in self.sequence:
            if not inst.is_command:
                latest[(inst.task, inst.route)] = inst
        if tasks:
            for name, route in tasks:
                found = latest.get((name, route))
                if found is None:
                    raise FlowctxError(f"cannot rerun task {name!r} on route {route}: it never ran")
                if not found.done and not (self.finished and found.status == RETRYING):  # (retrying:
                    # a canceled run stopped it before its retry)
                    raise FlowctxError(f"cannot rerun task {name!r} on route {route}: it is still {found.status}")
                if found not in targets:
                    targets.append(found)
            targets = self._collapse_reruns(targets)
        else:
            targets = [
                i for i in self.sequence
                if i.term and not i.is_command and i.status in (FAILED, TIMEOUT, CANCELED) and latest.get((i.task, i.route)) is i
            ]
        if not targets:
            raise FlowctxError("nothing to rerun: no failed task instances")
        if self.journal is not None:
            self.journal.control("rerun", tasks=[list(t) for t in tasks] if tasks else None, reset_items=reset_items)
        names = {t.task for t in targets}
        self.errors = [e for e in self.errors if e.get("task_id") not in names]
        self.finished = False
        self.status = RESUMING
        self.output = None
        self.failure = None
        for st in self.staged:
            st.allowed_after_fail = False
        for inst in self.sequence:
            if any(src is inst for st in self.staged for src in st.sources):
                inst.term = False
        for inst in targets:
            for seq in self._downstream(inst) - {inst.seq}:  # the branch runs again: what it
                old = self.sequence[seq]  # reached before is no longer where it ends (Orquesta)
                old.term = False
                old.superseded = True
        for rank, inst in enumerate(targets):
            # a new sequence entry, as in Orquesta (a with-items task too: without reset_items it
            # keeps the results of the items that succeeded and runs the others)
            inst.term = False
            inst.superseded = True
            self._order += 1
            st = Staged(
                inst.task, inst.route, inst.ctx, self._order,
                sources=list(inst.staged_from.sources) if inst.staged_from else [], stamps=inst.stamps,
            )
            if inst.items is not None and not reset_items:
                st.keep_items = {
                    i: inst.item_results.get(i) for i, status in inst.item_status.items() if status == SUCCEEDED
                }
            # Orquesta also enters the task in its sequence now, with no status; flowctx enters
            # it when it starts (until then it is this staged instance: a rerun that never
            # starts leaves no entry behind), presented at the place Orquesta gave it (slot)
            st.rerun_slot = (len(self.sequence), 0, rank)
            self.staged.append(st)

    def _collapse_reruns(self, targets: list[TaskInstance]) -> list[TaskInstance]:
        """Orquesta: a requested task that only ran after another requested one (its entries
        are a subset of the other's downstream entries) is dropped — rerunning the first reaches
        it again; rerunning both would run that branch twice."""
        if len(targets) < 2:
            return targets
        downstream = {t.seq: self._downstream(t) for t in targets}
        return [t for t in targets if any(downstream[t.seq] - downstream[o.seq] for o in targets)]

    def _downstream(self, t: TaskInstance) -> set[int]:
        """Sequence numbers of ``t`` and of every entry that ran after it on its branch."""
        reach = {t.seq}
        for inst in self.sequence[t.seq + 1:]:
            srcs = [inst.source] if inst.is_command else (inst.staged_from.sources if inst.staged_from else [])
            if any(src is not None and src.seq in reach for src in srcs):
                reach.add(inst.seq)
        return reach

    # ================================================================== misc
    def _emit(self, kind: str, inst: TaskInstance) -> None:
        if self.journal is not None:
            self.journal.event(kind, inst)
        if self.on_event is not None:
            self.on_event(kind, inst)

    def presented(self) -> list[TaskInstance]:
        """The sequence in Orquesta's order: as :attr:`sequence` (start order, indexed by
        ``seq``) except that a rerun entry sits where the rerun entered it (TaskInstance.slot)."""
        return sorted(self.sequence, key=lambda i: i.slot)

    def task_sequence(self) -> list[str]:
        return [i.name for i in self.presented()]

    def term_tasks(self) -> list[str]:
        """Terminal entries of the sequence, engine commands included (as Orquesta lists them)."""
        return [i.name for i in self.sequence if i.term]
