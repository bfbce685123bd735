"""The conductor's journal hook: metrics for every run, durable write-behind for state runs.

The conductor calls (``conductor.journal``): :meth:`Recorder.began` after it starts a staged
instance, :meth:`Recorder.call_done` before it applies an action call's outcome,
:meth:`Recorder.control` on cancel / rerun, :meth:`Recorder.value` for every published value
and rendered workflow variable, and :meth:`Recorder.event` with its task events.  The engine
calls :meth:`Recorder.resubmit` when it starts driving and :meth:`Recorder.finish` when the run
ends.

:class:`Journal` queues records and a small flusher thread writes them in one transaction every
``batch_size`` records or ``flush_interval`` seconds (it sleeps on a condition with a deadline:
no polling).  The final flush happens before the run is reported finished.  Durability rule: an
outcome an action returned is either in the database or its call is still outstanding there, so
a resume runs it again; an outcome in the database is never recomputed.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from flowctx.errors import StateError
from flowctx.state.base import Record, StateStore
from flowctx.state.codec import CodecError, dumps, text
from flowctx.state.metrics import Metrics, TimedRenderer, context_sizes, export_prometheus

_RERENDER = object()  # a recorded value that replay renders again (it is the task's result)


class UnstorableValue(StateError, ValueError):
    """A published value or variable the state codec cannot store: the task (or, for a
    workflow variable, the run) fails with this message instead of poisoning the state file."""


class Recorder:
    """The hook of a plain (in-memory) run: metrics only."""

    durable = False

    def __init__(self, conductor: Any) -> None:
        self.conductor = conductor
        self.metrics = Metrics()
        self.metrics.baseline(conductor.store)
        self.replaying = False
        if not isinstance(conductor.renderer, TimedRenderer):
            conductor.renderer = TimedRenderer(conductor.renderer, self.metrics)

    def status_changed(self, status: str) -> None:
        """The driver paused or resumed the execution (recorded by a durable run only)."""

    # ------------------------------------------------------------ conductor hooks
    def began(self, st: Any, inst: Any) -> None:
        pass

    def call_done(self, call: Any, outcome: Any) -> None:
        if not self.replaying:
            self.metrics.outcome(outcome.started, outcome.finished)

    def control(self, kind: str, **data: Any) -> None:
        pass

    def value(self, seq: int, fld: str, name: str, render: Any) -> Any:
        return render()

    def event(self, kind: str, inst: Any) -> None:
        pass

    # ------------------------------------------------------------ engine hooks
    def resubmit(self) -> list[Any]:
        """Calls issued before a crash with no recorded outcome: the engine submits them again."""
        return []

    def finish(self, conductor: Any, metrics: dict[str, Any]) -> None:
        """The run ended (finalized or canceled): add this execution's metrics to ``metrics``."""
        metrics.update(self.metrics.as_dict(conductor, conductor.store, durable=self.durable))
        export_prometheus(conductor.status, metrics)


