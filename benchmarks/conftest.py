"""Benchmark fixtures: the ``backend`` idea of ``tests/conftest.py`` plus a deep-copy baseline.

Run with ``pytest benchmarks/`` (plain ``pytest`` never collects this directory) and, for the
side-by-side view, ``--benchmark-group-by=group``.  ``--benchmark-disable`` runs every benchmark
body once, as a fast check that the suite has not rotted (CI).

``variant`` is parametrized ``cython`` / ``python`` / ``deepcopy`` and returns a context factory
with the constructor signature of ``flowctx.Context``; ``backend`` (``cython`` / ``python``)
returns the store module, as in the tests.  A missing compiled build makes the cython cases
error, never skip.

The ``pytest_benchmark_update_json`` hook adds the ratios the README quotes to the saved JSON
(``--benchmark-json=FILE`` or ``--benchmark-autosave``), computed from the minimum times of one
run; ``pytest_terminal_summary`` prints them.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

import flowctx
from flowctx.cli.bench import DeepCopyContext, machine

VARIANTS = [pytest.param("cython", marks=pytest.mark.compiled), "python", "deepcopy"]
BACKENDS = [pytest.param("cython", marks=pytest.mark.compiled), "python"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compiled: needs the compiled (Cython) context store")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # the tests' per-test time limit (pyproject: pytest-timeout) is for hangs; a full benchmark
    # run of one case may legitimately take longer on a loaded machine
    for item in items:
        item.add_marker(pytest.mark.timeout(0))


def pytest_report_header(config: pytest.Config) -> str:
    return f"flowctx backend: {flowctx.BACKEND}; machine: {machine()}"


def load_backend(name: str) -> ModuleType:
    if name == "cython":
        return importlib.import_module("flowctx._store")  # raises without a build: error, not skip
    return importlib.import_module("flowctx._store_py")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> ModuleType:
    """The store implementation module (``flowctx._store`` or ``flowctx._store_py``)."""
    return load_backend(request.param)


def _variant(name: str) -> tuple[str, Callable[..., Any], Callable[[Any], Any]]:
    if name == "deepcopy":
        return name, DeepCopyContext, lambda value: value
    mod = load_backend(name)
    return name, mod.Context, mod.freeze


@pytest.fixture(scope="session", params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> tuple[str, Callable[..., Any], Callable[[Any], Any]]:
    """(name, Context factory, freeze function) for cython, python or the deep-copy baseline."""
    return _variant(request.param)


@pytest.fixture(scope="session")
def get_variant() -> Callable[[str], tuple[str, Callable[..., Any], Callable[[Any], Any]]]:
    """``get_variant(name)`` -> what ``variant`` returns, for tests that pick variants per case."""
    return _variant


# --------------------------------------------------------------------------- ratios
def _min_by(benchmarks: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """(group, variant) -> min seconds, from pytest-benchmark's JSON benchmark entries."""
    out: dict[tuple[str, str], float] = {}
    for bench in benchmarks:
        stats = bench.get("stats") or {}
        if "min" not in stats:
            continue
        params = bench.get("params") or {}
        name = params.get("variant") or params.get("backend") or params.get("name") or "reference"
        out[(bench.get("group") or "", name)] = stats["min"]
        if "mean" in stats:
            out[(bench.get("group") or "", name + ":mean")] = stats["mean"]
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or not b else a / b


def compute_ratios(benchmarks: list[dict[str, Any]]) -> dict[str, float | None]:
    t = _min_by(benchmarks)
    ratios: dict[str, float | None] = {}
    empty = t.get(("reference: empty method call", "reference"))
    for size in (0, 10, 50, 100, 500):
        group = f"clone: {size} results"
        for other in ("python", "deepcopy"):
            ratios[f"{other}/cython clone @ {size} results"] = _ratio(t.get((group, other)), t.get((group, "cython")))
    for n in (10, 100, 1000):
        group = f"with_items: {n} items over 1 MB"
        for other in ("python", "deepcopy"):
            ratios[f"{other}/cython with_items @ {n} items"] = _ratio(t.get((group, other)), t.get((group, "cython")))
    ratios["clone-cython/empty-method"] = _ratio(t.get(("clone: 0 results", "cython")), empty)
    ratios["clone-python/empty-method"] = _ratio(t.get(("clone: 0 results", "python")), empty)
    for name in ("cython", "python"):
        ratios[f"clone-{name} @5MB / @empty"] = _ratio(
            t.get(("clone: 500 results", name)), t.get(("clone: 0 results", name))
        )
        ratios[f"with_item-{name} per item @1000 / @10"] = _ratio(
            _per_item(t.get(("with_items: 1000 items over 1 MB", name)), 1000),
            _per_item(t.get(("with_items: 10 items over 1 MB", name)), 10),
        )
    for name in ("cython", "python"):
        ratios[f"gc.collect-{name} @20MB / @empty"] = _ratio(
            t.get(("gc.collect: 20MB context", name)), t.get(("gc.collect: empty context", name))
        )
        # the mean, not the minimum: full collections are rare events the minimum round skips
        ratios[f"per-item-gc-{name} @20MB / @empty (mean)"] = _ratio(
            t.get(("per item, GC on: 20MB context", name + ":mean")),
            t.get(("per item, GC on: empty context", name + ":mean")),
        )
    for op in ("getitem", "get", "iterate"):
        for name in ("cython", "python"):
            ratios[f"read {op}-{name} / plain dict"] = _ratio(t.get((f"read: {op}", name)), t.get((f"read: {op}", "deepcopy")))
    return ratios


def _per_item(seconds: float | None, n: int) -> float | None:
    return None if seconds is None else seconds / n


BARS = {
    "clone-cython/empty-method": ("<=", 2.0),
    "clone-cython @5MB / @empty": ("<=", 1.1),
    "python/cython clone @ 0 results": (">=", 3.0),
    "gc.collect-cython @20MB / @empty": ("<=", 2.0),
    "per-item-gc-cython @20MB / @empty (mean)": ("<=", 1.1),
}


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list[Any], output_json: dict[str, Any]) -> None:
    ratios = compute_ratios(output_json.get("benchmarks", []))
    output_json["flowctx"] = {
        "backend": flowctx.BACKEND,
        "machine": machine(),
        "ratios": ratios,
        "bars": {
            name: {"bar": f"{op} {limit}", "value": ratios.get(name), "met": _met(ratios.get(name), op, limit)}
            for name, (op, limit) in BARS.items()
        },
        "note": "ratios of minimum times measured in one run",
    }


def _met(value: float | None, op: str, limit: float) -> bool | None:
    if value is None:
        return None
    return value <= limit if op == "<=" else value >= limit


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or getattr(session, "disabled", True):
        return
    entries = []
    for bench in getattr(session, "benchmarks", []):
        try:
            entries.append(bench.as_dict(include_data=False))
        except Exception:  # noqa: BLE001 - a summary must never break the run
            continue
    ratios = compute_ratios(entries)
    if not any(v is not None for v in ratios.values()):
        return
    terminalreporter.section("flowctx ratios (minimum times, this run)")
    for name, value in ratios.items():
        if value is not None:
            bar = BARS.get(name)
            mark = ""
            if bar:
                mark = f"   bar {bar[0]} {bar[1]}: {'met' if _met(value, *bar) else 'MISSED'}"
            terminalreporter.write_line(f"{name:<42} {value:>12.2f}{mark}")
