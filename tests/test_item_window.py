"""The with-items memory window (``flowctx.engine.conductor.ITEM_WINDOW``): a task without
``concurrency`` hands out at most that many item calls at once and more once half of them are
done; the results, their order and a durable run's resume are as if all were handed out at once.
The window is made small here (monkeypatched) so a few dozen items cross it many times; the
memory it saves is measured in benchmarks/test_bench_memory.py."""
from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

import pytest

from flowctx import Engine, Renderer
from flowctx.engine import conductor as conductor_mod
from flowctx.engine.conductor import Conductor
from flowctx.spec import load_workflow
from flowctx.state import SQLiteState
from flowctx.state.replay import inspect as replay_inspect

WINDOW = 6
N = 27

ITEMS = """
version: 1.0
input:
  - n
tasks:
  fan:
    with:
      items: "{{ range(ctx().n) | list }}"
    action: t.work
    input:
      i: "{{ item() }}"
      label: "item {{ item() }}"
output:
  - results: "{{ task('fan').result }}"
"""


@pytest.fixture(autouse=True)
def small_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conductor_mod, "ITEM_WINDOW", WINDOW)


def _work(i: int, label: str) -> dict[str, Any]:
    assert label == f"item {i}"
    return {"i": i, "sq": i * i}


def test_calls_are_handed_out_in_windows(backend: ModuleType) -> None:
    c = Conductor(load_workflow(ITEMS), {"n": N}, renderer=Renderer(), store=backend)
    c.start()
    inst = c.start_ready()[0]
    first = c.calls_for(inst)
    assert [call.key for call in first] == list(range(WINDOW))
    done = 0
    # more only once half of the window is done, then up to the full window again
    for call in first[: WINDOW // 2 - 1]:
        c.call_done(call, _ok(call))
        done += 1
        assert c.calls_for(inst) == []
    c.call_done(first[WINDOW // 2 - 1], _ok(first[WINDOW // 2 - 1]))
    more = c.calls_for(inst)
    assert [call.key for call in more] == list(range(WINDOW, WINDOW + WINDOW // 2))
    assert inst.in_flight == WINDOW
    # a handed-out item's rendered input lives on its call only (no retry can hand it out again)
    assert all(inst.item_calls[k] is None for k in range(WINDOW + WINDOW // 2))
    assert inst.item_calls[WINDOW + WINDOW // 2] is not None


def _ok(call: Any) -> Any:
    from flowctx.actions.base import Outcome

    return Outcome("succeeded", dict(call.inputs), None, 0.0, 0.0)


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_results_and_order_across_windows(backend: ModuleType, executor: str) -> None:
    res = Engine(actions={"t.work": _work}, store=backend, executor=executor).run(ITEMS, {"n": N})
    assert res.status == "succeeded", res.reason
    assert res.task("fan").result == [{"i": i, "sq": i * i} for i in range(N)]
    assert res.metrics["items_run"] == N


def test_a_retried_task_runs_every_item_again_with_its_input(backend: ModuleType) -> None:
    calls: dict[int, int] = {}

    def work(i: int, label: str) -> int:
        assert label == f"item {i}"  # the input kept for the retry is the one rendered at first
        calls[i] = calls.get(i, 0) + 1
        if i == N - 2 and calls[i] == 1:
            raise RuntimeError("fails once")
        return i

    wf = ITEMS.replace("    action: t.work\n", "    action: t.work\n    retry:\n      count: 1\n")
    res = Engine(actions={"t.work": work}, store=backend, executor="inline").run(wf, {"n": N})
    assert res.status == "succeeded", res.reason
    assert calls == {i: 2 for i in range(N)}
    assert res.task("fan").result == list(range(N)) and res.task("fan").attempts == 2


def test_pause_stops_handing_out_items_and_resume_finishes_them(backend: ModuleType) -> None:
    gate = threading.Event()
    started: list[int] = []

    def work(i: int, label: str) -> int:
        started.append(i)
        if i >= 1:  # both workers wait: the window's other items stay queued, none is added
            gate.wait(10)
        return i

    eng = Engine(actions={"t.work": work}, store=backend, executor="thread", max_workers=2)
    ex = eng.start(ITEMS, {"n": N})
    try:
        _until(lambda: len(started) >= 3)
        ex.pause()
    finally:
        gate.set()
    _until(lambda: ex.status == "paused")
    assert sorted(started) == list(range(WINDOW))  # the window, and nothing after the pause
    ex.resume()
    res = ex.wait(20)
    assert res.status == "succeeded", res.reason
    assert res.task("fan").result == list(range(N)) and sorted(started) == list(range(N))


def _until(cond: Any, timeout: float = 10.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if cond():
            return
        done.wait(0.005)
    raise AssertionError("condition not reached in time")


def test_a_durable_run_replays_across_windows(backend: ModuleType, tmp_path: Any) -> None:
    """The journal's replay hands out the same windows as the live run: every recorded outcome
    meets its call, and ``show --task`` (inspect) sees each item's rendered input."""
    st = SQLiteState(str(tmp_path / "s.db"))
    eng = Engine(actions={"t.work": _work}, store=backend, executor="thread", state=st)
    res = eng.run(ITEMS, {"n": N})
    assert res.status == "succeeded", res.reason
    conductor, seen = replay_inspect(eng, res.execution_id, st)
    assert conductor.status == "succeeded"
    fan = [k for k in seen if k[1] is not None]
    assert sorted(k[1] for k in fan) == list(range(N))
    assert all(dict(seen[k].inputs) == {"i": k[1], "label": f"item {k[1]}"} for k in fan)
