"""Conformance group ``conducting``: Orquesta 1.6.0's conductor tests as step-by-step scenarios.

Data: ``tests/conformance/orquesta-suite/conducting/cases/*.yaml`` (derived by running the
upstream tests under Orquesta with recording patches; see PROVENANCE.md there).  Each case has a
workflow (inline YAML text, or ``workflow_file`` relative to the data folder), ``inputs``, and a
list of ``steps``.  A step is one thing the upstream test did to Orquesta's WorkflowConductor:

``request``        request a workflow status (``running`` / ``pausing`` / ``paused`` /
                   ``canceling`` / ``canceled`` / ``failed`` ...)
``event``          an action execution event for a task (and with-items ``item``): ``status``,
                   optional ``result``; a ``running`` event may carry the expected rendered
                   ``call`` (action name and input)
``rerun``          rerun the workflow (optional ``tasks``: task, route, reset_items)
``render_output``  Orquesta's explicit output rendering
``next_tasks``     query: which tasks (and with-items items) the conductor would hand out now
``initial_context`` / ``terminal_context`` / ``task_context``  query a context

and ``expect`` holds what Orquesta showed right after that step: ``status``, ``sequence``
(``[task, route, status]`` per task execution, in order), ``errors``, ``routes``, ``output``,
``term`` (terminal tasks, on the last step), ``next``, ``context``, ``raises``.  A stress-size
case lists under ``sparse`` the keys it states at its last step only.  A key that is not
written did not change since the previous step: the checker carries every key forward, so every
step is compared in full.

How the steps map onto flowctx's engine (:class:`flowctx.engine.conductor.Conductor`), as a
driver would use it:

* a case's ``context`` (Orquesta's ``WorkflowConductor(spec, context=...)``, the parent /
  application context) is flowctx's application context: ``context=`` of
  ``render_parameter_defaults`` (input defaults read it) and of the ``Conductor`` (the bottom
  layer of the workflow context, as ``Engine.run(..., context=...)`` passes it).

* ``request running`` -> ``Conductor.start()`` the first time; later (and ``resuming``) it is
  ``Conductor.resume()``: ``resuming`` until a task or call starts.
* ``pausing`` / ``paused`` -> ``Conductor.pause()``: ``pausing`` while calls are in flight (a
  with-items task pauses too); once no started call is in flight the driver calls
  ``Conductor.mark_paused()`` (a retry held for its start event does not count, nor a call
  that reported ``paused`` / ``pending``), as the runner does.
* ``canceling`` / ``canceled`` -> ``Conductor.cancel()``: ``canceling`` until the calls in flight
  report; retries held for their start event end ``canceled`` at once (the runner's held calls);
  once the status is ``canceled`` the driver calls ``finish_canceled()``.
* ``failed`` -> ``Conductor._request_fail()``: flowctx has no public operation to fail a running
  workflow from outside (noted in PROVENANCE.md).
* an ``event`` ``running`` (or requested / scheduled / delayed / resuming) -> ``begin()`` of the
  staged instance, ``calls_for()`` and ``call_started()`` of the call; a completion
  (``succeeded`` / ``failed`` / ``canceled`` / ``expired`` -> timeout / ``abandoned`` -> failed)
  -> ``call_done()`` of that call; a retry it returns is held until the task's next start event.
  An item's completion passes the event's ``accumulated_result`` (the with-items task's result
  as the caller keeps it; ``[]``, Orquesta's default, when the upstream test passed none) as
  ``call_done(accumulated_result=)``: Orquesta's conductor takes the task's result from it.
  An event for a task staged but not ready (the workflow failed meanwhile) begins it too:
  Orquesta accepts it (its caller was handed the task before the failure).
  A with-items task with no items: its ``running`` event is ``begin()`` only, its completion
  event the ``calls_for()`` that ends it (flowctx's runner asks at once, so it completes there).
  ``pending``, ``paused``, ``pausing``, ``canceling`` are not outcomes: they are
  ``Conductor.call_status()`` of the running call (it stays in flight), and a later ``running``
  event of a paused / pending call is ``call_status(call, "running")`` (the call runs again, as
  a resumed child workflow does).
* after every step, when the conductor is idle (not pausing, paused or canceling) the driver
  calls ``finalize()``, as the runner does; ``render_output`` is therefore a no-op.
* ``rerun`` -> ``Conductor.rerun()``.
* ``next_tasks`` -> ``Conductor.next_tasks()`` plus the with-items instances that can start
  more items now (held retry calls, items a rerun re-opened); empty unless the status is
  running, resuming or failing.

flowctx reports its own statuses; only the spelling of one status is translated before
comparison: flowctx's ``timeout`` is Orquesta's ``expired``.  Representation differences that
are not behaviour are normalized: Orquesta's status-less sequence entry of a task it will rerun
must be a staged instance in flowctx; engine commands are not terminal tasks; output (and its
errors) is compared where Orquesta rendered it; Python exception names in Orquesta's error
messages (``TypeError: ...``) are not compared.
"""
from __future__ import annotations

