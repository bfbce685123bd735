"""What users write on context values, in Python, Jinja and YAQL, on both store backends.

Frozen lists work with ``+`` and ``*`` against lists (giving a plain list), compare equal to plain
lists and dicts, and every filter / method users apply to them gives what it gives on the plain
value.  Templates go through the public :class:`flowctx.Renderer`.  After every operation the
stored value is unchanged.
"""
from __future__ import annotations

import copy
import json
import pickle
from types import ModuleType
from typing import Any

import pytest

from flowctx import Renderer

VARIABLES = {"seen": ["a"], "n": [3, 1, 2], "m": {"k": 1, "l": [1, {"x": None}]}, "nested": [[1], [2, 3]]}


@pytest.fixture
def ctx(backend: ModuleType) -> Any:
    return backend.Context(variables=VARIABLES)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def unchanged(ctx: Any) -> None:
    assert ctx.export()["variables"] == VARIABLES


# --------------------------------------------------------------------------- Python
class TestPython:
    def test_list_arithmetic_gives_lists(self, backend: ModuleType, ctx: Any) -> None:
        seen, n = ctx.get_var("seen"), ctx.get_var("n")
        cases = [
            (seen + ["b"], ["a", "b"]),
            (["z"] + seen, ["z", "a"]),
            (seen + n, ["a", 3, 1, 2]),
            (seen + ("t",), ["a", "t"]),
            (("t",) + seen, ["t", "a"]),
            (seen * 2, ["a", "a"]),
            (2 * seen, ["a", "a"]),
            (seen * 0, []),
            (n[1:], [1, 2]),
            (n[::-1], [2, 1, 3]),
            (n[1:] + [9], [1, 2, 9]),
        ]
        for got, want in cases:
            assert type(got) is list and got == want
        acc = seen
        acc += ["c"]  # rebinds the name to a new list; the stored value is untouched
        assert acc == ["a", "c"] and type(acc) is list
        got = seen + ["b"]
        got.append("mutable")  # a plain list: the caller's to change
        for bad in (lambda: seen + "b", lambda: seen + 1, lambda: seen * "2", lambda: "b" + seen, lambda: seen * 1.5):
            with pytest.raises(TypeError):
                bad()
        unchanged(ctx)

    def test_the_result_of_arithmetic_can_be_stored_again(self, backend: ModuleType, ctx: Any) -> None:
        ctx.set_var("seen", ctx.get_var("seen") + ["b"])
        assert type(ctx.get_var("seen")) is backend.FrozenList and ctx.get_var("seen") == ["a", "b"]

    def test_equality_with_plain_values_both_ways(self, ctx: Any) -> None:
        m, n, nested = ctx.get_var("m"), ctx.get_var("n"), ctx.get_var("nested")
        assert m == {"k": 1, "l": [1, {"x": None}]} and {"k": 1, "l": [1, {"x": None}]} == m
        assert n == [3, 1, 2] and [3, 1, 2] == n and n == (3, 1, 2)
        assert nested == [[1], [2, 3]] and [[1], [2, 3]] == nested
        assert {"v": m} == {"v": {"k": 1, "l": [1, {"x": None}]}}
        assert m != {"k": 2} and not (m != dict(m)) and n != [3, 1] and not (n != [3, 1, 2])
        assert (m == 1) is False and (n == "312") is False

    def test_reads_and_builtins(self, backend: ModuleType, ctx: Any) -> None:
        m, n = ctx.get_var("m"), ctx.get_var("n")
        assert "a" in ctx.get_var("seen") and "k" in m and "zz" not in m and 9 not in n
        assert len(n) == 3 and len(m) == 2
        assert sorted(n) == [1, 2, 3] and list(reversed(n)) == [2, 1, 3] and list(reversed(m)) == ["l", "k"]
        assert ",".join(map(str, n)) == "3,1,2" and max(n) == 3 and sum(n) == 6
        assert n.index(1) == 1 and n.count(3) == 1
        assert list(m) == ["k", "l"] and list(m.keys()) == ["k", "l"] and list(m.items())[0] == ("k", 1)
        assert m.get("k") == 1 and m.get("zz") is None and m.get("zz", 5) == 5 and m["l"][1]["x"] is None
        with pytest.raises(KeyError):
            m["zz"]
        assert dict(m, x=2) == {"k": 1, "l": [1, {"x": None}], "x": 2} and {**m, "x": 2}["x"] == 2
        merged = m | {"x": 2}
        assert type(merged) is dict and merged["x"] == 2 and type({"x": 2} | m) is dict
        plain = m.copy()
        assert type(plain) is dict and plain == m
        plain["new"] = 1
        assert json.dumps(backend.thaw(m)) == '{"k": 1, "l": [1, {"x": null}]}'
        assert json.dumps(n) == "[3, 1, 2]"  # a tuple subclass: json writes it natively
        assert pickle.loads(pickle.dumps(m)) == m and copy.deepcopy(m) is m and copy.copy(n) is n
        unchanged(ctx)

    def test_refused_mutations(self, backend: ModuleType, ctx: Any) -> None:
        m, n = ctx.get_var("m"), ctx.get_var("n")
        attempts = [
            lambda: m.__setitem__("x", 1), lambda: m.update(x=1), lambda: m.pop("k"), lambda: m.clear(),
            lambda: m.setdefault("x", 1), lambda: m.popitem(), lambda: m.__delitem__("k"),
            lambda: n.append(1), lambda: n.extend([1]), lambda: n.sort(), lambda: n.reverse(), lambda: n.pop(),
            lambda: n.insert(0, 1), lambda: n.remove(3), lambda: n.clear(), lambda: n.__setitem__(0, 1),
        ]
        for attempt in attempts:
            with pytest.raises(TypeError, match="read-only"):
                attempt()
        with pytest.raises(TypeError, match="read-only"):
            m |= {"x": 1}
        unchanged(ctx)


