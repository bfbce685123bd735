"""``flowctx bench``: measure the context store live on this machine.

Prints two tables, for the compiled store, the pure-Python twin and a deep-copy baseline (what
engines that copy the context per branch/item pay):

* clone time by context size: 0, 10, 50, 100, 500 task results of ~10 KB (0 to ~5 MB);
* with-items: a context holding 100 task results (~1 MB), ``with_item`` for 10, 100, 1000 items.

Timing is timeit-style: a batch size found by auto-ranging, the minimum over several repeats.
The helpers here (data builders, the deep-copy baseline, the empty-method reference) are also
used by the pytest-benchmark suite in ``benchmarks/``, so both measure the same thing.
"""
from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import flowctx

CLONE_SIZES = (0, 10, 50, 100, 500)
ITEM_COUNTS = (10, 100, 1000)
ITEMS_CONTEXT_RESULTS = 100  # ~1 MB
RESULT_ROWS = 80  # ~10 KB of JSON per task result

DESCRIPTION = """\
Measure the workflow context store on this machine and print two tables:

  1. clone time by context size (0, 10, 50, 100, 500 task results of ~10 KB each, 0 to ~5 MB);
  2. with-items: with_item() for 10, 100, 1000 items over a ~1 MB context (per-item cost).

Each is measured for the compiled store (cython), its pure-Python twin (python) and a deep-copy
baseline (deepcopy: copy.deepcopy of the same data on every clone, what engines that copy the
context per branch or item pay), with ratios and an empty Python method call as the reference.
The active backend (flowctx.BACKEND) is named in the header."""

EPILOG = """\
examples:
  flowctx bench            full run, a few seconds
  flowctx bench --quick    about a second (CI); the deep-copy baseline stops at ~1 MB
  flowctx bench --json     machine-readable output (same numbers, in nanoseconds)"""


# --------------------------------------------------------------------------- shared helpers
def make_result(i: int) -> dict[str, Any]:
    """A task result of ~10 KB of JSON: a typical action output (status + rows of records)."""
    return {
        "status": "succeeded",
        "rc": 0,
        "task": f"task-{i}",
        "rows": [
            {"id": j, "name": f"host-{i}-{j}", "tags": ["web", "prod"], "payload": "x" * 56}
            for j in range(RESULT_ROWS)
        ],
    }


def make_results(n: int) -> dict[str, dict[str, Any]]:
    """``n`` task results of ~10 KB each, keyed ``task0`` ... ``task{n-1}``."""
    return {f"task{i}": make_result(i) for i in range(n)}


def make_items(n: int) -> list[dict[str, Any]]:
    """``n`` small with-items elements."""
    return [{"host": f"host-{i}", "port": 8000 + i} for i in range(n)]


class DeepCopyContext:
    """The baseline: a context of plain dicts that deep-copies everything on clone/with_item."""

    __slots__ = ("parameters", "variables", "task_results", "system", "item", "index")

    def __init__(
        self,
        parameters: dict[str, Any] | None = None,
        variables: dict[str, Any] | None = None,
        task_results: dict[str, Any] | None = None,
        system: dict[str, Any] | None = None,
    ) -> None:
        self.parameters = copy.deepcopy(parameters or {})
        self.variables = copy.deepcopy(variables or {})
        self.task_results = copy.deepcopy(task_results or {})
        self.system = copy.deepcopy(system or {})
        self.item: Any = None
        self.index: int | None = None

    def clone(self) -> DeepCopyContext:
        new = DeepCopyContext.__new__(DeepCopyContext)
        new.parameters = copy.deepcopy(self.parameters)
        new.variables = copy.deepcopy(self.variables)
        new.task_results = copy.deepcopy(self.task_results)
        new.system = copy.deepcopy(self.system)
        new.item, new.index = copy.deepcopy(self.item), self.index
        return new

    def with_item(self, item: Any, index: int) -> DeepCopyContext:
        new = self.clone()
        new.item, new.index = copy.deepcopy(item), index
        return new

    def get_task_result(self, name: str, default: Any = None) -> Any:
        return self.task_results.get(name, default)


class EmptyMethod:
    """The reference: an empty Python method call, timed the same way as ``clone``."""

    def method(self) -> None:
        pass


def load_compiled() -> tuple[ModuleType | None, str | None]:
    """The compiled store module, or None and the reason it cannot be imported."""
    try:
        return importlib.import_module("flowctx._store"), None
    except ImportError as exc:
        return None, str(exc)


