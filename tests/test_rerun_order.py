"""Rerun entries in the task sequence (Orquesta: a rerun task is entered in the sequence at
rerun time).  flowctx keeps each entry's identity (``seq``: start order, what the journal and
durable child ids use) and presents a rerun entry where Orquesta places it
(``Conductor.presented`` / ``task_sequence``); a rerun entry that never starts leaves nothing
behind.  Provenance of the workflow and the expected order:
orquesta test_workflow_conductor_rerun::test_rerun_from_remediated_task."""
from __future__ import annotations

import sqlite3
from types import ModuleType
from typing import Any

from flowctx import Engine
from flowctx.actions.base import Outcome
from flowctx.engine.conductor import Conductor
from flowctx.render import default_renderer
from flowctx.spec import load_workflow
from flowctx.state import SQLiteState, rebuild
from flowctx.state.replay import inspect

REMEDIATED = """
version: 1.0
vars:
  - foobar: null
  - fubar: null
tasks:
  task1:
    action: t.task1
    next:
      - when: "{{ failed() }}"
        publish: [{foobar: fubar}]
        do: task3
      - when: "{{ succeeded() }}"
        publish: [{foobar: foobar}]
  task2:
    action: t.task2
    next:
      - when: "{{ succeeded() }}"
        publish: [{fubar: fubar}]
  task3:
    action: core.noop
output:
  - foobar: "{{ ctx().foobar }}"
  - fubar: "{{ ctx().fubar }}"
"""


def _conductor(backend: ModuleType) -> Conductor:
    c = Conductor(load_workflow(REMEDIATED), {}, renderer=default_renderer(), store=backend)
    c.start()
    return c


def _run(c: Conductor, task: str, status: str) -> None:
    """Start the staged ``task`` alone and give its one call ``status`` (Orquesta's
    forward_task_statuses, one task at a time)."""
    (st,) = [s for s in c.next_tasks() if s.task == task]
    inst = c.begin(st)
    (call,) = c.calls_for(inst)
    c.call_done(call, Outcome(status, None, "boom" if status == "failed" else None))


def _failed_twice(backend: ModuleType) -> Conductor:
    c = _conductor(backend)
    _run(c, "task1", "failed")
    _run(c, "task3", "succeeded")
    _run(c, "task2", "failed")
    c.finalize()
    assert c.status == "failed"
    return c


def test_rerun_entries_are_presented_where_orquesta_enters_them(backend: ModuleType) -> None:
    c = _failed_twice(backend)
    c.rerun([("task1", 0), ("task2", 0)])
    _run(c, "task1", "succeeded")  # task1's success reaches `continue` before task2 starts
    _run(c, "task2", "succeeded")
    c.finalize()
    assert c.status == "succeeded"
    assert c.task_sequence() == ["task1", "task3", "task2", "task1", "task2", "continue__r1", "continue__r2"]
    # identities are start order, as before: task2's rerun entry is number 5, after task1's
    # `continue` (the journal and durable child ids use these numbers)
    assert [(i.seq, i.name) for i in c.sequence] == [
        (0, "task1"), (1, "task3"), (2, "task2"), (3, "task1"), (4, "continue__r1"), (5, "task2"),
        (6, "continue__r2"),
    ]
    assert all(c.sequence[i.seq] is i for i in c.presented())
    assert c.output == {"foobar": "foobar", "fubar": "fubar"}


def test_rerun_through_the_engine_keeps_orquestas_order(backend: ModuleType) -> None:
    broken = {"on": True}

    def flaky() -> str:
        if broken["on"]:
            raise RuntimeError("boom")
        return "ok"

    eng = Engine(actions={"t.task1": flaky, "t.task2": flaky}, store=backend, executor="thread", max_workers=1)
    res = eng.run(REMEDIATED)
    assert res.status == "failed"
    first = list(res.sequence)
    assert sorted(first) == ["task1", "task2", "task3"]
    broken["on"] = False
    again = eng.rerun(res, ["task1", "task2"])
    assert again.status == "succeeded", again.errors
    # both rerun entries come right after the first run's entries, in the order requested;
    # what they reach comes after them
    assert again.sequence[:5] == first + ["task1", "task2"]
    assert sorted(again.sequence[5:]) == ["continue__r1", "continue__r2"]
    assert again.task("task1").status == "succeeded" and again.task("task2").status == "succeeded"
    assert again.output == {"foobar": "foobar", "fubar": "fubar"}


