"""Tasks paused or pending by their own call, through the real Engine (Orquesta's
``pending`` / ``paused`` action statuses; ``Conductor.call_status``).

Producers: ``core.inquiry`` is ``pending`` while its responder has not answered (the workflow
pauses, the answer continues it); a sub-workflow that pauses (on its own, or because an inquiry
in it waits) makes its task ``paused``, and a pause / resume of the parent cascades to it.
Siblings: pause and cancel requested while a task is paused, a paused item of a with-items task
with concurrency, a durable (SQLite) run paused in a child and resumed in a new process.

Waits poll a condition with a generous bound (never a wall-clock assertion).
"""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import pytest

from _backend_env import env_for
from flowctx import Engine
from flowctx.engine.conductor import Conductor

BOUND = 60.0  # seconds a condition may take on a loaded machine before the test gives up


def wait_until(cond: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + BOUND
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.005)


def status_of(c: Conductor, task: str) -> str | None:
    for inst in reversed(c.sequence):
        if inst.task == task:
            return inst.status
    return None


class Gate:
    """A core.inquiry responder that holds the first ``hold`` questions until released."""

    def __init__(self, hold: int = 1) -> None:
        self.hold = hold
        self.asked = 0
        self.release = threading.Event()
        self.first = threading.Event()  # the first question was asked
        self.lock = threading.Lock()

    def __call__(self, request: Mapping[str, Any]) -> Any:
        with self.lock:
            self.asked += 1
            n = self.asked
        self.first.set()
        if n <= self.hold:
            assert self.release.wait(BOUND), "the test never released the inquiry"
        return {"answer": f"{request['task']}-{n}"}


