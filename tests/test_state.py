"""Durable executions (flowctx.state) on both store backends: the journal, write-behind
batching, replay/resume, leases, rerun/cancel, export/import, metrics."""
from __future__ import annotations

import glob
import os
import socket
import sqlite3
import threading
import time
from types import ModuleType
from typing import Any

import pytest

from flowctx import Engine
from flowctx.errors import StateError
from flowctx.state import Journal, SQLiteState, rebuild
from flowctx.state.codec import dumps, loads

HERE = os.path.dirname(os.path.abspath(__file__))

FAN = """
version: 1.0
input:
  - n
  - blob: ""
vars:
  - stamp: "{{ uuid() }}"
output:
  - results: "{{ ctx().results }}"
  - total: "{{ ctx().total }}"
  - stamp: "{{ ctx().stamp }}"
  - token: "{{ ctx().token }}"
tasks:
  prep:
    action: core.noop
    next:
      - publish:
          - items: "{{ range(ctx().n) | list }}"
          - token: "{{ uuid() }}"
        do: fan
  fan:
    with:
      items: "{{ ctx().items }}"
      concurrency: 3
    action: t.work
    input:
      i: "{{ item() }}"
    next:
      - when: "{{ succeeded() }}"
        publish:
          - results: "{{ result() }}"
        do: sum
  sum:
    action: core.noop
    next:
      - publish:
          - total: "{{ ctx().results | map(attribute='sq') | sum }}"
"""

BRANCHES = """
version: 1.0
input:
  - who
output:
  - a: "{{ ctx().a }}"
  - b: "{{ ctx().b }}"
  - joined: "{{ ctx().joined }}"
tasks:
  start:
    action: core.echo message="{{ ctx().who }}"
    next:
      - do: [left, right]
  left:
    action: core.echo message="left"
    next:
      - publish: [a: "{{ result().stdout }}"]
        do: join
  right:
    action: core.echo message="right"
    next:
      - publish: [b: "{{ result().stdout }}"]
        do: join
  join:
    join: all
    action: core.noop
    next:
      - publish: [joined: "{{ ctx().a ~ '+' ~ ctx().b }}"]
"""


class Counter:
    """An action that counts its calls per item; ``gate`` blocks items >= ``hold`` until set."""

    def __init__(self, hold: int | None = None, fail_first: set[int] | None = None) -> None:
        self.calls: dict[int, int] = {}
        self.lock = threading.Lock()
        self.hold = hold
        self.gate = threading.Event()
        self.fail_first = fail_first or set()

    def __call__(self, i: int) -> dict[str, int]:
        with self.lock:
            n = self.calls[i] = self.calls.get(i, 0) + 1
        if self.hold is not None and i >= self.hold:
            self.gate.wait(10)
        if i in self.fail_first and n == 1:
            raise RuntimeError(f"item {i} fails once")
        return {"i": i, "sq": i * i}


def state(tmp_path: Any, name: str = "state.db", **kw: Any) -> SQLiteState:
    return SQLiteState(str(tmp_path / name), **kw)


def engine(backend: ModuleType, st: Any = None, actions: Any = None, **kw: Any) -> Engine:
    kw.setdefault("executor", "thread")
    kw.setdefault("max_workers", 4)
    return Engine(actions=actions, store=backend, state=st, **kw)


