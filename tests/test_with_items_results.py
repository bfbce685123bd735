"""with-items results in canceled, paused and empty runs, a caller's accumulated result, and
events for tasks staged before a failure (Orquesta 1.6.0 conducting parity, issue 10).

Facts from Orquesta's conducting tests (module::test named per test) and from its caller st2,
which passes every item event the task's result as a list with one entry per item (``None`` for
an item without a result).
"""
from __future__ import annotations

import threading
import time
from types import ModuleType
from typing import Any

import pytest

from flowctx import Engine
from flowctx.actions.base import Outcome
from flowctx.engine.conductor import Conductor
from flowctx.errors import FlowctxError
from flowctx.render import default_renderer
from flowctx.spec import load_workflow
from flowctx.state import Journal, SQLiteState

ITEMS = """
version: 1.0
input:
  - xs: [0, 1, 2, 3]
tasks:
  t:
    with:
      items: <% ctx(xs) %>
      concurrency: CONCURRENCY
    action: t.work
    input:
      key: <% item() %>
    next:
      - publish:
          - items: <% result() %>
output:
  - items: <% ctx(items) %>
"""


def engine(backend: ModuleType, actions: dict[str, Any], **kw: Any) -> Engine:
    kw.setdefault("executor", "thread")
    kw.setdefault("max_workers", 4)
    return Engine(actions=actions, store=backend, **kw)


def wait_for(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def conductor(backend: ModuleType, wf: str) -> Conductor:
    c = Conductor(load_workflow(wf), {}, renderer=default_renderer(), store=backend)
    c.start()
    return c


class Blocking:
    """Item 0 returns at once; the others wait until the run cancels them."""

    def __init__(self) -> None:
        self.running: set[int] = set()
        self.lock = threading.Lock()

    def __call__(self, key: int, action_context: Any = None) -> int:
        if key == 0:
            return 0
        with self.lock:
            self.running.add(key)
        action_context.cancel_event.wait(10)
        return key


# ---------------------------------------------------------------- canceled with-items
@pytest.mark.parametrize("durable", [False, True], ids=["memory", "sqlite"])
def test_canceled_items_result_has_one_entry_per_item(backend: ModuleType, tmp_path: Any, durable: bool) -> None:
    # test_workflow_conductor_with_items_cancel::test_cancel_item_list_incomplete: a with-items
    # task canceled part way has one result entry per item, None for the items canceled in
    # flight and for those never run (st2's shape); it used to stop at the last item that ran.
    # A durable run replays to the same result.
    work = Blocking()
    st = SQLiteState(str(tmp_path / "state.db")) if durable else None
    eng = engine(backend, {"t.work": work}, state=st)
    ex = eng.start(ITEMS.replace("CONCURRENCY", "2"))
    wait_for(lambda: work.running == {1, 2})
    ex.cancel()
    res = ex.wait(10)
    assert res.status == "canceled"
    t = res.task("t")
    assert t.status == "canceled"
    assert list(t.result) == [0, None, None, None]
    assert res.output == {"items": [0, None, None, None]}  # published and rendered on cancel
    if st is not None:
        again = engine(backend, {"t.work": Blocking()}, state=st).resume(ex.execution_id)
        assert again.status == "canceled"
        assert list(again.task("t").result) == [0, None, None, None]
        assert again.output == res.output


def test_items_task_canceled_while_paused_keeps_the_items_that_ran(backend: ModuleType) -> None:
    # test_workflow_conductor_with_items_cancel::
    # test_cancel_workflow_using_canceled_status_with_items_concurrency: a with-items task paused
    # with no item in flight is canceled at once (no completion, nothing published); its result
    # still lists the items that ran, one entry per item (it was None)
    release = threading.Event()
    started: list[int] = []

    def work(key: int) -> int:
        started.append(key)
        release.wait(10)
        return key * 10

    ex = engine(backend, {"t.work": work}).start(ITEMS.replace("CONCURRENCY", "1"))
    wait_for(lambda: started == [0])
    ex.pause()
    release.set()
    wait_for(lambda: ex.status == "paused")
    ex.cancel()
    res = ex.wait(10)
    assert res.status == "canceled" and started == [0]
    assert res.task("t").status == "canceled"
    assert list(res.task("t").result) == [0, None, None, None]
    assert res.output == {}  # `items` was never published: the output entry fails, logged


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "sqlite"])
def test_items_task_that_ends_during_a_pause_publishes_after_the_resume(
    backend: ModuleType, tmp_path: Any, durable: bool
) -> None:
    # test_workflow_conductor_with_items_pause_and_resume::
    # test_pause_workflow_using_paused_status_with_items_active: the items in flight finish while
    # the run pauses; after the resume the run succeeds with the whole result.  The task is not
    # terminal (Orquesta marks it so only when its completion ends the workflow): the branch
    # ends at its `continue` entry, whose context carries the published value
    release = threading.Event()
    started: list[int] = []

    def work(key: int) -> int:
        started.append(key)
        release.wait(10)
        return key * 10

    st = SQLiteState(str(tmp_path / "state.db")) if durable else None
    ex = engine(backend, {"t.work": work}, state=st).start(ITEMS.replace("CONCURRENCY", "4"))
    wait_for(lambda: len(started) == 4)
    ex.pause()
    release.set()
    wait_for(lambda: ex.status == "paused")
    ex.resume()
    res = ex.wait(10)
    assert res.status == "succeeded", res.reason
    assert list(res.task("t").result) == [0, 10, 20, 30]
    assert res.output == {"items": [0, 10, 20, 30]}
    assert res.conductor is not None and res.conductor.term_tasks() == ["continue"]
    if st is not None:
        # pauses are not journaled: the replay runs unpaused, so there the task is terminal too
        # (what Orquesta shows without a pause); the terminal context, hence the output, is the
        # same, since the `continue` entry carries the task's published context
        again = engine(backend, {"t.work": work}, state=st).resume(ex.execution_id)
        assert again.status == "succeeded" and again.output == res.output
        assert again.conductor is not None and again.conductor.term_tasks() == ["t", "continue"]


