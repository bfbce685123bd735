"""The Dask executor, same run, as ratios (pytest-benchmark; one round each, the runs are long).

    pytest benchmarks/test_bench_dask.py -s          # full: 2,000 items of ~10 ms, 10,000 no-ops
    pytest benchmarks/ --benchmark-disable           # CI: the same code at 1/10 the size

* ``cpu``: a with-items task of N items of a CPU-bound ~10 ms action (a busy loop), through the
  Dask executor on a local cluster of 2 worker processes, the process executor with 2 workers, and
  serially (the inline executor).  Ratios: serial / dask and serial / process (2 workers: the
  ideal is 2x), and dask / process.
* ``overhead``: M items of a no-op action through Dask (calls batched into chunks), time per
  item, whole run included (target <= 200 us per item).
The figures are printed and written to ``.benchmarks/dask.json``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from flowctx.actions import ActionRegistry, DEFAULT_REGISTRY  # noqa: E402
from flowctx.engine.runner import Engine  # noqa: E402
from flowctx.executors.dask import DaskExecutor  # noqa: E402
from flowctx.executors.process import ProcessExecutor  # noqa: E402
from flowctx.spec import load_workflow  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import _dask_actions  # noqa: E402

FIGURES: dict[str, float] = {}


def _workflow(action: str) -> Any:
    return load_workflow(
        "version: 1.0\n"
        "input:\n  - n: 10\n"
        "tasks:\n"
        "  fan:\n"
        "    with: '{{ range(ctx().n) }}'\n"
        f"    action: {action}\n"
        "    input: {i: '{{ item() }}'}\n"
        "output:\n  - count: \"{{ task('fan').results | length }}\"\n"
    )


def _registry() -> ActionRegistry:
    reg = DEFAULT_REGISTRY.child({"bench.spin": _dask_actions.spin, "bench.noop": _dask_actions.noop})
    return reg


@pytest.fixture(scope="module")
def sizes(request: pytest.FixtureRequest) -> tuple[int, int]:
    fast = request.config.getoption("benchmark_disable", False)
    return (200, 1000) if fast else (2000, 10000)


@pytest.fixture(scope="module")
def client() -> Any:
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0", silence_logs=50,
    )
    c = distributed.Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()


def _run(engine: Engine, spec: Any, n: int) -> float:
    t = time.perf_counter()
    res = engine.run(spec, {"n": n})
    took = time.perf_counter() - t
    assert res.succeeded, res.reason
    assert res.output["count"] == n
    return took


@pytest.mark.parametrize("where", ["dask", "process", "serial"])
def test_cpu_bound_items(benchmark: Any, client: Any, sizes: tuple[int, int], where: str) -> None:
    n = sizes[0]
    spec = _workflow("bench.spin")
    if where == "dask":
        executor: Any = DaskExecutor(client)
    elif where == "process":
        executor = ProcessExecutor(2)
    else:
        executor = "inline"
    engine = Engine(actions=_registry(), executor=executor)
    if where == "process":
        _run(engine, spec, 4)  # start the worker processes outside the timing
    benchmark.group = "dask: cpu-bound items"
    took = benchmark.pedantic(_run, args=(engine, spec, n), rounds=1, iterations=1)
    FIGURES[f"cpu_{where}_s"] = took if took is not None else 0.0
    if not isinstance(executor, str):
        executor.shutdown()


def test_noop_overhead_per_item(benchmark: Any, client: Any, sizes: tuple[int, int]) -> None:
    n = sizes[1]
    spec = _workflow("bench.noop")
    executor = DaskExecutor(client)
    engine = Engine(actions=_registry(), executor=executor)
    _run(engine, spec, 10)  # the module upload and first contact outside the timing
    benchmark.group = "dask: no-op overhead"
    took = benchmark.pedantic(_run, args=(engine, spec, n), rounds=1, iterations=1)
    FIGURES["noop_per_item_us"] = (took or 0.0) / n * 1e6
    executor.shutdown()


def test_report(sizes: tuple[int, int], capsys: pytest.CaptureFixture[str]) -> None:
    """Print and save the ratios of this run (runs last in this module)."""
    f = FIGURES
    if not {"cpu_dask_s", "cpu_process_s", "cpu_serial_s", "noop_per_item_us"} <= f.keys():
        pytest.skip("run the whole module for the ratios")
    report = {
        "items_cpu": sizes[0],
        "items_noop": sizes[1],
        **{k: round(v, 4) for k, v in f.items()},
        "serial_over_dask": round(f["cpu_serial_s"] / f["cpu_dask_s"], 2),
        "serial_over_process": round(f["cpu_serial_s"] / f["cpu_process_s"], 2),
        "dask_over_process": round(f["cpu_dask_s"] / f["cpu_process_s"], 2),
    }
    os.makedirs(".benchmarks", exist_ok=True)
    Path(".benchmarks/dask.json").write_text(json.dumps(report, indent=2))
    with capsys.disabled():
        print("\ndask benchmark:", json.dumps(report))
    assert report["serial_over_dask"] > 0