# --------------------------------------------------------------------------- templates
JINJA = [
    ("{{ ctx().seen + ['b'] }}", ["a", "b"]),
    ("{{ ['z'] + ctx().seen }}", ["z", "a"]),
    ("{{ vars.seen + ['b'] }}", ["a", "b"]),
    ("{{ ctx().seen + ctx().n }}", ["a", 3, 1, 2]),
    ("{{ ctx().seen * 2 }}", ["a", "a"]),
    ("{{ 2 * ctx().seen }}", ["a", "a"]),
    ("{{ ctx().seen == ['a'] }}", True),
    ("{{ ['a'] == ctx().seen }}", True),
    ("{{ ctx().m == {'k': 1, 'l': [1, {'x': none}]} }}", True),
    ("{{ ctx().nested == [[1], [2, 3]] }}", True),
    ("{{ ctx().seen != ['a'] }}", False),
    ("{{ 'a' in ctx().seen }}", True),
    ("{{ 'k' in ctx().m }}", True),
    ("{{ ctx().n | list }}", [3, 1, 2]),
    ("{{ ctx().n | sort }}", [1, 2, 3]),
    ("{{ ctx().n | length }}", 3),
    ("{{ ctx().m | length }}", 2),
    ("{{ ctx().n | reverse | list }}", [2, 1, 3]),
    ("{{ ctx().n | join(',') }}", "3,1,2"),
    ("{{ ctx().m | tojson }}", '{"k": 1, "l": [1, {"x": null}]}'),
    ("{{ ctx().n | tojson }}", "[3, 1, 2]"),
    ("{{ dict(ctx().m, x=2) }}", {"k": 1, "l": [1, {"x": None}], "x": 2}),
    ("{{ ctx().n[1:] }}", [1, 2]),
    ("{{ ctx().n[1:] + [9] }}", [1, 2, 9]),
    ("{{ ctx().n[0] }}", 3),
    ("{{ ctx().m.items() | list }}", [("k", 1), ("l", [1, {"x": None}])]),
    ("{{ ctx().m | dictsort | first }}", ("k", 1)),
    ("{{ ctx().m | list }}", ["k", "l"]),
    ("{{ ctx().m.get('k') }}", 1),
    ("{{ ctx().m.l[1].x is none }}", True),
    ("{{ ctx().n | max }}", 3),
    ("{{ ctx().n | sum }}", 6),
    ("n={{ ctx().n }}", "n=[3, 1, 2]"),
]


@pytest.mark.parametrize("source,expected", JINJA, ids=[s for s, _ in JINJA])
def test_jinja(renderer: Renderer, ctx: Any, source: str, expected: Any) -> None:
    got = renderer.render_template(source, ctx)
    assert got == expected
    if isinstance(expected, list):
        assert isinstance(got, (list, tuple))
    unchanged(ctx)


YAQL = [
    ("<% ctx().seen + list('b') %>", ["a", "b"]),
    ("<% list('z') + ctx().seen %>", ["z", "a"]),
    ("<% ctx().seen * 2 %>", ["a", "a"]),
    ("<% ctx().seen = list('a') %>", True),
    ("<% ctx().m = dict(k => 1, l => list(1, dict(x => null))) %>", True),
    ("<% 'a' in ctx().seen %>", True),
    ("<% ctx().n.len() %>", 3),
    ("<% ctx().n.orderBy($) %>", [1, 2, 3]),
    ("<% ctx().n.reverse() %>", [2, 1, 3]),
    ("<% ctx().n.join(',') %>", "3,1,2"),
    ("<% ctx().n.skip(1) %>", [1, 2]),
    ("<% ctx().n[1] %>", 1),
    ("<% ctx().m.keys() %>", ["k", "l"]),
    ("<% ctx().m.get(k) %>", 1),
    ("<% ctx().m.set(x => 2) %>", {"k": 1, "l": [1, {"x": None}], "x": 2}),
    ("<% ctx().m + dict(x => 2) %>", {"k": 1, "l": [1, {"x": None}], "x": 2}),
    ("<% ctx().n.sum() %>", 6),
]


