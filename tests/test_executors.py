"""Executors: thread / process / inline, exactly-once outcomes, real timeouts, no orphans.

Functions the process executor runs are defined at module level here: its workers import them by
name (this directory is on ``sys.path`` under pytest, and spawned workers inherit it).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flowctx.actions import DEFAULT_REGISTRY, ActionContext, ActionResult, Outcome, frozen_inputs
from flowctx.errors import ActionError
from flowctx.executors import (
    InlineExecutor,
    ProcessExecutor,
    ThreadExecutor,
    call_action,
    make_executor,
)

sys.path.insert(0, str(Path(__file__).parent))
from test_actions_builtin import alive, group_members, wait_until  # noqa: E402


# -- module-level actions (importable by process workers) ------------------------------------
def square(x: int) -> int:
    return x * x


def describe(value: Any) -> dict[str, Any]:
    return {"type": type(value).__name__, "value": value, "pid": os.getpid()}


@frozen_inputs
def describe_frozen(value: Any) -> dict[str, Any]:
    return {"type": type(value).__name__, "value": value, "pid": os.getpid()}


def boom(message: str = "boom") -> None:
    raise ValueError(message)


def exits() -> None:
    sys.exit(3)


def explicit(status: str) -> ActionResult:
    return ActionResult(status, {"s": status}, None if status == "succeeded" else f"said {status}")


def sleepy(seconds: float, marker: str | None = None, pidfile: str | None = None) -> str:
    if pidfile:
        Path(pidfile).write_text(str(os.getpid()))
    time.sleep(seconds)
    if marker:
        Path(marker).write_text("finished")
    return "late"


def spawns_child_then_sleeps(pidfile: str) -> None:
    child = subprocess.Popen(["sleep", "30"])
    Path(pidfile).write_text(f"{os.getpid()} {child.pid}")
    time.sleep(30)


def meet(me: str, other: str, limit: float = 20) -> bool:
    """Announce ``me`` and wait for ``other``: True only if both run at the same time."""
    Path(me).write_text("here")
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if Path(other).exists():
            return True
        time.sleep(0.01)
    return False


def unpicklable_result() -> Any:
    return threading.Lock()


def pid_and_context(action_context: ActionContext | None = None) -> dict[str, Any]:
    assert action_context is not None
    return {"pid": os.getpid(), "task": action_context.task, "extra": dict(action_context.extra)}


# -- helpers ---------------------------------------------------------------------------------
class Recorder:
    """An on_done callback that records every outcome it receives."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.event = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)
        self.event.set()

    def wait(self, limit: float = 10) -> Outcome:
        assert self.event.wait(limit), "no outcome delivered"
        return self.outcomes[0]


def run(executor, func, inputs=None, *, timeout=None, context=None, limit=15) -> tuple[Outcome, float, Recorder]:
    rec = Recorder()
    start = time.monotonic()
    executor.submit(func, inputs or {}, on_done=rec, timeout=timeout, context=context)
    outcome = rec.wait(limit)
    return outcome, time.monotonic() - start, rec


@pytest.fixture
def threads():
    ex = ThreadExecutor(4)
    yield ex
    ex.shutdown(wait=False)


@pytest.fixture(scope="module")
def processes():
    ex = ProcessExecutor(2)
    yield ex
    ex.shutdown()
    assert ex.worker_pids() == []


# -- call_action -----------------------------------------------------------------------------
def test_call_action_turns_results_and_errors_into_outcomes():
    assert call_action(square, {"x": 3}, None).status == "succeeded"
    failed = call_action(boom, {"message": "bad input"}, None)
    assert (failed.status, failed.error, failed.result) == ("failed", "ValueError: bad input", {"error": "ValueError: bad input", "type": "ValueError"})
    exited = call_action(exits, {}, None)
    assert exited.status == "failed" and exited.error == "SystemExit: 3"
    for status in ("succeeded", "failed", "timeout"):
        out = call_action(explicit, {"status": status}, None)
        assert (out.status, out.result) == (status, {"s": status})


