"""End-to-end engine benchmarks (pytest-benchmark): with-items through ``flowctx.Engine``.

    pytest benchmarks/test_bench_engine.py --benchmark-group-by=group --benchmark-json=engine.json
    pytest benchmarks/ --benchmark-disable          # fast check (CI): every case runs once

What runs: a two-task workflow (loaded once with :func:`flowctx.spec.load_workflow`, outside the
timed function).  ``load`` returns a blob of 0 / ~1 MB / ~5 MB (``flowctx.cli.bench.make_results``:
0 / 100 / 500 task-result-like records of ~10 KB) and its transition publishes it as the workflow
variable ``big``; ``fan`` then runs a Python action over 100 / 1,000 / 10,000 items with one
rendered input, ``value: "{{ item() }}"``.  One timed call is one ``Engine.run`` (parameters
validated, context built, both tasks, results collected, output rendered); the timer is divided by
the item count, so every table shows **time per item**, fixed per-run costs included (the
``1 item`` group measures those alone).

Variants (param ``variant``):

* ``cython`` / ``python`` -- compiled store / pure-Python twin, **inline executor**: actions run
  synchronously on the engine thread, so the time is the engine's own per-item overhead (render,
  ``with_item``, scheduling, result collection) plus a trivial action, without thread hand-offs
  whose cost depends on the OS scheduler of a shared 2-core machine;
* ``thread-cython`` / ``thread-python`` -- the default thread executor (32 workers), at 1,000 and
  10,000 items over 0 and 5 MB;
* ``deepcopy`` -- the engine's ``copy_items=True`` mode (compiled store; the context is exported
  and rebuilt per item, what Orquesta-style engines pay).  It costs ~70-100 ms per item at 1 MB
  and ~0.7 s at 5 MB here, so it runs at small counts only (100 items empty, 10 at 1 MB, 2 at
  5 MB); its per-item cost does not fall with the count, so N items take about N x that.

Floor (group ``floor: bare jinja render``): a plain precompiled ``jinja2.Environment()`` render
of the same input, per item, no engine: ``from_string("{{ item }}").render({"item": it})`` and
``compile_expression("item")({"item": it})``.

Ratios (minimum per-item times of one run; printed at the end of the session and written to the
saved JSON under ``flowctx_engine`` by a ``pytest_benchmark_update_json`` hook this module
registers): per item at 10,000 vs 100 items (bar <= 1.2), at 5 MB vs empty (bar <= 1.2), per item
vs the ``Template.render`` floor (bar <= 4).

Issue 15 (``test_issue15_*``): CPU time (``time.process_time``, all threads) per item of the
thread executor, the inline executor and the floor at 10,000 items over ~1 MB, and of YAQL
expressions against their Jinja twins through the Renderer, each case's rounds interleaved in one
run so a loaded machine slows all alike (bars: thread <= 2x the floor, YAQL <= 2x Jinja).  Every run's result is checked (status, item count,
last item, published blob size) so a broken run cannot look fast.
"""
from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from functools import cache, partial
from types import ModuleType
from typing import Any

import jinja2
import pytest

from _workflows import FANOUT_WORKFLOW
from flowctx.actions import frozen_inputs
from flowctx.cli.bench import machine, make_results
from flowctx.engine.runner import Engine
from flowctx.spec import load_workflow

WORKFLOW = FANOUT_WORKFLOW
SPEC = load_workflow(WORKFLOW)  # loaded once; every timed run gets the parsed spec

COUNTS = (100, 1000, 10000)
SIZES_MB = (0, 1, 5)
RESULTS_PER_MB = 100  # make_results(100) is ~1 MB of JSON
THREAD_COUNTS = (1000, 10000)
THREAD_SIZES_MB = (0, 5)
DEEPCOPY_CASES = ((100, 0), (10, 1), (2, 5))  # (items, MB): ~0.1 s / ~0.7 s per item at 1 / 5 MB
FLOOR_ITEMS = 10000

BUDGET = 1.5  # seconds of timed rounds per case
WARMUP = 0.3  # seconds of untimed runs per case before the timed rounds
MIN_ROUNDS, MAX_ROUNDS = 5, 30  # same order of rounds for every count: min-of-N is not biased much

# (variant, items, MB) -> minimum seconds per item; floor name -> seconds per item
_PER_ITEM: dict[tuple[str, int, int], float] = {}
_FLOOR: dict[str, float] = {}
_STATE = {"disabled": False}


# --------------------------------------------------------------------------- inputs
def _store(name: str) -> ModuleType:
    # A missing compiled build makes the cython cases error, never skip (as in conftest.py).
    return importlib.import_module("flowctx._store" if name == "cython" else "flowctx._store_py")