def wait_for(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def recorded_items(path: str, eid: str) -> set[int]:
    with sqlite3.connect(path) as c:
        return {
            r[0] for r in c.execute(
                "SELECT item_key FROM task_executions WHERE execution_id = ? AND task = 'fan' AND status = 'succeeded'",
                (eid,),
            )
        }


def snapshot(src: str, dst: str) -> None:
    """A consistent copy of a live database: what a crash at this moment would leave."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def orphan(path: str, eid: str) -> None:
    """Make the copied lease look like its owner died (it was this process's live lease)."""
    with sqlite3.connect(path) as c:
        c.execute("UPDATE leases SET expires = 0 WHERE execution_id = ?", (eid,))


# ---------------------------------------------------------------- durable = in-memory
def test_durable_run_equals_in_memory(backend: ModuleType, tmp_path: Any) -> None:
    plain = engine(backend).run(BRANCHES, {"who": "x"})
    st = state(tmp_path)
    res = engine(backend, st).run(BRANCHES, {"who": "x"})
    assert res.status == plain.status == "succeeded"
    assert res.output == plain.output == {"a": "left", "b": "right", "joined": "left+right"}
    assert res.sequence == plain.sequence and res.routes == plain.routes
    row = st.get_execution(res.execution_id)
    assert row["status"] == "succeeded" and row["output"] == res.output and row["finished"]
    assert row["source"] == BRANCHES and row["parameters"] == {"who": "x"}
    assert row["system"]["execution_id"] == res.execution_id
    insts = st.task_instances(res.execution_id)
    assert [i["task"] for i in insts] == [t.task for t in res.tasks]
    assert all(i["status"] == "succeeded" for i in insts)
    assert len(st.task_executions(res.execution_id)) == 4
    assert st.lease(res.execution_id) is None  # released at the end


def test_with_items_results_recorded_once(backend: ModuleType, tmp_path: Any) -> None:
    work = Counter()
    st = state(tmp_path)
    res = engine(backend, st, {"t.work": work}).run(FAN, {"n": 30})
    assert res.succeeded, res.reason
    assert [r["i"] for r in res.output["results"]] == list(range(30))
    calls = [c for c in st.task_executions(res.execution_id) if c["task"] == "fan"]
    assert sorted(c["item_key"] for c in calls) == list(range(30))
    assert all(c["attempt"] == 1 and c["status"] == "succeeded" for c in calls)
    assert calls[3]["result"] == {"i": calls[3]["item_key"], "sq": calls[3]["item_key"] ** 2}
    fan = next(i for i in st.task_instances(res.execution_id) if i["task"] == "fan")
    assert fan["items"] == 30 and fan["items_done"] == 30


def test_database_grows_with_changes_not_with_context(backend: ModuleType, tmp_path: Any) -> None:
    blob = "x" * 200_000  # a 200 KB context: 100 items x 200 KB would be 20 MB if copied
    st = state(tmp_path)
    res = engine(backend, st, {"t.work": Counter()}).run(FAN, {"n": 100, "blob": blob})
    assert res.succeeded
    st.checkpoint()
    size = st.size_bytes()
    assert size is not None and size < 600_000, size  # the parameters once, then small records
    counts = st.counts(res.execution_id)
    assert counts["task_executions"] == 102
    assert counts["journal"] < 20


PUBLISH_RESULT = """\
version: 1.0
tasks:
  load:
    action: t.blob
    next:
      - when: "{{ succeeded() }}"
        publish:
          - big: "{{ result() }}"
output:
  - big: "{{ ctx().big }}"
"""


def test_a_published_mapping_result_is_stored_once(backend: ModuleType, tmp_path: Any) -> None:
    # `{{ result() }}` is the task's frozen result (a FrozenDict, not a dict subclass): the
    # journal records "same as the result", not the value again (it doubled the database)
    blob = {"k": ["x" * 1000] * 50, "n": {"deep": [1, 2, {"z": None}]}}
    st = state(tmp_path)
    res = engine(backend, st, {"t.blob": lambda: blob}).run(PUBLISH_RESULT)
    assert res.succeeded, res.reason
    values = [r["data"] for r in st.journal_rows(res.execution_id) if r["kind"] == "value"]
    assert values == [{"f": "next[0].publish", "n": "big", "same": "result"}]
    again = rebuild(Engine(store=backend), res.execution_id, st)  # replay renders it from the result
    again.finalize()
    again.journal.close()
    assert backend.thaw(again.output) == backend.thaw(res.output) == {"big": blob}


# ---------------------------------------------------------------- write-behind batching
def test_everything_is_flushed_before_the_run_is_reported_finished(backend: ModuleType, tmp_path: Any) -> None:
    st = state(tmp_path, batch_size=100_000, flush_interval=3600)
    res = engine(backend, st, {"t.work": Counter()}).run(FAN, {"n": 40})
    assert res.succeeded
    other = SQLiteState(st.path)  # another connection sees the final state at once
    assert other.get_execution(res.execution_id)["status"] == "succeeded"
    assert len(other.task_executions(res.execution_id)) == 42
    assert res.metrics["flushes"] == 1  # one transaction for the whole run


def test_flush_every_n_records(backend: ModuleType, tmp_path: Any) -> None:
    st = state(tmp_path, batch_size=10, flush_interval=3600)
    sizes: list[int] = []
    real = st.write_batch

    def spy(eid: str, records: Any) -> None:
        sizes.append(len(records))
        real(eid, records)

    st.write_batch = spy  # type: ignore[method-assign]
    res = engine(backend, st, {"t.work": Counter()}).run(FAN, {"n": 60})
    assert res.succeeded
    m = res.metrics
    assert sum(sizes) == m["records_written"] >= 60
    # never before 10 records are queued (the interval is an hour); the final flush takes the rest.
    # A flusher that falls behind a busy engine writes everything queued at once: batches >= 10.
    assert len(sizes) >= 2 and all(n >= 10 for n in sizes[:-1]), sizes
    assert m["flushes"] == len(sizes)
    assert m["flush_latency_max"] >= m["flush_latency_mean"] > 0


def test_flush_after_the_interval_while_the_run_waits(backend: ModuleType, tmp_path: Any) -> None:
    work = Counter(hold=5)
    st = state(tmp_path, batch_size=100_000, flush_interval=0.05)
    ex = engine(backend, st, {"t.work": work}).start(FAN, {"n": 8})
    try:
        wait_for(lambda: len(recorded_items(st.path, ex.execution_id)) == 5, timeout=5)
    finally:
        work.gate.set()
    assert ex.wait(10).succeeded


# ---------------------------------------------------------------- resume
def _crash_midway(backend: ModuleType, tmp_path: Any, n: int = 12, hold: int = 6, **kw: Any) -> tuple[str, str, Any]:
    """Run FAN until items < hold are recorded, copy the database (the 'crash'), finish the
    original run; returns (copy path, execution id, the finished original result)."""
    work = Counter(hold=hold, **kw)
    st = state(tmp_path, batch_size=4, flush_interval=0.01)
    ex = engine(backend, st, {"t.work": work}).start(FAN, {"n": n})
    try:
        wait_for(lambda: len(recorded_items(st.path, ex.execution_id)) >= hold)
        time.sleep(0.05)
        copy = str(tmp_path / "crashed.db")
        snapshot(st.path, copy)
    finally:
        work.gate.set()
    res = ex.wait(10)
    assert res.succeeded
    orphan(copy, ex.execution_id)
    return copy, ex.execution_id, res


def test_resume_reuses_recorded_results_and_published_values(backend: ModuleType, tmp_path: Any) -> None:
    copy, eid, original = _crash_midway(backend, tmp_path)
    before = recorded_items(copy, eid)
    assert len(before) >= 6
    work = Counter()
    st = SQLiteState(copy)
    res = engine(backend, st, {"t.work": work}).resume(eid)
    assert res.succeeded, res.reason
    assert res.execution_id == eid
    assert res.output == original.output  # uuid() in vars and publish: recorded, not re-rendered
    assert not set(work.calls) & before, "a recorded result was recomputed"
    assert set(work.calls) == set(range(12)) - before
    calls = [c for c in st.task_executions(eid) if c["task"] == "fan" and c["status"] == "succeeded"]
    assert sorted(c["item_key"] for c in calls) == list(range(12))  # each exactly once
    assert st.get_execution(eid)["status"] == "succeeded"
    assert res.metrics["resumes"] == 1 and res.metrics["replayed_events"] > 0
    assert [t.status for t in res.tasks] == ["succeeded"] * 3


def test_resume_with_retries(backend: ModuleType, tmp_path: Any) -> None:
    wf = FAN.replace("      concurrency: 3\n", "      concurrency: 3\n    retry:\n      count: 2\n")
    work = Counter(hold=6, fail_first={1, 8})
    st = state(tmp_path, batch_size=2, flush_interval=0.01)
    ex = engine(backend, st, {"t.work": work}).start(wf, {"n": 10})
    try:  # items 0-5 run (item 1 fails), items 6+ wait: the 'crash' is in the first round
        wait_for(lambda: len(recorded_items(st.path, ex.execution_id)) >= 5)
        copy = str(tmp_path / "crashed.db")
        snapshot(st.path, copy)
    finally:
        work.gate.set()
    original = ex.wait(10)
    assert original.succeeded and original.task("fan").attempts == 2
    orphan(copy, ex.execution_id)
    again = Counter(fail_first={8})
    res = engine(backend, SQLiteState(copy), {"t.work": again}).resume(ex.execution_id)
    assert res.succeeded, res.reason
    assert res.output == original.output
    # item 1's failure was recorded before the 'crash' and is not recomputed: it runs once more,
    # in the retry round (a with-items task retries all its items, as in Orquesta)
    assert again.calls[1] == 1
    assert res.task("fan").attempts == 2


def test_resume_of_a_finished_execution_runs_nothing(backend: ModuleType, tmp_path: Any) -> None:
    st = state(tmp_path)
    first = engine(backend, st, {"t.work": Counter()}).run(FAN, {"n": 5})
    work = Counter()
    res = engine(backend, st, {"t.work": work}).resume(first.execution_id)
    assert res.status == "succeeded" and res.output == first.output
    assert work.calls == {}
    assert res.sequence == first.sequence
    assert [t.finished for t in res.tasks] == [t.finished for t in first.tasks]  # recorded times


def test_resume_before_anything_ran(backend: ModuleType, tmp_path: Any) -> None:
    st = state(tmp_path)
    eng = engine(backend, st, {"t.work": Counter()})
    spec_run = eng.start(BRANCHES, {"who": "y"}, background=True)
    res1 = spec_run.wait(10)
    # an execution row with an empty journal (the process died right after it was created)
    with sqlite3.connect(st.path) as c:
        row = c.execute("SELECT * FROM executions WHERE id = ?", (res1.execution_id,)).fetchone()
        c.execute("INSERT INTO executions VALUES (" + ",".join("?" * len(row)) + ")", ("fresh", *row[1:]))
        c.execute("UPDATE executions SET status = 'running', output = NULL WHERE id = 'fresh'")
    res = engine(backend, st).resume("fresh")
    assert res.succeeded and res.output == res1.output


def test_concurrent_resume_is_refused(backend: ModuleType, tmp_path: Any) -> None:
    work = Counter(hold=2)
    st = state(tmp_path)
    ex = engine(backend, st, {"t.work": work}).start(FAN, {"n": 4})
    try:
        wait_for(lambda: len(work.calls) >= 2)
        with pytest.raises(StateError) as info:
            engine(backend, SQLiteState(st.path), {"t.work": Counter()}).resume(ex.execution_id)
        assert str(info.value) == (
            f"execution {ex.execution_id} is already being run by process {os.getpid()} on "
            f"{socket.gethostname()}; refusing to run it twice at the same time"
        )
    finally:
        work.gate.set()
    assert ex.wait(10).succeeded  # the refused resume changed nothing


def test_a_dead_owners_lease_is_taken_over(backend: ModuleType, tmp_path: Any) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs
    copy, eid, original = _crash_midway(backend, tmp_path)
    with sqlite3.connect(copy) as c:
        c.execute("UPDATE leases SET pid = ?, expires = ? WHERE execution_id = ?", (proc.pid, time.time() + 3600, eid))
    res = engine(backend, SQLiteState(copy), {"t.work": Counter()}).resume(eid)
    assert res.succeeded and res.output == original.output


def test_a_live_lease_on_another_host_is_respected_until_it_expires(backend: ModuleType, tmp_path: Any) -> None:
    copy, eid, _ = _crash_midway(backend, tmp_path)
    with sqlite3.connect(copy) as c:
        c.execute("UPDATE leases SET host = 'elsewhere', pid = 4242, expires = ? WHERE execution_id = ?",
                  (time.time() + 3600, eid))
    with pytest.raises(StateError, match="already being run by process 4242 on elsewhere"):
        engine(backend, SQLiteState(copy), {"t.work": Counter()}).resume(eid)
    with sqlite3.connect(copy) as c:
        c.execute("UPDATE leases SET expires = ? WHERE execution_id = ?", (time.time() - 1, eid))
    assert engine(backend, SQLiteState(copy), {"t.work": Counter()}).resume(eid).succeeded


def test_unknown_execution(backend: ModuleType, tmp_path: Any) -> None:
    st = state(tmp_path)
    with pytest.raises(StateError) as info:
        engine(backend, st).resume("nope")
    assert str(info.value) == f"no execution 'nope' in {st.path}"


# ---------------------------------------------------------------- control events
def test_cancel_is_recorded(backend: ModuleType, tmp_path: Any) -> None:
    work = Counter(hold=0)
    st = state(tmp_path)
    ex = engine(backend, st, {"t.work": work}).start(FAN, {"n": 6})
    wait_for(lambda: len(work.calls) >= 1)
    ex.cancel()
    work.gate.set()
    res = ex.wait(10)
    assert res.status == "canceled"
    assert st.get_execution(ex.execution_id)["status"] == "canceled"
    again = engine(backend, st, {"t.work": Counter()}).resume(ex.execution_id)
    assert again.status == "canceled"


def test_rerun_is_recorded_and_replayed(backend: ModuleType, tmp_path: Any) -> None:
    calls: list[int] = []
    broken = {"on": True}

    def work(i: int) -> dict[str, int]:
        calls.append(i)
        if broken["on"] and i == 2:
            raise RuntimeError("boom")
        return {"i": i, "sq": i * i}

    st = state(tmp_path)
    eng = engine(backend, st, {"t.work": work}, max_workers=1)
    first = eng.run(FAN, {"n": 4})
    assert first.status == "failed"
    assert st.get_execution(first.execution_id)["status"] == "failed"
    broken["on"] = False
    second = eng.rerun(first)
    assert second.succeeded, second.reason
    assert st.get_execution(first.execution_id)["status"] == "succeeded"
    assert [e["kind"] for e in st.journal_rows(first.execution_id)].count("rerun") == 1
    calls.clear()
    replayed = engine(backend, st, {"t.work": work}).resume(first.execution_id)
    assert calls == []
    assert replayed.status == "succeeded" and replayed.output == second.output


# ---------------------------------------------------------------- export / import
def test_export_import_round_trip(backend: ModuleType, tmp_path: Any) -> None:
    copy, eid, original = _crash_midway(backend, tmp_path)
    src = SQLiteState(copy)
    data = src.export_execution(eid)
    import json

    data = json.loads(json.dumps(data))  # really JSON
    assert data["format"] == "flowctx-execution" and data["execution"]["id"] == eid
    dst = state(tmp_path, "imported.db")
    assert dst.import_execution(data) == eid
    assert dst.export_execution(eid)["task_executions"] == data["task_executions"]
    with pytest.raises(StateError) as info:
        dst.import_execution(data)
    assert str(info.value) == f"execution {eid} already exists in {dst.path}"
    work = Counter()
    res = engine(backend, dst, {"t.work": work}).resume(eid)
    assert res.succeeded and res.output == original.output
    assert not set(work.calls) & recorded_items(copy, eid)


def test_import_rejects_malformed_exports(tmp_path: Any) -> None:
    st = state(tmp_path)
    with pytest.raises(StateError) as info:
        st.import_execution({"hello": 1})
    assert str(info.value) == 'not a flowctx execution export (missing "format": "flowctx-execution")'
    with pytest.raises(StateError, match=r"^execution export is incomplete or malformed"):
        st.import_execution({"format": "flowctx-execution", "version": 1, "execution": {"id": "x"}})
    assert st.list_executions() == []


# ---------------------------------------------------------------- values
def test_codec_round_trips_losslessly_or_refuses(backend: ModuleType) -> None:
    from flowctx.state.codec import CodecError

    value = {"a": [1, 2.5, None, True, "s"], "b": {"c": "ü"}}
    assert loads(dumps(value)) == value
    assert loads(dumps(backend.freeze(value))) == value
    assert loads(dumps(b"\x00\xff")) == b"\x00\xff"
    assert loads(dumps({1, 2})) == {1, 2}
    big = {"n": 2**20000, "m": -(3**9000), "s": "lone \ud800 surrogate", "u": "ü"}
    text = dumps(backend.freeze(big))
    assert text.isascii()  # the surrogate is escaped, so SQLite can store it as UTF-8
    assert loads(text) == big
    circular: list[Any] = []
    circular.append(circular)
    for bad, reason in [
        (object(), "a value of type 'object' cannot be stored"),
        (circular, "the value cannot be stored (Circular reference detected)"),
        ({1: "x"}, "a mapping key 1 is not a string"),
    ]:
        with pytest.raises(CodecError) as info:
            dumps(bad)
        assert str(info.value).startswith(reason)
    assert loads(None) is None
    for damaged, reason in [
        ("{", "not valid JSON"),
        ('{"__flowctx_value__":"bytes","data":"!!"}', "a damaged bytes value"),
        ('{"__flowctx_value__":"int","data":"zz"}', "a damaged int value"),
    ]:
        with pytest.raises(CodecError, match=reason):
            loads(damaged)


def test_results_that_are_not_json(backend: ModuleType, tmp_path: Any) -> None:
    st = state(tmp_path)
    wf = """
version: 1.0
output:
  - n: "{{ task('t').result | length }}"
tasks:
  t:
    action: t.raw
"""
    # a value a context cannot hold fails the call as it arrives; the failure is what is stored
    res = engine(backend, st, {"t.raw": lambda: b"abc"}).run(wf)
    assert res.status == "failed"
    calls = st.task_executions(res.execution_id)
    assert calls[0]["result"] is None and calls[0]["status"] == "failed"
    assert "unsupported type 'bytes'" in (res.task("t").error or "")



def test_codec_frozen_values_encode_as_their_plain_twins(backend: ModuleType) -> None:
    """Frozen values take their own encoder path (thawed in one pass, no cycle bookkeeping):
    the text is the one the plain value gives, and every lossless case still round-trips."""
    shared = backend.freeze({"rows": [{"id": i, "tags": ["a", "b"]} for i in range(3)]})
    deep: Any = "leaf"
    for _ in range(400):  # within the store's 500 levels
        deep = [deep]
    cases: list[Any] = [
        {"x": shared, "y": shared, "z": [shared, shared]},  # one subtree held twice: not a cycle
        [1, [2, [3, {"k": []}]], {}],  # a frozen list at the top
        {"n": 2**20000, "inner": [{"m": -(7**6000)}]},  # ints past the decimal limit
        ["lone \udfff", {"k": "x\ud800"}],  # lone surrogates
        {"f": [float("inf"), -float("inf"), -0.0, 1e300, 5e-324]},
        deep,
        {"ü": "ü", "": ""},
    ]
    for plain in cases:
        frozen = backend.freeze(plain)
        text = dumps(frozen)
        assert text == dumps(backend.thaw(frozen))
        assert loads(text) == backend.thaw(frozen)
    nan = loads(dumps(backend.freeze({"v": float("nan")})))["v"]
    assert nan != nan  # NaN stays NaN (not null)

# ---------------------------------------------------------------- metrics
METRIC_KEYS = {
    "clones", "item_contexts", "items_run", "render_time", "renders", "action_time", "action_calls",
    "queue_wait", "queue_wait_max",
}
STATE_KEYS = {
    "flushes", "flush_time", "flush_latency_max", "flush_latency_mean", "records_written", "state_bytes",
    "context_size",
}


def test_metrics_in_memory_and_durable(backend: ModuleType, tmp_path: Any) -> None:
    plain = engine(backend, None, {"t.work": Counter()}).run(FAN, {"n": 20})
    assert METRIC_KEYS <= set(plain.metrics)
    assert not STATE_KEYS & set(plain.metrics)
    assert plain.metrics["items_run"] == 20 and plain.metrics["item_contexts"] >= 20
    assert plain.metrics["renders"] > 20 and plain.metrics["render_time"] > 0
    from flowctx.state.metrics import context_sizes

    sizes = context_sizes(plain.conductor)  # O(bytes): on demand for in-memory runs
    assert [s["after"] for s in sizes] == [None, "prep", "sum"]  # with-items tasks are not sized
    assert sizes[1]["variables"]["keys"] > sizes[0]["variables"]["keys"]
    st = state(tmp_path)
    res = engine(backend, st, {"t.work": Counter()}).run(FAN, {"n": 20})
    assert METRIC_KEYS | STATE_KEYS <= set(res.metrics)
    assert res.metrics["flushes"] >= 1 and res.metrics["state_bytes"] > 0
    stored = st.get_execution(res.execution_id)["metrics"]
    assert stored["items_run"] == 20 and stored["flushes"] == res.metrics["flushes"]



def test_context_sizes_are_the_stores_sizes(backend: ModuleType) -> None:
    """context_sizes sizes each shared frozen value once; its numbers are Context.size()'s."""
    from flowctx.state.metrics import _size, context_sizes

    blob = backend.freeze({f"k{i}": {"rows": [{"id": j, "s": "x" * j, "f": 1.5, "n": None} for j in range(20)]}
                           for i in range(30)})
    wf = """\
version: 1.0
input: [items]
tasks:
  load:
    action: t.blob
    next:
      - publish:
          - big: "{{ result() }}"
          - part: "{{ result().k3 }}"
          - copy: "{{ ctx().big }}"
        do: use
  use:
    action: t.echo
    input: {value: "{{ ctx().part }}"}
    next:
      - publish: [{last: "{{ result() }}"}]
"""
    res = engine(backend, None, {"t.blob": lambda: blob, "t.echo": lambda value: value}).run(wf, {"items": [1, [2]]})
    assert res.status == "succeeded", res.reason
    c = res.conductor
    ctxs = [c.initial_ctx] + [i.out_ctxs[0][0] if i.out_ctxs else i.ctx for i in c.sequence
                              if not i.is_command and i.items is None and i.done]
    sizes = context_sizes(c)
    assert [s["after"] for s in sizes] == [None, "load", "use"]
    assert [{k: v for k, v in s.items() if k not in ("after", "seq")} for s in sizes] == [_size(x) for x in ctxs]
    assert sizes[1]["variables"]["bytes"] > 2 * sizes[1]["task_results"]["bytes"] > 0

def test_prometheus_export(backend: ModuleType) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    engine(backend, None, {"t.work": Counter()}).run(FAN, {"n": 3})
    text = prometheus_client.generate_latest().decode()
    assert "flowctx_items_run_total" in text and 'flowctx_executions_total{status="succeeded"}' in text


# ---------------------------------------------------------------- replay over the conformance suite
SPECS = sorted(glob.glob(os.path.join(HERE, "conformance", "orquesta", "specs", "*.yaml")))


def _rewrites_item_keys(path: str) -> bool:
    # mocks with item_id make the rehearsal re-key a call after it was issued, which no real
    # engine does; the journal (rightly) does not match such a run
    with open(path, encoding="utf-8") as fh:
        return "item_id" in fh.read()


@pytest.mark.parametrize(
    "spec_file", [s for s in SPECS if not _rewrites_item_keys(s)], ids=lambda p: os.path.basename(p)[:-5]
)
def test_replay_rebuilds_every_conformance_run(backend: ModuleType, tmp_path: Any, spec_file: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Every conformance workflow, conducted with a journal, replays from the database to the
    same sequence, routes, status, output, errors and terminal tasks."""
    import flowctx.rehearse as rehearse_mod
    from flowctx.engine.conductor import Conductor

    st = state(tmp_path)
    made: list[Conductor] = []

    class Journaled(Conductor):
        def __init__(self, spec: Any, params: Any, **kw: Any) -> None:
            super().__init__(spec, params, **kw)
            eid = f"e{len(made)}"
            st.create_execution({"id": eid, "workflow": spec.name, "file": spec.file, "source": spec.source,
                                 "parameters": self.parameters, "system": self.system})
            self.journal = Journal(st, eid, self)
            self.journal.open()
            made.append(self)

        def finalize(self) -> None:
            was = self.finished
            super().finalize()
            if not was and self.finished:  # what Engine._drive's finish hook records
                j = self.journal
                j.record("finished", None, {"status": self.status})

    monkeypatch.setattr(rehearse_mod, "Conductor", Journaled)
    rehearse_mod.Rehearsal(store=backend).run_file(spec_file)
    assert made
    live = made[0]
    live.journal.close()
    again = rebuild(Engine(store=backend), live.journal.execution_id, st)
    again.finalize()
    again.journal.close()

    def view(c: Any) -> tuple[Any, ...]:
        return c.task_sequence(), c.routes, c.status, c.output, c.errors, c.term_tasks()

    assert view(again) == view(live)