def context_factories() -> tuple[dict[str, Callable[..., Any]], str | None]:
    """Context constructors by variant name (cython only if importable) and the import error."""
    compiled, error = load_compiled()
    factories: dict[str, Callable[..., Any]] = {}
    if compiled is not None:
        factories["cython"] = compiled.Context
    factories["python"] = importlib.import_module("flowctx._store_py").Context
    factories["deepcopy"] = DeepCopyContext
    return factories, error


# --------------------------------------------------------------------------- timing
def time_call(func: Callable[[], Any], repeat: int, min_batch_time: float) -> float:
    """Seconds per call: timeit-style auto-ranged batch, minimum over ``repeat`` batches."""
    number = 1
    while True:  # auto-range: grow the batch until it takes at least min_batch_time
        elapsed = _batch(func, number)
        if elapsed >= min_batch_time or number >= 10_000_000:
            break
        number *= 10 if elapsed < min_batch_time / 10 else 2
    best = elapsed / number
    for _ in range(repeat - 1):
        best = min(best, _batch(func, number) / number)
    return best


def _batch(func: Callable[[], Any], number: int) -> float:
    loop = range(number)
    start = time.perf_counter()
    for _ in loop:
        func()
    return time.perf_counter() - start


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def run(quick: bool = False) -> dict[str, Any]:
    """Run both measurements and return the results (times in nanoseconds)."""
    started = time.perf_counter()
    repeat, batch = (3, 0.002) if quick else (5, 0.02)
    deepcopy_max_results = 100 if quick else max(CLONE_SIZES)  # --quick: ~1 MB at most
    factories, error = context_factories()
    variants = list(factories)
    results = make_results(max(CLONE_SIZES))
    names = list(results)

    empty = EmptyMethod()
    empty_ns = time_call(empty.method, repeat, batch) * 1e9

    clone_rows = []
    for n in CLONE_SIZES:
        subset = {k: results[k] for k in names[:n]}
        row: dict[str, Any] = {"results": n, "bytes": len(json.dumps(subset)) if n else 0}
        for variant, factory in factories.items():
            if variant == "deepcopy" and n > deepcopy_max_results:
                row[variant] = None
                continue
            ctx = factory(task_results=subset)
            clone = ctx.clone
            assert clone().get_task_result(names[n - 1] if n else "none") == (subset[names[n - 1]] if n else None)
            if variant == "deepcopy":
                row[variant] = time_call(clone, 1 if quick else 2, 0.0) * 1e9
            else:
                row[variant] = time_call(clone, repeat, batch) * 1e9
        clone_rows.append(row)

    item_rows = []
    items_data = {k: results[k] for k in names[:ITEMS_CONTEXT_RESULTS]}
    item_contexts = {v: f(task_results=items_data) for v, f in factories.items()}
    for count in ITEM_COUNTS:
        items = make_items(count)
        row = {"items": count}
        for variant, ctx in item_contexts.items():
            if variant == "deepcopy":
                # deep copies cost ~the same per item whatever the count: measured on 10 items
                # (and not at all in --quick); larger counts are that per-item cost.
                if quick:
                    row[variant] = None
                    continue
                if count == ITEM_COUNTS[0]:
                    sample = items
                    # time_call runs the lambda before the loop moves on: the late binding is harmless
                    per_item = time_call(lambda: [ctx.with_item(it, i) for i, it in enumerate(sample)], 1, 0.0)  # noqa: B023
                    deepcopy_per_item = per_item / len(sample) * 1e9
                row[variant] = deepcopy_per_item
                row["deepcopy_projected"] = count != ITEM_COUNTS[0]
                continue
            with_item = ctx.with_item
            frozen_items = [_freeze_for(variant, it) for it in items]

            def fan_out(with_item: Callable[[Any, int], Any] = with_item, its: list[Any] = frozen_items) -> list[Any]:
                return [with_item(it, i) for i, it in enumerate(its)]

            out = fan_out()
            assert len(out) == count and out[-1].index == count - 1 and out[-1].item["host"] == f"host-{count - 1}"
            row[variant] = time_call(fan_out, repeat, batch / 2) / count * 1e9
        item_rows.append(row)

    ref_small = clone_rows[0]
    ref_big = clone_rows[-1]
    ratios = {
        "python/cython clone (empty)": _ratio(ref_small.get("python"), ref_small.get("cython")),
        "python/cython clone (5 MB)": _ratio(ref_big.get("python"), ref_big.get("cython")),
        "deepcopy/cython clone (1 MB)": _ratio(clone_rows[3].get("deepcopy"), clone_rows[3].get("cython")),
        "deepcopy/cython clone (5 MB)": _ratio(ref_big.get("deepcopy"), ref_big.get("cython")),
        "cython clone / empty method call": _ratio(ref_small.get("cython"), empty_ns),
        "cython clone 5 MB / empty": _ratio(ref_big.get("cython"), ref_small.get("cython")),
        "python clone 5 MB / empty": _ratio(ref_big.get("python"), ref_small.get("python")),
        "python/cython with_item (1000 items)": _ratio(item_rows[-1].get("python"), item_rows[-1].get("cython")),
    }
    return {
        "backend": flowctx.BACKEND,
        "compiled_available": "cython" in variants,
        "compiled_error": error,
        "machine": machine(),
        "quick": quick,
        "empty_method_ns": empty_ns,
        "clone": clone_rows,
        "with_items": item_rows,
        "ratios": ratios,
        "seconds": time.perf_counter() - started,
    }