class Journal(Recorder):
    """Durable hook: records the conductor's inputs and published values in a :class:`StateStore`."""

    durable = True

    def __init__(self, state: StateStore, execution_id: str, conductor: Any) -> None:
        super().__init__(conductor)
        self.state = state
        self.execution_id = execution_id
        import socket  # durable runs only: a plain run does not import it

        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self.batch_size = max(1, int(state.batch_size))
        self.flush_interval = max(0.0, float(state.flush_interval))
        self._pos = state.next_pos(execution_id)
        self._pending: list[Record] = []
        self._oldest = 0.0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._leased = False
        self.flush_error: BaseException | None = None
        #: the first error that makes this run impossible to record (a failed write, a value
        #: that cannot be encoded); the engine stops the run when it is set (``on_fatal``)
        self.fatal: StateError | None = None
        self.fatal_write = False  # True: a write failed (the file holds a prefix: resumable)
        self.on_fatal: Any = None
        self._aborted = False
        self.reruns = 0
        #: set by the engine: called (on the flusher thread) with each control request another
        #: process left in the state file (``pause`` / ``resume`` / ``cancel``)
        self.on_request: Any = None
        self.request_interval = 0.25  # seconds between looks for requests
        self._values: dict[tuple[int, str, str], deque[Any]] = {}
        self._outstanding: list[Any] = []
        self._finished = False
        self._item_rows: set[int] = set()

    # ------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Take the execution's lease and start the flusher thread."""
        if not self._leased:
            self.state.acquire_lease(self.execution_id, self.owner)
            self._leased = True
        if self._thread is None:
            self._closing = False
            self._thread = threading.Thread(
                target=self._run, name=f"flowctx-state-{self.execution_id}", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        """Stop the flusher, write everything queued, give the lease up."""
        thread = self._thread
        if thread is not None:
            with self._cond:
                self._closing = True
                self._cond.notify()
            thread.join()
            self._thread = None
        try:
            self.flush()
        finally:
            if self._leased:
                self._leased = False
                try:
                    self.state.release_lease(self.execution_id, self.owner)
                except StateError:
                    pass

    def abandon(self) -> None:
        """After a failed write: stop the flusher, try one last write of what is queued (the
        problem may be gone), give the lease up if possible; never raises."""
        try:
            self.close()
        except BaseException:  # noqa: BLE001 - the write failure was already reported
            pass

    # ------------------------------------------------------------ queue
    def _next_pos(self) -> int:
        pos = self._pos
        self._pos += 1
        return pos

    def _append(self, rec: Record) -> None:
        with self._lock:  # the condition's own lock, entered in C (notify needs it held)
            pending = self._pending
            pending.append(rec)
            n = len(pending)
            if n == 1:
                self._oldest = time.monotonic()
                self._cond.notify()
            elif n == self.batch_size:
                self._cond.notify()

    def record(self, kind: str, seq: int | None = None, data: dict[str, Any] | None = None) -> None:
        """Queue one journal event (``data`` JSON-encoded now)."""
        self._append(("j", self._next_pos(), kind, seq, None if data is None else dumps(data)))

    def flush(self) -> None:
        """Write every queued record now (one transaction)."""
        with self._write_lock:
            with self._cond:
                batch, self._pending = self._pending, []
            if not batch:
                return
            t = time.perf_counter()
            try:
                self.state.write_batch(self.execution_id, batch)
            except BaseException:
                with self._cond:  # keep them: a later flush may succeed, nothing is dropped
                    self._pending[:0] = batch
                raise
            self.metrics.flushed(len(batch), time.perf_counter() - t)

    def _run(self) -> None:
        heartbeat = max(0.2, self.state.lease_ttl / 3.0)
        next_beat = time.monotonic() + heartbeat
        next_look = time.monotonic()
        take = getattr(self.state, "take_requests", None)
        while True:
            looking = take is not None and self.on_request is not None
            flush_due = False
            with self._cond:
                while not self._closing:
                    now = time.monotonic()
                    if now >= next_beat or looking and now >= next_look:
                        break
                    deadline = next_beat
                    if looking:
                        deadline = min(deadline, next_look)
                    if self._pending:
                        due = self._oldest + self.flush_interval
                        if len(self._pending) >= self.batch_size or now >= due:
                            flush_due = True
                            break
                        deadline = min(deadline, due)
                    self._cond.wait(deadline - now)
                closing = self._closing
            if closing:
                return  # close() does the final flush on the caller's thread
            try:
                now = time.monotonic()
                if flush_due or now >= next_beat:
                    self.flush()
                if now >= next_beat:
                    self.state.renew_lease(self.execution_id, self.owner)
                    next_beat = time.monotonic() + heartbeat
                callback = self.on_request
                if take is not None and callback is not None and now >= next_look:
                    next_look = time.monotonic() + self.request_interval
                    for kind in take(self.execution_id):
                        callback(kind)
            except BaseException as exc:  # noqa: BLE001 - the run stops (Engine: on_fatal)
                self.flush_error = exc
                self._write_failed(exc)
                return  # no retry loop: nothing more runs unrecorded; close() tries once more

    # ------------------------------------------------------------ failures
    def _set_fatal(self, exc: StateError) -> None:
        if self.fatal is not None:
            return
        self.fatal = exc
        callback = self.on_fatal
        if callback is not None:
            callback(exc)

    def _write_failed(self, exc: BaseException) -> None:
        self.fatal_write = True
        where = getattr(self.state, "location", "the state store")
        detail = str(exc) if isinstance(exc, StateError) else f"{type(exc).__name__}: {exc}"
        self._set_fatal(StateError(
            f"execution {self.execution_id}: writing the state file failed ({detail}); the run was stopped "
            f"so that nothing runs unrecorded; {where} holds everything written before the failure: "
            f"fix the cause, then `flowctx resume {self.execution_id} --state {where}`"
        ))

    def abort_run(self, conductor: Any, message: str) -> None:
        """End the run as ``failed`` with ``message`` (a value it produced cannot be stored):
        running instances end as canceled, nothing new starts.  Recorded (``aborted``), so a
        resume ends the same way instead of running into the same value again."""
        self._aborted = True
        stop_failed(conductor, message)
        if not self.replaying:
            self.record("aborted", None, {"message": message})

    def status_changed(self, status: str) -> None:
        """The driver paused (``paused``) or resumed (``running``) the execution: the row says so
        at once (another process's ``flowctx pause`` waits for it)."""
        if not self.replaying and not self._finished:
            self._append(("x", {"status": status}))
            try:
                self.flush()
            except BaseException as exc:  # noqa: BLE001 - the run stops (on_fatal)
                self._write_failed(exc)

    # ------------------------------------------------------------ conductor hooks
    def began(self, st: Any, inst: Any) -> None:
        if self.replaying:
            return
        self.record("begin", inst.seq, {"task": st.task, "route": st.route, "order": st.order})
        if inst.seq < 0:  # never entered the sequence (failed to render / over max_tasks): no row
            return
        self._append(("i", inst.seq, inst.task, inst.route, "running", None, 0, None, None, inst.started, None))

    def call_done(self, call: Any, outcome: Any) -> None:
        if self.replaying:
            return
        self.metrics.outcome(outcome.started, outcome.finished)
        inst = call.instance
        try:
            result = dumps(outcome.result)
        except CodecError as exc:  # the run stops (fatal); nothing half-encoded is queued
            item = f" (item {call.key})" if call.key is not None else ""
            self._set_fatal(StateError(
                f"execution {self.execution_id}: the result of task {inst.task!r}{item} cannot be stored in the "
                f"state file: {exc}"
            ))
            return
        error = outcome.error
        pos = self._pos
        self._pos = pos + 1
        self._append(
            ("t", pos, inst.seq, inst.task, inst.route, call.key, call.attempt, outcome.status,
             result, None if error is None else text(error), outcome.started, outcome.finished)
        )

    def child_id(self, call: Any) -> str:
        """The execution id of the durable child a sub-workflow call runs as: derived from the
        call (instance, item key, attempt, reruns so far), so a resume finds the same child."""
        key = "-" if call.key is None else str(call.key)
        rerun = f".r{self.reruns}" if self.reruns else ""
        return f"{self.execution_id}.{call.instance.seq}.{key}.{call.attempt}{rerun}"

    def control(self, kind: str, **data: Any) -> None:
        if kind == "rerun":
            self.reruns += 1  # also while replaying: child ids after a rerun stay the same on resume
        if self.replaying:
            return
        if kind == "rerun":
            self.open()
            self._finished = False
            self._append(("x", {"status": "running", "finished": None}))
        self.record(kind, None, data or None)

    def value(self, seq: int, fld: str, name: str, render: Any) -> Any:
        if self._values:
            q = self._values.get((seq, fld, name))
            if q:
                v = q.popleft()
                if not q:
                    del self._values[(seq, fld, name)]
                return render() if v is _RERENDER else v
        v = render()
        data: dict[str, Any] = {"f": fld, "n": name}
        seqs = self.conductor.sequence
        if 0 <= seq < len(seqs) and v is seqs[seq].result and isinstance(v, (Mapping, list, tuple)):
            # (Mapping: a FrozenDict is no longer a dict subclass; checking `dict` here stored
            # every published `{{ result() }}` a second time, ~1 MB per run in the benchmark)
            # `{{ result() }}`: the task's own result, rebuilt from recorded outcomes on replay —
            # rendering it again is deterministic, and storing it twice would double the database
            data["same"] = "result"
        else:
            data["v"] = v
        try:
            encoded = dumps(data)
        except CodecError as exc:
            where = f"task {seqs[seq].task!r}: " if 0 <= seq < len(seqs) else ""
            label = "variable" if fld == "vars" else "published value"
            raise UnstorableValue(f"{where}{fld}.{name}: the {label} cannot be stored in the state file: {exc}") from None
        self._append(("j", self._next_pos(), "value", seq, encoded))
        return v

    def event(self, kind: str, inst: Any) -> None:
        if self.replaying:
            return
        if kind == "finish":
            self._append(_instance_row(inst))
        elif kind == "item" and inst.seq not in self._item_rows:  # once: the item count for `show`
            self._item_rows.add(inst.seq)
            self._append(_instance_row(inst))

    # ------------------------------------------------------------ replay support
    def load_values(self, events: list[tuple[Any, ...]]) -> None:
        for _pos, kind, seq, data in events:
            if kind == "value":
                self._values.setdefault((seq, data["f"], data["n"]), deque()).append(
                    _RERENDER if "same" in data else data.get("v")
                )

    def set_outstanding(self, calls: list[Any]) -> None:
        self._outstanding = list(calls)

    def mark_finished(self) -> None:
        self._finished = True

    # ------------------------------------------------------------ engine hooks
    def resubmit(self) -> list[Any]:
        calls, self._outstanding = self._outstanding, []
        return calls

    def finish(self, conductor: Any, metrics: dict[str, Any]) -> None:
        if self._finished:  # a resume of an execution that had already finished
            metrics.update(self.metrics.as_dict(conductor, conductor.store, durable=True))
            self.close()
            return
        self._finished = True
        output: str | None = None
        if self.fatal is None:
            try:
                output = dumps(conductor.output)  # encoded once: the record below reuses it
            except CodecError as exc:
                self._set_fatal(StateError(
                    f"execution {self.execution_id}: the workflow's output cannot be stored in the state file: {exc}"
                ))
        if self.fatal is not None and not self.fatal_write and not self._aborted:
            self.abort_run(conductor, str(self.fatal))
        try:
            errors = dumps(conductor.errors)
        except CodecError:
            errors = dumps([{"type": "error", "message": str(e.get("message"))} for e in conductor.errors])
        self.record("finished", None, {"status": conductor.status})
        now = time.time()
        sizes = context_sizes(conductor)
        mine = self.metrics.as_dict(conductor, conductor.store, durable=True, sizes=sizes)
        self._append(
            ("x", {"status": conductor.status, "output": output if output is not None and not self._aborted
                   else dumps(conductor.output), "errors": errors,
                   "metrics": dumps(mine), "finished": now, "updated": now})
        )
        try:
            self.close()
        finally:
            mine = self.metrics.as_dict(conductor, conductor.store, durable=True, sizes=sizes)
            metrics.update(mine)
            size = self.state.size_bytes()
            if size is not None:
                metrics["state_bytes"] = size
        update = getattr(self.state, "update_execution", None)
        if update is not None:
            update(self.execution_id, {"metrics": mine})
        export_prometheus(conductor.status, metrics)


def stop_failed(conductor: Any, message: str) -> None:
    """Make ``conductor`` a finished, failed execution whose error is ``message`` (its running
    instances end as canceled); the conductor's own cancel does the stopping, unrecorded."""
    journal = conductor.journal
    was = getattr(journal, "replaying", False)
    if journal is not None:
        journal.replaying = True  # the cancel below is part of this abort, not a cancel request
    try:
        conductor.cancel(now=True)
    finally:
        if journal is not None:
            journal.replaying = was
    conductor.status = "failed"
    conductor.errors.append({"type": "error", "message": message})
    conductor.output = {}
    conductor.finished = True


def _instance_row(inst: Any) -> Record:
    items = len(inst.items) if inst.items is not None else None
    done = inst.items_done if inst.items is not None else None
    return ("i", inst.seq, inst.task, inst.route, inst.status, text(inst.error), max(inst.attempts, 1), items, done,
            inst.started, inst.finished)


def _action_modules(engine: Any, spec: Any) -> list[str]:
    """Files of the user modules that registered the actions of the workflow and of every
    sub-workflow it calls, at any depth (``flowctx resume`` imports them again when it is not
    told ``--actions``)."""
    import sys

    from flowctx.engine.runner import _is_workflow_ref, _subworkflow_path

    out: list[str] = []
    registry = getattr(engine, "registry", None)
    if registry is None:
        return out
    seen: set[str] = set()
    todo = [spec]
    while todo:
        current = todo.pop()
        for task in current.tasks.values():
            for t in (task, *task.subtasks):
                ref = t.workflow if t.type == "workflow" else (t.action if t.action and _is_workflow_ref(t.action) else None)
                if ref:
                    path = _subworkflow_path(ref, current.file)
                    if path and os.path.isfile(path) and os.path.abspath(path) not in seen:
                        seen.add(os.path.abspath(path))
                        try:
                            from flowctx.spec import load_workflow

                            todo.append(load_workflow(path, validate=False))
                        except Exception:  # noqa: BLE001 - the run itself reports a broken sub-workflow
                            pass
                    continue
                if not t.action or "." not in t.action:
                    continue
                try:
                    aspec = registry.get(t.action)
                except Exception:  # noqa: BLE001
                    aspec = None
                if aspec is None or aspec.source != "code":
                    continue
                mod = sys.modules.get(getattr(aspec.func, "__module__", "") or "")
                name = getattr(mod, "__name__", "")
                path = getattr(mod, "__file__", None)
                if not path or name == "__main__" or name.startswith("flowctx."):
                    continue
                path = os.path.abspath(path)
                if path not in out:
                    out.append(path)
    return out


def _options(engine: Any, spec: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"action_modules": _action_modules(engine, spec)}
    answers = getattr(getattr(engine, "responder", None), "answers", None)
    if isinstance(answers, dict) and answers:  # core.inquiry answers given to the run: kept for resume
        try:
            dumps(answers)
        except CodecError:
            pass
        else:
            options["answers"] = answers
    parent = getattr(engine, "_parent_execution", None)
    if parent:
        options["parent"] = parent
    return options


def attach(engine: Any, conductor: Any, execution_id: str) -> Recorder:
    """Give a new execution its hook: a :class:`Journal` writing to ``engine.state`` (creating
    the execution row and taking its lease) or a metrics-only :class:`Recorder`."""
    state = getattr(engine, "state", None)
    if state is None:
        rec: Recorder = Recorder(conductor)
        conductor.journal = rec
        return rec
    spec = conductor.spec
    if not spec.source:
        raise StateError("a durable run needs the workflow's YAML source (load it from a file or from text)")
    now = time.time()
    options = _options(engine, spec)
    if conductor.context:  # the application context: a resume rebuilds the run on it
        options["context"] = conductor.store.thaw(conductor.context)
    state.create_execution(
        {
            "id": execution_id,
            "workflow": spec.name,
            "file": os.path.abspath(spec.file) if spec.file and os.path.exists(spec.file) else spec.file,
            "source": spec.source,
            "parameters": conductor.parameters,
            "system": conductor.system,
            "options": options,
            "status": "running",
            "created": now,
            "updated": now,
        }
    )
    journal = Journal(state, execution_id, conductor)
    journal.open()
    conductor.journal = journal
    return journal