def test_action_result_rejects_unknown_statuses():
    with pytest.raises(ValueError, match="ActionResult status must be one of"):
        ActionResult("maybe")


# -- thread executor -------------------------------------------------------------------------
def test_thread_executor_runs_calls(threads, backend):
    outcome, _, rec = run(threads, describe, {"value": backend.freeze({"a": [1]})})
    assert outcome.status == "succeeded"
    assert outcome.result["value"] == {"a": [1]}
    assert outcome.result["type"] == "dict"  # a plain copy per call (actions.base.action_inputs)
    frozen, _, _ = run(threads, describe_frozen, {"value": backend.freeze({"a": [1]})})
    assert frozen.result["type"] == "FrozenDict"  # opted in: frozen inputs arrive as they are (zero-copy)
    failed, _, _ = run(threads, boom, {})
    assert failed.status == "failed" and failed.error == "ValueError: boom"
    exited, _, _ = run(threads, exits, {})
    assert exited.status == "failed"  # SystemExit in an action never kills a pool thread silently


def test_thread_executor_pool_size_is_honoured():
    ex = ThreadExecutor(2)
    running = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    recs = [Recorder() for _ in range(8)]
    for rec in recs:
        ex.submit(work, {}, on_done=rec)
    for rec in recs:
        assert rec.wait().status == "succeeded"
    assert peak == 2
    ex.shutdown()


def test_thread_timeout_abandons_the_call_and_discards_its_late_result(threads, tmp_path):
    marker = tmp_path / "finished"
    outcome, elapsed, rec = run(threads, sleepy, {"seconds": 3, "marker": str(marker)}, timeout=0.5)
    assert outcome.status == "timeout"
    assert outcome.error == "timed out after 0.5s"
    assert not marker.exists(), "the timeout was reported only after the call finished"
    assert wait_until(marker.exists, 20)  # the abandoned thread did finish ...
    time.sleep(0.1)
    assert [o.status for o in rec.outcomes] == ["timeout"]  # ... but its result was discarded


def test_abandoned_threads_are_replaced(tmp_path):
    ex = ThreadExecutor(1)
    marker = tmp_path / "stuck-finished"
    stuck, _, _ = run(ex, sleepy, {"seconds": 3, "marker": str(marker)}, timeout=0.2)
    assert stuck.status == "timeout"
    # the only worker is still sleeping, abandoned: a replacement runs the next call meanwhile
    outcome, _, _ = run(ex, square, {"x": 5})
    assert outcome.result == 25
    assert not marker.exists()
    ex.shutdown(wait=True)  # does not wait for the abandoned thread
    assert not marker.exists()


def test_thread_timeout_starts_when_the_call_starts_not_while_queued():
    ex = ThreadExecutor(1)
    first = Recorder()
    second = Recorder()
    ex.submit(sleepy, {"seconds": 0.6}, on_done=first)
    ex.submit(square, {"x": 2}, on_done=second, timeout=0.3)  # waits 0.6 s for the thread
    assert first.wait().status == "succeeded"
    assert second.wait().status == "succeeded"
    ex.shutdown()


def test_thread_timeout_sets_cancel_event_so_core_local_kills_its_group(threads, tmp_path):
    pidfile = tmp_path / "pid"
    context = ActionContext(task="sh")
    local = DEFAULT_REGISTRY.resolve("core.local").func
    outcome, elapsed, rec = run(
        threads, local, {"cmd": f"echo $$ > {pidfile}; sleep 30 & sleep 30"}, timeout=1, context=context
    )
    assert outcome.status == "timeout"
    assert context.cancel_event.is_set()
    assert elapsed < 15  # the command sleeps 30 s
    pgid = int(pidfile.read_text())
    # killed: the whole group, background job included
    assert wait_until(lambda: group_members(pgid) == [], 10.0)
    time.sleep(0.1)
    assert len(rec.outcomes) == 1


def test_core_sleep_stops_when_its_call_times_out(threads):
    context = ActionContext(task="nap")
    outcome, elapsed, _ = run(threads, DEFAULT_REGISTRY.resolve("core.sleep").func, {"seconds": 30}, timeout=0.3, context=context)
    assert outcome.status == "timeout" and context.cancel_event.is_set()


