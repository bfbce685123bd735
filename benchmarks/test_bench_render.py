"""Renderer benchmarks (pytest-benchmark).

Groups:
* ``render-simple``: a cached simple template through flowctx vs a plain
  ``jinja2.Template.render(dict)`` of the same text (target: flowctx <= 0.6x).
* ``render-compile``: cached render vs compiling the template each time.
* ``with-items-<backend>``: 1,000 items, ``with_item`` + one rendered input each, over a context of
  0 / 1 / 5 MB, against a deep-copy-the-context baseline.

Ratios are printed at the end of the session and stored in each benchmark's ``extra_info``.
Works with ``--benchmark-disable`` (each body then runs once as a smoke test).
"""
from __future__ import annotations

import copy
import importlib
import time

import jinja2
import pytest

from flowctx.render import Renderer

SIMPLE = "Deploying {{ parameters.app_name }} v{{ parameters.version }} to {{ vars.region }}"
PARAMS = {"app_name": "shop", "version": "1.2.3", "environment": "production"}
VARS = {"region": "eu-west"}
N_ITEMS = 1000
_RATIOS: dict[str, float] = {}


def _store(name: str):
    try:
        return importlib.import_module("flowctx._store" if name == "cython" else "flowctx._store_py")
    except ImportError:  # pragma: no cover
        pytest.skip("compiled store not built")


def _backend_name(store) -> str:
    return "python" if store.__name__.endswith("_py") else "cython"


@pytest.fixture(scope="module", params=["cython", "python"])
def store(request):
    return _store(request.param)


def _per_call(fn, n: int = 20000) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def _blob(mb: float) -> dict:
    n = int(mb * 1024)
    return {f"k{i}": {"name": f"item-{i}", "data": "x" * 900, "tags": ["a", "b", "c"]} for i in range(n)}


# --------------------------------------------------------------------------- simple template
@pytest.mark.benchmark(group="render-simple")
def test_plain_jinja_template_render(benchmark):
    tmpl = jinja2.Template(SIMPLE)
    data = {"parameters": PARAMS, "vars": VARS}
    out = benchmark(tmpl.render, data)
    assert out == "Deploying shop v1.2.3 to eu-west"


@pytest.mark.benchmark(group="render-simple")
def test_flowctx_render_cached(benchmark, store):
    r = Renderer()
    ctx = store.Context(PARAMS, VARS)
    out = benchmark(r.render_template, SIMPLE, ctx)
    assert out == "Deploying shop v1.2.3 to eu-west"
    plain = jinja2.Template(SIMPLE)
    data = {"parameters": PARAMS, "vars": VARS}
    ratio = _per_call(lambda: r.render_template(SIMPLE, ctx)) / _per_call(lambda: plain.render(data))
    benchmark.extra_info["ratio_vs_plain_template_render"] = round(ratio, 3)
    _RATIOS[f"simple template, flowctx/plain Template.render ({_backend_name(store)})"] = ratio


@pytest.mark.benchmark(group="render-simple")
def test_flowctx_native_expression_cached(benchmark, store):
    r = Renderer()
    ctx = store.Context(PARAMS, VARS)
    out = benchmark(r.render_template, "{{ parameters.version }}", ctx)
    assert out == "1.2.3"


@pytest.mark.benchmark(group="render-simple")
def test_flowctx_condition_cached(benchmark, store):
    r = Renderer()
    ctx = store.Context(PARAMS, VARS)
    assert benchmark(r.evaluate_condition, "parameters.environment == 'production'", ctx) is True


# --------------------------------------------------------------------------- cached vs compile
@pytest.mark.benchmark(group="render-compile")
def test_render_cached(benchmark):
    r = Renderer()
    ctx = _store("python").Context(PARAMS, VARS)
    benchmark(r.render_template, SIMPLE, ctx)


@pytest.mark.benchmark(group="render-compile")
def test_render_compile_each_time(benchmark):
    ctx = _store("python").Context(PARAMS, VARS)
    r = Renderer(cache_size=0)  # lru_cache(maxsize=0): every render compiles
    benchmark(r.render_template, SIMPLE, ctx)
    cached = Renderer()
    ratio = _per_call(lambda: r.render_template(SIMPLE, ctx), 2000) / _per_call(lambda: cached.render_template(SIMPLE, ctx))
    benchmark.extra_info["ratio_compile_vs_cached"] = round(ratio, 1)
    _RATIOS["compile-each-time / cached"] = ratio


# --------------------------------------------------------------------------- with-items
INPUT = {"region": "{{ item.region }}", "app": "{{ parameters.app_name }}", "n": "{{ index }}"}


def _items():
    return [{"region": f"r{i}", "i": i} for i in range(N_ITEMS)]


@pytest.mark.parametrize("mb", [0, 1, 5])
def test_with_items_flowctx(benchmark, store, mb):
    benchmark.group = f"with-items-{_backend_name(store)}"
    r = Renderer()
    ctx = store.Context(PARAMS, {"blob": _blob(mb)} if mb else {}, {"t0": {"status": "succeeded", "result": _blob(mb)}})
    items = store.freeze(_items())

    def run():
        out = None
        for i, it in enumerate(items):
            out = r.render_json(INPUT, ctx.with_item(it, i))
        return out

    out = benchmark(run)
    assert out == {"region": f"r{N_ITEMS - 1}", "app": "shop", "n": N_ITEMS - 1}
    per_item = _per_call(run, 3) / N_ITEMS
    benchmark.extra_info["per_item_us"] = round(per_item * 1e6, 2)
    _RATIOS[f"with-items per item µs, {mb} MB ({_backend_name(store)})"] = per_item * 1e6


@pytest.mark.parametrize("mb", [1])
def test_with_items_deepcopy_baseline(benchmark, mb):
    benchmark.group = "with-items-python"
    data = {"parameters": PARAMS, "variables": {"blob": _blob(mb)}, "task_results": {"t0": _blob(mb)}}
    tmpl = {k: jinja2.Template(v) for k, v in INPUT.items()}
    items = _items()[:20]  # a deep copy of 2 MB per item: 20 items is plenty to measure

    def run():
        out = None
        for i, it in enumerate(items):
            c = copy.deepcopy(data)
            c["item"], c["index"] = it, i
            out = {k: t.render(c) for k, t in tmpl.items()}
        return out

    benchmark(run)
    per_item = _per_call(run, 1) / len(items)
    benchmark.extra_info["per_item_us"] = round(per_item * 1e6, 2)
    _RATIOS[f"with-items per item µs, deep-copy baseline, {mb} MB"] = per_item * 1e6


def teardown_module(module):
    if _RATIOS:
        print("\n\nflowctx renderer ratios / per-item costs:")
        for k, v in _RATIOS.items():
            print(f"  {k}: {v:.3f}")