@cache
def _raw_blob(mb: int) -> dict[str, Any]:
    return make_results(mb * RESULTS_PER_MB) if mb else {}


@cache
def _blob(store_name: str, mb: int) -> Any:
    """The blob frozen once per store: the action returns it as it is, so no run pays for freezing
    5 MB (a real action's result would be frozen once, O(size), when the task completes)."""
    return _store(store_name).freeze(_raw_blob(mb))


@cache
def _items(n: int) -> list[str]:
    return [f"host-{i:05d}" for i in range(n)]


def _work(value: Any) -> Any:
    return value


def _engine(store_name: str, mb: int, *, executor: str = "inline", copy_items: bool = False) -> Engine:
    blob = _blob(store_name, mb)
    return Engine(
        actions={"bench.work": _work, "bench.blob": lambda: blob},
        executor=executor,
        store=_store(store_name),
        copy_items=copy_items,
    )


def _check(res: Any, n: int, mb: int) -> None:
    assert res.status == "succeeded", res.reason
    fan = res.task("fan")
    assert fan.status == "succeeded" and fan.items == n
    assert len(fan.result) == n and fan.result[-1] == f"host-{n - 1:05d}" and fan.result[0] == "host-00000"
    assert res.metrics["items_run"] == n
    assert res.output == {"keys": mb * RESULTS_PER_MB}  # the blob really was published


# --------------------------------------------------------------------------- timing
def _per_item(benchmark: Any, fn: Callable[[], Any], n: int, key: Any, into: dict[Any, float]) -> Any:
    """Time ``fn`` (one run over ``n`` items) with pytest-benchmark, reporting seconds per item.

    Untimed warm-up runs (``WARMUP`` seconds, at least one), then enough rounds to fill
    ``BUDGET`` (clamped to ``MIN_ROUNDS..MAX_ROUNDS``); pytest-benchmark's timer is divided by
    ``n`` so its table and JSON show per-item times.  Under ``--benchmark-disable`` the body runs once and that single
    run's time is kept (indicative only).
    """
    if getattr(benchmark, "disabled", False):
        _STATE["disabled"] = True
        start = time.perf_counter()
        out = benchmark.pedantic(fn, rounds=1, iterations=1)
        into[key] = (time.perf_counter() - start) / n
        return out
    # Warm-up, untimed: at least one run and WARMUP seconds (templates compiled, caches and
    # the CPU clock settled; without it the first cases of a session read ~1.5-2x slow here).
    runs = 0
    start = time.perf_counter()
    while True:
        fn()
        runs += 1
        spent = time.perf_counter() - start
        if spent >= WARMUP:
            break
    first = spent / runs
    rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(BUDGET / max(first, 1e-9))))
    if first * rounds > 4 * BUDGET:  # the deep-copy cases: a few rounds are plenty
        rounds = 3
    benchmark.extra_info["items"] = n
    benchmark.extra_info["unit"] = "seconds per item"
    base_timer = benchmark._timer  # pytest-benchmark's timer (time.perf_counter by default)
    benchmark._timer = lambda: base_timer() / n
    try:
        out = benchmark.pedantic(fn, rounds=rounds, iterations=1)
    finally:
        benchmark._timer = base_timer
    into[key] = benchmark.stats.stats.min
    return out


# --------------------------------------------------------------------------- cases
ENGINE_CASES = (
    [
        pytest.param(v, n, mb, marks=[pytest.mark.compiled] if v == "cython" else [], id=f"{v}-{n}-{mb}MB")
        for mb in SIZES_MB
        for n in COUNTS
        for v in ("cython", "python")
    ]
    + [
        pytest.param(v, n, mb, marks=[pytest.mark.compiled] if v.endswith("cython") else [], id=f"{v}-{n}-{mb}MB")
        for mb in THREAD_SIZES_MB
        for n in THREAD_COUNTS
        for v in ("thread-cython", "thread-python")
    ]
    + [pytest.param("deepcopy", n, mb, marks=[pytest.mark.compiled], id=f"deepcopy-{n}-{mb}MB") for n, mb in DEEPCOPY_CASES]
    + [pytest.param(v, 1, 0, marks=[pytest.mark.compiled] if v == "cython" else [], id=f"{v}-1-0MB") for v in ("cython", "python")]
)