import builtins
import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "conformance", "orquesta-suite", "conducting")

_START = {"requested", "scheduled", "delayed", "running", "resuming"}
_OUTCOME = {"succeeded": "succeeded", "failed": "failed", "canceled": "canceled", "expired": "timeout",
            "abandoned": "failed", "timeout": "timeout"}
_REPORT = {"pending", "paused", "pausing", "canceling"}  # Conductor.call_status: not an outcome
_STATUS_NAME = {"timeout": "expired"}
_COMMANDS = frozenset({"continue", "noop", "fail", "retry"})
_KEYS = ("status", "sequence", "errors", "routes", "term")  # carried forward; output is per step


@dataclass(frozen=True)
class Case:
    id: str
    provenance: str
    deviation: str | None
    data: Mapping[str, Any] = field(compare=False, hash=False, repr=False)  # the case as written
    file: str = field(default="", compare=False, hash=False)  # the data file it came from


def _load_all() -> list[Case]:
    out: list[Case] = []
    for path in sorted(glob.glob(os.path.join(DATA, "cases", "*.yaml"))):
        with open(path, "rb") as fh:
            doc = yaml.safe_load(fh)
        for c in doc["cases"]:
            # no case of this group is a deviation: every one is checked against Orquesta's outcome
            assert c.get("deviation") is None, f"{c['id']}: deviations are not supported in this group"
            out.append(Case(c["id"], c["provenance"], None, c, path))
    ids = [c.id for c in out]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return out


_CASES: list[Case] | None = None


def cases() -> list[Case]:
    global _CASES
    if _CASES is None:
        _CASES = _load_all()
    return list(_CASES)


# Cases flowctx does not pass yet (strict xfail); reason per case.  Filled from a run of the
# whole group; FAILURES.md gives the exact differences grouped by behaviour class.
KNOWN_FAILURES: dict[str, str] = {  # generated from a run of the group; see FAILURES.md
}


class StepError(Exception):
    """The driver could not perform a step (the task is not staged, ...): Orquesta's 'raises'."""


