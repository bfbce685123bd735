"""Differential property tests: random operation sequences over a pool of handles.

Each sequence runs through a plain-dict reference model (deep copies on every clone, the
obviously-correct semantics) and through the store; every observation (exports, reads, views
taken earlier, error types and messages) must match.  A second test runs the same sequence
through both backends and requires identical observations, error messages included.
"""
from __future__ import annotations

import copy
import importlib
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NAMES = st.sampled_from(["a", "b", "c", "d"])

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=8),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=4), inner, max_size=4),
    ),
    max_leaves=12,
)
# A value the store must refuse somewhere inside (set, bytes or a non-str key).
bad_value = st.one_of(
    st.just({1, 2}),
    st.just(b"raw"),
    st.builds(lambda v: {"ok": v, "bad": [v, {1: "x"}]}, json_value),
    st.builds(lambda v: [v, {"deep": {"deeper": object.__new__(object)}}], json_value),
)
value = st.one_of(json_value, json_value, json_value, bad_value)
handle = st.integers(min_value=0, max_value=63)  # taken modulo the pool size

op = st.one_of(
    st.tuples(st.just("set_var"), handle, NAMES, value),
    st.tuples(st.just("set_task_result"), handle, NAMES, value),
    st.tuples(st.just("set_system"), handle, NAMES, value),
    st.tuples(st.just("delete_var"), handle, NAMES),
    st.tuples(st.just("clone"), handle),
    st.tuples(st.just("with_item"), handle, value, st.integers(min_value=0, max_value=5)),
    st.tuples(st.just("merge"), handle, handle),
    st.tuples(st.just("export"), handle),
    st.tuples(st.just("read"), handle, NAMES),
    st.tuples(st.just("view"), handle),
    st.tuples(st.just("roundtrip"), handle),
)
programs = st.lists(op, min_size=1, max_size=40)

INITIAL = {
    "parameters": {"p": 1, "q": [1, 2]},
    "variables": {"a": {"x": [1]}},
    "task_results": {"t": "r"},
    "system": {},
}


# --------------------------------------------------------------------------- reference model
class _ModelError(Exception):
    pass


def _check_json(value: Any, path: str) -> Any:
    """Deep-copy a JSON-like value (tuples become lists) or raise what the store raises."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(
                    f"key {k!r} in {path!r} has unsupported type {type(k).__name__!r}: mapping keys must be str"
                )
            out[k] = _check_json(v, f"{path}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [_check_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"value for {path!r} has unsupported type {type(value).__name__!r}: a context holds only "
        "JSON-like values (None, bool, int, float, str, list/tuple, dict with str keys)"
    )


class ModelContext:
    """The obvious implementation: four plain dicts, deep-copied on every clone."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.ns = copy.deepcopy({k: data[k] for k in ("parameters", "variables", "task_results", "system")})
        self.item: Any = None
        self.index: int | None = None

    def clone(self) -> ModelContext:
        return copy.deepcopy(self)

    def with_item(self, item: Any, index: int) -> ModelContext:
        frozen = _check_json(item, "item")
        new = self.clone()
        new.item, new.index = frozen, index
        return new

    def merge(self, other: ModelContext) -> ModelContext:
        new = self.clone()
        for ns in ("variables", "task_results", "system"):
            new.ns[ns].update(copy.deepcopy(other.ns[ns]))
        return new

    def set(self, ns: str, name: str, value: Any) -> None:
        self.ns[ns][name] = _check_json(value, name)

    def delete_var(self, name: str) -> None:
        if name not in self.ns["variables"]:
            raise KeyError(name)
        del self.ns["variables"][name]

    def read(self, name: str) -> Any:
        return copy.deepcopy((self.ns["variables"].get(name, "<missing>"), self.ns["task_results"].get(name)))

    def view(self) -> dict[str, Any]:
        return copy.deepcopy(self.ns["variables"])

    def export(self) -> dict[str, Any]:
        out = copy.deepcopy(self.ns)
        out["item"] = copy.deepcopy(self.item)
        out["index"] = self.index
        return out


# --------------------------------------------------------------------------- interpreters
def _error(exc: BaseException) -> tuple[str, str]:
    return (type(exc).__name__, str(exc))


