"""Behaviour of the context store, run on both backends through the ``backend`` fixture.

Covers the original engine's context behaviours (variables, task results, nested values, item
context, publish, export/import, pickling), isolation between handles, freezing, the JSON-only
rule (with nothing half-written after an error), ``size()`` and the process-wide counters.
"""
from __future__ import annotations

import collections.abc
import copy
import importlib
import json
import pickle
from types import ModuleType
from typing import Any

import pytest

RESULT = {"stdout": "ok", "rc": 0, "data": {"hosts": ["a", "b"], "meta": {"n": 2, "ok": True}}}


def make(backend: ModuleType) -> Any:
    return backend.Context(
        parameters={"env": "prod", "count": 3},
        variables={"greeting": "hello", "nested": {"a": {"b": [1, 2, {"c": "deep"}]}}},
        task_results={"fetch": RESULT},
        system={"execution_id": "ex-1"},
    )


# --------------------------------------------------------------------------- access
class TestAccess:
    def test_variable_access(self, backend: ModuleType) -> None:
        ctx = make(backend)
        assert ctx.get_var("greeting") == "hello"
        assert ctx.has_var("greeting")
        assert not ctx.has_var("missing")
        assert ctx.get_var("missing") is None
        assert ctx.get_var("missing", 42) == 42
        ctx.set_var("x", None)
        assert ctx.has_var("x")
        assert ctx.get_var("x", "default") is None
        ctx.set_var("greeting", "bye")
        assert ctx.get_var("greeting") == "bye"
        ctx.delete_var("greeting")
        assert not ctx.has_var("greeting")
        with pytest.raises(KeyError):
            ctx.delete_var("greeting")

    def test_task_result_access(self, backend: ModuleType) -> None:
        ctx = make(backend)
        assert ctx.get_task_result("fetch") == RESULT
        assert ctx.get_task_result("nope") is None
        assert ctx.get_task_result("nope", "dflt") == "dflt"
        ctx.set_task_result("second", [1, 2, 3])
        assert list(ctx.get_task_result("second")) == [1, 2, 3]
        assert set(ctx.task_results) == {"fetch", "second"}

    def test_nested_value_access(self, backend: ModuleType) -> None:
        ctx = make(backend)
        assert ctx.get_var("nested")["a"]["b"][2]["c"] == "deep"
        assert ctx.get_task_result("fetch")["data"]["hosts"][1] == "b"
        assert ctx.get_task_result("fetch")["data"]["meta"]["ok"] is True
        assert ctx.parameters["count"] == 3
        assert ctx.system["execution_id"] == "ex-1"

    def test_reads_are_zero_copy(self, backend: ModuleType) -> None:
        ctx = make(backend)
        assert ctx.get_var("nested") is ctx.get_var("nested")
        assert ctx.get_task_result("fetch") is ctx.task_results["fetch"]
        assert ctx.clone().get_task_result("fetch") is ctx.get_task_result("fetch")

    def test_already_frozen_values_are_reused(self, backend: ModuleType) -> None:
        frozen = backend.freeze({"a": [1, 2]})
        ctx = backend.Context()
        ctx.set_var("v", frozen)
        assert ctx.get_var("v") is frozen

    def test_item_context(self, backend: ModuleType) -> None:
        ctx = make(backend)
        assert ctx.item is None and ctx.index is None
        item = ctx.with_item({"host": "a"}, 0)
        assert item.item == {"host": "a"}
        assert item.index == 0
        assert item.get_var("greeting") == "hello"
        assert item.get_task_result("fetch") == RESULT
        assert ctx.item is None and ctx.index is None  # the parent is untouched
        assert item.clone().item == {"host": "a"} and item.clone().index == 0
        with pytest.raises(TypeError):
            item.item["host"] = "b"  # the item is frozen too

    def test_with_item_index_must_be_int(self, backend: ModuleType) -> None:
        ctx = backend.Context()
        for bad in ("0", 1.0, True, None):
            with pytest.raises(TypeError, match="index must be an int"):
                ctx.with_item("x", bad)

    def test_publish_stores_a_task_result_under_a_variable(self, backend: ModuleType) -> None:
        ctx = make(backend)
        result = ctx.get_task_result("fetch")
        ctx.set_var("hosts", result["data"]["hosts"])
        ctx.set_var("whole", result)
        assert list(ctx.get_var("hosts")) == ["a", "b"]
        assert ctx.get_var("whole") == RESULT
        assert ctx.get_var("whole") is result  # already frozen: shared, not copied

    def test_views_are_read_only_mappings(self, backend: ModuleType) -> None:
        ctx = make(backend)
        for view in (ctx.parameters, ctx.variables, ctx.task_results, ctx.system):
            assert isinstance(view, collections.abc.Mapping)
            with pytest.raises(TypeError):
                view["new"] = 1  # type: ignore[index]

    def test_constructor_rejects_non_mappings(self, backend: ModuleType) -> None:
        with pytest.raises(TypeError, match="variables must be a mapping, not 'list'"):
            backend.Context(variables=[1, 2])
        with pytest.raises(TypeError, match="key 1 in parameters"):
            backend.Context(parameters={1: "x"})

    def test_keys_must_be_str(self, backend: ModuleType) -> None:
        ctx = backend.Context()
        with pytest.raises(TypeError, match="variable must be a str, not 'int'"):
            ctx.set_var(1, "x")
        with pytest.raises(TypeError, match="task name must be a str"):
            ctx.set_task_result(None, "x")
        with pytest.raises(TypeError, match="system key must be a str"):
            ctx.set_system(b"k", "x")

    def test_unhashable_lookup_raises(self, backend: ModuleType) -> None:
        ctx = make(backend)
        for read in (ctx.get_var, ctx.get_task_result, ctx.has_var):
            with pytest.raises(TypeError, match="unhashable"):
                read(["greeting"])

    def test_uninitialized_handle_raises_never_crashes(self, backend: ModuleType) -> None:
        bare = backend.Context.__new__(backend.Context)  # misuse: __init__ skipped
        good = backend.Context(variables={"a": 1})
        for call in (
            lambda: bare.get_var("a"),
            lambda: bare.has_var("a"),
            lambda: bare.delete_var("a"),
            lambda: bare.set_var("a", 1),
            lambda: bare.get_task_result("a"),
            lambda: bare.set_task_result("a", 1),
            lambda: bare.set_system("a", 1),
            lambda: bare.merge(good),
            lambda: good.merge(bare),
            lambda: bare.size(),
            lambda: repr(bare),
        ):
            with pytest.raises((TypeError, AttributeError)):
                call()
        bare.__init__(variables={"b": 2})  # initialising it afterwards makes it usable
        assert bare.get_var("b") == 2 and bare.clone().get_var("b") == 2

    def test_repr_and_eq(self, backend: ModuleType) -> None:
        ctx = make(backend)
        assert repr(ctx) == "<Context parameters=2 variables=2 task_results=1 system=1>"
        assert repr(ctx.with_item(1, 7)).endswith("index=7>")
        assert ctx == ctx.clone()
        assert not (ctx != ctx.clone())
        assert ctx != ctx.with_item(1, 0)
        assert ctx.__eq__("x") is NotImplemented
        with pytest.raises(TypeError):
            hash(ctx)