def test_cancel_delivers_canceled_once_and_stops_cooperative_actions(threads):
    context = ActionContext(task="nap")
    rec = Recorder()
    handle = threads.submit(DEFAULT_REGISTRY.resolve("core.sleep").func, {"seconds": 30}, on_done=rec, context=context)
    time.sleep(0.1)
    handle.cancel()
    handle.cancel()
    assert rec.wait().status == "canceled"
    assert context.cancel_event.is_set()
    time.sleep(0.2)
    assert len(rec.outcomes) == 1


def test_shutdown_cancels_calls_that_never_started():
    ex = ThreadExecutor(1)
    running, queued = Recorder(), Recorder()
    ex.submit(sleepy, {"seconds": 0.3}, on_done=running)
    ex.submit(square, {"x": 1}, on_done=queued)
    time.sleep(0.05)
    ex.shutdown(wait=True)
    assert running.wait().status == "succeeded"
    assert queued.wait().status == "canceled"
    with pytest.raises(ActionError, match="shut down"):
        ex.submit(square, {"x": 1}, on_done=Recorder())


def test_exactly_one_outcome_per_call_under_load(threads):
    recs = [Recorder() for _ in range(200)]
    for i, rec in enumerate(recs):
        threads.submit(square, {"x": i}, on_done=rec, timeout=5)
    for i, rec in enumerate(recs):
        assert rec.wait().result == i * i
    time.sleep(0.05)
    assert all(len(r.outcomes) == 1 for r in recs)


def test_bad_timeouts_are_errors(threads):
    with pytest.raises(ActionError, match="timeout must be a number"):
        threads.submit(square, {"x": 1}, on_done=Recorder(), timeout="soon")  # type: ignore[arg-type]


# -- inline executor -------------------------------------------------------------------------
def test_inline_executor_runs_synchronously_and_reports_overruns():
    ex = InlineExecutor()
    rec = Recorder()
    handle = ex.submit(square, {"x": 4}, on_done=rec)
    assert handle.done and rec.outcomes[0].result == 16
    late = Recorder()
    ex.submit(sleepy, {"seconds": 0.2}, on_done=late, timeout=0.05)
    assert late.outcomes[0].status == "timeout" and late.outcomes[0].result is None


# -- process executor ------------------------------------------------------------------------
def test_process_executor_runs_in_worker_processes_with_pickled_frozen_inputs(processes, backend):
    value = backend.freeze({"a": [1, {"b": 2}]})
    outcome, _, _ = run(processes, describe, {"value": value})
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result["pid"] != os.getpid()
    assert outcome.result["pid"] in processes.worker_pids()
    assert outcome.result["type"] == "dict"  # thawed in the worker, after the frozen value was pickled
    assert outcome.result["value"] == {"a": [1, {"b": 2}]}
    frozen, _, _ = run(processes, describe_frozen, {"value": value})
    assert frozen.result["type"] == "FrozenDict" and frozen.result["value"] == {"a": [1, {"b": 2}]}
    assert run(processes, square, {"x": 12})[0].result == 144


def test_process_executor_failures(processes):
    failed, _, _ = run(processes, boom, {"message": "in a worker"})
    assert (failed.status, failed.error) == ("failed", "ValueError: in a worker")
    exited, _, _ = run(processes, exits, {})
    assert exited.status == "failed" and exited.error == "SystemExit: 3"
    unpicklable, _, _ = run(processes, unpicklable_result, {})
    assert unpicklable.status == "failed"
    assert "cannot be sent back from the worker process" in unpicklable.error
    assert run(processes, explicit, {"status": "timeout"})[0].status == "timeout"


def test_process_executor_rejects_non_importable_functions(processes):
    def local_function() -> int:
        return 1

    for func, what in ((lambda: 1, "<lambda>"), (local_function, "local_function")):
        outcome, _, _ = run(processes, func, {})
        assert outcome.status == "failed"
        assert "cannot run on the process executor" in outcome.error and what in outcome.error
        assert "importable top-level function" in outcome.error
        with pytest.raises(ActionError, match="importable top-level function"):
            processes.check(func, "my.action")
    processes.check(square)  # fine


