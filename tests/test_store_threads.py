"""Thread safety of the context store: several threads writing to and cloning one handle.

No crash, no lost write, no torn state.  The switch interval is made tiny so threads interleave
inside the store's methods as much as the GIL allows, and one test forces a garbage collection
with a GIL-releasing finalizer at nearly every allocation: that is how another thread can get to
run in the middle of a copy-on-write in the compiled store.
"""
from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

N_THREADS = 4


@pytest.fixture
def busy_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def run_threads(target: Callable[[int], None], n: int = N_THREADS) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def wrapped(tid: int) -> None:
        try:
            start.wait()
            target(tid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(t,)) for t in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def check_snapshot(snapshot: Any, tid: int, upto: int) -> None:
    """A clone taken by thread ``tid`` right after its write ``upto`` holds all its writes so far."""
    for i in range(upto + 1):
        assert snapshot.get_var(f"t{tid}-{i}") == i


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_writes_and_clones_on_one_handle(backend: ModuleType) -> None:
    ctx = backend.Context(parameters={"p": 1}, variables={"seed": [1, 2, 3]})
    n = 400
    snapshots: dict[int, list[tuple[int, Any]]] = {t: [] for t in range(N_THREADS)}

    def work(tid: int) -> None:
        for i in range(n):
            ctx.set_var(f"t{tid}-{i}", i)
            ctx.set_task_result(f"task{tid}", {"i": i, "tid": tid})
            ctx.set_system(f"s{tid}", i)
            if i % 3 == 0:
                snapshots[tid].append((i, ctx.clone()))
            if i % 5 == 0:
                snapshots[tid].append((i, ctx.with_item({"tid": tid}, i)))
            if i % 7 == 0:
                _ = ctx.variables  # hands out a snapshot: later writes must copy again
            if i % 11 == 0:
                ctx.set_var(f"tmp{tid}", i)
                ctx.delete_var(f"tmp{tid}")

    run_threads(work)

    for tid in range(N_THREADS):
        check_snapshot(ctx, tid, n - 1)
        assert ctx.get_task_result(f"task{tid}") == {"i": n - 1, "tid": tid}
        assert ctx.system[f"s{tid}"] == n - 1
        assert not ctx.has_var(f"tmp{tid}")
        for i, snap in snapshots[tid]:
            check_snapshot(snap, tid, i)
            assert snap.get_var(f"t{tid}-{i + 1}") is None  # written after the clone
            assert snap.get_var("seed") == [1, 2, 3] and snap.parameters["p"] == 1
    assert len(ctx.variables) == 1 + N_THREADS * n
    exported = ctx.export()
    assert backend.Context.from_export(exported).export() == exported


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_readers_see_whole_values(backend: ModuleType) -> None:
    """Readers running beside a writer see either the old or the new value, never a mix."""
    ctx = backend.Context(variables={"v": {"gen": 0, "payload": [0] * 50}})
    stop = threading.Event()
    n_writes = 2000

    def work(tid: int) -> None:
        if tid == 0:
            for gen in range(1, n_writes + 1):
                ctx.set_var("v", {"gen": gen, "payload": [gen] * 50})
                if gen % 10 == 0:
                    ctx.clone()
            stop.set()
            return
        seen = 0
        while not stop.is_set() or seen == 0:
            for v in (ctx.get_var("v"), ctx.clone().get_var("v"), ctx.variables["v"]):
                assert set(v["payload"]) == {v["gen"]}
            assert ctx.export()["variables"]["v"]["payload"][0] >= 0
            seen += 1

    run_threads(work)
    assert ctx.get_var("v")["gen"] == n_writes