@pytest.mark.parametrize("variant,n,mb", ENGINE_CASES)
def test_engine_with_items(benchmark: Any, variant: str, n: int, mb: int) -> None:
    """One ``Engine.run`` of the workflow over ``n`` items and a ``mb`` MB published blob."""
    benchmark.group = f"engine: {n} items, {mb} MB" if n > 1 else "engine: 1 item (per-run fixed cost)"
    benchmark.extra_info["context_mb"] = mb
    if variant == "deepcopy":
        engine = _engine("cython", mb, copy_items=True)
        benchmark.extra_info["note"] = "copy_items=True (export + rebuild the context per item), compiled store"
    elif variant.startswith("thread-"):
        engine = _engine(variant.split("-", 1)[1], mb, executor="thread")
    else:
        engine = _engine(variant, mb)
    benchmark.extra_info["executor"] = "thread" if variant.startswith("thread-") else "inline"
    params = {"items": _items(n)}

    def run() -> Any:
        return engine.run(SPEC, params)

    res = _per_item(benchmark, run, n, (variant, n, mb), _PER_ITEM)
    _check(res, n, mb)


@pytest.mark.parametrize("floor", ["Template.render", "compile_expression"])
def test_render_floor(benchmark: Any, floor: str) -> None:
    """The floor: a bare precompiled Jinja render of the same input per item (no engine)."""
    benchmark.group = "floor: bare jinja render"
    env = jinja2.Environment()
    items = _items(FLOOR_ITEMS)
    if floor == "Template.render":
        render = env.from_string("{{ item }}").render
    else:
        render = env.compile_expression("item")

    def run() -> Any:
        out = None
        for it in items:
            out = render({"item": it})
        return out

    out = _per_item(benchmark, run, FLOOR_ITEMS, floor, _FLOOR)
    assert out == items[-1]


# --------------------------------------------------------------------------- action inputs
INPUTS_WORKFLOW = load_workflow(FANOUT_WORKFLOW.replace('value: "{{ item() }}"', 'value: "{{ ctx().big }}"'))
INPUTS_ITEMS = 20


def _take(value: Any) -> Any:
    return len(value)


@frozen_inputs
def _take_frozen(value: Any) -> Any:
    return len(value)


@pytest.mark.parametrize("mode", ["copy", "frozen_inputs"])
@pytest.mark.parametrize("store_name", [pytest.param("cython", marks=pytest.mark.compiled), "python"])
def test_action_inputs(benchmark: Any, store_name: str, mode: str) -> None:
    """What handing a 1 MB context value to a Python action costs per call: by default the
    action gets a plain copy (``actions.base.action_inputs`` thaws it in the calling thread or
    worker); ``frozen_inputs=True`` hands over the frozen value itself."""
    benchmark.group = f"action inputs: 1 MB input, {INPUTS_ITEMS} items ({store_name})"
    blob = _blob(store_name, 1)
    engine = Engine(
        actions={"bench.work": _take if mode == "copy" else _take_frozen, "bench.blob": lambda: blob},
        executor="inline",
        store=_store(store_name),
    )
    params = {"items": _items(INPUTS_ITEMS)}

    def run() -> Any:
        return engine.run(INPUTS_WORKFLOW, params)

    res = _per_item(benchmark, run, INPUTS_ITEMS, (f"inputs-{mode}-{store_name}", INPUTS_ITEMS, 1), _PER_ITEM)
    assert res.status == "succeeded", res.reason
    assert res.task("fan").result == [RESULTS_PER_MB] * INPUTS_ITEMS


# --------------------------------------------------------------------------- issue 15: CPU time
# CPU time (time.process_time: every thread of the process) per item, measured interleaved in one
# run so the load of a shared machine hits every case alike; the minimum of the rounds is kept.
CPU_ITEMS = 10000
CPU_ROUNDS = 7
BAR_THREAD_CPU = 2.0  # thread executor / bare Template.render floor
BAR_YAQL = 2.0  # a YAQL expression / its Jinja twin
# (YAQL, Jinja twin): the bare item() has a direct reader; the others are evaluated
YAQL_PAIRS = (
    ("<% item() %>", "{{ item() }}"),
    ("<% item() + '' %>", "{{ item() ~ '' }}"),
    ("<% ctx().big.len() + 1 %>", "{{ (ctx().big | length) + 1 }}"),
    ("<% $.big.keys().len() %>", "{{ ctx().big.keys() | list | length }}"),
    ("<% item() = 'host-00001' and true %>", "{{ item() == 'host-00001' and true }}"),
)
_CPU: dict[str, float] = {}  # name -> CPU seconds per item (minimum of the rounds)


