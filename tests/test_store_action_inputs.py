"""What actions receive from the context (issue 12.2).

By default a Python action gets plain, mutable ``dict`` / ``list`` values, a new copy per call:
nothing it does to its inputs reaches the context, a retry or another item.  Opt-ins for
zero-copy frozen inputs: ``@flowctx.action(name, frozen_inputs=True)`` (or
``flowctx.actions.frozen_inputs``) for every input, a ``Mapping[...]`` / ``Sequence[...]``
annotation for one parameter.  Runs on both store backends, on the thread executor and, through
real worker processes, on the process executor.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import pytest

from flowctx.actions import ActionRegistry, action_inputs, frozen_inputs
from flowctx.engine.runner import Engine
from flowctx.errors import ActionError

MUTATING = """
version: 1.0
input: [xs, m]
tasks:
  fan:
    with: {items: "<% ctx(xs) %>"}
    action: t.act xs=<% ctx(xs) %> m=<% ctx(m) %>
    next: [{do: again}]
  again:
    action: t.act xs=<% ctx(xs) %> m=<% ctx(m) %>
output:
  - xs: <% ctx(xs) %>
  - m: <% ctx(m) %>
  - fan: <% task(fan).result %>
  - again: <% task(again).result %>
"""
PARAMS = {"xs": [1, 2], "m": {"k": [1]}}


# module level: the process executor's workers import them by name
def act(xs: list, m: dict) -> dict[str, Any]:  # type: ignore[type-arg]
    seen = {"xs": type(xs).__name__, "m": type(m).__name__, "len": len(xs), "k": len(m["k"])}
    xs.append(99)
    m["k"].append(99)
    m["new"] = True
    return seen


@frozen_inputs
def act_frozen(xs: Any, m: Any) -> dict[str, Any]:
    return {"xs": type(xs).__name__, "m": type(m).__name__, "len": len(xs), "k": len(m["k"])}


def act_annotated(xs: Sequence[int], m: Mapping[str, Any], n: list) -> dict[str, Any]:  # type: ignore[type-arg]
    n.append(1)
    return {"xs": type(xs).__name__, "m": type(m).__name__, "n": type(n).__name__}


def run(backend: ModuleType, func: Any, executor: str = "thread", wf: str = MUTATING) -> Any:
    res = Engine(actions={"t.act": func}, store=backend, executor=executor, max_workers=2).run(wf, PARAMS)
    assert res.status == "succeeded", res.errors
    return res


@pytest.mark.parametrize("executor", ["thread", "inline", "process"])
def test_default_inputs_are_plain_copies_per_call(backend: ModuleType, executor: str) -> None:
    res = run(backend, act, executor)
    # every call (two items, then the second task) saw fresh, unmutated plain values
    for seen in [*res.output["fan"], res.output["again"]]:
        assert seen == {"xs": "list", "m": "dict", "len": 2, "k": 1}
    assert res.output["xs"] == [1, 2] and res.output["m"] == {"k": [1]}  # the context is unchanged


def test_a_retry_gets_a_fresh_copy(backend: ModuleType) -> None:
    calls: list[list[int]] = []

    def flaky(xs: list) -> int:  # type: ignore[type-arg]
        calls.append(list(xs))
        xs.append(len(calls))
        if len(calls) < 3:
            raise RuntimeError("again")
        return len(xs)

    wf = """
ref: t.retry
parameters: {xs: {type: array}}
tasks:
  - name: t
    action: t.flaky
    input: {xs: "{{ parameters.xs }}"}
    retry: {count: 3}
output_map:
  r: "{{ task.t.result }}"
"""
    res = Engine(actions={"t.flaky": flaky}, store=backend, executor="thread").run(wf, {"xs": [7]})
    assert res.status == "succeeded", res.errors
    assert calls == [[7], [7], [7]] and res.output == {"r": 2}


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_frozen_inputs_opt_in_is_zero_copy(backend: ModuleType, executor: str) -> None:
    res = run(backend, act_frozen, executor)
    assert res.output["again"] == {"xs": "FrozenList", "m": "FrozenDict", "len": 2, "k": 1}


def test_frozen_inputs_by_decorator_argument(backend: ModuleType) -> None:
    registry = ActionRegistry()
    got: dict[str, Any] = {}

    @registry.action("t.big", frozen_inputs=True)
    def big(xs: Any) -> None:
        got["xs"] = xs

    frozen = backend.freeze([1, [2]])
    assert action_inputs(big, {"xs": frozen})["xs"] is frozen  # the very object: no copy
    plain = action_inputs(lambda xs: None, {"xs": frozen})["xs"]
    assert type(plain) is list and type(plain[1]) is list and plain == [1, [2]]
    with pytest.raises(ActionError, match="frozen_inputs must be True or False"):
        registry.action("t.bad", frozen_inputs="yes")  # type: ignore[arg-type]


def test_read_only_annotations_opt_in_per_parameter(backend: ModuleType) -> None:
    wf = MUTATING.replace("t.act xs=<% ctx(xs) %> m=<% ctx(m) %>", "t.act xs=<% ctx(xs) %> m=<% ctx(m) %> n=<% ctx(xs) %>")
    res = run(backend, act_annotated, wf=wf)
    assert res.output["again"] == {"xs": "FrozenList", "m": "FrozenDict", "n": "list"}
    assert res.output["xs"] == [1, 2]


def test_string_annotations_and_plain_values(backend: ModuleType) -> None:
    def f(a: "Mapping[str, int]", b: "collections.abc.Sequence[int]", c: "MutableMapping[str, int]", d: "list[int]") -> None:  # noqa: F821
        pass

    v = backend.freeze({"x": [1]})
    out = action_inputs(f, {"a": v, "b": v["x"], "c": v, "d": v["x"]})
    assert out["a"] is v and out["b"] is v["x"]
    assert type(out["c"]) is dict and type(out["d"]) is list
    # a rendered plain container holding frozen values is copied deeply, scalars pass as they are
    mixed = action_inputs(lambda x, s, n: None, {"x": {"inner": v}, "s": "text", "n": None})
    assert type(mixed["x"]["inner"]) is dict and type(mixed["x"]["inner"]["x"]) is list
    assert mixed["s"] == "text" and mixed["n"] is None
