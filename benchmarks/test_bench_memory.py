"""Memory per with-items item: the peak Python allocation (tracemalloc) of one ``Engine.run`` of
the fan-out workflow over a ~1 MB published blob, divided by the item count.

    pytest benchmarks/test_bench_memory.py -s                       # 100,000 items
    FLOWCTX_BENCH_MEMORY_ITEMS=1000000 pytest benchmarks/test_bench_memory.py -s   # slow (~minutes)

The blob and the item strings are built before tracing starts; what is counted is what the run
allocates: the frozen item list, one rendered input per item, the calls, outcomes and results.
Printed at the end of the session (bytes per item; the README target is <= 500 B).
"""
from __future__ import annotations

import os
import tracemalloc
from typing import Any

import pytest

import test_bench_engine as eng

COUNT = int(os.environ.get("FLOWCTX_BENCH_MEMORY_ITEMS", "100000"))
BAR = 500
_OUT: dict[str, dict[str, float]] = {}


@pytest.mark.parametrize("store", [pytest.param("cython", marks=pytest.mark.compiled), "python"])
def test_memory_per_item(store: str) -> None:
    engine = eng._engine(store, 1)
    items = eng._items(COUNT)
    eng._check(engine.run(eng.SPEC, {"items": items[:10]}), 10, 1)  # warm: templates compiled
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        res = engine.run(eng.SPEC, {"items": items})
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    eng._check(res, COUNT, 1)
    _OUT[store] = {"items": COUNT, "peak_mb": peak / 1e6, "bytes_per_item": peak / COUNT}


class _Summary:
    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: Any) -> None:
        if not _OUT:
            return
        terminalreporter.section("flowctx memory per with-items item (tracemalloc peak of one run)")
        for store, r in _OUT.items():
            met = "met" if r["bytes_per_item"] <= BAR else "MISSED"
            terminalreporter.write_line(
                f"{store:<7} {r['items']:>9,.0f} items  peak {r['peak_mb']:8.1f} MB  "
                f"{r['bytes_per_item']:6.0f} B per item   bar <= {BAR} B: {met}"
            )


@pytest.fixture(scope="module", autouse=True)
def _register_summary(request: pytest.FixtureRequest) -> None:
    pm = request.config.pluginmanager
    if not pm.has_plugin("flowctx-memory-summary"):
        pm.register(_Summary(), "flowctx-memory-summary")