# --------------------------------------------------------------------------- export / import
class TestExportImport:
    def test_export_is_plain_json(self, backend: ModuleType) -> None:
        data = make(backend).with_item({"k": [1]}, 4).export()
        assert type(data["variables"]["nested"]) is dict
        assert type(data["variables"]["nested"]["a"]["b"]) is list
        assert data["item"] == {"k": [1]} and data["index"] == 4
        assert json.loads(json.dumps(data)) == data
        data["variables"]["greeting"] = "changed"  # the export is a copy; the store is untouched

    def test_import_restores_an_equal_context(self, backend: ModuleType) -> None:
        src = make(backend).with_item(["x", {"y": 1}], 3)
        src.set_var("later", {"z": [None, 1.5, False]})
        data = json.loads(json.dumps(src.export()))
        imported = backend.Context.from_export(data)
        assert imported == src
        assert imported.get_var("later")["z"][1] == 1.5
        assert imported.get_var("nested")["a"]["b"][2]["c"] == "deep"
        assert imported.get_task_result("fetch") == RESULT
        assert imported.parameters["env"] == "prod"
        assert imported.system["execution_id"] == "ex-1"
        assert imported.item[1]["y"] == 1 and imported.index == 3
        with pytest.raises(TypeError):
            imported.get_var("later")["z"].append(1)
        imported.set_var("later", 0)  # the imported context is independent of the source
        assert src.get_var("later")["z"][0] is None

    def test_import_without_item(self, backend: ModuleType) -> None:
        imported = backend.Context.from_export(make(backend).export())
        assert imported.item is None and imported.index is None
        assert imported.get_var("greeting") == "hello"

    def test_import_partial_and_bad_data(self, backend: ModuleType) -> None:
        imported = backend.Context.from_export({"variables": {"a": 1}})
        assert imported.get_var("a") == 1 and len(imported.task_results) == 0
        with pytest.raises(ValueError, match="unknown key"):
            backend.Context.from_export({"bogus": 1})
        with pytest.raises(ValueError, match="'item' is set but 'index' is None"):
            backend.Context.from_export({"item": 1})
        with pytest.raises(TypeError, match="needs a mapping"):
            backend.Context.from_export([1])
        with pytest.raises(TypeError, match="index must be an int"):
            backend.Context.from_export({"item": 1, "index": "0"})

    def test_pickle_context(self, backend: ModuleType) -> None:
        src = make(backend).with_item({"i": 1}, 2)
        for proto in range(pickle.HIGHEST_PROTOCOL + 1):
            restored = pickle.loads(pickle.dumps(src, proto))
            assert type(restored) is backend.Context
            assert restored == src
            assert restored.index == 2
            assert restored.export() == src.export()
            restored.set_var("greeting", "other")
            assert src.get_var("greeting") == "hello"

    def test_pickle_frozen_values(self, backend: ModuleType) -> None:
        value = backend.freeze({"a": [1, {"b": "c"}], "d": []})
        for proto in range(pickle.HIGHEST_PROTOCOL + 1):
            restored = pickle.loads(pickle.dumps(value, proto))
            assert type(restored) is backend.FrozenDict
            assert type(restored["a"]) is backend.FrozenList
            assert type(restored["a"][1]) is backend.FrozenDict
            assert restored == value
            with pytest.raises(TypeError):
                restored["a"][1]["b"] = 1

    def test_copy_and_deepcopy_share(self, backend: ModuleType) -> None:
        value = backend.freeze({"a": [1]})
        assert copy.copy(value) is value and copy.deepcopy(value) is value
        assert copy.deepcopy(value["a"]) is value["a"]
        # a deep copy of a context is an equal, independent context
        ctx = make(backend)
        dup = copy.deepcopy(ctx)
        assert dup == ctx and dup is not ctx
        dup.set_var("greeting", "x")
        assert ctx.get_var("greeting") == "hello"