def _cpu_rounds(cases: dict[str, Callable[[], Any]], per: int, rounds: int) -> dict[str, float]:
    """Interleaved rounds of every case; the minimum CPU seconds per item of each."""
    best: dict[str, float] = {}
    for fn in cases.values():  # warm-up: templates compiled, pools started
        fn()
    for _ in range(rounds):
        for name, fn in cases.items():
            t0 = time.process_time()
            fn()
            spent = (time.process_time() - t0) / per
            best[name] = min(best.get(name, spent), spent)
    return best


@pytest.mark.compiled
def test_issue15_cpu_ratios(benchmark: Any) -> None:
    """Thread executor, inline executor and the floor, CPU time per item, 10,000 items over
    ~1 MB, interleaved in one run (the thread executor's bar: <= 2x the floor)."""
    benchmark.group = "issue 15: CPU time per item (10,000 items, 1 MB)"
    disabled = getattr(benchmark, "disabled", False)
    n = 1000 if disabled else CPU_ITEMS
    params = {"items": _items(n)}
    inline, thread = _engine("cython", 1), _engine("cython", 1, executor="thread")
    render = jinja2.Environment().from_string("{{ item }}").render
    items = _items(n)

    def floor() -> None:
        for it in items:
            render({"item": it})

    def run(engine: Engine) -> Callable[[], None]:
        def go() -> None:
            _check(engine.run(SPEC, params), n, 1)

        return go

    best = _cpu_rounds({"floor": floor, "inline": run(inline), "thread": run(thread)}, n, 1 if disabled else CPU_ROUNDS)
    _CPU.update({f"cpu {k}": v for k, v in best.items()})
    benchmark.extra_info.update({k: v for k, v in best.items()})
    benchmark.pedantic(run(thread), rounds=1, iterations=1)


@pytest.mark.compiled
def test_issue15_yaql_vs_jinja(benchmark: Any) -> None:
    """Each YAQL expression against its Jinja twin, rendered per item through the Renderer over
    a with-items handle of a context holding the ~1 MB blob (CPU time, interleaved)."""
    from flowctx.render import Renderer

    benchmark.group = "issue 15: YAQL vs Jinja per render"
    disabled = getattr(benchmark, "disabled", False)
    store = _store("cython")
    r = Renderer()
    ctx = store.Context({"items": []}, {"big": _blob("cython", 1)})
    n = 200 if disabled else 2000
    handles = [ctx.with_item(store.freeze(it), i) for i, it in enumerate(_items(n))]
    cases: dict[str, Callable[[], None]] = {}
    for y, j in YAQL_PAIRS:
        ry, rj = r.render_template(y, handles[1]), r.render_template(j, handles[1])
        assert ry == rj or (isinstance(ry, bool) and ry == bool(rj)), (y, ry, j, rj)

        def go(src: str = "") -> None:
            rt = r.render_template
            for h in handles:
                rt(src, h)

        cases[y] = partial(go, y)
        cases[j] = partial(go, j)
    best = _cpu_rounds(cases, n, 1 if disabled else CPU_ROUNDS)
    _CPU.update({f"render {k}": v for k, v in best.items()})
    benchmark.pedantic(cases[YAQL_PAIRS[1][0]], rounds=1, iterations=1)


def issue15_ratios() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    fl = _CPU.get("cpu floor")
    for name, bar in (("thread", BAR_THREAD_CPU), ("inline", None)):
        v = _r(_CPU.get(f"cpu {name}"), fl)
        if v is not None:
            out[f"issue 15: {name} executor CPU / floor CPU, 10,000 items, 1 MB"] = {
                "value": v, "bar": None if bar is None else f"<= {bar}", "met": None if bar is None else v <= bar}
    for y, j in YAQL_PAIRS:
        v = _r(_CPU.get(f"render {y}"), _CPU.get(f"render {j}"))
        if v is not None:
            out[f"issue 15: YAQL {y} / Jinja {j}"] = {"value": v, "bar": f"<= {BAR_YAQL}", "met": v <= BAR_YAQL}
    return out


# --------------------------------------------------------------------------- ratios
BAR_10K_VS_100 = 1.2
BAR_5MB_VS_EMPTY = 1.2
BAR_VS_FLOOR = 4.0