def test_a_rerun_entry_that_never_starts_leaves_nothing_behind(backend: ModuleType) -> None:
    c = _failed_twice(backend)
    before = [(i.seq, i.name, i.status) for i in c.presented()]
    c.rerun([("task2", 0)])
    assert [(s.task, s.rerun_slot) for s in c.staged] == [("task2", (3, 0, 0))]
    c.cancel()  # before task2 starts again
    c.finish_canceled()
    assert c.status == "canceled"
    assert [(i.seq, i.name, i.status) for i in c.presented()] == before
    assert c.statuses["task2"] == "failed"  # the latest run of task2 is still the failed one
    # a later rerun finds that failed entry, and its entry is placed at this rerun
    c.rerun([("task2", 0)])
    assert [(s.task, s.rerun_slot) for s in c.staged] == [("task2", (3, 0, 0))]
    _run(c, "task2", "succeeded")
    c.finalize()
    assert c.status == "succeeded"
    assert c.task_sequence() == ["task1", "task3", "task2", "task2", "continue__r1"]


def _kill_after_rerun(backend: ModuleType, tmp_path: Any) -> tuple[Engine, SQLiteState, str, dict[str, bool]]:
    """A durable run that failed, then a rerun recorded by a process that died before the
    rerun tasks started: the journal holds the rerun record and nothing after it."""
    broken = {"on": True}

    def flaky() -> str:
        if broken["on"]:
            raise RuntimeError("boom")
        return "ok"

    st = SQLiteState(str(tmp_path / "state.db"))
    eng = Engine(actions={"t.task1": flaky, "t.task2": flaky}, store=backend, state=st, executor="thread", max_workers=1)
    res = eng.run(REMEDIATED)
    assert res.status == "failed"
    conductor = rebuild(eng, res.execution_id, st, rerun=["task1", "task2"])
    conductor.journal.close()  # the 'kill': nothing ran after the rerun was recorded
    with sqlite3.connect(st.path) as db:
        db.execute("UPDATE leases SET expires = 0 WHERE execution_id = ?", (res.execution_id,))
    broken["on"] = False
    return eng, st, res.execution_id, broken


def test_a_durable_rerun_killed_before_its_tasks_start(backend: ModuleType, tmp_path: Any) -> None:
    eng, st, eid, _ = _kill_after_rerun(backend, tmp_path)
    assert [r["kind"] for r in st.journal_rows(eid)].count("rerun") == 1
    # what `flowctx show` reads: the staged rerun entries are not runs of their tasks
    seen, _calls = inspect(eng, eid, st)
    assert sorted(i.name for i in seen.presented()) == ["task1", "task2", "task3"]
    assert all(i.status != "running" for i in seen.sequence)
    assert sorted(s.task for s in seen.staged) == ["task1", "task2"]
    done = eng.resume(eid)
    assert done.status == "succeeded", done.errors
    assert done.sequence[3:5] == ["task1", "task2"]
    assert sorted(done.sequence[5:]) == ["continue__r1", "continue__r2"]
    assert done.output == {"foobar": "foobar", "fubar": "fubar"}
    # resumed once more from the finished journal: the same order and identities
    again = eng.resume(eid)
    assert again.sequence == done.sequence
    assert [i.seq for i in again.conductor.sequence] == [i.seq for i in done.conductor.sequence]


def test_a_killed_rerun_canceled_then_rerun_again(backend: ModuleType, tmp_path: Any) -> None:
    import json
    import subprocess
    import sys

    from _backend_env import env_for  # the same flowctx and store backend in the subprocess

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flowctx", *args], capture_output=True, text=True,
                              env=env_for(backend), cwd=str(tmp_path), timeout=120)

    eng, st, eid, _ = _kill_after_rerun(backend, tmp_path)
    c = cli("cancel", eid, "--state", st.path)
    assert c.returncode == 0, c.stderr
    assert st.get_execution(eid)["status"] == "canceled"
    # the rerun entries that never started are not runs: task2's latest run is the failed one
    show = cli("show", eid, "--state", st.path, "--task", "task2", "--json")
    assert show.returncode == 0, show.stderr
    (inst,) = json.loads(show.stdout)["instances"]
    assert inst["status"] == "failed"
    seen, _calls = inspect(eng, eid, st)
    first = seen.task_sequence()
    assert sorted(first) == ["task1", "task2", "task3"] and not seen.staged
    # a later rerun runs task2 once more, from its failed entry
    done = eng.resume(eid, rerun=["task2"])
    assert done.status == "succeeded", done.errors
    assert done.sequence == first + ["task2", "continue__r1"]
    assert done.task("task2").status == "succeeded" and done.task("task1").status == "failed"
    assert [r["kind"] for r in st.journal_rows(eid)].count("rerun") == 2