# --------------------------------------------------------------------------- isolation
class TestIsolation:
    def test_writes_after_clone_are_invisible_to_the_earlier_handle(self, backend: ModuleType) -> None:
        a = make(backend)
        b = a.clone()
        b.set_var("greeting", "from b")
        b.set_var("only_b", 1)
        b.set_task_result("t", 1)
        b.set_system("s", 1)
        b.delete_var("nested")
        assert a.get_var("greeting") == "hello"
        assert not a.has_var("only_b") and a.has_var("nested")
        assert a.get_task_result("t") is None and "s" not in a.system

    def test_writes_to_the_original_are_invisible_to_the_clone(self, backend: ModuleType) -> None:
        a = make(backend)
        b = a.clone()
        a.set_var("greeting", "from a")
        a.set_task_result("fetch", "replaced")
        a.set_system("execution_id", "other")
        a.delete_var("nested")
        assert b.get_var("greeting") == "hello"
        assert b.get_task_result("fetch") == RESULT
        assert b.system["execution_id"] == "ex-1"
        assert b.has_var("nested")

    def test_repeated_writes_after_clone(self, backend: ModuleType) -> None:
        # The first write after a clone copies the namespace; later writes go in place, and
        # must still not reach the clone.
        a = backend.Context(variables={"n": 0})
        snapshots = []
        for i in range(1, 6):
            snapshots.append(a.clone())
            a.set_var("n", i)
            a.set_var(f"k{i}", i)
        for i, snap in enumerate(snapshots):
            assert snap.get_var("n") == i
            assert [k for k in snap.variables if k.startswith("k")] == [f"k{j}" for j in range(1, i + 1)]

    def test_siblings_from_with_item_are_isolated(self, backend: ModuleType) -> None:
        parent = make(backend)
        items = [parent.with_item(f"item{i}", i) for i in range(5)]
        for i, child in enumerate(items):
            child.set_var("result", i)
            child.set_task_result(f"t{i}", i)
        for i, child in enumerate(items):
            assert child.get_var("result") == i
            assert set(child.task_results) == {"fetch", f"t{i}"}
            assert child.item == f"item{i}" and child.index == i
        assert not parent.has_var("result")
        assert set(parent.task_results) == {"fetch"}

    def test_views_are_snapshots(self, backend: ModuleType) -> None:
        ctx = make(backend)
        views = (ctx.variables, ctx.task_results, ctx.system, ctx.parameters)
        ctx.set_var("greeting", "changed")
        ctx.set_var("added", 1)
        ctx.delete_var("nested")
        ctx.set_task_result("new", 1)
        ctx.set_system("new", 1)
        variables, results, system, params = views
        assert variables["greeting"] == "hello" and "added" not in variables and "nested" in variables
        assert "new" not in results and "new" not in system
        assert ctx.variables["greeting"] == "changed"  # a fresh view sees the write
        assert dict(params) == {"env": "prod", "count": 3}

    def test_view_of_a_fresh_constructor_context_is_a_snapshot(self, backend: ModuleType) -> None:
        ctx = backend.Context(variables={"a": 1}, task_results={"t": 1}, system={"s": 1})
        v, r, s = ctx.variables, ctx.task_results, ctx.system
        ctx.set_var("a", 2)
        ctx.set_task_result("t", 2)
        ctx.set_system("s", 2)
        assert (v["a"], r["t"], s["s"]) == (1, 1, 1)

    def test_constructor_does_not_alias_a_passed_frozen_namespace(self, backend: ModuleType) -> None:
        shared = backend.freeze({"a": 1})
        one = backend.Context(variables=shared)
        two = backend.Context(variables=shared)
        one.set_var("a", 2)
        assert two.get_var("a") == 1 and shared["a"] == 1

    def test_caller_data_is_copied_on_the_way_in(self, backend: ModuleType) -> None:
        data = {"a": [1, 2]}
        ctx = backend.Context(variables=data)
        ctx.set_var("b", data["a"])
        data["a"].append(3)
        data["c"] = 1
        assert list(ctx.get_var("a")) == [1, 2] and list(ctx.get_var("b")) == [1, 2]
        assert not ctx.has_var("c")

    def test_merge_other_wins(self, backend: ModuleType) -> None:
        base = make(backend)
        left = base.with_item("L", 0)
        right = base.clone()
        left.set_var("greeting", "left")
        left.set_var("only_left", 1)
        right.set_var("greeting", "right")
        right.set_var("only_right", 2)
        right.set_task_result("fetch", "right result")
        right.set_system("execution_id", "right")
        merged = left.merge(right)
        assert merged.get_var("greeting") == "right"
        assert merged.get_var("only_left") == 1 and merged.get_var("only_right") == 2
        assert merged.get_task_result("fetch") == "right result"
        assert merged.system["execution_id"] == "right"
        assert merged.item == "L" and merged.index == 0  # item/index/parameters from self
        assert right.merge(left).get_var("greeting") == "left"
        # neither input changed, and the merged context is isolated from both
        merged.set_var("greeting", "merged")
        assert left.get_var("greeting") == "left" and right.get_var("greeting") == "right"
        left.set_var("only_left", 99)
        right.set_var("only_right", 99)
        assert merged.get_var("only_left") == 1 and merged.get_var("only_right") == 2

    def test_merge_with_empty_sides(self, backend: ModuleType) -> None:
        empty = backend.Context()
        full = make(backend)
        assert empty.merge(full).variables == full.variables
        assert full.merge(empty) == full
        m = empty.merge(full)
        m.set_var("greeting", "m")
        assert full.get_var("greeting") == "hello"
        n = full.merge(full)
        n.set_var("greeting", "n")
        assert full.get_var("greeting") == "hello"

    def test_merge_shares_values_not_copies(self, backend: ModuleType) -> None:
        left = make(backend)
        right = backend.Context()
        right.set_task_result("big", {"payload": ["x" * 100]})
        merged = left.merge(right)
        assert merged.get_task_result("big") is right.get_task_result("big")
        assert merged.get_task_result("fetch") is left.get_task_result("fetch")

    def test_merge_needs_a_context(self, backend: ModuleType) -> None:
        with pytest.raises(TypeError, match="merge\\(\\) needs a Context, not 'dict'"):
            backend.Context().merge({})