class _Driver:
    """Drives one flowctx Conductor the way the upstream test drove Orquesta's."""

    def __init__(self, case: Mapping[str, Any], backend: ModuleType) -> None:
        from flowctx.engine.conductor import Conductor
        from flowctx.engine.runner import render_parameter_defaults
        from flowctx.errors import WorkflowError
        from flowctx.render import default_renderer
        from flowctx.spec import load_workflow, validate_parameters

        # Loaded without flowctx's static validation: the upstream tests build conductors without
        # Orquesta's inspection (that is the inspection group's concern); what cannot be loaded
        # at all still fails the case.
        if "workflow_file" in case:
            spec = load_workflow(os.path.normpath(os.path.join(DATA, case["workflow_file"])), validate=False)
        else:
            spec = load_workflow(case["workflow"], file=f"{case['id']}.yaml", validate=False)
        bad = [p for p in getattr(spec, "load_problems", None) or [] if getattr(p, "severity", "error") == "error"]
        if bad:
            raise WorkflowError("; ".join(str(p) for p in bad))
        renderer = default_renderer()
        inputs = dict(case.get("inputs") or {})
        setup_errors: list[str] = []  # as the Engine does: a default that fails fails the run
        app_ctx = case.get("context") or None  # Orquesta's context=: flowctx's application context
        params = render_parameter_defaults(
            spec, validate_parameters(spec, inputs), set(inputs), renderer, backend, setup_errors, context=app_ctx
        )
        self.c = Conductor(
            spec, params, renderer=renderer, store=backend, context=app_ctx, setup_errors=setup_errors,
        )
        self.store = backend
        self.started = False
        self.fail_requested = False
        self.held: dict[tuple[str, int], list[Any]] = {}  # calls handed out, not yet started by an event
        self.live: dict[tuple[str, int, Any], Any] = {}  # started calls by (task, route, item)
        self.parked: set[tuple[str, int, Any]] = set()  # live calls that reported pending / paused

    # ------------------------------------------------------------ steps
    def request(self, status: str) -> None:
        from flowctx.actions.base import CANCELED, Outcome

        c = self.c
        if status == "running" and not self.started:
            self.started = True
            c.start()
        elif status in ("running", "resuming"):
            c.resume()  # ``resuming`` until a task or call starts
        elif status in ("pausing", "paused"):
            c.pause()  # ``pausing`` while calls are in flight (settle() marks it ``paused``)
        elif status in ("canceling", "canceled"):
            if not c.finished:
                c.cancel()  # ``canceling`` until the calls in flight report
                # what the runner does to calls that never started: they end canceled
                for calls in self.held.values():
                    for call in calls:
                        c.call_done(call, Outcome(CANCELED, None, "canceled"))
                    calls.clear()
        elif status == "failed":
            self.fail_requested = True
            c._request_fail()  # no public operation (see the module docstring)
        else:
            raise StepError(f"flowctx has no operation to request workflow status {status!r}")

    def _instance(self, task: str, route: int, begin: bool) -> Any:
        c = self.c
        for inst in c.active():
            if inst.task == task and inst.route == route:
                return inst
        if begin:
            for st in c.ready():
                if st.task == task and st.route == route:
                    return c.begin(st)
            # Orquesta accepts an event for any task it staged, whatever the workflow's status
            # (a task staged before the workflow failed still runs; nothing new starts after it)
            for st in c.staged:
                if st.task == task and st.route == route:
                    return c.begin(st)
        for inst in reversed(c.sequence):
            if inst.task == task and inst.route == route and not inst.is_command:
                return inst
        raise StepError(f"task {task!r} route {route} is not staged")

    def _take_call(self, inst: Any, item: Any) -> Any:
        key = (inst.task, inst.route)
        held = self.held.setdefault(key, [])
        for call in held:
            if call.instance is inst and (item is None or call.key == item):
                held.remove(call)
                self.c.call_started(call)
                return call
        while True:
            calls = self.c.calls_for(inst, limit=1 if inst.items is not None else None)
            if not calls:
                return None
            found = None
            for call in calls:
                if found is None and (item is None or call.key == item):
                    found = call
                else:
                    held.append(call)
            if found is not None:
                self.c.call_started(found)
                return found

    def event(self, step: Mapping[str, Any]) -> dict[str, Any] | None:
        """Returns the call made for a start event (action and input), if any."""
        from flowctx.actions.base import Outcome

        task, route, status = step["task"], int(step.get("route", 0)), step["status"]
        item = step.get("item")
        key = (task, route, item)
        if status in _START:
            if key in self.live and not self.live[key].instance.done:
                if key in self.parked or self.live[key].instance.status == "pausing":
                    self.parked.discard(key)  # a paused / pending call runs again
                    self.c.call_status(self.live[key], "running")
                return None  # already started (e.g. requested, then running)
            inst = self._instance(task, route, begin=True)
            if inst.done:
                return None  # completed at once (skipped, a render error)
            if inst.items is not None and not inst.items:
                return None  # no items: running until its completion event asks for its calls
            call = self._take_call(inst, item)
            if call is None:
                if inst.items is not None and item is not None:
                    raise StepError(f"item {item} of task {task!r} cannot start now")
                return None
            self.live[key] = call
            return {"action": call.action, "input": self.store.thaw(call.inputs) if call.inputs is not None else {}}
        if status in _REPORT:  # not an outcome: the call stays in flight
            call = self.live.get(key)
            if call is None:
                raise StepError(f"no call of task {task!r} is running to report {status!r}")
            if status in ("pending", "paused"):
                self.parked.add(key)
            self.c.call_status(call, status)
            return None
        if status not in _OUTCOME:
            return None
        self.parked.discard(key)
        call = self.live.pop(key, None)
        if call is None:
            inst = self._instance(task, route, begin=True)
            if inst.done:
                return None
            call = self._take_call(inst, item)
            if call is None:
                return None
        # an item's completion: Orquesta takes the task's result from the caller's
        # accumulated_result (``[]`` when the event carries none); the data records it on the
        # events that ended the task, the only ones where Orquesta uses it
        accumulated = step.get("accumulated_result", []) if item is not None else None
        for follow in self.c.call_done(call, Outcome(_OUTCOME[status], step.get("result")), accumulated_result=accumulated):
            self.held.setdefault((task, route), []).append(follow)  # a retry: starts on its next start event
        return None

    def rerun(self, tasks: list[Mapping[str, Any]] | None) -> None:
        from flowctx.errors import FlowctxError

        req = [(t["task"], int(t.get("route", 0))) for t in tasks or []]
        reset = any(t.get("reset_items") for t in tasks or [])
        if not self.c.finished:
            raise StepError(f"cannot rerun a {self.c.status} workflow")
        try:
            self.c.rerun(req or None, reset_items=reset)
        except FlowctxError as exc:
            raise StepError(str(exc)) from None

    def settle(self) -> None:
        """What the runner does between events: a ``pausing`` run with no call in flight is
        ``paused`` (a held retry does not count); an idle run finalizes; a canceled one ends."""
        c = self.c
        if not self.started or c.finished:
            return
        if c.status == "pausing" and not any(
            not call.instance.done and k not in self.parked for k, call in self.live.items()
        ):
            c.mark_paused()
        if c.status == "canceled":
            c.finish_canceled()
        elif c.status not in ("pausing", "paused", "canceling") and c.is_idle():
            c.finalize()

    # ------------------------------------------------------------ observations
    def next_tasks(self) -> list[dict[str, Any]]:
        c = self.c
        if c.finished or c.status not in ("running", "resuming", "failing"):
            return []
        out: dict[tuple[str, int], dict[str, Any]] = {}
        for st in c.next_tasks():  # Orquesta's get_next_tasks (renders; a failure starts nothing)
            e: dict[str, Any] = {"task": st.task, "route": st.route}
            spec = c.graph.task(st.task)
            if spec is not None and spec.with_items is not None:
                e["items"] = None  # not rendered before the task starts in flowctx
            out[(st.task, st.route)] = e
        for inst in c.active():
            ids = [call.key for call in self.held.get((inst.task, inst.route), [])]
            ids += [call.key for call in inst.pending]  # re-opened items of a rerun
            if inst.items is not None:
                room = len(inst.items) - inst.next_item
                if inst.concurrency is not None:
                    room = min(room, inst.concurrency - inst.in_flight)
                ids += list(range(inst.next_item, inst.next_item + max(room, 0)))
            if ids or inst.items == []:  # no items: handed out until the driver takes it
                e = {"task": inst.task, "route": inst.route}
                if inst.items is not None:
                    e["items"] = sorted(ids)
                out[(inst.task, inst.route)] = e
        return [out[k] for k in sorted(out)]

    def flat(self, ctx: Any) -> dict[str, Any]:
        d = dict(self.store.thaw(ctx.parameters))
        d.update(self.store.thaw(ctx.variables))
        return d

    def observe(self, output_rendered: bool) -> dict[str, Any]:
        """What flowctx shows now.  flowctx renders the output when it finalizes; Orquesta when
        asked (st2 asks on completion): output errors count from the step Orquesta rendered."""
        c = self.c
        out_errs = [e for e in c.errors if e.get("task_id") is None and "cannot render output" in str(e.get("message", ""))]
        errors = [e for e in c.errors if output_rendered or e not in out_errs]
        status = c.status if self.started else "unset"
        if not output_rendered and status == "failed" and not self.fail_requested and out_errs and len(out_errs) == len(c.errors):
            status = "succeeded"  # failed only by its output, which Orquesta has not rendered yet
        return {
            "status": _STATUS_NAME.get(status, status),
            "sequence": [[i.task, i.route, _STATUS_NAME.get(i.status, i.status)] for i in c.presented()],
            "errors": errors,
            "routes": [list(r) for r in c.routes],
            "output": (c.output or None) if c.finished else None,
            "term": [[i.task, i.route] for i in c.sequence if i.term and not i.is_command],
            "staged": {(st.task, st.route) for st in c.staged},
        }


