"""pytest plugin (run under /work/venv-orquesta) that records every WorkflowConductor a test
drives: its workflow, inputs, parent context, each top-level call the test makes (steps and
queries) with its return value or exception, and after every call a snapshot of the state
(workflow status, task sequence with statuses, errors, output).

Usage: cd /work/orquesta && RECORD_OUT=/path/out.json python -m pytest -p record_plugin ...
(with this directory on PYTHONPATH).  Written for flowctx's conformance data (parity-data).
"""
import functools
import inspect
import json
import os

import pytest
from orquesta import conducting, events, requests

WORK = os.environ.get("CONDUCTING_WORK", "/tmp/conducting-traces")  # traces and coverage (not kept in the repository)

TRACES = []
CURRENT = {"test": None, "outcome": {}}
DEPTH = [0]
SERIAL = {}  # id(serialized dict) -> trace
LIVE = []  # (trace, conductor object) of the running test; the last object per trace is current


def _plain(v):
    try:
        return json.loads(json.dumps(v, default=lambda o: repr(o)))
    except Exception:
        return repr(v)


def _event(ev):
    d = {"type": type(ev).__name__, "status": ev.status}
    if getattr(ev, "result", None) is not None:
        d["result"] = _plain(ev.result)
    if isinstance(ev, events.TaskItemActionExecutionEvent):
        d["item_id"] = ev.item_id
        # the with-items task result the caller passed (Orquesta takes the task's result from it)
        if getattr(ev, "accumulated_result", None) is not None:
            d["accumulated_result"] = _plain(ev.accumulated_result)
    ctx = getattr(ev, "context", None)
    if ctx:
        d["context"] = _plain(ctx)
    return d


def _arg(v):
    if isinstance(v, events.ExecutionEvent):
        return {"event": _event(v)}
    if isinstance(v, requests.TaskRerunRequest):
        return {"rerun_request": {"task_id": v.task_id, "route": v.route, "reset_items": v.reset_items}}
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, requests.TaskRerunRequest) for x in v):
        return [_arg(x) for x in v]
    if hasattr(v, "serialize") and not isinstance(v, dict):
        return {"object": type(v).__name__}
    return _plain(v)


def _next_task(t):
    d = {"id": t["id"], "route": t["route"], "actions": _plain(t.get("actions", []))}
    for k in ("items_count", "concurrency", "delay"):
        if k in t:
            d[k] = _plain(t[k])
    return d


def _result(name, r):
    if name == "get_next_tasks":
        return [_next_task(t) for t in r]
    if name in ("get_task",) and isinstance(r, dict):
        return _next_task(r)
    if name in ("update_task_state", "get_task_state_entry", "add_task_state") and isinstance(r, dict):
        return _plain({k: v for k, v in r.items() if k != "ctxs"})
    if isinstance(r, conducting.WorkflowConductor):
        return {"object": "WorkflowConductor"}
    return _plain(r)


def snapshot(c):
    ws = c._workflow_state
    if ws is None:  # not built yet: building it here would change what the test observes
        return {"status": "unset", "sequence": [], "term": [], "routes": [[]], "errors": [], "output": None, "staged": []}
    seq = [[t["id"], t["route"], t.get("status")] for t in ws.sequence]
    term = [[t["id"], t["route"]] for t in ws.sequence if t.get("term")]
    errs = [
        {k: e.get(k) for k in ("type", "message", "task_id", "route", "task_transition_id") if e.get(k) is not None}
        for e in c.errors
    ]
    return {
        "status": ws.status,
        "sequence": seq,
        "term": term,
        "routes": _plain(ws.routes),
        "errors": _plain(errs),
        "output": _plain(c._outputs),
        "staged": [[s["id"], s["route"], bool(s.get("ready"))] for s in ws.staged],
    }


def _trace_of(obj):
    return getattr(obj, "_rec_trace", None)


def wrap(cls, name, kind):
    fn = cls.__dict__[name]
    is_cm = isinstance(fn, classmethod)
    raw = fn.__func__ if is_cm else fn

    @functools.wraps(raw)
    def wrapper(*args, **kwargs):
        top = DEPTH[0] == 0
        DEPTH[0] += 1
        err = None
        try:
            res = raw(*args, **kwargs)
        except Exception as e:  # noqa: BLE001
            err = e
        finally:
            DEPTH[0] -= 1
        if top and CURRENT["test"] is not None:
            DEPTH[0] += 1
            try:
                record(kind, name, args, kwargs, res if err is None else None, err)
            finally:
                DEPTH[0] -= 1
        if err is not None:
            raise err
        return res

    setattr(cls, name, classmethod(wrapper) if is_cm else wrapper)