# --------------------------------------------------------------------------- freezing
def _mutations() -> list[tuple[str, Any]]:
    return [
        ("dict item assignment", lambda d, l: d.__setitem__("k", 1)),
        ("dict del", lambda d, l: d.__delitem__("a")),
        ("dict clear", lambda d, l: d.clear()),
        ("dict pop", lambda d, l: d.pop("a")),
        ("dict pop default", lambda d, l: d.pop("zz", None)),
        ("dict popitem", lambda d, l: d.popitem()),
        ("dict setdefault", lambda d, l: d.setdefault("k", 1)),
        ("dict update", lambda d, l: d.update({"k": 1})),
        ("dict update kwargs", lambda d, l: d.update(k=1)),
        ("list item assignment", lambda d, l: l.__setitem__(0, 1)),
        ("list slice assignment", lambda d, l: l.__setitem__(slice(0, 1), [1])),
        ("list del", lambda d, l: l.__delitem__(0)),
        ("list append", lambda d, l: l.append(1)),
        ("list extend", lambda d, l: l.extend([1])),
        ("list insert", lambda d, l: l.insert(0, 1)),
        ("list pop", lambda d, l: l.pop()),
        ("list remove", lambda d, l: l.remove(l[0])),
        ("list sort", lambda d, l: l.sort()),
        ("list reverse", lambda d, l: l.reverse()),
        ("list clear", lambda d, l: l.clear()),
    ]