def test_process_executor_unpicklable_inputs_fail_clearly(processes):
    outcome, _, _ = run(processes, describe, {"value": threading.Lock()}, context=ActionContext(task="lock"))
    assert outcome.status == "failed"
    assert "the inputs of 'lock' cannot be sent to a worker process" in outcome.error


def test_process_timeout_terminates_the_worker_and_its_children(tmp_path):
    ex = ProcessExecutor(1)
    try:
        assert run(ex, square, {"x": 1})[0].status == "succeeded"  # worker started before timing
        pidfile = tmp_path / "pids"
        outcome, elapsed, rec = run(ex, spawns_child_then_sleeps, {"pidfile": str(pidfile)}, timeout=1)
        assert outcome.status == "timeout" and outcome.error == "timed out after 1s"
        assert elapsed < 15  # the action sleeps 30 s
        worker, child = (int(x) for x in pidfile.read_text().split())
        assert wait_until(lambda: not alive(worker) and not alive(child), 10.0), "worker or its child survived"
        # a fresh worker takes the next call
        after, _, _ = run(ex, describe, {"value": 1})
        assert after.status == "succeeded" and after.result["pid"] != worker
        time.sleep(0.1)
        assert len(rec.outcomes) == 1
    finally:
        ex.shutdown()


def test_process_cancel_kills_the_worker(tmp_path):
    ex = ProcessExecutor(1)
    try:
        pidfile = tmp_path / "pid"
        rec = Recorder()
        handle = ex.submit(sleepy, {"seconds": 30, "pidfile": str(pidfile)}, on_done=rec)
        assert wait_until(lambda: pidfile.exists() and pidfile.read_text(), 10)
        handle.cancel()
        assert rec.wait().status == "canceled"
        assert wait_until(lambda: not alive(int(pidfile.read_text())), 1)
        assert run(ex, square, {"x": 3})[0].result == 9
    finally:
        ex.shutdown()


def test_process_workers_run_in_parallel_and_context_travels(processes, tmp_path):
    context = ActionContext(task="t1", extra={"run_id": "r1", "lock": threading.Lock()})
    outcome, _, _ = run(processes, pid_and_context, {}, context=context)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result["task"] == "t1"
    assert outcome.result["extra"] == {"run_id": "r1"}  # what cannot be pickled stays behind
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    recs = [Recorder(), Recorder()]
    processes.submit(meet, {"me": a, "other": b}, on_done=recs[0])
    processes.submit(meet, {"me": b, "other": a}, on_done=recs[1])
    assert [rec.wait(30).result for rec in recs] == [True, True]  # two workers: both at once


def test_engine_process_actions_stay_in_the_engine_process(processes, tmp_path):
    answers: list[Any] = []

    def responder(payload):
        answers.append(payload["prompt"])
        return {"ok": True}

    context = ActionContext(task="ask", responder=responder)
    outcome, _, _ = run(processes, DEFAULT_REGISTRY.resolve("core.inquiry").func, {"prompt": "go?"}, context=context)
    assert outcome.status == "succeeded" and outcome.result == {"ok": True}
    assert answers == ["go?"]
    pidfile = tmp_path / "pid"
    local = DEFAULT_REGISTRY.resolve("core.local").func
    outcome, elapsed, _ = run(
        processes, local, {"cmd": f"echo $$ > {pidfile}; sleep 30"}, timeout=1, context=ActionContext(task="sh")
    )
    assert outcome.status == "timeout" and elapsed < 15  # the command sleeps 30 s
    assert wait_until(lambda: group_members(int(pidfile.read_text())) == [], 10)


def test_process_shutdown_stops_every_worker():
    ex = ProcessExecutor(2)
    recs = [Recorder(), Recorder()]
    for i, rec in enumerate(recs):
        ex.submit(square, {"x": i}, on_done=rec)
    for rec in recs:
        rec.wait()
    pids = ex.worker_pids()
    assert pids
    ex.shutdown()
    assert ex.worker_pids() == []
    assert all(not alive(p) for p in pids)


