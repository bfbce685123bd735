"""``flowctx run --state``, ``resume``, ``list``, ``show``, ``export``, ``import``."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import textwrap
import time
from types import ModuleType
from typing import Any

import pytest

from flowctx import Engine
from flowctx.actions import import_action_module
from flowctx.cli import main
from flowctx.state import SQLiteState

WF = """
version: 1.0
input:
  - n: 6
output:
  - results: "{{ ctx().results }}"
tasks:
  prep:
    action: core.noop
    next:
      - do: fan
  fan:
    with:
      items: "{{ range(ctx().n) }}"
      concurrency: 2
    action: clitest.work
    input:
      i: "{{ item() }}"
    next:
      - when: "{{ succeeded() }}"
        publish:
          - results: "{{ result() }}"
"""

MODULE = '''
import threading
import flowctx

gate = threading.Event()
gate.set()
hold = None
calls = []


@flowctx.action("clitest.work")
def work(i):
    calls.append(i)
    if hold is not None and i >= hold:
        gate.wait(10)
    return i * 10
'''


@pytest.fixture(scope="session")
def actions_module(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    import sys

    if "clitest_actions" in sys.modules:  # one module per session: it registers clitest.work
        return sys.modules["clitest_actions"]
    path = tmp_path_factory.mktemp("cliactions") / "clitest_actions.py"
    path.write_text(textwrap.dedent(MODULE))
    return import_action_module(str(path))


@pytest.fixture
def wf(tmp_path: Any) -> str:
    path = tmp_path / "fan.yaml"
    path.write_text(WF)
    return str(path)


def interrupted(backend: ModuleType, mod: ModuleType, wf: str, tmp_path: Any) -> tuple[str, str]:
    """An execution stopped after items 0-2: a consistent copy of its database, lease orphaned."""
    db = str(tmp_path / "live.db")
    mod.hold, mod.calls[:] = 3, []
    mod.gate.clear()
    st = SQLiteState(db, batch_size=1, flush_interval=0.0)
    ex = Engine(store=backend, state=st).start(wf)
    try:
        deadline = time.monotonic() + 10
        while len(st.task_executions(ex.execution_id)) < 4:  # prep + items 0, 1, 2
            assert time.monotonic() < deadline
            time.sleep(0.01)
        copy = str(tmp_path / "crashed.db")
        with sqlite3.connect(db) as a, sqlite3.connect(copy) as b:
            a.backup(b)
    finally:
        mod.gate.set()
        mod.hold = None
    assert ex.wait(10).succeeded
    with sqlite3.connect(copy) as c:
        c.execute("UPDATE leases SET expires = 0")
    return copy, ex.execution_id


def test_run_with_state_then_list_and_show(actions_module: ModuleType, wf: str, tmp_path: Any,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "runs.db")
    assert main(["run", wf, "--actions", actions_module.__file__, "--state", db, "--json"]) == 0
    out, err = capsys.readouterr()
    eid = json.loads(out)["execution_id"]
    assert f"flowctx: durable execution {eid} (if this process dies: flowctx resume {eid} --state {db})" in err
    assert main(["list", "--state", db]) == 0
    out = capsys.readouterr().out
    assert "EXECUTION" in out and eid in out and "succeeded" in out
    assert main(["list", "--state", db, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["id"] == eid and row["state"] == "succeeded" and row["tasks"] == 2
    assert main(["show", eid, "--state", db]) == 0
    out = capsys.readouterr().out
    for text in ("status:   succeeded", "TASK", "prep", "fan", "6/6", "metrics", "items run 6",
                 "flush latency", "context size", "after prep", "stored:"):
        assert text in out, text
    assert main(["show", eid, "--state", db, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["status"] == "succeeded" and info["output"] == {"results": [0, 10, 20, 30, 40, 50]}
    assert [t["task"] for t in info["tasks"]] == ["prep", "fan"]
    assert info["tasks"][1]["items"] == 6 and info["tasks"][1]["calls"] == 6
    assert info["metrics"]["items_run"] == 6 and info["records"]["task_executions"] == 7
    assert "source" not in info


def test_resume_from_the_command_line(backend: ModuleType, actions_module: ModuleType, wf: str, tmp_path: Any,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    db, eid = interrupted(backend, actions_module, wf, tmp_path)
    assert main(["list", "--state", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["state"] == "interrupted"
    assert main(["show", eid, "--state", db]) == 0
    assert "status:   interrupted" in capsys.readouterr().out
    actions_module.calls[:] = []
    # no --actions: the module the run used is recorded in the state file
    assert main(["resume", eid, "--state", db]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"execution {eid} succeeded in ")
    assert "recorded records replayed" in out
    assert json.loads(out[out.index("{"):]) == {"results": [0, 10, 20, 30, 40, 50]}
    assert sorted(actions_module.calls) == [3, 4, 5]  # 0-2 were recorded: not run again
    assert main(["show", eid, "--state", db, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["state"] == "succeeded" and info["metrics"]["resumes"] == 1


def test_resume_json_and_a_second_resume(backend: ModuleType, actions_module: ModuleType, wf: str, tmp_path: Any,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    db, eid = interrupted(backend, actions_module, wf, tmp_path)
    assert main(["resume", eid, "--state", db, "--json", "--actions", actions_module.__file__]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["status"] == "succeeded" and res["execution_id"] == eid
    actions_module.calls[:] = []
    assert main(["resume", eid, "--state", db]) == 0  # already finished: nothing runs
    assert actions_module.calls == []
    assert "nothing to resume" in capsys.readouterr().out


def test_resume_refused_while_running(backend: ModuleType, actions_module: ModuleType, wf: str, tmp_path: Any,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "live.db")
    actions_module.hold = 0
    actions_module.gate.clear()
    try:
        ex = Engine(store=backend, state=db).start(wf)
        deadline = time.monotonic() + 10
        while not actions_module.calls:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert main(["resume", ex.execution_id, "--state", db]) == 2
        err = capsys.readouterr().err
        assert err == (f"flowctx: error: execution {ex.execution_id} is running in process {os.getpid()} on "
                       f"{socket.gethostname()} and is not paused: nothing to resume\n")
        assert main(["list", "--state", db]) == 0
        assert f"pid {os.getpid()}" in capsys.readouterr().out
    finally:
        actions_module.gate.set()
        actions_module.hold = None
    assert ex.wait(10).succeeded


def test_export_and_import(backend: ModuleType, actions_module: ModuleType, wf: str, tmp_path: Any,
                           capsys: pytest.CaptureFixture[str]) -> None:
    db, eid = interrupted(backend, actions_module, wf, tmp_path)
    out_file = str(tmp_path / "x.json")
    assert main(["export", eid, "--state", db, "-o", out_file]) == 0
    assert main(["export", eid, "--state", db]) == 0
    assert json.loads(capsys.readouterr().out) == json.load(open(out_file))
    other = str(tmp_path / "other.db")
    assert main(["import", out_file, "--state", other]) == 0
    assert capsys.readouterr().out.strip() == f"imported execution {eid} into {other}"
    actions_module.calls[:] = []
    assert main(["resume", eid, "--state", other]) == 0
    assert sorted(actions_module.calls) == [3, 4, 5]
    assert main(["import", out_file, "--state", other]) == 2
    assert capsys.readouterr().err.strip() == f"flowctx: error: execution {eid} already exists in {other}"


def test_command_line_errors(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.db")
    assert main(["list", "--state", missing]) == 2
    assert capsys.readouterr().err.strip() == f"flowctx: error: {missing}: no such state file"
    assert not os.path.exists(missing)  # looking never creates a file
    db = str(tmp_path / "s.db")
    SQLiteState(db).close()
    assert main(["show", "abc", "--state", db]) == 2
    assert capsys.readouterr().err.strip() == f"flowctx: error: no execution 'abc' in {db}"
    assert main(["list", "--state", db]) == 0
    assert capsys.readouterr().out.strip() == f"no executions in {db}"
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert main(["import", str(bad), "--state", db]) == 2
    assert capsys.readouterr().err.startswith(f"flowctx: error: {bad}: not JSON (")
    junk = tmp_path / "junk.db"
    junk.write_text("hello")
    assert main(["list", "--state", str(junk)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"flowctx: error: {junk}: not a flowctx state file (not an SQLite database); it was left as it is"
    )