MUTATIONS = _mutations()


class TestFreezing:
    @pytest.mark.parametrize("path", ["top", "level1", "level3"])
    @pytest.mark.parametrize("name,mutate", MUTATIONS, ids=[m[0] for m in MUTATIONS])
    def test_every_mutation_path_raises(self, backend: ModuleType, name: str, mutate: Any, path: str) -> None:
        value = {"a": 1, "l": [3, 1, 2], "n": {"a": 1, "l": [3, 1, 2], "m": {"x": {"a": 1, "l": [3, 1, 2]}}}}
        ctx = backend.Context()
        ctx.set_var("v", value)
        d = ctx.get_var("v")
        if path == "level1":
            d = d["n"]
        elif path == "level3":
            d = d["n"]["m"]["x"]
        before = backend.thaw(ctx.get_var("v"))
        with pytest.raises(TypeError, match="read-only"):
            mutate(d, d["l"])
        assert backend.thaw(ctx.get_var("v")) == before == value

    def test_ior_on_frozen_dict(self, backend: ModuleType) -> None:
        ctx = backend.Context(variables={"d": {"a": 1}})
        d = ctx.get_var("d")
        with pytest.raises(TypeError, match="read-only"):
            d |= {"b": 2}
        assert dict(ctx.get_var("d")) == {"a": 1}

    def test_iadd_on_frozen_list_rebinds_but_does_not_mutate(self, backend: ModuleType) -> None:
        ctx = backend.Context(variables={"l": [1]})
        seq = ctx.get_var("l")
        seq += (2,)  # tuple semantics: a new object, the stored one is unchanged
        assert list(ctx.get_var("l")) == [1]

    def test_namespace_views_refuse_mutation(self, backend: ModuleType) -> None:
        ctx = make(backend)
        for view in (ctx.parameters, ctx.variables, ctx.task_results, ctx.system):
            for mutate in (
                lambda v: v.__setitem__("x", 1),
                lambda v: v.__delitem__(next(iter(v))),
                lambda v: v.update(x=1),
                lambda v: v.pop(next(iter(v))),
                lambda v: v.clear(),
                lambda v: v.setdefault("x", 1),
                lambda v: v.popitem(),
            ):
                with pytest.raises(TypeError):
                    mutate(view)
        assert ctx.export() == make(backend).export()

    def test_frozen_values_are_abc_mappings_and_sequences(self, backend: ModuleType) -> None:
        v = backend.freeze({"m": {"x": 1}, "s": [1, [2]], "t": (1, 2)})
        assert isinstance(v, collections.abc.Mapping)
        assert isinstance(v["m"], collections.abc.Mapping)
        assert isinstance(v["s"], collections.abc.Sequence)
        assert isinstance(v["s"][1], collections.abc.Sequence)
        assert isinstance(v["t"], collections.abc.Sequence)
        assert not isinstance(v["s"], collections.abc.MutableSequence)
        assert v["s"][1][0] == 2 and len(v["s"]) == 2 and v.get("m") == {"x": 1}
        assert list(v["s"]) == [1, (2,)] and v["s"].index(1) == 0 and v["s"].count(1) == 1
        assert type(v) is backend.FrozenDict and type(v["s"]) is backend.FrozenList
        assert repr(backend.freeze([1])) == "FrozenList([1])"
        assert repr(backend.freeze({"a": 1})) == "FrozenDict({'a': 1})"

    def test_thaw_gives_plain_mutable_values(self, backend: ModuleType) -> None:
        source = {"m": {"x": [1, {"y": (2, 3)}]}, "s": "str", "n": None}
        thawed = backend.thaw(backend.freeze(source))
        assert thawed == {"m": {"x": [1, {"y": [2, 3]}]}, "s": "str", "n": None}
        assert type(thawed) is dict and type(thawed["m"]["x"]) is list
        assert type(thawed["m"]["x"][1]) is dict and type(thawed["m"]["x"][1]["y"]) is list
        thawed["m"]["x"].append(4)  # really mutable
        assert backend.thaw(5) == 5 and backend.thaw("s") == "s"

    def test_freeze_accepts_json_like_values(self, backend: ModuleType) -> None:
        assert backend.freeze(None) is None
        assert backend.freeze(True) is True
        assert backend.freeze(1.5) == 1.5
        assert backend.freeze((1, [2])) == (1, (2,))
        assert backend.freeze(collections.OrderedDict(a=1)) == {"a": 1}

        class MyStr(str):
            pass

        frozen = backend.freeze({MyStr("k"): MyStr("v")})
        assert type(next(iter(frozen))) is str and type(frozen["k"]) is str
        assert type(backend.freeze(True)) is bool

    def test_nesting_up_to_the_limit_round_trips(self, backend: ModuleType) -> None:
        value: Any = {"leaf": 1}
        for i in range(499):
            value = [value] if i % 2 else {"k": value}
        ctx = backend.Context()
        ctx.set_var("deep", value)
        exported = ctx.export()
        assert exported["variables"]["deep"] == value
        assert ctx.size()["variables"]["bytes"] > 1000
        assert backend.Context.from_export(exported).export() == exported
        # comparing and pickling recurse in C and in Python per level: checked at 100 levels
        shallow = value
        for _ in range(399):
            shallow = shallow[0] if isinstance(shallow, list) else shallow["k"]
        ctx.set_var("deep", shallow)
        assert backend.Context.from_export(ctx.export()) == ctx
        assert pickle.loads(pickle.dumps(ctx)) == ctx

    def test_too_deep_nesting_is_a_value_error(self, backend: ModuleType) -> None:
        value: Any = 1
        for _ in range(600):
            value = [value]
        ctx = backend.Context()
        with pytest.raises(ValueError, match="nested more than 500 levels"):
            ctx.set_var("deep", value)
        assert not ctx.has_var("deep")


