"""The engine: drives a :class:`~flowctx.engine.conductor.Conductor` with real action calls.

Event-driven, no polling: the engine thread blocks on one queue.  Action outcomes (from the
executor's workers), control requests (cancel / pause / resume) and nothing else wake it; delayed
calls (task ``delay``, retry back-off) wait in a heap and the queue wait is bounded by the next
deadline, so a timer never costs a thread and an idle engine never spins.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import field
from functools import partial
from types import ModuleType
from typing import Any

from flowctx._record import record
from flowctx.actions.base import CANCELED, FAILED, ActionContext, ActionResult, Outcome, in_engine_process, runs_inline
from flowctx.actions.registry import DEFAULT_REGISTRY, ActionRegistry, ActionSpec
from flowctx.engine.conductor import (
    CANCELING,
    DEFAULT_MAX_TASKS,
    PAUSED,
    PAUSING,
    WF_CANCELED,
    ActionCall,
    Conductor,
    TaskInstance,
)
from flowctx.errors import ActionError, FlowctxError, WorkflowError
from flowctx.executors import CallHandle, Executor, call_action, make_executor
from flowctx.executors.inline import InlineExecutor
from flowctx.spec.model import TaskSpec, WorkflowSpec

EventHook = Callable[[str, TaskInstance], None]
_MAX_WAIT = 3600.0  # seconds: the longest single wait of the engine loop
_POLL_BELOW = 0.001  # seconds: a shorter wait for a timer is a look at the queue (see _drive)
_WAKE: tuple[Any, ...] = ("wake",)  # an outcome is in the run's ready deque
MAX_SUBWORKFLOW_DEPTH = 50  # sub-workflows within sub-workflows: a workflow that calls itself stops here


@record
class TaskRecord:
    """One task instance of an execution, as users see it."""

    task: str
    route: int
    status: str
    result: Any
    error: str | None
    attempts: int
    started: float
    finished: float | None
    items: int | None = None

    @property
    def name(self) -> str:
        return self.task if self.route == 0 else f"{self.task}__r{self.route}"

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started

    def to_dict(self) -> dict[str, Any]:
        from flowctx import thaw

        return {
            "task": self.task,
            "route": self.route,
            "status": self.status,
            "result": thaw(self.result),
            "error": self.error,
            "attempts": self.attempts,
            "started": self.started,
            "finished": self.finished,
            "items": self.items,
        }


@record
class ExecutionResult:
    """The outcome of a workflow run."""

    execution_id: str
    workflow: str
    status: str
    output: dict[str, Any] | None
    errors: list[dict[str, Any]]
    tasks: list[TaskRecord]
    sequence: list[str]
    routes: list[list[str]]
    started: float
    finished: float
    metrics: dict[str, Any] = field(default_factory=dict)
    conductor: Conductor | None = field(default=None, repr=False, compare=False)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def reason(self) -> str | None:
        """A one-line reason for a failure (the first error), or None."""
        if self.status == "succeeded":
            return None
        return _failure_reason(self)

    def task(self, name: str, route: int = 0) -> TaskRecord:
        """The latest record of task ``name`` on ``route`` (KeyError if it never ran)."""
        for rec in reversed(self.tasks):
            if rec.task == name and rec.route == route:
                return rec
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        from flowctx import thaw

        return {
            "execution_id": self.execution_id,
            "workflow": self.workflow,
            "status": self.status,
            "output": thaw(self.output),
            "errors": thaw(self.errors),
            "tasks": [t.to_dict() for t in self.tasks],
            "sequence": self.sequence,
            "routes": self.routes,
            "started": self.started,
            "finished": self.finished,
            "metrics": self.metrics,
        }


def _result_from(conductor: Conductor, execution_id: str, started: float, metrics: dict[str, Any]) -> ExecutionResult:
    tasks = [
        TaskRecord(
            i.task, i.route, i.status, i.result, i.error, max(i.attempts, 1), i.started, i.finished,
            len(i.items) if i.items is not None else None,
        )
        for i in conductor.sequence
        if not i.is_command
    ]
    return ExecutionResult(
        execution_id=execution_id,
        workflow=conductor.spec.name,
        status=conductor.status,
        output=conductor.output,
        errors=list(conductor.errors),
        tasks=tasks,
        sequence=conductor.task_sequence(),
        routes=[list(r) for r in conductor.routes],
        started=started,
        finished=time.time(),
        metrics=metrics,
        conductor=conductor,
    )


class _Sink:
    """Where a run's pooled calls deliver their outcomes: workers append to ``ready`` (no lock,
    no wake) and wake the engine thread through its event queue only when it is blocked there
    (``idle``), so it wakes once per burst of outcomes, not once per call, and then drains
    whatever is ready (one event, one dispatch, as always)."""

    __slots__ = ("ready", "idle", "events")

    def __init__(self, events: queue.SimpleQueue[tuple[Any, ...]]) -> None:
        self.ready: collections.deque[tuple[Any, ...]] = collections.deque()
        self.idle = False
        self.events = events


class _Delivery:
    """A pooled call's ``on_done``: one small object per call (a closure with its defaults was
    two, and 10,000 queued calls keep the garbage collector busy)."""

    __slots__ = ("sink", "token", "call")

    def __init__(self, sink: _Sink, token: int, call: ActionCall) -> None:
        self.sink = sink
        self.token = token
        self.call = call

    def __call__(self, outcome: Outcome) -> None:
        sink = self.sink
        sink.ready.append(("done", self.token, self.call, outcome))
        if sink.idle:  # the engine thread waits in events.get(): wake it (once, mostly)
            sink.idle = False
            sink.events.put(_WAKE)


class Execution:
    """A workflow running in a background thread: ``wait()``, ``cancel()``, ``pause()``,
    ``resume()``."""

    def __init__(self, engine: Engine, conductor: Conductor, execution_id: str) -> None:
        self._engine = engine
        self.conductor = conductor
        self.execution_id = execution_id
        self._events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._result: ExecutionResult | None = None
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._executor: Executor | None = None
        self._running_on: Executor | None = None  # the executor while the run is driven
        self._cancel_requested = False

    @property
    def status(self) -> str:
        return self.conductor.status

    def cancel(self) -> None:
        """Cancel: nothing new starts, running actions are asked to stop; status ``canceled``."""
        self._cancel_requested = True
        self._events.put(("cancel",))
        interrupt = getattr(self._running_on, "cancel_running", None)
        if interrupt is not None:  # the inline executor blocks the engine thread: reach its call now
            interrupt()

    def pause(self) -> None:
        """Pause: nothing new starts; running actions finish (status ``pausing``), then the
        status is ``paused``; a retry or delay waiting to run waits for :meth:`resume`."""
        self._events.put(("pause",))

    def resume(self) -> None:
        """Resume a paused execution."""
        self._events.put(("resume",))

    def wait(self, timeout: float | None = None) -> ExecutionResult:
        """Block until the execution ends; returns its :class:`ExecutionResult`."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"execution {self.execution_id} still {self.status} after {timeout}s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _run(self) -> None:
        try:
            self._result = self._engine._drive(self)
        except BaseException as exc:  # surfaced by wait()
            self._error = exc
        finally:
            self._done.set()