# ---------------------------------------------------------------- empty with-items
EMPTY = """
version: 1.0
input:
  - xs: []
tasks:
  t:
    with: <% ctx(xs) %>
    action: t.work
    next:
      - publish:
          - items: <% result() %>
        do: after
  after:
    action: core.noop
output:
  - items: <% ctx(items) %>
"""


EMPTY_VARS = EMPTY.replace("input:", "vars:")  # the Conductor alone takes no input defaults


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "sqlite"])
def test_empty_items_task_completes_in_a_real_run(backend: ModuleType, tmp_path: Any, durable: bool) -> None:
    # test_workflow_conductor_with_items::test_empty_items_list: the task runs no item, succeeds
    # with [] and its branch goes on; a durable run replays to the same result
    calls: list[Any] = []
    st = SQLiteState(str(tmp_path / "state.db")) if durable else None
    eng = engine(backend, {"t.work": lambda **kw: calls.append(kw)}, state=st)
    res = eng.run(EMPTY)
    assert res.status == "succeeded", res.reason
    assert res.sequence == ["t", "after"] and calls == []
    assert list(res.task("t").result) == [] and res.output == {"items": []}
    if st is not None:
        again = engine(backend, {"t.work": lambda **kw: calls.append(kw)}, state=st).resume(res.execution_id)
        assert again.status == "succeeded" and again.sequence == ["t", "after"] and again.output == res.output


def test_empty_items_task_runs_until_its_calls_are_asked_for(backend: ModuleType) -> None:
    # Orquesta: the task is `running` from its start until the caller reports it done; in
    # flowctx that report is the driver asking for its calls (the runner asks at once)
    c = conductor(backend, EMPTY_VARS)
    (t,) = c.start_ready()
    assert t.status == "running" and c.active() == [t] and not c.is_idle()
    c.pause()
    assert c.status == "paused" and c.calls_for(t) == []  # paused: it waits for the resume
    c.resume()
    assert c.calls_for(t) == []
    assert t.status == "succeeded" and list(t.result) == []
    (after,) = c.start_ready()
    assert after.task == "after"


def test_empty_items_task_canceled_before_it_ends(backend: ModuleType) -> None:
    c = conductor(backend, EMPTY_VARS)
    (t,) = c.start_ready()
    c.cancel()
    assert c.status == "canceled" and t.status == "canceled" and list(t.result) == []


# ---------------------------------------------------------------- caller's accumulated result
WI = 'version: 1.0\ntasks:\n  t:\n    with: {items: "{{ [1, 2, 3] }}"}\n    action: core.noop\n'