# --------------------------------------------------------------------------- JSON-only values
class TestJsonOnly:
    @pytest.mark.parametrize(
        "bad,typename",
        [({1, 2}, "set"), (b"bytes", "bytes"), (object(), "object"), (bytearray(b"x"), "bytearray"),
         (frozenset(), "frozenset"), (complex(1, 2), "complex")],
    )
    def test_unsupported_types_name_the_key_path(self, backend: ModuleType, bad: Any, typename: str) -> None:
        ctx = backend.Context()
        with pytest.raises(TypeError, match=f"value for 'v' has unsupported type '{typename}'"):
            ctx.set_var("v", bad)
        with pytest.raises(TypeError, match=f"value for 'v.a\\[1\\].b' has unsupported type '{typename}'"):
            ctx.set_var("v", {"a": [0, {"b": bad}]})
        with pytest.raises(TypeError, match=f"value for 'task1.out' has unsupported type '{typename}'"):
            ctx.set_task_result("task1", {"out": bad})
        with pytest.raises(TypeError, match=f"value for 'variables_key' has unsupported type '{typename}'"):
            backend.Context(variables={"variables_key": bad})
        with pytest.raises(TypeError, match=f"value for 'item' has unsupported type '{typename}'"):
            ctx.with_item(bad, 0)

    def test_non_str_keys_name_the_path(self, backend: ModuleType) -> None:
        ctx = backend.Context()
        with pytest.raises(TypeError, match="key 1 in 'v.a' has unsupported type 'int': mapping keys must be str"):
            ctx.set_var("v", {"a": {1: "x"}})
        with pytest.raises(TypeError, match="key \\(1, 2\\) in 'v' has unsupported type 'tuple'"):
            ctx.set_var("v", {(1, 2): "x"})
        with pytest.raises(TypeError, match="key None in 'value'"):
            backend.freeze({None: 1})

    def test_nothing_half_written_after_an_error(self, backend: ModuleType) -> None:
        ctx = make(backend)
        clone = ctx.clone()
        before = ctx.export()
        bad = {"ok": 1, "also_ok": [1, 2], "bad": {"deeper": {1, 2}}}
        for write in (
            lambda: ctx.set_var("greeting", bad),
            lambda: ctx.set_var("newvar", bad),
            lambda: ctx.set_task_result("fetch", bad),
            lambda: ctx.set_task_result("new", [1, bad]),
            lambda: ctx.set_system("execution_id", bad),
            lambda: ctx.with_item(bad, 0),
            lambda: ctx.set_var(3, "x"),
        ):
            with pytest.raises(TypeError):
                write()
            assert ctx.export() == before
        assert clone.export() == before
        assert not ctx.has_var("newvar") and ctx.get_task_result("new") is None

    def test_caller_value_is_left_untouched_by_a_failed_write(self, backend: ModuleType) -> None:
        value = {"a": [1, 2], "b": object()}
        with pytest.raises(TypeError):
            backend.Context().set_var("v", value)
        assert value["a"] == [1, 2] and type(value["a"]) is list


