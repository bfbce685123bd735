"""Durable runs vs in-memory runs (pytest-benchmark), in the same session.

    pytest benchmarks/test_bench_state.py --benchmark-group-by=group
    pytest benchmarks/test_bench_state.py --benchmark-disable      # fast check: each case once

The workflow of ``test_bench_engine.py``: ``load`` publishes a ~1 MB blob, ``fan`` runs a
Python action over 1,000 items.  Each case is one ``Engine.run`` with ``state=None`` (in-memory)
or ``state=SQLiteState(file)`` (durable: execution row, lease, journal of every item outcome,
write-behind flushes, final flush before the result is returned), on both store backends and
with the inline and the thread executor.  Bar (issue 15): durable <= 1.3x in-memory (minimum
times, thread executor — the default; the inline executor's ratio is reported too: with actions
that cost nothing, encoding the 1 MB result once dominates).  Besides the wall time that
pytest-benchmark reports, each round's CPU time (``time.process_time``: every thread of the
process, so the state flusher's work counts) is kept, and its ratio printed: on a shared, loaded
machine the wall time also counts other jobs.

The database size is reported against the number of changes (journal records + task executions):
it grows by the changes, not by items x context size (1,000 x 1 MB would be ~1 GB).
"""
from __future__ import annotations

import importlib
import os
import time
from functools import cache
from types import ModuleType
from typing import Any

import pytest

from _workflows import FANOUT_WORKFLOW
from flowctx.cli.bench import machine, make_results
from flowctx.engine.runner import Engine
from flowctx.spec import load_workflow
from flowctx.state import SQLiteState

WORKFLOW = FANOUT_WORKFLOW
SPEC = load_workflow(WORKFLOW)
N = 1000
RESULTS = 100  # make_results(100): ~1 MB of JSON
ROUNDS = 7
BAR = 1.3  # issue 15

_TIMES: dict[tuple[str, str, str], float] = {}  # (backend, executor, mode) -> min seconds per run
_CPU: dict[tuple[str, str, str], float] = {}  # the same, CPU seconds (process_time) per run
_SIZES: dict[tuple[str, str], dict[str, Any]] = {}
_STATE = {"disabled": False}


def _store(name: str) -> ModuleType:
    return importlib.import_module("flowctx._store" if name == "cython" else "flowctx._store_py")


@cache
def _blob(name: str) -> Any:
    return _store(name).freeze(make_results(RESULTS))


ITEMS = [f"host-{i:05d}" for i in range(N)]
CASES = [
    pytest.param(b, ex, mode, marks=[pytest.mark.compiled] if b == "cython" else [], id=f"{b}-{ex}-{mode}")
    for b in ("cython", "python")
    for ex in ("thread", "inline")
    for mode in ("memory", "durable")
]


@pytest.mark.parametrize("backend_name,executor,mode", CASES)
def test_durable_vs_memory(benchmark: Any, tmp_path: Any, backend_name: str, executor: str, mode: str) -> None:
    benchmark.group = f"state: {N} items over 1 MB, {backend_name}, {executor} executor"
    blob = _blob(backend_name)
    state = SQLiteState(str(tmp_path / "state.db")) if mode == "durable" else None
    engine = Engine(
        actions={"bench.work": lambda value: value, "bench.blob": lambda: blob},
        executor=executor, max_workers=8, store=_store(backend_name), state=state,
    )
    params = {"items": ITEMS}

    cpu: list[float] = []

    def run() -> Any:
        c = time.process_time()
        try:
            return engine.run(SPEC, params)
        finally:
            cpu.append(time.process_time() - c)

    if getattr(benchmark, "disabled", False):
        _STATE["disabled"] = True
        t = time.perf_counter()
        res = benchmark.pedantic(run, rounds=1, iterations=1)
        _TIMES[(backend_name, executor, mode)] = time.perf_counter() - t
        runs = 1
    else:
        run()  # warm-up: templates compiled, first-run costs out of the way
        cpu.clear()
        res = benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
        _TIMES[(backend_name, executor, mode)] = benchmark.stats.stats.min
        runs = ROUNDS + 1
    _CPU[(backend_name, executor, mode)] = min(cpu)
    assert res.status == "succeeded", res.reason
    assert res.task("fan").items == N and res.output == {"keys": RESULTS}
    if state is not None:
        state.checkpoint()
        eid = res.execution_id
        counts = state.counts(eid)
        changes = counts["journal"] + counts["task_executions"]
        size = state.size_bytes() or 0
        _SIZES[(backend_name, executor)] = {
            "runs": runs, "db_bytes": size, "bytes_per_run": size / runs, "changes_per_run": changes,
            "bytes_per_change": (size / runs) / changes if changes else None,
        }
        benchmark.extra_info.update(_SIZES[(backend_name, executor)])
        assert changes < N + 20  # one record per item outcome, a few per task
        assert size / runs < 3 * 1024 * 1024  # ~1 MB result once + small records; not N x 1 MB
        state.close()