def _errors_diff(want: list[Mapping[str, Any]], got: list[Mapping[str, Any]]) -> str | None:
    if len(want) != len(got):
        return f"expected {len(want)} error(s) {[e.get('message', '')[:60] for e in want]}, got {len(got)} {[str(g.get('message', ''))[:60] for g in got]}"
    for i, (e, g) in enumerate(zip(want, got)):
        for k in ("type", "task_id"):
            if e.get(k) != g.get(k):
                return f"error {i}: expected {k}={e.get(k)!r}, got {g.get(k)!r} ({g.get('message')})"
        if (e.get("route") or 0) != (g.get("route") or 0):
            return f"error {i}: expected route {e.get('route') or 0}, got {g.get('route') or 0}"
        msg = str(e.get("message", ""))
        head = msg.split(":", 1)[0]
        # a workflow-level error class Orquesta names (UnreachableJoinError, ...) must be named by
        # flowctx too; Python's own exception names (TypeError, KeyError ...) are not behaviour
        if (":" in msg and head.endswith("Error") and " " not in head and not hasattr(builtins, head)
                and head not in str(g.get("message", ""))):
            return f"error {i}: expected a {head}, got {g.get('message')!r}"
    return None


def _diff(key: str, want: Any, got: Any, staged: Any = frozenset()) -> str | None:
    if key == "sequence":
        # Orquesta enters a rerun task in its sequence at once, with no status; flowctx enters it
        # when it starts: such an entry must be a staged instance in flowctx
        pending = [tuple(e[:2]) for e in want if e[2] is None]
        missing = [p for p in pending if p not in staged]
        if missing:
            return f"sequence: expected {missing} staged for a rerun, flowctx has not staged them"
        want = [e for e in want if e[2] is not None]
    if key == "errors":
        return _errors_diff(want, got)
    if key == "term":  # Orquesta also lists engine commands (continue, ...) as terminal entries
        want = sorted(tuple(t) for t in want if t[0] not in _COMMANDS)
        got = sorted(map(tuple, got))
    if key == "output":
        want, got = want or None, got or None
    if want != got:
        return f"{key}: expected {want!r}, got {got!r}"
    return None