# --------------------------------------------------------------------------- size / stats
class TestSizeAndStats:
    def test_size(self, backend: ModuleType) -> None:
        ctx = backend.Context()
        empty = ctx.size()
        assert empty["total_bytes"] == sum(empty[ns]["bytes"] for ns in ("parameters", "variables", "task_results", "system"))
        assert all(empty[ns]["keys"] == 0 for ns in ("parameters", "variables", "task_results", "system"))
        ctx.set_task_result("big", "x" * 10_000)
        ctx.set_var("a", 1)
        ctx.set_var("b", {"c": [1, 2]})
        size = ctx.size()
        assert size["task_results"]["keys"] == 1 and size["variables"]["keys"] == 2
        assert 10_000 <= size["task_results"]["bytes"] <= 10_100
        assert size["total_bytes"] > empty["total_bytes"] + 10_000
        # the same data gives the same size on a clone and after an export/import
        assert ctx.clone().size() == size == backend.Context.from_export(ctx.export()).size()

    @pytest.mark.compiled
    def test_size_is_identical_across_backends(self) -> None:
        from flowctx import _store_py

        compiled = importlib.import_module("flowctx._store")
        data = make(_store_py).export()
        assert compiled.Context.from_export(data).size() == _store_py.Context.from_export(data).size()

    def test_store_stats_count_clones_items_merges(self, backend: ModuleType) -> None:
        ctx = backend.Context()
        before = backend.store_stats()
        assert set(before) == {"clones", "items", "merges"}
        for _ in range(3):
            ctx.clone()
        for i in range(5):
            ctx.with_item(i, i)
        ctx.merge(ctx)
        after = backend.store_stats()
        assert after["clones"] - before["clones"] == 3
        assert after["items"] - before["items"] == 5
        assert after["merges"] - before["merges"] == 1
        backend.reset_store_stats()
        assert backend.store_stats() == {"clones": 0, "items": 0, "merges": 0}
        with pytest.raises(TypeError):
            ctx.with_item(set(), 0)  # a failed with_item is not counted
        assert backend.store_stats()["items"] == 0