def test_process_shutdown_without_wait_cancels_running_calls(tmp_path):
    ex = ProcessExecutor(1)
    pidfile = tmp_path / "pid"
    rec = Recorder()
    ex.submit(sleepy, {"seconds": 30, "pidfile": str(pidfile)}, on_done=rec)
    assert wait_until(lambda: pidfile.exists() and pidfile.read_text(), 10)
    ex.shutdown(wait=False)
    assert rec.wait().status == "canceled"
    assert wait_until(lambda: not alive(int(pidfile.read_text())), 1)


def test_no_worker_outlives_the_interpreter(tmp_path):
    """A script that never shuts its executor down: at exit its workers are killed."""
    script = tmp_path / "leaky.py"
    script.write_text(
        "import sys, threading\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from flowctx.executors import ProcessExecutor\n"
        "from test_executors import square\n"
        "if __name__ == '__main__':\n"
        "    ex = ProcessExecutor(2)\n"
        "    done = threading.Event()\n"
        "    ex.submit(square, {'x': 2}, on_done=lambda o: done.set())\n"
        "    done.wait(30)\n"
        "    print(' '.join(map(str, ex.worker_pids())))\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    pids = [int(p) for p in proc.stdout.split()]
    assert pids
    assert wait_until(lambda: all(not alive(p) for p in pids), 2)


# -- make_executor ---------------------------------------------------------------------------
def test_make_executor():
    ex = make_executor("thread", 3)
    assert isinstance(ex, ThreadExecutor) and ex.max_workers == 3
    ex.shutdown()
    pe = make_executor("Process", 2)
    assert isinstance(pe, ProcessExecutor) and pe.max_workers == 2
    pe.shutdown()
    assert isinstance(make_executor("inline"), InlineExecutor)
    assert isinstance(make_executor(), ThreadExecutor)
    with pytest.raises(ActionError, match=r"unknown executor 'ray' \(choose one of: thread, process, inline, dask"):
        make_executor("ray")
    with pytest.raises(ActionError, match="the thread executor takes no options"):
        make_executor("thread", scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ActionError, match="max_workers must be a whole number >= 1"):
        make_executor("thread", 0)


def test_executor_as_context_manager():
    with make_executor("thread", 1) as ex:
        assert run(ex, square, {"x": 6})[0].result == 36
    with pytest.raises(ActionError):
        ex.submit(square, {"x": 1}, on_done=Recorder())


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_a_raising_on_done_does_not_kill_the_executor(kind, capsys):
    ex = make_executor(kind, 1)
    try:
        def bad(outcome: Outcome) -> None:
            raise RuntimeError("engine bug")

        ex.submit(square, {"x": 1}, on_done=bad)
        ex.submit(sleepy, {"seconds": 5}, on_done=bad, timeout=0.1)  # raises in the deadline thread
        outcome, _, _ = run(ex, square, {"x": 7})
        assert outcome.result == 49
        time.sleep(0.3)
        assert "engine bug" in capsys.readouterr().err
    finally:
        ex.shutdown(wait=False)


def test_executor_from_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another package plugs an executor in through the ``flowctx.executors`` entry-point group."""
    from flowctx.executors import executor_kinds

    dist = tmp_path / "flowctx_demo_executor-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: flowctx-demo-executor\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[flowctx.executors]\ndemo = flowctx_demo_executor:make\nbroken = no_such_module_x:make\n")
    (tmp_path / "flowctx_demo_executor.py").write_text(
        "from flowctx.executors import InlineExecutor\n"
        "def make(max_workers=None):\n"
        "    return InlineExecutor()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert {"demo", "broken"} <= set(executor_kinds())
    executor = make_executor("demo")
    assert isinstance(executor, InlineExecutor)
    with pytest.raises(ActionError, match="executor 'broken'.*cannot be loaded"):
        make_executor("broken")
    with pytest.raises(ActionError, match="unknown executor 'nope'.*demo"):
        make_executor("nope")