class _Finalizer:
    """Cyclic garbage whose finalizer releases the GIL, so a GC pass can switch threads."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        time.sleep(0)


def test_no_lost_write_when_a_gc_pass_switches_threads(backend: ModuleType) -> None:
    """A write that copies a shared namespace can run a GC pass (it allocates); a finalizer in
    that pass can let another thread write to the same handle.  Neither write may be lost."""
    ctx = backend.Context()
    n = 300
    old_threshold = gc.get_threshold()
    old_interval = sys.getswitchinterval()
    gc.set_threshold(1, 1, 1)
    sys.setswitchinterval(1e-6)

    def work(tid: int) -> None:
        for i in range(n):
            _Finalizer()
            ctx.clone()  # the next write must copy (the shared path)
            ctx.set_var(f"t{tid}-{i}", i)
            _Finalizer()
            ctx.set_task_result(f"t{tid}-{i}", i)

    try:
        run_threads(work)
    finally:
        gc.set_threshold(*old_threshold)
        sys.setswitchinterval(old_interval)
        gc.collect()

    missing = [
        f"t{tid}-{i}"
        for tid in range(N_THREADS)
        for i in range(n)
        if not ctx.has_var(f"t{tid}-{i}") or ctx.get_task_result(f"t{tid}-{i}") != i
    ]
    assert missing == []


@pytest.mark.usefixtures("busy_switching")
def test_store_stats_count_every_clone_under_threads(backend: ModuleType) -> None:
    ctx = backend.Context(variables={"a": 1})
    before = backend.store_stats()
    n = 2000

    def work(tid: int) -> None:
        for i in range(n):
            ctx.clone()
            ctx.with_item(i, i)

    run_threads(work)
    after = backend.store_stats()
    assert after["clones"] - before["clones"] == N_THREADS * n
    assert after["items"] - before["items"] == N_THREADS * n


HAMMER_THREADS = 8


@pytest.mark.usefixtures("busy_switching")
def test_eight_threads_hammer_one_context(backend: ModuleType) -> None:
    """Eight threads use one handle at once through every operation: writes, deletes, reads,
    views, clones, items, merges, export, size, equality.  Written for free-threaded CPython
    (where the compiled store's critical sections and atomic counters do the work the GIL does
    here); on a GIL build it checks the same invariants under a 1 us switch interval."""
    ctx = backend.Context(parameters={"p": [1, 2]}, variables={"seed": {"a": [1]}})
    other = backend.Context(variables={"from_other": 1}, task_results={"o": {"r": 1}})
    n = 250
    before = backend.store_stats()
    clones: dict[int, list[tuple[int, Any]]] = {t: [] for t in range(HAMMER_THREADS)}

    def work(tid: int) -> None:
        for i in range(n):
            ctx.set_var(f"t{tid}-{i}", [tid, i])
            assert ctx.get_var(f"t{tid}-{i}") == [tid, i]
            ctx.set_task_result(f"task{tid}", {"i": i})
            ctx.set_system(f"s{tid}", i)
            ctx.set_var(f"tmp{tid}", i)
            assert ctx.has_var(f"tmp{tid}")
            ctx.delete_var(f"tmp{tid}")
            c = ctx.clone() if i % 2 else ctx.with_item({"tid": tid}, i)
            clones[tid].append((i, c))
            m = ctx.merge(other)
            assert m.get_var("from_other") == 1 and m.get_var(f"t{tid}-{i}") == [tid, i]
            if i % 10 == 0:
                assert ctx.variables["seed"] == {"a": [1]} and ctx.parameters["p"] == [1, 2]
                assert len(ctx.task_results) >= 1 and ctx.system is not None
                assert ctx.export()["variables"][f"t{tid}-{i}"] == [tid, i]
                assert ctx.size()["variables"]["keys"] >= 2
                assert c == c.clone() and repr(c).startswith("<Context")

    run_threads(work, HAMMER_THREADS)

    for tid in range(HAMMER_THREADS):
        for i in range(n):
            assert ctx.get_var(f"t{tid}-{i}") == [tid, i]
        assert ctx.get_task_result(f"task{tid}") == {"i": n - 1} and ctx.system[f"s{tid}"] == n - 1
        assert not ctx.has_var(f"tmp{tid}")
        for i, c in clones[tid]:
            for j in range(i + 1):  # everything this thread wrote before the clone ...
                assert c.get_var(f"t{tid}-{j}") == [tid, j]
            assert c.get_var(f"t{tid}-{i + 1}") is None  # ... and nothing it wrote after
    assert len(ctx.variables) == 1 + HAMMER_THREADS * n
    after = backend.store_stats()
    total = HAMMER_THREADS * n
    assert after["clones"] - before["clones"] >= total // 2  # other tests may clone concurrently: never fewer
    assert after["items"] - before["items"] >= total // 2
    assert after["merges"] - before["merges"] >= total


def test_compiled_store_keeps_the_gil_off_on_free_threaded_builds() -> None:
    """The compiled module declares itself free-threading compatible (``freethreading_compatible``
    directive): importing it on a free-threaded interpreter must not turn the GIL back on."""
    import sysconfig

    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        pytest.skip("not a free-threaded interpreter (python3.13t / 3.14t)")
    import importlib

    importlib.import_module("flowctx._store")
    assert not sys._is_gil_enabled()  # type: ignore[attr-defined]