def _graph_shape(spec: Any, backend: ModuleType) -> dict[str, Any]:
    """flowctx's task graph in the terms of Orquesta's composed execution graph.  Both fold a
    transition to the ``retry`` command into the task's retry policy (flowctx:
    ``Conductor.retry_spec``), so that is compared as ``retries``, not as an edge."""
    from flowctx.engine.conductor import Conductor
    from flowctx.render import default_renderer

    c = Conductor(spec, {}, renderer=default_renderer(), store=backend)
    g = c.graph
    names = set(spec.tasks)
    edges, retries = [], {}
    for name in spec.tasks:
        for e in g.out_edges.get(name, []):
            if e.target == "retry" and g.is_command("retry"):
                continue
            names.add(e.target)
            edges.append([name, e.target, e.k, e.entry, [e.transition.when] if e.transition.when else []])
        r = c.retry_spec(name)
        if r is not None:
            d = {"count": r.count, "when": r.when}
            if r.delay:
                d["delay"] = r.delay
            retries[name] = d
    return {
        "nodes": sorted(names),
        "joins": {n: ("*" if spec.tasks[n].join == "all" else int(spec.tasks[n].join)) for n in spec.tasks if g.is_join(n)},
        "splits": sorted(n for n in names if g.is_split(n)),
        "edges": sorted(edges),
        "retries": retries,
    }