def _freeze_for(variant: str, value: Any) -> Any:
    """Items are frozen once, before the fan-out (an engine freezes the items list once)."""
    if variant == "cython":
        return importlib.import_module("flowctx._store").freeze(value)
    return importlib.import_module("flowctx._store_py").freeze(value)


def machine() -> str:
    return (
        f"{os.cpu_count()}-core {platform.machine()}, {platform.system()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()})"
    )


# --------------------------------------------------------------------------- output
def _fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.1f} ms"
    if ns >= 1e4:
        return f"{ns / 1e3:.1f} us"
    return f"{ns:.0f} ns"


def _fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r:,.0f}x" if r >= 100 else f"{r:.2f}x"


def _fmt_bytes(n: int) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    if n >= 1e3:
        return f"{n / 1e3:.0f} KB"
    return f"{n} B"


def render(report: dict[str, Any]) -> str:
    variants = [v for v in ("cython", "python", "deepcopy") if any(v in r for r in report["clone"])]
    lines = [
        f"flowctx context store benchmark -- active backend: {report['backend']}",
        f"machine: {report['machine']}",
    ]
    if not report["compiled_available"]:
        lines.append(
            "compiled store NOT importable (" + str(report["compiled_error"]) + "); "
            "showing the pure-Python twin and the deep-copy baseline only"
        )
    lines.append("")
    lines.append("Clone time by context size (per clone; timeit-style minimum of repeats)")
    head = f"{'results':>7}  {'size':>8}" + "".join(f"  {v:>9}" for v in variants)
    ratio_cols = [c for c in ("python", "deepcopy") if c in variants and "cython" in variants]
    head += "".join(f"  {c + '/cython':>15}" for c in ratio_cols)
    lines += [head, "-" * len(head)]
    for row in report["clone"]:
        line = f"{row['results']:>7}  {_fmt_bytes(row['bytes']):>8}" + "".join(
            f"  {_fmt_ns(row.get(v)):>9}" for v in variants
        )
        line += "".join(f"  {_fmt_ratio(_ratio(row.get(c), row.get('cython'))):>15}" for c in ratio_cols)
        lines.append(line)
    lines.append("")
    lines.append(f"Empty Python method call: {_fmt_ns(report['empty_method_ns'])}")
    lines.append("")
    lines.append(f"with-items over a ~1 MB context ({ITEMS_CONTEXT_RESULTS} task results): per item")
    head = f"{'items':>7}" + "".join(f"  {v:>9}" for v in variants)
    head += "".join(f"  {c + '/cython':>15}" for c in ratio_cols)
    lines += [head, "-" * len(head)]
    for row in report["with_items"]:
        line = f"{row['items']:>7}" + "".join(f"  {_fmt_ns(row.get(v)):>9}" for v in variants)
        line += "".join(f"  {_fmt_ratio(_ratio(row.get(c), row.get('cython'))):>15}" for c in ratio_cols)
        if row.get("deepcopy_projected"):
            line += "   (deepcopy: per-item cost measured at 10 items)"
        lines.append(line)
    lines.append("")
    lines.append("Ratios")
    for name, value in report["ratios"].items():
        if value is not None:
            lines.append(f"  {name:<40} {_fmt_ratio(value)}")
    if report["quick"]:
        lines.append("(--quick: fewer repeats; the deep-copy baseline stops at ~1 MB and skips with-items)")
    lines.append(f"({report['seconds']:.1f} s)")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    report = run(quick=args.quick)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(report))
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure the context store (clone and with-items tables) on this machine",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="finish in about a second (fewer repeats, smaller baseline)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON (times in nanoseconds)")
    parser.set_defaults(func=main)