class Engine:
    """Runs workflows.

    ``actions``: extra actions (a mapping name -> callable, or an :class:`ActionRegistry`) on top
    of the default registry.  ``executor``: ``"thread"`` (default), ``"process"``, ``"inline"``,
    ``"dask"`` (with ``scheduler="tcp://host:port"`` for a running cluster), a name registered in
    the ``flowctx.executors`` entry-point group, or an :class:`Executor`; ``executor_options`` go
    to a named executor's factory.  ``copy_items=True`` deep-copies the context per with-items item
    instead of cloning it (kept only to benchmark the difference).
    """

    def __init__(
        self,
        *,
        actions: Mapping[str, Callable[..., Any]] | ActionRegistry | None = None,
        executor: str | Executor = "thread",
        max_workers: int | None = None,
        renderer: Any = None,
        store: ModuleType | None = None,
        copy_items: bool = False,
        responder: Callable[[Mapping[str, Any]], Any] | None = None,
        on_event: EventHook | None = None,
        state: Any = None,
        max_tasks: int | None = DEFAULT_MAX_TASKS,
        scheduler: str | None = None,
        executor_options: Mapping[str, Any] | None = None,
    ) -> None:
        from flowctx import _backend
        from flowctx.render import default_renderer

        if isinstance(actions, ActionRegistry):
            self.registry = actions
        else:
            self.registry = DEFAULT_REGISTRY.child(actions)
        self._executor_spec = executor
        self.max_workers = max_workers
        self.executor_options = dict(executor_options or {})  # options of a named executor
        if scheduler is not None:  # executor="dask", scheduler="tcp://host:port"
            self.executor_options["scheduler"] = scheduler
        self.renderer = renderer or default_renderer()
        self.store = store or _backend.store
        self.copy_items = copy_items
        self.responder = responder
        self.on_event = on_event
        if max_tasks is not None and (isinstance(max_tasks, bool) or not isinstance(max_tasks, int) or max_tasks < 1):
            raise FlowctxError(f"max_tasks must be a whole number >= 1 (or None for no limit), got {max_tasks!r}")
        self.max_tasks = max_tasks
        if state is not None:  # durable runs (flowctx.state): a path or a StateStore
            from flowctx.state import open_state

            state = open_state(state)
        self.state = state
        self._checked: dict[tuple[Any, ...], tuple[Callable[..., Any], bool, str | None]] = {}
        self._depth = 0  # how many sub-workflow levels above this engine's runs
        self._parent_execution: str | None = None  # a durable sub-workflow's parent execution

    # ------------------------------------------------------------------ public API
    def run(
        self, workflow: str | os.PathLike[str] | WorkflowSpec, parameters: Mapping[str, Any] | None = None,
        *, context: Mapping[str, Any] | None = None,
    ) -> ExecutionResult:
        """Run a workflow to the end and return its result (``context``: see :meth:`start`)."""
        ex = self.start(workflow, parameters, background=False, context=context)
        return ex.wait()

    def start(
        self,
        workflow: str | os.PathLike[str] | WorkflowSpec,
        parameters: Mapping[str, Any] | None = None,
        *,
        background: bool = True,
        execution_id: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Execution:
        """Start a workflow; returns an :class:`Execution` handle (runs in a thread by default).

        ``context``: the application (parent) context, a mapping whose names ``ctx()`` and bare
        names read under the parameters and vars (Orquesta's ``WorkflowConductor(context=...)``;
        StackStorm passes ``st2`` and ``parent`` this way).  Input defaults and vars may read it;
        it is data (never rendered), frozen, and kept in durable state for resume.  A
        sub-workflow gets its caller's context with ``parent`` describing the caller.

        Problems found before anything runs — a broken file, bad parameters, unknown actions —
        raise :class:`~flowctx.errors.FlowctxError` here.
        """
        app_ctx = check_context(context, self.store, workflow if isinstance(workflow, WorkflowSpec) else None)
        spec = self._load(workflow, app_ctx)
        setup_errors: list[str] = []
        params = self._parameters(spec, parameters or {}, setup_errors, app_ctx)
        executor = self._make_executor()
        try:
            self._check_actions(spec, executor)
        except BaseException:
            self._release(executor)
            raise
        execution_id = execution_id or os.urandom(6).hex()  # 12 random hex digits (uuid not imported)
        system = {
            "execution_id": execution_id,
            "workflow": spec.name,
            "workflow_start": time.time(),
            "timestamp": int(time.time()),
            "identity": {"login": _login()},
        }
        conductor = Conductor(
            spec, params, renderer=self.renderer, store=self.store, system=system, context=app_ctx,
            copy_items=self.copy_items, on_event=self.on_event, setup_errors=setup_errors,
            max_tasks=self.max_tasks,
        )
        from flowctx.state.journal import attach

        try:
            attach(self, conductor, execution_id)  # metrics; with state=: execution row, lease, journal
        except BaseException:
            self._release(executor)
            raise
        ex = Execution(self, conductor, execution_id)
        ex._executor = executor
        self._launch(ex, background)
        return ex

    def resume(
        self, execution_id: str, state: Any = None, *, background: bool = False,
        rerun: list[str | tuple[str, int]] | None = None, reset_items: bool = False,
    ) -> Any:
        """Continue a durable execution from its state store (default: this engine's ``state``):
        rebuild it from the journal, run again the calls that had no recorded outcome, finish it.
        With ``rerun`` (task names, or (name, route) pairs; ``[]`` for every failed task) a
        *finished* execution is rebuilt and those tasks run again (Orquesta's rerun; with-items
        keep their succeeded items unless ``reset_items``).  Returns the
        :class:`ExecutionResult` (an :class:`Execution` with ``background=True``)."""
        from flowctx.state import open_state, rebuild

        store = open_state(state) if state is not None else self.state
        if store is None:
            raise FlowctxError("resume needs a state store: Engine(state=...) or resume(id, state=...)")
        conductor = rebuild(self, execution_id, store, rerun=rerun, reset_items=reset_items)
        executor = self._make_executor()
        try:
            self._check_actions(conductor.spec, executor)
        except BaseException:
            conductor.journal.close()
            self._release(executor)
            raise
        ex = Execution(self, conductor, execution_id)
        ex._executor = executor
        self._launch(ex, background)
        return ex if background else ex.wait()

    def rerun(
        self, result: ExecutionResult, tasks: list[str | tuple[str, int]] | None = None, *, reset_items: bool = False
    ) -> ExecutionResult:
        """Run failed tasks of a finished execution again (default: every failed terminal task),
        keeping its history; returns the updated result."""
        if result.conductor is None:
            raise FlowctxError("this result has no execution state to rerun")
        conductor = result.conductor
        wanted = None
        if tasks:
            wanted = [(t, 0) if isinstance(t, str) else (str(t[0]), int(t[1])) for t in tasks]
        conductor.rerun(wanted, reset_items=reset_items)
        ex = Execution(self, conductor, result.execution_id)
        self._launch(ex, background=False)
        return ex.wait()

    # ------------------------------------------------------------------ preparation
    def _load(self, workflow: str | os.PathLike[str] | WorkflowSpec, context: Mapping[str, Any] | None = None) -> WorkflowSpec:
        """Load and validate ``workflow``; the application context's names are defined names
        (reading them is not 'referenced before assignment').  A spec passed in is taken as it is."""
        if isinstance(workflow, WorkflowSpec):
            return workflow
        from flowctx.spec import load_workflow

        if not context:
            return load_workflow(workflow)
        from flowctx.spec.validate import raise_for_problems, validate

        spec = load_workflow(workflow, validate=False)
        raise_for_problems(validate(spec, extra_names=context), spec)
        return spec

    def _parameters(
        self, spec: WorkflowSpec, parameters: Mapping[str, Any], errors: list[str] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        from flowctx.spec import validate_parameters

        params = validate_parameters(spec, parameters)
        problems = []  # a value no context can hold (a set, bytes, an object): say so before the run
        for name, value in params.items():
            if value is None or type(value) in (str, int, float, bool):
                continue
            try:
                self.store.freeze(value, name)
            except (TypeError, ValueError, RecursionError) as exc:
                problems.append(f"  parameter {name!r}: {exc}")
        if problems:
            raise WorkflowError(f"invalid parameters for workflow {spec.name!r}:\n" + "\n".join(problems), file=spec.file)
        return render_parameter_defaults(
            spec, params, set(parameters), self.renderer, self.store, errors, context=context
        )

    def _check_actions(self, spec: WorkflowSpec, executor: Executor) -> None:
        problems = []
        for task in _all_tasks(spec):
            if task.type == "workflow" or (task.action is not None and _is_workflow_ref(task.action)):
                path = _subworkflow_path(task.workflow or task.action, spec.file)
                if path is not None and not os.path.isfile(path):
                    where = f"{task.loc}: " if task.loc else ""
                    problems.append(f"{where}task {task.name!r}: sub-workflow file not found: {path}")
                continue
            if task.action is None or self.renderer.is_template(task.action):
                continue  # an action given as an expression is resolved when it is rendered
            where = f"{task.loc}: " if task.loc else ""
            try:
                aspec = self.registry.resolve(task.action)
                executor.check(aspec.func, aspec.name)
            except ActionError as exc:
                problems.append(f"{where}task {task.name!r}: {exc}")
                continue
            if isinstance(task.input, Mapping) and _static_names(task.input):  # names known before the run
                problems.extend(f"{where}{p}" for p in aspec.check_inputs(task.input, task=task.name))
        if problems:
            raise WorkflowError("; ".join(problems) if len(problems) == 1 else "\n".join(problems), problems=problems)

    def _launch(self, ex: Execution, background: bool) -> None:
        if background:
            ex._thread = threading.Thread(target=ex._run, name=f"flowctx-{ex.execution_id}", daemon=True)
            ex._thread.start()
        else:
            ex._run()

    def _release(self, executor: Executor) -> None:
        """Shut down an executor this engine made (one passed in by the caller stays theirs)."""
        if not isinstance(self._executor_spec, Executor):
            executor.shutdown(wait=False)

    def _make_executor(self) -> Executor:
        spec = self._executor_spec
        if isinstance(spec, Executor):
            return spec
        return make_executor(spec, self.max_workers, **self.executor_options)

    # ------------------------------------------------------------------ the loop
    def _drive(self, ex: Execution) -> ExecutionResult:
        c = ex.conductor
        started = time.time()
        executor = ex._executor if ex._executor is not None else self._make_executor()
        ex._executor = None
        ex._running_on = executor
        owns_executor = not isinstance(self._executor_spec, Executor)
        events = ex._events
        handles: dict[int, CallHandle] = {}
        local: collections.deque[tuple[Any, ...]] = collections.deque()  # outcomes of inline calls
        # Outcomes of pooled calls: workers append to ``ready`` (no lock, no wake) and wake the
        # engine thread through ``events`` only when it is blocked there (``idle``), so it wakes
        # once per burst of outcomes, not once per call, and drains whatever is ready.
        sink = _Sink(events)
        ready = sink.ready
        timers: list[tuple[float, int, ActionCall]] = []
        held: list[tuple[float, ActionCall]] = []  # delayed calls of a paused run: (delay left, call)
        seq = itertools.count()
        # the inline executor's call without a timeout or context: run here, no handle or queue
        inline = InlineExecutor._call if type(executor) is InlineExecutor else None
        inflight = 0
        contexts: dict[int, ActionContext] = {}  # calls in flight that have an ActionContext
        parked: dict[int, str] = {}  # calls in flight that reported pending / paused
        paused = False
        pause_recorded = False  # the durable journal was told "paused" (a CLI in another process waits for it)
        metrics = {"actions": 0, "retries": 0, "action_time": 0.0}
        if not c.sequence and not c.staged and c.initial_ctx is None and not c.finished:
            c.start()
        journal = c.journal
        fatal: list[BaseException] = []  # a durable run that cannot be recorded stops (flowctx.state)
        if getattr(journal, "durable", False):
            # seen before the next dispatch (not behind queued outcomes); the event wakes the loop

            def on_fatal(exc: BaseException) -> None:
                fatal.append(exc)
                events.put(("fatal", exc))

            journal.on_fatal = on_fatal
            journal.on_request = lambda kind: getattr(ex, kind)()  # flowctx pause / resume / cancel
            if journal.fatal is not None:
                fatal.append(journal.fatal)

        # the thread pool takes a dispatch round in one hand-off: begin_batch .. flush, the batch
        # opened by the round's first pooled call (an outcome's round mostly submits nothing)
        begin_batch = getattr(executor, "begin_batch", None)
        in_round = False
        batch_open = False

        def submit(call: ActionCall) -> None:
            nonlocal inflight, batch_open
            if paused:  # a retry (or its delay) of a paused run waits for resume
                held.append((call.delay, call))
                return
            if call.delay > 0:
                heapq.heappush(timers, (time.monotonic() + call.delay, next(seq), call))
                inflight += 1
                return
            inflight += 1
            token = next(seq)
            c.call_started(call)
            func, wants_ctx, problem = self._callable(call, c.spec.file)
            if ex._cancel_requested:  # a cancel on its way (the inline executor blocks this thread)
                events.put(("done", token, call, Outcome(CANCELED, None, "canceled", time.time(), time.time())))
                return
            if problem is not None:
                events.put(("done", token, call, Outcome(FAILED, None, problem, time.time(), time.time())))
                return
            actx = None
            if wants_ctx:
                actx = ActionContext(
                    task=call.instance.task, workflow_file=c.spec.file, responder=self.responder,
                    reporter=partial(_report, events, token, call),
                )
                contexts[token] = actx
                if getattr(func, _SUBWORKFLOW_MARK, False):  # a sub-workflow (it runs in the engine process)
                    actx.extra["flowctx.context"] = _child_context(ex.execution_id, c, call)
                if getattr(journal, "durable", False):  # a sub-workflow becomes a durable child
                    actx.extra["flowctx.child_id"] = journal.child_id(call)
                    actx.extra["flowctx.parent_id"] = ex.execution_id
            metrics["actions"] += 1
            if call.timeout is None:
                if runs_inline(func):
                    local.append(("done", token, call, call_action(func, call.inputs, actx)))
                    return
                if inline is not None and actx is None:  # what InlineExecutor.submit does, minus the handle
                    local.append(("done", token, call, inline(func, call.inputs, None)))
                    return

            if in_round and not batch_open and begin_batch is not None:
                begin_batch()  # the round's first pooled call opens its batch (most rounds have none)
                batch_open = True
            handle = executor.submit(
                func, call.inputs, timeout=call.timeout, context=actx, on_done=_Delivery(sink, token, call)
            )
            if not handle.done:
                handles[token] = handle

        def dispatch() -> None:
            if paused or c.finished or fatal:
                return
            while True:
                mark = c.stage_count
                c.start_ready()  # may complete at once (skipped, no items) and stage more
                for inst in c.active():
                    for call in c.calls_for(inst):
                        submit(call)
                if c.stage_count == mark:
                    break

        def handle(ev: tuple[Any, ...]) -> None:
            nonlocal inflight, paused, pause_recorded
            kind = ev[0]
            if kind == "done":
                _, token, call, outcome = ev
                handles.pop(token, None)
                inflight -= 1
                metrics["action_time"] += max(0.0, outcome.finished - outcome.started)
                if contexts:
                    contexts.pop(token, None)
                waited = parked.pop(token, None) if parked else None
                follows = c.call_done(call, outcome)
                if waited is not None and not paused and not parked and c.status in (PAUSING, PAUSED):
                    # the call that paused the workflow ended (an inquiry answered, a paused
                    # sub-workflow finished): the workflow continues (st2 resumes it then too)
                    c.resume()
                for follow in follows:
                    metrics["retries"] += 1
                    submit(follow)
            elif kind == "status":  # a call in flight reports pending / paused / running ...
                _, token, call, status = ev
                if token not in contexts:
                    return  # its outcome came first
                c.call_status(call, status)
                if status == "pending" or status == "paused":
                    parked[token] = status
                else:
                    parked.pop(token, None)
            elif kind == "cancel" or kind == "fatal":
                if kind == "cancel":
                    c.cancel()  # `canceling` until the outcomes of what runs arrive
                # each reports `canceled` (once) as a "done" event.  Newest first: the pool's
                # workers take the oldest next, and canceling the very call a worker is starting
                # waits for that worker (thousands of queued calls, canceled from the front, raced
                # the workers call by call while they kept running the rest)
                for h in reversed(list(handles.values())):
                    h.cancel()
                waiting = [call for _, _, call in timers] + [call for _, call in held]
                inflight -= len(timers)
                timers.clear()
                held.clear()
                paused = False  # a paused run can be canceled: it ends now
                for actx in contexts.values():
                    actx.pause_requested.clear()
                if kind == "cancel":
                    now_t = time.time()
                    for call in waiting:  # delayed calls and held retries never start
                        c.call_done(call, Outcome(CANCELED, None, "canceled", now_t, now_t))
            elif kind == "pause":
                if not paused and not c.finished:
                    paused = True
                    c.pause()
                    for actx in contexts.values():  # cascades: a sub-workflow pauses too
                        actx.resume_requested.clear()
                        actx.pause_requested.set()
                    now = time.monotonic()
                    for deadline, _, call in timers:  # waiting calls keep the delay they had left
                        held.append((max(0.0, deadline - now), call))
                    inflight -= len(timers)
                    timers.clear()
            elif kind == "resume":
                paused = False
                c.resume()
                for actx in contexts.values():  # cascades: a paused sub-workflow resumes too
                    actx.pause_requested.clear()
                    actx.resume_requested.set()
                if pause_recorded:
                    journal.status_changed("running")
                    pause_recorded = False
                resumed = list(held)
                held.clear()
                for delay, call in resumed:
                    call.delay = delay
                    submit(call)

        if journal is not None:
            for call in journal.resubmit():  # a resumed run: calls with no recorded outcome
                submit(call)
        try:
            while not fatal:
                in_round = True
                dispatch()
                in_round = False
                if fatal:
                    break
                if begin_batch is None:
                    executor.flush()
                elif batch_open:  # a batching executor sends this round's calls together
                    batch_open = False
                    executor.flush()
                if paused and c.status not in ("pausing", "paused"):
                    paused = False  # the pause ended without resume (a failure while pausing,
                    for actx in contexts.values():  # a paused call that runs again)
                        actx.pause_requested.clear()
                    for delay, call in held:
                        call.delay = delay
                        submit(call)
                    held.clear()
                if pause_recorded and not paused and c.status not in ("pausing", "paused"):
                    journal.status_changed("running")  # a task's pause ended (its call runs again)
                    pause_recorded = False
                if inflight == len(parked) and not timers:  # a paused / pending call waits
                    if paused:
                        c.mark_paused()  # nothing runs: `pausing` becomes `paused`
                    if (paused or parked) and c.status == PAUSED and not pause_recorded and getattr(
                        journal, "durable", False
                    ):
                        journal.status_changed(PAUSED)  # another process may wait for it
                        pause_recorded = True
                    elif not paused and not parked and c.is_idle():
                        break
                ev = None
                if not events.empty():  # a cancel / pause first: it must not wait behind a
                    ev = events.get()  # stream of outcomes (a loop of inline actions never drains)
                elif ready:
                    ev = ready.popleft()
                elif local:
                    ev = local.popleft()
                else:
                    timeout = None
                    if timers:
                        # bounded: a queue wait beyond threading.TIMEOUT_MAX raises OverflowError,
                        # and a long delay (validated: any number >= 0) just wakes up and waits again
                        timeout = min(max(0.0, timers[0][0] - time.monotonic()), _MAX_WAIT)
                    sink.idle = True
                    if ready:  # an outcome appended before the flag was seen: no wait
                        sink.idle = False
                        ev = ready.popleft()
                    else:
                        try:
                            if timeout is not None and timeout < _POLL_BELOW:
                                # a timer due within a millisecond: look, do not wait.  A timed
                                # wait of a few microseconds hung here in CI for minutes (the
                                # engine idle, nothing else to do; twice, CPython 3.10 and 3.11)
                                ev = events.get(block=False)
                            else:
                                ev = events.get(timeout=timeout) if timeout is not None else events.get()
                        except queue.Empty:
                            ev = None
                        sink.idle = False
                if ev is _WAKE:
                    ev = ready.popleft() if ready else None
                # one event, then dispatch again: the durable journal's replay mirrors exactly this
                # rhythm (it dispatches after every recorded event), so keep them in step
                if ev is not None:
                    handle(ev)
                if fatal:
                    handle(("fatal", fatal[0]))  # stop what runs
                    break
                now = time.monotonic()
                while timers and timers[0][0] <= now:
                    _, _, call = heapq.heappop(timers)
                    inflight -= 1
                    call.delay = 0.0
                    if c.status not in (WF_CANCELED, CANCELING):
                        submit(call)
                    else:
                        c.call_done(call, Outcome("canceled", None, "canceled", time.time(), time.time()))
        finally:
            if begin_batch is not None:
                executor.flush()  # a round cut short (fatal, an exception) leaves no call held
            if owns_executor:
                executor.shutdown(wait=False)
        if fatal and journal.fatal_write:  # the state file cannot be written: stop, say so
            journal.abandon()
            raise journal.fatal
        if fatal:  # a value the state file cannot hold: the run fails with that message
            journal.abort_run(c, str(journal.fatal))
        elif c.status in (WF_CANCELED, CANCELING):
            c.finish_canceled()
        else:
            c.finalize()
        metrics.update(self.store.store_stats())
        metrics["items_run"] = c.items_run
        if journal is not None:
            journal.finish(c, metrics)  # metrics; a durable run flushes before it is reported finished
        return _result_from(c, ex.execution_id, started, metrics)

    # ------------------------------------------------------------------ actions
    def _callable(self, call: ActionCall, wf_file: str | None) -> tuple[Callable[..., Any], bool, str | None]:
        inst = call.instance
        spec = inst.spec
        assert spec is not None
        task = spec
        if isinstance(call.key, str) and spec.subtasks:
            task = next(s for s in spec.subtasks if s.name == call.key)
        if task.type == "workflow" or (call.action and _is_workflow_ref(call.action)):
            path = _subworkflow_path(task.workflow or call.action, wf_file)
            assert path is not None
            return self._subworkflow(path), True, None  # the context: its cancel event stops the child
        if call.action is None:
            return _no_action, False, None
        key = (call.action, tuple(call.inputs))
        hit = self._checked.get(key)
        if hit is not None:
            return hit
        try:
            aspec: ActionSpec = self.registry.resolve(call.action)
        except ActionError as exc:
            return _no_action, False, f"task {task.name!r}: {exc}"
        problems = aspec.check_inputs(call.inputs, task=task.name)
        if problems:
            return _no_action, False, "; ".join(problems)
        hit = (aspec.func, aspec.wants_context(), None)
        if len(self._checked) < 4096:  # same action, same input names: same verdict
            self._checked[key] = hit
        return hit

    def _subworkflow(self, path: str) -> Callable[..., Any]:
        engine = self

        @in_engine_process  # orchestration, not work: a thread of this process on any executor
        def run_subworkflow(action_context: ActionContext | None = None, **inputs: Any) -> ActionResult:
            if engine._depth >= MAX_SUBWORKFLOW_DEPTH:
                return ActionResult(
                    "failed", None,
                    f"{_TOO_DEEP} {MAX_SUBWORKFLOW_DEPTH} deep at {path} "
                    "(does a workflow call itself without a condition that stops it?)",
                )
            kind = engine._executor_spec if isinstance(engine._executor_spec, str) else "thread"
            child_id = action_context.extra.get("flowctx.child_id") if action_context is not None else None
            child = Engine(
                actions=engine.registry, executor=kind, max_workers=engine.max_workers,
                executor_options=engine.executor_options, renderer=engine.renderer, store=engine.store,
                responder=engine.responder, max_tasks=engine.max_tasks,
                state=engine.state if child_id else None,
            )
            child._depth = engine._depth + 1
            child._parent_execution = (
                action_context.extra.get("flowctx.parent_id") if child_id and action_context is not None else None
            )
            if child_id and engine.state.has_execution(child_id):
                # a durable parent resumed: continue its child (recorded results are reused)
                child_ex = child.resume(child_id, background=True)
            else:
                context = action_context.extra.get("flowctx.context") if action_context is not None else None
                child_ex = child.start(path, inputs, execution_id=child_id, context=context)
            # a cancel or timeout of the calling task cancels the child (it ran on otherwise); a
            # pause / resume of the parent cascades to the child, and the child's own pause
            # (or a pending inquiry in it) makes the calling task paused (Orquesta / st2)
            reported = "running"
            asked_pause = False
            while not child_ex._done.wait(0.05):
                if action_context is None:
                    continue
                if action_context.cancel_event.is_set():
                    child_ex.cancel()
                    break
                if action_context.pause_requested.is_set() and not asked_pause:
                    asked_pause = True
                    child_ex.pause()
                if action_context.resume_requested.is_set():
                    action_context.resume_requested.clear()
                    asked_pause = False
                    child_ex.resume()
                status = child_ex.status
                if status == "resuming":
                    continue  # (a child resumed while its own task still waits is not running yet)
                now = status if status in ("paused", "pausing", "canceling") else "running"
                if now != reported:
                    reported = now
                    action_context.report(now)
            res = child_ex.wait()
            if res.succeeded:
                return ActionResult("succeeded", res.output)
            if res.status == "canceled":  # canceled from the child (or by this task's cancel)
                return ActionResult(CANCELED, {"output": res.output, "errors": res.errors},
                                    f"sub-workflow {path} was canceled")
            reason = _failure_reason(res)
            if _TOO_DEEP in reason:  # said once, not once per level
                reason = reason[reason.index(_TOO_DEEP):]
            else:
                reason = f"sub-workflow {path}: {reason}"
            return ActionResult("failed", {"output": res.output, "errors": res.errors}, reason)

        setattr(run_subworkflow, _SUBWORKFLOW_MARK, True)
        return run_subworkflow


def _report(events: queue.SimpleQueue[tuple[Any, ...]], token: int, call: ActionCall, status: str) -> None:
    """ActionContext.report of one call: to the engine loop (the conductor is not thread-safe)."""
    events.put(("status", token, call, status))


def render_parameter_defaults(
    spec: WorkflowSpec, params: dict[str, Any], given: set[str], renderer: Any, store: ModuleType,
    errors: list[str] | None = None, *, context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Defaults written as expressions (Orquesta: ``input: [{n: "<% len(ctx(xs)) %>"}]``) are
    rendered in declaration order against the application ``context`` and the parameters before
    them; values the caller passed (``given``) are data and never rendered.  With ``errors``
    every default is tried (Orquesta logs one error per failed input): one that fails is left
    out of the parameters and its message appended."""
    todo = [
        p for p in spec.parameters
        if p.has_default and p.name not in given and isinstance(p.default, str) and renderer.is_template(p.default)
    ]
    if not todo:
        return params
    out = dict(params)
    for p in todo:
        del out[p.name]  # not visible to its own default, nor (if it fails) to the ones after it
    for p in todo:
        ctx = store.Context(out, {**context, **out} if context else out)
        try:
            out[p.name] = store.thaw(renderer.render_json(p.default, ctx, field=f"input.{p.name}"))
        except FlowctxError as exc:
            where = f"{p.loc}: " if p.loc else ""
            message = f"{where}default of parameter {p.name!r}: {exc}"
            if errors is None:
                raise WorkflowError(message, file=spec.file) from None
            errors.append(message)  # the run fails with this error (Orquesta: a failed workflow)
    return {k: out[k] for k in params if k in out}  # declaration order, as given


def check_context(context: Any, store: ModuleType, spec: WorkflowSpec | None = None) -> dict[str, Any]:
    """An application context as the conductor takes it (a plain ``dict``; ``{}`` for None),
    or a :class:`WorkflowError` saying which name holds a value no context can hold."""
    if context is None:
        return {}
    file = spec.file if spec is not None else None
    if not isinstance(context, Mapping):
        raise WorkflowError(f"the context must be a mapping of names to values, got {type(context).__name__}", file=file)
    problems = []
    out: dict[str, Any] = {}
    for name, value in context.items():
        if not isinstance(name, str):
            problems.append(f"  name {name!r}: names must be strings, not {type(name).__name__}")
            continue
        try:
            out[name] = store.freeze(value, f"context.{name}")  # once: a later change by the caller is not seen
        except (TypeError, ValueError, RecursionError) as exc:
            problems.append(f"  {name!r}: {exc}")
    if problems:
        raise WorkflowError("invalid context:\n" + "\n".join(problems), file=file)
    return out


def _child_context(execution_id: str, conductor: Conductor, call: ActionCall) -> dict[str, Any]:
    """The application context a sub-workflow started by ``call`` gets: its caller's, with
    ``parent`` describing the caller (execution, workflow, task, route, item index) and holding
    the caller's own ``parent`` in turn (StackStorm gives a child workflow ``parent`` the same
    way: the calling execution's and task's identity, the chain above it nested)."""
    inst = call.instance
    caller: dict[str, Any] = {
        "execution_id": execution_id,
        "workflow": conductor.spec.name,
        "task": inst.task,
        "route": inst.route,
        "item": call.key if type(call.key) is int else None,
    }
    above = conductor.context.get("parent")
    if above is not None:
        caller["parent"] = above
    return {**conductor.context, "parent": caller}


def _login() -> str:
    # what getpass.getuser() reads, without importing getpass (and termios) on every run
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(name)
        if user:
            return user
    try:
        import pwd

        return pwd.getpwuid(os.getuid())[0]
    except Exception:  # no user database entry (containers), no pwd (Windows): still a usable value
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def _static_names(inputs: Any) -> bool:
    """True when an input mapping's names are plain strings (not templates rendered at run time)."""
    if not isinstance(inputs, Mapping):
        return False
    return all(isinstance(k, str) and "{{" not in k and "{%" not in k and "<%" not in k for k in inputs)


def _no_action(**inputs: Any) -> None:
    return None


def _is_workflow_ref(action: str) -> bool:
    return action.endswith((".yaml", ".yml"))


_TOO_DEEP = "sub-workflows nested more than"
_SUBWORKFLOW_MARK = "__flowctx_subworkflow__"  # the engine's sub-workflow callables: they get the child context


_EXEC_FAILED = "Execution failed. See result for details."


def _failure_reason(res: ExecutionResult) -> str:
    """Why a workflow failed: the error that failed it (a task failure that a transition
    handled is not the reason; the first error otherwise), naming the task once, with the
    task's own error in place of the Orquesta-style 'Execution failed. See result for details.'"""
    errors = res.errors
    cause = res.conductor.failure if res.conductor is not None else None
    if cause is not None and any(e is cause for e in errors):
        errors = [cause] + [e for e in errors if e is not cause]
    for err in errors:
        message = str(err.get("message"))
        task = err.get("task_id")
        if not task:
            return message
        if message.startswith(_EXEC_FAILED):
            try:
                rec = res.task(task, err.get("route", 0))
            except KeyError:
                rec = None
            if rec is not None and rec.error:
                message = f"task {task!r} {rec.status}: {rec.error}"
            elif rec is None and message.startswith(_EXEC_FAILED + " ("):
                # the engine command `fail`: the message names the task whose transition led there
                return message[len(_EXEC_FAILED) + 2:-1]
        if f"task {task!r}" not in message:
            message = f"task {task!r}: {message}"
        return message
    return f"workflow {res.status}"


def _subworkflow_path(path: str | None, wf_file: str | None) -> str | None:
    """A sub-workflow file named by a task, relative to the calling workflow's file."""
    if path is not None and not os.path.isabs(path) and wf_file:
        path = os.path.join(os.path.dirname(os.path.abspath(wf_file)), path)
    return path


def _all_tasks(spec: WorkflowSpec) -> list[TaskSpec]:
    out: list[TaskSpec] = []
    for task in spec.tasks.values():
        out.append(task)
        out.extend(task.subtasks)
    return out


def run(
    workflow: str | os.PathLike[str] | WorkflowSpec,
    parameters: Mapping[str, Any] | None = None,
    *,
    actions: Mapping[str, Callable[..., Any]] | ActionRegistry | None = None,
    executor: str | Executor = "thread",
    **kwargs: Any,
) -> ExecutionResult:
    """Run a workflow (a path, YAML text or a loaded spec) and return its :class:`ExecutionResult`."""
    return Engine(actions=actions, executor=executor, **kwargs).run(workflow, parameters)