def test_accumulated_result_is_the_task_result_when_the_outcome_ends_it(backend: ModuleType) -> None:
    # Orquesta's conductor takes a with-items task's result from the item event that ends the
    # task (TaskItemActionExecutionEvent.accumulated_result); the others' are not used
    c = conductor(backend, WI)
    (t,) = c.start_ready()
    a, b, d = c.calls_for(t)
    c.call_done(a, Outcome("succeeded", "x"), accumulated_result=["ignored"])
    c.call_done(b, Outcome("succeeded", "y"))
    assert t.status == "running" and t.result is None
    c.call_done(d, Outcome("succeeded", "z"), accumulated_result=["x", {"k": [1]}, None])
    assert t.status == "succeeded"
    assert backend.thaw(t.result) == ["x", {"k": [1]}, None]
    with pytest.raises(TypeError):
        t.result[1]["k"].append(2)  # frozen like any stored value


def test_without_accumulated_result_the_conductor_assembles_it(backend: ModuleType) -> None:
    c = conductor(backend, WI)
    (t,) = c.start_ready()
    for call, r in zip(c.calls_for(t), "abc"):
        c.call_done(call, Outcome("succeeded", r))
    assert list(t.result) == ["a", "b", "c"]


@pytest.mark.parametrize("bad", ["abc", {"a": 1}, 5, [object()]])
def test_a_bad_accumulated_result_is_refused_and_nothing_is_recorded(backend: ModuleType, bad: Any) -> None:
    c = conductor(backend, WI)
    (t,) = c.start_ready()
    calls = c.calls_for(t)
    with pytest.raises(FlowctxError, match=r"task 't' \(item 0\): accumulated_result"):
        c.call_done(calls[0], Outcome("succeeded", "a"), accumulated_result=bad)
    assert t.in_flight == 3 and t.items_done == 0 and t.item_results == {}
    c.call_done(calls[0], Outcome("succeeded", "a"))  # the same outcome is still accepted
    assert t.items_done == 1


def test_accumulated_result_is_for_items_only_and_not_for_durable_runs(backend: ModuleType, tmp_path: Any) -> None:
    c = conductor(backend, "version: 1.0\ntasks:\n  a: {action: core.noop}\n")
    (a,) = c.start_ready()
    (call,) = c.calls_for(a)
    with pytest.raises(FlowctxError, match="for an item of a with-items task only"):
        c.call_done(call, Outcome("succeeded", None), accumulated_result=[])
    assert a.status == "running"
    c = conductor(backend, WI)
    c.journal = Journal(SQLiteState(str(tmp_path / "state.db")), "x", c)  # durable, never opened
    (t,) = c.start_ready()
    call = c.calls_for(t)[0]
    with pytest.raises(FlowctxError, match="durable run"):
        c.call_done(call, Outcome("succeeded", None), accumulated_result=[None, None, None])
    assert t.items_done == 0


# ---------------------------------------------------------------- staged before a failure
def test_a_task_staged_before_the_workflow_failed_can_still_be_begun(backend: ModuleType) -> None:
    # test_workflow_conductor_error_handling::test_multiple_task_transition_criteria_errors: the
    # caller was handed both start tasks; one fails the workflow; the other's events still count
    wf = """
version: 1.0
tasks:
  a:
    action: core.noop
    next: [{when: "{{ 1 / 0 }}", do: c}]
  b:
    action: core.noop
    next: [{when: "{{ undefined_name.x }}", do: c}]
  c:
    join: all
    action: core.noop
"""
    c = conductor(backend, wf)
    sa, sb = c.next_tasks()
    a = c.begin(sa)
    (call,) = c.calls_for(a)
    c.call_done(call, Outcome("succeeded", None))
    assert c.status == "failing" and c.ready() == [] and c.is_idle()
    c.finalize()
    assert c.status == "failed" and len(c.errors) == 1
    b = c.begin(sb)  # staged before the failure
    (call,) = c.calls_for(b)
    c.call_done(call, Outcome("succeeded", None))
    assert b.status == "succeeded" and c.status == "failed"
    assert [e["task_id"] for e in c.errors] == ["a", "b"]
    assert c.task_sequence() == ["a", "b"] and c.ready() == [] and c.next_tasks() == []