def write(tmp_path: Any, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


ASK_CHILD = """
version: 1.0
tasks:
  ask:
    action: core.inquiry
    input: {prompt: "go on?"}
    next:
      - when: <% succeeded() %>
        publish: [answer: <% result().answer %>]
        do: done
  done:
    action: core.echo
    input: {message: "<% ctx(answer) %>"}
output:
  - answer: <% ctx(answer) %>
"""

CALL_CHILD = """
version: 1.0
tasks:
  sub:
    action: child.yaml
    next:
      - when: <% succeeded() %>
        publish: [got: <% result().answer %>]
output:
  - got: <% ctx(got) %>
"""


# ====================================================================== core.inquiry: pending
def test_pending_inquiry_pauses_the_workflow_and_the_answer_continues_it(backend: ModuleType) -> None:
    gate = Gate()
    wf = """
    version: 1.0
    tasks:
      ask:
        action: core.inquiry
        input: {prompt: "go on?"}
        next:
          - when: <% succeeded() %>
            publish: [answer: <% result().answer %>]
            do: after
      other:
        action: test.block
        next:
          - do: other2
      other2:
        action: core.noop
      after:
        action: core.echo
        input: {message: "<% ctx(answer) %>"}
    output:
      - answer: <% ctx(answer) %>
    """
    # ``other`` ends once the inquiry was asked (so after ``ask`` reported pending)
    actions = {"test.block": block_action(threading.Event(), gate.first)}
    ex = Engine(store=backend, responder=gate, actions=actions).start(textwrap.dedent(wf))
    c = ex.conductor
    wait_until(lambda: status_of(c, "ask") == "pending" and ex.status == "paused", "ask pending, workflow paused")
    # Orquesta: the other branch's task ran to its end, what it staged waits for the answer
    assert status_of(c, "other") == "succeeded"
    assert "other2" not in c.task_sequence()
    gate.release.set()
    res = ex.wait(BOUND)
    assert res.status == "succeeded", res.reason
    assert res.output == {"answer": "ask-1"}
    assert res.task("ask").status == "succeeded" and res.task("other2").status == "succeeded"


def test_pause_and_cancel_requested_while_an_inquiry_is_pending(backend: ModuleType) -> None:
    gate = Gate()
    wf = textwrap.dedent(ASK_CHILD)
    ex = Engine(store=backend, responder=gate).start(wf)
    wait_until(lambda: ex.status == "paused", "workflow paused by the pending inquiry")
    ex.pause()  # already paused by its task: a user pause on top
    gate.release.set()  # the answer ends the call, but the user's pause holds the workflow
    wait_until(lambda: status_of(ex.conductor, "ask") == "succeeded", "the inquiry answered")
    assert ex.status == "paused" and "done" not in ex.conductor.task_sequence()
    ex.cancel()
    res = ex.wait(BOUND)
    assert res.status == "canceled"
    assert res.task("ask").status == "succeeded"


# ====================================================================== sub-workflows
def test_child_waiting_for_an_inquiry_pauses_its_task_and_the_answer_completes_both(
    backend: ModuleType, tmp_path: Any
) -> None:
    write(tmp_path, "child.yaml", ASK_CHILD)
    parent = write(tmp_path, "parent.yaml", CALL_CHILD)
    gate = Gate()
    ex = Engine(store=backend, responder=gate).start(parent)
    wait_until(lambda: status_of(ex.conductor, "sub") == "paused" and ex.status == "paused",
               "the child paused: its task paused, the parent paused")
    gate.release.set()
    res = ex.wait(BOUND)
    assert res.status == "succeeded", res.reason
    assert res.output == {"got": "ask-1"}
    assert res.task("sub").status == "succeeded" and res.task("sub").attempts == 1


def block_action(entered: threading.Event, release: threading.Event) -> Callable[..., Any]:
    def block(**kwargs: Any) -> str:
        entered.set()
        assert release.wait(BOUND), "never released"
        return "done"

    return block


BLOCK_CHILD = """
version: 1.0
tasks:
  work:
    action: test.block
    next:
      - do: more
  more:
    action: core.echo
    input: {message: more}
    next:
      - publish: [answer: <% result().message %>]
output:
  - answer: <% ctx(answer) %>
"""


def test_pause_of_the_parent_cascades_to_the_child_and_resume_continues_both(
    backend: ModuleType, tmp_path: Any
) -> None:
    write(tmp_path, "child.yaml", BLOCK_CHILD)
    parent = write(tmp_path, "parent.yaml", CALL_CHILD)
    entered, release = threading.Event(), threading.Event()
    ex = Engine(store=backend, actions={"test.block": block_action(entered, release)}).start(parent)
    assert entered.wait(BOUND)
    ex.pause()
    # the child is pausing while its task runs: so is the parent's task
    wait_until(lambda: ex.status == "pausing" and status_of(ex.conductor, "sub") == "pausing", "child pausing")
    release.set()
    wait_until(lambda: ex.status == "paused" and status_of(ex.conductor, "sub") == "paused", "child paused")
    ex.resume()
    res = ex.wait(BOUND)
    assert res.status == "succeeded", res.reason
    assert res.output == {"got": "more"}


def test_cancel_of_a_paused_task_cancels_the_child_and_the_workflow(backend: ModuleType, tmp_path: Any) -> None:
    write(tmp_path, "child.yaml", BLOCK_CHILD)
    parent = write(tmp_path, "parent.yaml", CALL_CHILD)
    entered, release = threading.Event(), threading.Event()
    ex = Engine(store=backend, actions={"test.block": block_action(entered, release)}).start(parent)
    assert entered.wait(BOUND)
    ex.pause()
    wait_until(lambda: status_of(ex.conductor, "sub") == "pausing", "the child pausing")
    release.set()
    wait_until(lambda: status_of(ex.conductor, "sub") == "paused", "the task paused")
    ex.cancel()
    res = ex.wait(BOUND)
    assert res.status == "canceled"
    assert res.task("sub").status == "canceled"


def test_child_canceled_on_its_own_cancels_the_parent(backend: ModuleType, tmp_path: Any) -> None:
    """An action that reports ``canceled`` (a sub-workflow canceled from inside) cancels the
    workflow, as a canceled action execution does in Orquesta."""
    child = """
    version: 1.0
    tasks:
      stop:
        action: test.cancel_me
    """
    write(tmp_path, "child.yaml", child)
    parent = write(tmp_path, "parent.yaml", CALL_CHILD)

    def cancel_me(**kwargs: Any) -> Any:
        from flowctx.actions.base import ActionResult

        return ActionResult("canceled", None, "canceled by the action")

    res = Engine(store=backend, actions={"test.cancel_me": cancel_me}).run(parent)
    assert res.status == "canceled"
    assert res.task("sub").status == "canceled"


# ====================================================================== with-items
def test_paused_item_with_concurrency_pauses_the_task_until_it_runs_again(backend: ModuleType) -> None:
    wf = """
    version: 1.0
    tasks:
      ask:
        with:
          items: <% range(4) %>
          concurrency: 1
        action: core.inquiry
        input: {prompt: "item <% item() %>"}
        next:
          - publish: [answers: <% result().select($.answer) %>]
    output:
      - answers: <% ctx(answers) %>
    """
    gate = Gate(hold=1)
    ex = Engine(store=backend, responder=gate).start(textwrap.dedent(wf))
    c = ex.conductor
    # the only item in flight waits: no other item may start (concurrency 1), the task is paused
    wait_until(lambda: status_of(c, "ask") == "paused" and ex.status == "paused", "task and workflow paused")
    assert gate.asked == 1
    gate.release.set()
    res = ex.wait(BOUND)
    assert res.status == "succeeded", res.reason
    assert res.output == {"answers": [f"ask-{n}" for n in range(1, 5)]}


# ====================================================================== durable, new process
DURABLE_RUN = r"""
import sys, threading
from flowctx import Engine
from flowctx.state import SQLiteState

out = threading.Lock()  # the two lines come from two threads: one whole line at a time

def say(line):
    with out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

def never(request):
    say("asked")
    threading.Event().wait()

ex = Engine(state=SQLiteState(sys.argv[1], flush_interval=0.01), responder=never).start(sys.argv[2])
say("started " + ex.execution_id)
ex.wait()
"""


def test_durable_run_paused_in_a_child_is_resumed_in_a_new_process(backend: ModuleType, tmp_path: Any) -> None:
    from flowctx.state import SQLiteState

    write(tmp_path, "child.yaml", ASK_CHILD)
    parent = write(tmp_path, "parent.yaml", CALL_CHILD)
    db = str(tmp_path / "state.db")
    env = env_for(backend)
    proc = subprocess.Popen([sys.executable, "-c", DURABLE_RUN, db, parent], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        # "started <id>" (main thread) and "asked" (the child's inquiry waits: all paused) come
        # from two threads, in either order
        lines = sorted(proc.stdout.readline().split() for _ in range(2))
        assert lines[0] == ["asked"] and lines[1][0] == "started", lines
        eid = lines[1][1]
        state = SQLiteState(db)
        # the state file says so (`flowctx status` in another process sees a paused run)
        wait_until(lambda: state.get_execution(eid)["status"] == "paused", "the parent recorded paused")
    finally:
        proc.send_signal(signal.SIGKILL)  # the process dies while the run is paused
        proc.wait(BOUND)
    res = Engine(store=backend, state=SQLiteState(db), responder=lambda req: {"answer": "later"}).resume(eid)
    assert res.status == "succeeded", res.reason
    assert res.output == {"got": "later"}


@pytest.mark.parametrize("status", ["sideways", "succeeded"])
def test_report_refuses_what_is_not_a_status(status: str) -> None:
    from flowctx.actions.base import ActionContext

    with pytest.raises(ValueError, match="an action may report"):
        ActionContext(task="t").report(status)


# ====================================================================== cancel while retrying
def test_cancel_while_a_retry_waits_leaves_the_task_retrying(backend: ModuleType) -> None:
    """Orquesta (test_task_retry::test_workflow_cancellation_before_retry_running): the retry
    never runs, the task stays ``retrying`` (not terminal) in the canceled workflow."""
    wf = """
    version: 1.0
    tasks:
      flaky:
        action: core.fail
        retry: {count: 3, delay: 600}
        next:
          - when: <% succeeded() %>
            do: after
      after:
        action: core.noop
    """
    ex = Engine(store=backend).start(textwrap.dedent(wf))
    wait_until(lambda: status_of(ex.conductor, "flaky") == "retrying", "the first attempt failed")
    ex.cancel()
    res = ex.wait(BOUND)
    assert res.status == "canceled"
    rec = res.task("flaky")
    assert rec.status == "retrying" and rec.attempts == 1
    assert ex.conductor.term_tasks() == []
    assert [e["task_id"] for e in res.errors] == ["flaky"]  # the failed attempt, logged once


# ====================================================================== the conductor API
def conductor(backend: ModuleType, text: str) -> Conductor:
    from flowctx.render import default_renderer
    from flowctx.spec import load_workflow

    c = Conductor(load_workflow(textwrap.dedent(text)), {}, renderer=default_renderer(), store=backend)
    c.start()
    return c


def test_call_status_pending_then_running_then_done(backend: ModuleType) -> None:
    from flowctx.actions.base import Outcome

    c = conductor(backend, """
    version: 1.0
    tasks:
      a:
        action: core.noop
    """)
    (inst,) = c.start_ready()
    (call,) = c.calls_for(inst)
    c.call_status(call, "pending")
    assert (inst.status, c.status) == ("pending", "paused")
    c.call_status(call, "running")  # the call runs again: so do the task and the workflow
    assert (inst.status, c.status) == ("running", "running")
    assert c.call_done(call, Outcome("succeeded", 1)) == []
    c.finalize()
    assert (inst.status, c.status) == ("succeeded", "succeeded")
    with pytest.raises(ValueError, match="a call may report"):
        c.call_status(call, "succeeded")  # an outcome is call_done's


def test_with_items_failure_waits_for_a_paused_item(backend: ModuleType) -> None:
    """A failed item does not end its task while another item waits (paused): the task is
    paused until that item reports (Orquesta would fail it with the paused call still out)."""
    from flowctx.actions.base import Outcome

    c = conductor(backend, """
    version: 1.0
    tasks:
      t:
        with: {items: "{{ [1, 2] }}"}
        action: core.noop
    """)
    (inst,) = c.start_ready()
    one, two = c.calls_for(inst)
    c.call_status(one, "paused")
    assert inst.status == "pausing" and c.status == "running"
    c.call_done(two, Outcome("failed", None, "boom"))
    assert inst.status == "paused" and c.status == "paused"
    c.call_status(one, "running")
    assert inst.status == "running" and c.status == "running"
    c.call_done(one, Outcome("succeeded", "ok"))
    c.finalize()
    assert inst.status == "failed" and c.status == "failed"


def test_a_task_left_retrying_by_a_cancel_can_be_rerun(backend: ModuleType) -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    wf = """
    version: 1.0
    tasks:
      flaky:
        action: test.flaky
        retry: {count: 3, delay: 600}
    """
    engine = Engine(store=backend, actions={"test.flaky": flaky})
    ex = engine.start(textwrap.dedent(wf))
    wait_until(lambda: status_of(ex.conductor, "flaky") == "retrying", "the first attempt failed")
    ex.cancel()
    res = ex.wait(BOUND)
    assert res.status == "canceled" and res.task("flaky").status == "retrying"
    again = engine.rerun(res, ["flaky"])
    assert again.status == "succeeded", again.reason
    assert again.task("flaky").status == "succeeded" and len(calls) == 2