def _expr_body(text: Any) -> Any:
    """``<% completed() %>`` and ``{{ completed() }}`` are the same condition."""
    if not isinstance(text, str):
        return text
    t = text.strip()
    for a, b in (("<%", "%>"), ("{{", "}}")):
        if t.startswith(a) and t.endswith(b):
            return t[2:-2].strip()
    return t


def _check_graph(case: Case, backend: ModuleType) -> list[str]:
    from flowctx.spec import load_workflow

    spec = load_workflow(os.path.normpath(os.path.join(DATA, case.data["workflow_file"])))
    got = _graph_shape(spec, backend)
    want = case.data["graph"]
    out = []
    for key in ("nodes", "joins", "splits", "edges"):
        if want.get(key, [] if key != "joins" else {}) != got[key]:
            out.append(f"{key}: expected {want.get(key)!r}, got {got[key]!r}")
    for name, r in (want.get("retries") or {}).items():
        g = got["retries"].get(name)
        if g is None or any(
            (_expr_body(g.get(k)) != _expr_body(v)) if k == "when" else g.get(k) != v for k, v in r.items()
        ):
            out.append(f"retries[{name}]: expected {r!r}, got {g!r}")
    extra = set(got["retries"]) - set(want.get("retries") or {})
    if extra:
        out.append(f"retries: unexpected {sorted(extra)}")
    return out


def _check_cli(case: Case, backend: ModuleType) -> list[str]:
    """Run ``flowctx <args>`` in-process (paths relative to the data folder) on ``backend``."""
    import contextlib
    import io

    from flowctx import _backend
    from flowctx.cli import main

    cmd, *rest = case.data["cli"]
    args = [cmd] + [a if a.startswith("-") or os.path.isabs(a) else os.path.join(DATA, a) for a in rest]
    out, err = io.StringIO(), io.StringIO()
    saved = _backend.store
    _backend.store = backend  # the rehearsal reads the active store from here
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
    finally:
        _backend.store = saved
    want = case.data["expect"]
    text = out.getvalue() + err.getvalue()
    problems = []
    if (code == 0) != want["succeeds"]:
        problems.append(f"exit: expected {'0' if want['succeeds'] else 'non-zero'}, got {code}: {text.strip()[:300]}")
    if want.get("mentions") and want["mentions"] not in text:
        problems.append(f"output: expected it to mention {want['mentions']!r}, got {text.strip()[:300]!r}")
    return problems


