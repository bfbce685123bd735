"""Cold start: ``flowctx run`` of a one-task workflow, the whole process, against
``python -c 'import jinja2, yaml'`` (the two libraries a run cannot do without).

    pytest benchmarks/test_bench_coldstart.py -s
    FLOWCTX_BENCH_COLDSTART_RUNS=20 pytest benchmarks/test_bench_coldstart.py -s

Both commands run as subprocesses of this one, alternately, ``RUNS`` times each after one
untimed run of each (so both have their bytecode cached: ``PYTHONDONTWRITEBYTECODE`` is dropped
from the children's environment, as a normal install has ``.pyc`` files).  What is compared is
the **CPU time** (user + sys, from ``os.wait4``) of each child, the minimum of the runs; wall
time on a shared machine depends on the other jobs.  The ratio (bar <= 1.5) is printed at the
end of the session and kept in the saved JSON (``extra_info``).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

RUNS = int(os.environ.get("FLOWCTX_BENCH_COLDSTART_RUNS", "10"))
BAR = 1.5
WORKFLOW = "version: 1.0\ntasks:\n  hello:\n    action: core.noop\n"
_RESULTS: dict[str, Any] = {}


def _cpu(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(user+sys CPU seconds, wall seconds) of one run of ``cmd``; it must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else b""
    if proc.stderr:
        proc.stderr.close()
    assert proc.returncode == 0, (cmd, err.decode(errors="replace"))
    return usage.ru_utime + usage.ru_stime, wall


@pytest.mark.parametrize("store", ["cython", "python"])
def test_coldstart(benchmark: Any, tmp_path: Path, store: str) -> None:
    benchmark.group = "cold start: flowctx run, one task (whole process)"
    wf = tmp_path / "one.yaml"
    wf.write_text(WORKFLOW)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("FLOWCTX_PURE_PYTHON", None)
    if store == "python":
        env["FLOWCTX_PURE_PYTHON"] = "1"
    run = [sys.executable, "-m", "flowctx", "run", str(wf)]
    base = [sys.executable, "-c", "import jinja2, yaml"]
    _cpu(run, env), _cpu(base, env)  # untimed: bytecode written, file caches warm
    runs = 1 if getattr(benchmark, "disabled", False) else RUNS
    cpu_run, cpu_base, wall_run, wall_base = [], [], [], []
    for _ in range(runs):
        c, w = _cpu(run, env)
        cpu_run.append(c)
        wall_run.append(w)
        c, w = _cpu(base, env)
        cpu_base.append(c)
        wall_base.append(w)
    res = {
        "runs": runs,
        "cpu_run_min": min(cpu_run),
        "cpu_base_min": min(cpu_base),
        "cpu_ratio": min(cpu_run) / min(cpu_base),
        "wall_run_min": min(wall_run),
        "wall_base_min": min(wall_base),
        "load": os.getloadavg(),
    }
    _RESULTS[store] = res
    benchmark.extra_info.update({k: v for k, v in res.items() if k != "load"})
    benchmark.pedantic(lambda: _cpu(run, env), rounds=1, iterations=1)  # the wall time in the table
    assert res["cpu_ratio"] > 0


class _Summary:
    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: Any) -> None:
        if not _RESULTS:
            return
        tr = terminalreporter
        tr.section("flowctx cold start: CPU time (user+sys), minimum of the runs")
        for store, r in _RESULTS.items():
            met = "met" if r["cpu_ratio"] <= BAR else "MISSED"
            tr.write_line(
                f"{store:<7} flowctx run {r['cpu_run_min'] * 1e3:6.0f} ms   import jinja2, yaml "
                f"{r['cpu_base_min'] * 1e3:5.0f} ms   ratio {r['cpu_ratio']:.2f}   bar <= {BAR}: {met}   "
                f"(wall {r['wall_run_min'] * 1e3:.0f} / {r['wall_base_min'] * 1e3:.0f} ms; {r['runs']} runs; "
                f"load {r['load'][0]:.1f})"
            )


@pytest.fixture(scope="module", autouse=True)
def _register_summary(request: pytest.FixtureRequest) -> None:
    pm = request.config.pluginmanager
    if not pm.has_plugin("flowctx-coldstart-summary"):
        pm.register(_Summary(), "flowctx-coldstart-summary")