def _r(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or not b else a / b


def compute_ratios(per_item: dict[tuple[str, int, int], float], floor: dict[str, float]) -> dict[str, dict[str, Any]]:
    """name -> {"value", "bar" (or None), "met" (or None)}."""
    out: dict[str, dict[str, Any]] = {}

    def add(name: str, value: float | None, bar: float | None = None) -> None:
        if value is None:
            return
        out[name] = {"value": value, "bar": None if bar is None else f"<= {bar}", "met": None if bar is None else value <= bar}

    t = per_item.get
    fl = floor.get("Template.render")
    for v in ("cython", "python"):
        for mb in SIZES_MB:
            add(f"{v}: per item @10,000 / @100 items, {mb} MB", _r(t((v, 10000, mb)), t((v, 100, mb))), BAR_10K_VS_100)
        for n in COUNTS:
            add(f"{v}: per item @5 MB / @0 MB, {n} items", _r(t((v, n, 5)), t((v, n, 0))), BAR_5MB_VS_EMPTY)
        for mb in SIZES_MB:
            add(f"{v}: per item / Template.render floor, 10,000 items, {mb} MB", _r(t((v, 10000, mb)), fl), BAR_VS_FLOOR)
        add(f"{v}: per item / compile_expression floor, 10,000 items, 0 MB", _r(t((v, 10000, 0)), floor.get("compile_expression")))
    for n, mb in DEEPCOPY_CASES:  # against the compiled store's steady per-item cost
        ref = t(("cython", 10000, mb))
        add(f"deepcopy @{n} items / cython @10,000 items, per item, {mb} MB", _r(t(("deepcopy", n, mb)), ref))
    for v in ("cython", "python"):
        for n in THREAD_COUNTS:
            for mb in THREAD_SIZES_MB:
                add(f"thread/inline {v}, per item, {n} items, {mb} MB", _r(t((f"thread-{v}", n, mb)), t((v, n, mb))))
    out.update(issue15_ratios())
    return out


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    us = seconds * 1e6
    if us >= 1e5:
        return f"{us / 1e6:.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:.1f} ms"
    return f"{us:.1f} µs"


def table_lines() -> list[str]:
    """A Markdown table of the per-item minimum times of this run."""
    cols = ["cython", "python", "thread-cython", "thread-python", "deepcopy"]
    lines = [
        "| items | context | " + " | ".join(f"{c} (inline)" if c in ("cython", "python") else c for c in cols) + " |",
        "|---:|---:|" + "---:|" * len(cols),
    ]
    for mb in SIZES_MB:
        for n in (1, *COUNTS, *(n for n, m in DEEPCOPY_CASES if m == mb and n not in COUNTS)):
            if n == 1 and mb:
                continue
            cells = [_PER_ITEM.get((c, n, mb)) for c in cols]
            if not any(c is not None for c in cells):
                continue
            lines.append(f"| {n:,} | {mb} MB | " + " | ".join(_fmt(c) for c in cells) + " |")
    for name, value in _FLOOR.items():
        lines.append(f"| floor: jinja2 `{name}` | - | {_fmt(value)} per item | | | | |")
    return lines


class _Summary:
    """Registered as a plugin by this module: adds the ratios to the saved JSON and prints them."""

    @pytest.hookimpl
    def pytest_benchmark_update_json(self, config: Any, benchmarks: Any, output_json: dict[str, Any]) -> None:
        if not _PER_ITEM and not _FLOOR and not _CPU:
            return
        output_json["flowctx_engine"] = {
            "machine": machine(),
            "unit": "seconds per item (minimum of the rounds)",
            "per_item": {f"{v}/{n}/{mb}MB": s for (v, n, mb), s in _PER_ITEM.items()},
            "floor": dict(_FLOOR),
            "cpu_per_item": dict(_CPU),
            "ratios": compute_ratios(_PER_ITEM, _FLOOR),
        }

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: Any) -> None:
        if not _PER_ITEM and not _FLOOR and not _CPU:
            return
        title = "flowctx engine: per-item times and ratios"
        if _STATE["disabled"]:
            title += " (--benchmark-disable: single runs, indicative only)"
        tr = terminalreporter
        tr.section(title)
        tr.write_line(f"machine: {machine()}")
        for line in table_lines():
            tr.write_line(line)
        for name, value in _CPU.items():
            tr.write_line(f"{name}: {_fmt(value)} CPU per item")
        tr.write_line("")
        for name, r in compute_ratios(_PER_ITEM, _FLOOR).items():
            mark = "" if r["bar"] is None else f"   bar {r['bar']}: {'met' if r['met'] else 'MISSED'}"
            tr.write_line(f"{name:<66} {r['value']:>10.2f}{mark}")


_PLUGIN_NAME = "flowctx-engine-bench-summary"


@pytest.fixture(scope="module", autouse=True)
def _register_summary(request: pytest.FixtureRequest) -> None:
    pm = request.config.pluginmanager
    if not pm.has_plugin(_PLUGIN_NAME):
        pm.register(_Summary(), _PLUGIN_NAME)