def record(kind, name, args, kwargs, res, err):
    self = args[0]
    if kind == "conductor" and name == "__init__":
        spec = args[1] if len(args) > 1 else kwargs.get("spec")
        ctx = kwargs.get("context", args[2] if len(args) > 2 else None)
        inputs = kwargs.get("inputs", args[3] if len(args) > 3 else None)
        tr = {
            "test": CURRENT["test"], "n": len([t for t in TRACES if t["test"] == CURRENT["test"]]),
            "workflow": _plain(getattr(spec, "spec", None)), "inputs": _plain(inputs), "context": _plain(ctx),
            "ops": [], "error": None,
        }
        if err is not None:
            tr["error"] = f"{type(err).__name__}: {err}"
        TRACES.append(tr)
        self._rec_trace = tr
        LIVE.append((tr, self))
        if err is None:
            tr["initial"] = snapshot(self)
        return
    if kind == "conductor" and name == "deserialize":
        data = args[1] if len(args) > 1 else kwargs.get("data")
        tr = SERIAL.get(id(data))
        if tr is None:
            tr = {"test": CURRENT["test"], "n": -1, "workflow": None, "ops": [], "error": "deserialized from unknown data"}
            TRACES.append(tr)
        if res is not None:
            res._rec_trace = tr
            LIVE.append((tr, res))
            tr["ops"].append({"op": "roundtrip", "snap": snapshot(res)})
        return
    if kind == "state":
        owner = getattr(self, "conductor", None)
        tr = _trace_of(owner) if owner is not None else None
        if tr is None:
            return
        tr["ops"].append({"op": "state." + name, "args": [_arg(a) for a in args[1:]], "kwargs": _plain(kwargs)})
        return
    tr = _trace_of(self)
    if tr is None:
        return
    op = {"op": name, "args": [_arg(a) for a in args[1:]], "kwargs": {k: _arg(v) for k, v in kwargs.items()}}
    if err is not None:
        op["raises"] = f"{type(err).__name__}: {err}"
    else:
        try:
            op["result"] = _result(name, res)
        except Exception as e:  # noqa: BLE001
            op["result"] = repr(e)
    if name == "serialize" and isinstance(res, dict):
        SERIAL[id(res)] = tr
    if name == "update_task_state":
        op["task"] = getattr(self, "_rec_pending_task", None)
        self._rec_pending_task = None
    op["snap"] = snapshot(self)
    tr["ops"].append(op)


def _install():
    C = conducting.WorkflowConductor
    for name, fn in list(C.__dict__.items()):
        if name == "__init__" or (not name.startswith("_") and (inspect.isfunction(fn) or isinstance(fn, classmethod))):
            wrap(C, name, "conductor")
    for prop in ("workflow_state", "graph"):  # lazy builders: what they call is not the test's
        p = C.__dict__[prop]

        def getter(self, _f=p.fget):
            DEPTH[0] += 1
            try:
                return _f(self)
            finally:
                DEPTH[0] -= 1

        setattr(C, prop, property(getter, p.fset))
    S = conducting.WorkflowState
    for name, fn in list(S.__dict__.items()):
        if not name.startswith("_") and inspect.isfunction(fn):
            wrap(S, name, "state")
    # Orquesta calls get_task from get_next_tasks; pre-compute, for every running event, the
    # actions Orquesta would hand out for that task (rendered input), to compare with flowctx.
    orig = C.__dict__["update_task_state"]

    @functools.wraps(orig)
    def uts(self, task_id, route, event, *a, **k):
        if DEPTH[0] == 0 and CURRENT["test"] is not None and _trace_of(self) is not None and not os.environ.get("RECORD_LIGHT"):
            DEPTH[0] += 1
            info = None
            try:
                if event.status == "running" and self.workflow_state.get_staged_task(task_id, route):
                    t = self.get_task(task_id, route)
                    info = _next_task(t)
            except Exception as e:  # noqa: BLE001
                info = {"render_error": f"{type(e).__name__}: {e}"}
            finally:
                DEPTH[0] -= 1
            self._rec_pending_task = info
        return orig(self, task_id, route, event, *a, **k)

    C.update_task_state = uts


_install()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    CURRENT["test"] = item.nodeid
    del LIVE[:]
    yield
    CURRENT["test"] = None
    # After the test: Orquesta renders a completed workflow's output only when asked (st2 asks
    # on completion); ask once more for every conductor the test left completed without asking,
    # so the data says what the output (and any output error) is.
    last = {}
    for tr, obj in LIVE:
        last[id(tr)] = (tr, obj)
    DEPTH[0] += 1
    try:
        for tr, obj in last.values():
            if any(o["op"] == "render_workflow_output" for o in tr["ops"]):
                continue
            ws = obj._workflow_state
            if ws is None or ws.status not in ("succeeded", "failed", "canceled", "expired", "abandoned"):
                continue
            try:
                obj.render_workflow_output()
                tr["ops"].append({"op": "final_render", "args": [], "kwargs": {}, "snap": snapshot(obj)})
            except Exception as e:  # noqa: BLE001
                tr["ops"].append({"op": "final_render", "args": [], "kwargs": {}, "raises": repr(e), "snap": snapshot(obj)})
    finally:
        DEPTH[0] -= 1
    del LIVE[:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    out = yield
    rep = out.get_result()
    if rep.when == "call":
        CURRENT["outcome"][item.nodeid] = rep.outcome


def pytest_sessionfinish(session):
    path = os.environ.get("RECORD_OUT", os.path.join(WORK, "traces.json"))
    with open(path, "w") as fh:
        json.dump({"traces": TRACES, "outcomes": CURRENT["outcome"]}, fh, indent=0)