def ratios() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for b in ("cython", "python"):
        for ex in ("thread", "inline"):
            for label, times in (("", _TIMES), (" (CPU)", _CPU)):
                mem, dur = times.get((b, ex, "memory")), times.get((b, ex, "durable"))
                if mem and dur:
                    bar = BAR if ex == "thread" else None
                    out[f"durable/in-memory, {b}, {ex} executor{label}"] = {
                        "value": dur / mem, "bar": None if bar is None else f"<= {bar}",
                        "met": None if bar is None else dur / mem <= bar,
                    }
    return out


class _Summary:
    @pytest.hookimpl
    def pytest_benchmark_update_json(self, config: Any, benchmarks: Any, output_json: dict[str, Any]) -> None:
        if _TIMES:
            output_json["flowctx_state"] = {
                "machine": machine(),
                "seconds_per_run": {"/".join(k): v for k, v in _TIMES.items()},
                "cpu_seconds_per_run": {"/".join(k): v for k, v in _CPU.items()},
                "load_average": os.getloadavg(),
                "ratios": ratios(),
                "database": {"/".join(k): v for k, v in _SIZES.items()},
            }

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: Any) -> None:
        if not _TIMES:
            return
        tr = terminalreporter
        title = "flowctx durable vs in-memory (1,000 items over 1 MB)"
        if _STATE["disabled"]:
            title += " (--benchmark-disable: single runs, indicative only)"
        tr.section(title)
        tr.write_line(f"machine: {machine()}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        for (b, ex, mode), t in sorted(_TIMES.items()):
            c = _CPU.get((b, ex, mode))
            tr.write_line(f"{b:<7} {ex:<7} {mode:<8} {t * 1000:9.1f} ms per run ({t / N * 1e6:.1f} us per item)"
                          + ("" if c is None else f", CPU {c * 1000:.1f} ms"))
        for name, r in ratios().items():
            mark = "" if r["bar"] is None else f"   bar {r['bar']}: {'met' if r['met'] else 'MISSED'}"
            tr.write_line(f"{name:<54} {r['value']:6.2f}{mark}")
        for (b, ex), s in sorted(_SIZES.items()):
            tr.write_line(
                f"database ({b}, {ex}): {s['db_bytes'] / 1e6:.2f} MB after {s['runs']} runs = "
                f"{s['bytes_per_run'] / 1e6:.2f} MB per run for {s['changes_per_run']} changes "
                f"(1 MB result once + ~{(s['bytes_per_run'] - 1e6) / max(1, s['changes_per_run']):.0f} B per other change)"
            )


_PLUGIN = "flowctx-state-bench-summary"


@pytest.fixture(scope="module", autouse=True)
def _register_summary(request: pytest.FixtureRequest) -> None:
    pm = request.config.pluginmanager
    if not pm.has_plugin(_PLUGIN):
        pm.register(_Summary(), _PLUGIN)