def check(case: Case, backend: ModuleType, *, all_steps: bool = False) -> list[str]:
    """[] when flowctx does what Orquesta did at every step; else the differences of the first
    step that differs (``all_steps``: of every step, for reports — later ones may be knock-on)."""
    from flowctx.errors import FlowctxError

    data = case.data
    if "cli" in data:  # the rehearsal command
        return _check_cli(case, backend)
    if "graph" in data:  # composition: the task graph's shape (no store involved)
        return _check_graph(case, backend)
    try:
        d = _Driver(data, backend)
    except FlowctxError as exc:
        return [f"setup: flowctx refused the workflow or inputs: {exc}"]
    expected: dict[str, Any] = {"status": "unset", "sequence": [], "errors": [], "routes": [[]]}
    problems: list[str] = []
    rendered = False
    # keys compared only where a step states them: terminal tasks (the last step), and what a
    # stress-size case lists under ``sparse``
    stated_only = {"term", *data.get("sparse", ())}
    for n, step in enumerate(data["steps"]):
        exp = step.get("expect") or {}
        for k in _KEYS:
            if k in exp:
                expected[k] = exp[k]
        where = f"step {n} ({step['do']}{' ' + step['task'] if 'task' in step else ''}{' item ' + str(step['item']) if 'item' in step else ''} {step.get('status', '')})".replace(" )", ")")
        raised = None
        got_call = None
        got_query: Any = None
        try:
            kind = step["do"]
            if kind == "request":
                d.request(step["status"])
            elif kind == "event":
                got_call = d.event(step)
            elif kind == "rerun":
                d.rerun(step.get("tasks"))
            elif kind in ("render_output", "output"):
                rendered = rendered or kind == "render_output"
            elif kind == "next_tasks":
                got_query = d.next_tasks()
            elif kind == "initial_context":
                got_query = d.flat(d.c.initial_ctx) if d.c.initial_ctx is not None else d.flat(backend.Context(d.c.parameters, {**d.c.context, **d.c.parameters}))
            elif kind == "terminal_context":
                if not d.c.finished:
                    raise StepError("workflow is not complete")
                got_query = d.flat(d.c.terminal_context())
            elif kind == "task_context":
                got_query = _task_context(d, step["task"], int(step.get("route", 0)))
            else:
                raise ValueError(f"unknown step kind {kind!r}")
        except (StepError, FlowctxError) as exc:
            raised = exc
        d.settle()
        if "raises" in exp:
            # a refused status request leaves the status as it was: the carried-forward status
            # check covers it; any other step Orquesta refused, flowctx must refuse too
            if raised is None and step["do"] != "request":
                problems.append(f"{where}: expected Orquesta's {exp['raises']}, flowctx accepted the step")
        elif raised is not None:
            problems.append(f"{where}: flowctx could not do the step: {raised}")
        if "call" in step and got_call is not None and got_call != step["call"]:
            problems.append(f"{where}: call: expected {step['call']!r}, got {got_call!r}")
        if "next" in exp and got_query is not None or (step["do"] == "next_tasks" and "next" in exp):
            want = exp["next"]
            got = got_query or []
            if [(t["task"], t["route"]) for t in want] != [(t["task"], t["route"]) for t in got]:
                problems.append(f"{where}: next: expected {[(t['task'], t['route']) for t in want]}, got {[(t['task'], t['route']) for t in got]}")
            else:
                for w, g in zip(want, got):
                    if "items" in w and g.get("items") is not None and w["items"] != g["items"]:
                        problems.append(f"{where}: next items of {w['task']}: expected {w['items']}, got {g['items']}")
        if "context" in exp and raised is None:
            want_ctx = {k: v for k, v in exp["context"].items() if not k.startswith("__")}
            if want_ctx != got_query:
                problems.append(f"{where}: context: expected {want_ctx!r}, got {got_query!r}")
        obs = d.observe(rendered)
        if "output" in exp:
            msg = _diff("output", exp["output"], obs["output"])
            if msg:
                problems.append(f"{where}: {msg}")
        for k in _KEYS:
            if k not in expected or (k in stated_only and k not in exp):
                continue
            msg = _diff(k, expected[k], obs[k], obs["staged"])
            if msg:
                problems.append(f"{where}: {msg}")
        if problems and not all_steps:
            break  # later steps mostly repeat the first divergence
    return problems


def _task_context(d: _Driver, task: str, route: int) -> dict[str, Any]:
    c = d.c
    for st in c.staged:
        if st.task == task and st.route == route:
            return d.flat(st.ctx)
    for inst in reversed(c.sequence):
        if inst.task == task and inst.route == route:
            return d.flat(inst.ctx)
    raise StepError(f"no context for task {task!r}")