def run_store(mod: ModuleType, program: list[tuple[Any, ...]]) -> list[Any]:
    pool = [mod.Context(**INITIAL)]
    views: list[tuple[Any, int]] = []
    trace: list[Any] = []
    for step in program:
        kind, h = step[0], pool[step[1] % len(pool)]
        try:
            if kind in ("set_var", "set_task_result", "set_system"):
                getattr(h, kind)(step[2], step[3])
                trace.append(None)
            elif kind == "delete_var":
                h.delete_var(step[2])
                trace.append(None)
            elif kind == "clone":
                pool.append(h.clone())
                trace.append(None)
            elif kind == "with_item":
                pool.append(h.with_item(step[2], step[3]))
                trace.append(None)
            elif kind == "merge":
                pool.append(h.merge(pool[step[2] % len(pool)]))
                trace.append(None)
            elif kind == "export":
                trace.append(h.export())
            elif kind == "read":
                trace.append(mod.thaw((h.get_var(step[2], "<missing>"), h.get_task_result(step[2]))))
            elif kind == "view":
                views.append((h.variables, len(trace)))
                trace.append(mod.thaw(h.variables))
            elif kind == "roundtrip":
                pool.append(mod.Context.from_export(h.export()))
                trace.append(None)
        except (TypeError, KeyError, ValueError) as exc:
            trace.append(_error(exc))
    # Views are snapshots: every view taken earlier still shows what it showed then.
    trace.append([(mod.thaw(v), at) for v, at in views])
    trace.append([h.export() for h in pool])
    return trace


def run_model(program: list[tuple[Any, ...]]) -> list[Any]:
    pool = [ModelContext(INITIAL)]
    views: list[tuple[Any, int]] = []
    trace: list[Any] = []
    for step in program:
        kind, h = step[0], pool[step[1] % len(pool)]
        try:
            if kind in ("set_var", "set_task_result", "set_system"):
                ns = {"set_var": "variables", "set_task_result": "task_results", "set_system": "system"}[kind]
                h.set(ns, step[2], step[3])
                trace.append(None)
            elif kind == "delete_var":
                h.delete_var(step[2])
                trace.append(None)
            elif kind == "clone":
                pool.append(h.clone())
                trace.append(None)
            elif kind == "with_item":
                pool.append(h.with_item(step[2], step[3]))
                trace.append(None)
            elif kind == "merge":
                pool.append(h.merge(pool[step[2] % len(pool)]))
                trace.append(None)
            elif kind == "export":
                trace.append(h.export())
            elif kind == "read":
                trace.append(list(h.read(step[2])))
            elif kind == "view":
                views.append((h.view(), len(trace)))
                trace.append(h.view())
            elif kind == "roundtrip":
                pool.append(h.clone())
                trace.append(None)
        except (TypeError, KeyError) as exc:
            trace.append(_error(exc))
    trace.append([(v, at) for v, at in views])
    trace.append([h.export() for h in pool])
    return trace


SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@SETTINGS
@given(program=programs)
def test_store_matches_the_deep_copy_model(backend: ModuleType, program: list[tuple[Any, ...]]) -> None:
    assert run_store(backend, program) == run_model(program)


@pytest.mark.compiled
@SETTINGS
@given(program=programs)
def test_backends_give_identical_results(program: list[tuple[Any, ...]]) -> None:
    compiled = importlib.import_module("flowctx._store")
    twin = importlib.import_module("flowctx._store_py")
    assert run_store(compiled, program) == run_store(twin, program)


@pytest.mark.compiled
@SETTINGS
@given(value=st.one_of(json_value, bad_value))
def test_freeze_and_size_agree_across_backends(value: Any) -> None:
    compiled = importlib.import_module("flowctx._store")
    twin = importlib.import_module("flowctx._store_py")
    results = []
    for mod in (compiled, twin):
        try:
            frozen = mod.freeze(value, "v")
            ctx = mod.Context(variables={"v": value})
            results.append((mod.thaw(frozen), ctx.size(), repr(ctx)))
        except TypeError as exc:
            results.append(_error(exc))
    assert results[0] == results[1]
