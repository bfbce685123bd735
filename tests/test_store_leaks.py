"""Leaks: 10^6 clone / with_item / drop cycles leave memory flat.

Two checks: exact reference counts of the shared namespaces and of the item (a refcount leak in
the compiled module shows up there even when it is too small to see in RSS), and the process's
resident memory before and after, with a tolerant bound (a leak of one ~100-byte handle per cycle
would be ~100 MB; the bound is a few MB).
"""
from __future__ import annotations

import gc
import os
import sys
import tracemalloc
from collections.abc import Callable
from types import ModuleType

CYCLES = 1_000_000
TOLERANCE = 4 * 1024 * 1024  # bytes


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _growth(run: Callable[[int], None]) -> tuple[int, str]:
    """Memory growth of ``run(CYCLES)`` after a warm-up (RSS, or tracemalloc off Linux)."""
    run(CYCLES // 10)  # warm-up: freelists, interned names, allocator arenas
    gc.collect()
    before = _rss_bytes()
    if before is not None:
        run(CYCLES)
        gc.collect()
        after = _rss_bytes()
        assert after is not None
        return after - before, "RSS"
    tracemalloc.start()  # slow: fewer cycles, same bound per cycle is far stricter anyway
    try:
        start, _ = tracemalloc.get_traced_memory()
        run(CYCLES // 20)
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return end - start, "tracemalloc"


def test_clone_with_item_drop_cycles_leave_memory_flat(backend: ModuleType) -> None:
    ctx = backend.Context(
        parameters={"p": list(range(100))},
        variables={"v": {"x": "y" * 1000}},
        task_results={f"t{i}": {"out": "z" * 1000} for i in range(20)},
        system={"id": "ex"},
    )
    item = backend.freeze({"host": "a", "ports": [1, 2, 3]})
    shared = (ctx.parameters, ctx.variables, ctx.task_results, ctx.system, item)
    refs_before = [sys.getrefcount(obj) for obj in shared]
    stats_before = backend.store_stats()

    def run(n: int) -> None:
        clone = ctx.clone
        for i in range(n):
            child = clone()
            grandchild = child.with_item(item, i)
            if i % 1000 == 0:  # now and then a copy-on-write and a merge, dropped too
                grandchild.set_var("w", i)
                child.merge(grandchild)
            del child, grandchild

    growth, how = _growth(run)
    assert growth < TOLERANCE, f"{how} grew by {growth} bytes over {CYCLES} cycles"
    assert [sys.getrefcount(obj) for obj in shared] == refs_before
    stats = backend.store_stats()
    assert stats["clones"] - stats_before["clones"] >= CYCLES // 20  # the loop really ran
    assert ctx.get_var("w") is None and ctx.get_var("v")["x"] == "y" * 1000


def test_freeze_and_write_cycles_leave_memory_flat(backend: ModuleType) -> None:
    ctx = backend.Context(variables={"keep": [1, 2, 3]})
    value = {"a": [1, {"b": "c"}], "d": None}

    def run(n: int) -> None:
        for _ in range(n // 50):
            ctx.set_var("x", value)
            ctx.clone()
            ctx.set_task_result("t", value)
            ctx.delete_var("x")
            try:
                ctx.set_var("bad", {"ok": [1], "bad": {1, 2}})
            except TypeError:
                pass

    growth, how = _growth(run)
    assert growth < TOLERANCE, f"{how} grew by {growth} bytes"
    assert not ctx.has_var("bad") and list(ctx.get_var("keep")) == [1, 2, 3]