@pytest.mark.parametrize("source,expected", YAQL, ids=[s for s, _ in YAQL])
def test_yaql(renderer: Renderer, ctx: Any, source: str, expected: Any) -> None:
    pytest.importorskip("yaql")
    assert renderer.render_template(source, ctx) == expected
    unchanged(ctx)


# --------------------------------------------------------------------------- no way to mutate
class Forged(tuple):
    __slots__ = ()


def _mutations(backend: ModuleType, m: Any, n: Any) -> list[Any]:
    return [
        lambda: dict.__setitem__(m, "x", 1),
        lambda: dict.update(m, x=1),
        lambda: dict.clear(m),
        lambda: dict.pop(m, "k"),
        lambda: dict.setdefault(m, "x", 1),
        lambda: dict.__delitem__(m, "k"),
        lambda: dict.__ior__(m, {"x": 1}),
        lambda: list.append(n, 1),
        lambda: list.extend(n, [1]),
        lambda: list.__setitem__(n, 0, 1),
        lambda: list.sort(n),
        lambda: list.clear(n),
        lambda: object.__setattr__(m, "_d", {}),
        lambda: object.__setattr__(n, "x", 1),
        lambda: setattr(m, "__class__", dict),
        lambda: object.__setattr__(n, "__class__", Forged),
        lambda: setattr(n, "__class__", type("Sub", (backend.FrozenList,), {"__slots__": ()})),
        lambda: m.__init__({"x": 1}),
    ]


def test_no_unbound_builtin_method_mutates_a_frozen_value(backend: ModuleType, ctx: Any) -> None:
    m, n = ctx.get_var("m"), ctx.get_var("n")
    for attempt in _mutations(backend, m, n):
        try:
            attempt()
        except (TypeError, AttributeError):
            pass
        assert dict(m) == {"k": 1, "l": [1, {"x": None}]} and list(n) == [3, 1, 2]
        assert type(m) is backend.FrozenDict and type(n) is backend.FrozenList
    unchanged(ctx)


def test_frozen_containers_are_built_frozen(backend: ModuleType) -> None:
    for value in (backend.FrozenDict({"a": []}), backend.FrozenDict(a=[{"b": []}]), backend.FrozenDict([("a", {})])):
        inner = value["a"]
        assert type(inner) in (backend.FrozenList, backend.FrozenDict)
    fl = backend.FrozenList([[1], {"a": []}])
    assert type(fl[0]) is backend.FrozenList and type(fl[1]["a"]) is backend.FrozenList
    assert type(backend.FrozenList.__new__(backend.FrozenList, [[1]])[0]) is backend.FrozenList
    # freeze() and set_var reuse a frozen container as it is: it can only hold frozen values
    shared = backend.FrozenDict({"a": [1]})
    ctx = backend.Context()
    ctx.set_var("v", shared)
    assert ctx.get_var("v") is shared and backend.freeze(shared) is shared
    with pytest.raises(TypeError, match="unsupported type"):
        backend.FrozenDict({"a": {1, 2}})
    with pytest.raises(TypeError, match="mapping keys must be str"):
        backend.FrozenDict({1: 2})


@pytest.mark.compiled
def test_compiled_frozen_list_cannot_be_forged_around_a_mutable_value() -> None:
    import flowctx._store as compiled  # fails (never skips) without a build

    with pytest.raises(TypeError, match="not safe"):
        tuple.__new__(compiled.FrozenList, [[1]])
    with pytest.raises(TypeError, match="immutable type"):
        compiled.FrozenList.__eq__ = lambda self, other: True  # type: ignore[method-assign]
    with pytest.raises(TypeError):
        compiled.FrozenDict.get = None  # type: ignore[method-assign]


@pytest.mark.compiled
def test_compiled_frozen_values_are_untracked_by_the_gc() -> None:
    import gc

    import flowctx._store as compiled

    value = compiled.freeze({"a": [1, {"b": [2, [3]]}], "c": {"d": "x"}})
    stack = [value]
    while stack:
        v = stack.pop()
        assert not gc.is_tracked(v), v
        if isinstance(v, compiled.FrozenDict):
            stack.extend(v.values())
        elif isinstance(v, compiled.FrozenList):
            stack.extend(v)
    # nor are the private items dicts: 2,000 entries of nested dicts and lists add no tracked object
    gc.collect()
    before = len(gc.get_objects())
    big = compiled.freeze({f"k{i}": {"v": [i, {"w": [i]}]} for i in range(2000)})
    assert len(gc.get_objects()) - before < 50 and len(big) == 2000
    ctx = compiled.Context(variables={"big": [[i] for i in range(1000)]})
    assert not gc.is_tracked(ctx.get_var("big")) and not gc.is_tracked(ctx.get_var("big")[7])
    assert not gc.is_tracked(compiled.FrozenList([[1]])) and not gc.is_tracked(compiled.FrozenDict(a=[1]))
    sub = type("Sub", (compiled.FrozenList,), {})([1])  # a subclass (may have a __dict__): tracked
    assert gc.is_tracked(sub) and type(compiled.freeze(sub)) is compiled.FrozenList
