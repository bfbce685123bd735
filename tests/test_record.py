"""``flowctx._record.record`` behaves as ``@dataclass`` for what flowctx's value classes use.

Each shape is declared twice, once with ``dataclasses.dataclass`` and once with ``record``, and
the two are driven the same way: construction (positional, keyword, defaults, factories,
``__post_init__``, every kind of bad call and its message), repr (also of a recursive value),
equality, hashing, frozenness, ``dataclasses.replace`` / ``fields`` / ``asdict``, pickling and
copying.  The last test checks that the classes of a run are made without compiling code.
"""
from __future__ import annotations

import ast
import copy
import dataclasses
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import field
from typing import Any

import pytest

from flowctx._record import _record

PARAMS = [
    {"frozen": True, "slots": True},
    {"frozen": True},
    {"slots": True},
    {},
    {"eq": False},
    {"eq": False, "slots": True},
]


def _shape(deco: Callable[..., Any], params: dict[str, Any]) -> type:
    @deco(**params)
    class Shape:
        """A value."""

        name: str
        count: int = 0
        tags: tuple[str, ...] = ()
        extra: dict[str, Any] = field(default_factory=dict)
        note: Any = field(default=None, compare=False, repr=False)
        seen: list[Any] = field(default_factory=list, compare=False, hash=False)

        def total(self) -> int:
            return self.count + len(self.tags)

    return Shape


def _both(params: dict[str, Any]) -> tuple[type, type]:
    return _shape(dataclasses.dataclass, params), _shape(_record, params)


def _picklable(cls: type, params: dict[str, Any]) -> type:
    """``cls`` findable by pickle: a module-level name of its own."""
    name = "Shape_" + "_".join(f"{k}{int(v)}" for k, v in sorted(params.items()))
    cls.__qualname__ = cls.__name__ = name
    globals()[name] = cls
    return cls


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except Exception as exc:  # noqa: BLE001 - the comparison is of the exception
        return type(exc).__name__, str(exc).split(".__init__() ")[-1]


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("a",), {}),
    (("a", 2, ("x",)), {}),
    (("a",), {"extra": {"k": 1}, "note": "n"}),
    ((), {"name": "a", "count": 3}),
    ((), {}),
    (("a", 1, (), {}, None, [], "too many"), {}),
    (("a",), {"name": "b"}),
    (("a",), {"bogus": 1}),
    ((), {"count": 1}),
]


@pytest.mark.parametrize("params", PARAMS, ids=str)
def test_construction_and_its_errors_match_dataclasses(params: dict[str, Any]) -> None:
    dc, rc = _both(params)
    for args, kwargs in CALLS:
        want = _outcome(lambda: repr(dc(*args, **kwargs)))  # noqa: B023 - called at once
        got = _outcome(lambda: repr(rc(*args, **kwargs)))  # noqa: B023
        assert got == want, (args, kwargs)
    # a factory makes a new value for every instance
    a, b = rc("a"), rc("a")
    assert a.extra == {} and a.extra is not b.extra and a.seen is not b.seen
    assert rc("a", 2, ("t",)).total() == 3


@pytest.mark.parametrize("params", PARAMS, ids=str)
def test_repr_eq_hash_and_frozenness_match_dataclasses(params: dict[str, Any]) -> None:
    dc, rc = _both(params)
    pairs = [
        (("a",), ("a",)),
        (("a", 1), ("a", 2)),
        (("a",), ("b",)),
    ]
    for left, right in pairs:
        for cls in (dc, rc):
            x = cls(*left, note=1)  # note: repr=False
            assert repr(x).split("(", 1)[1] == repr(dc(*left, note=1)).split("(", 1)[1]
        dx, dy = dc(*left, note=1), dc(*right, note=2)
        rx, ry = rc(*left, note=1), rc(*right, note=2)
        assert (rx == ry) == (dx == dy)
        assert (rx != ry) == (dx != dy)
        assert (rx == rx) and (rx == dx) is False  # another class is never equal
        assert _outcome(lambda: hash(rx) == hash(ry)) == _outcome(lambda: hash(dx) == hash(dy))  # noqa: B023
        assert _outcome(lambda: hash(rx))[0] == _outcome(lambda: hash(dx))[0]  # noqa: B023
        hx, hd = rc(*left, extra=frozenset()), dc(*left, extra=frozenset())  # all fields hashable
        if params.get("eq", True) and params.get("frozen"):
            assert hash(hx) == hash(hd)  # the hash of the same tuple of hash fields
        else:
            assert _outcome(lambda: hash(hx))[0] == _outcome(lambda: hash(hd))[0]  # noqa: B023
    assert (rc.__hash__ is None) == (dc.__hash__ is None)
    r, d = rc("a"), dc("a")
    assert _outcome(lambda: setattr(r, "count", 5)) == _outcome(lambda: setattr(d, "count", 5))
    assert _outcome(lambda: delattr(r, "count")) == _outcome(lambda: delattr(d, "count"))
    if params.get("frozen") and params.get("slots"):
        # CPython 3.10/3.11's generated __setattr__ of a frozen slotted class fails with a
        # TypeError from super() here (it names the class from before the slots were added)
        assert _outcome(lambda: setattr(r, "other", 5))[0] == "FrozenInstanceError"
    else:
        assert _outcome(lambda: setattr(r, "other", 5)) == _outcome(lambda: setattr(d, "other", 5))
    if params.get("frozen") and not params.get("slots"):  # a plain subclass may add attributes
        sr, sd = type("Sub", (rc,), {})("a"), type("Sub", (dc,), {})("a")
        sr.more = sd.more = 1
        assert _outcome(lambda: setattr(sr, "count", 1)) == _outcome(lambda: setattr(sd, "count", 1))
    assert hasattr(r, "__dict__") == hasattr(d, "__dict__")


@pytest.mark.parametrize("params", PARAMS, ids=str)
def test_dataclasses_functions_pickle_and_copy_work_on_records(params: dict[str, Any]) -> None:
    dc, rc = _both(params)
    rc = _picklable(rc, params)
    r = rc("a", 2, ("x",), {"k": [1]}, "n", [1])
    assert dataclasses.is_dataclass(r)
    assert [f.name for f in dataclasses.fields(r)] == [f.name for f in dataclasses.fields(dc)]
    assert dataclasses.asdict(r) == dataclasses.asdict(dc("a", 2, ("x",), {"k": [1]}, "n", [1]))
    changed = dataclasses.replace(r, count=7)
    assert type(changed) is rc and changed.count == 7 and changed.name == "a" and r.count == 2
    assert rc.__match_args__ == dc.__match_args__
    for clone in (pickle.loads(pickle.dumps(r)), copy.copy(r), copy.deepcopy(r)):
        assert type(clone) is rc
        assert [getattr(clone, f.name) for f in dataclasses.fields(r)] == [
            getattr(r, f.name) for f in dataclasses.fields(r)
        ]


@pytest.mark.parametrize("params", PARAMS, ids=str)
def test_a_dataclass_subclass_of_a_record_behaves_as_of_a_dataclass(params: dict[str, Any]) -> None:
    dc, rc = _both(params)
    for sub_params in ({"frozen": True}, {}):
        made = []
        for base in (dc, rc):
            made.append(_outcome(lambda base=base, sub_params=sub_params: dataclasses.dataclass(  # type: ignore[misc]
                type("Sub", (base,), {"__annotations__": {"more": "int"}, "more": 0}), **sub_params)))
        assert [m[0] for m in made] == [made[0][0]] * 2, (sub_params, made)
        if made[0][0] == "ok":
            d, r = made[0][1]("a", more=2), made[1][1]("a", more=2)
            assert (r.name, r.more, r.extra) == (d.name, d.more, d.extra)
            assert _outcome(lambda: setattr(r, "more", 3))[0] == _outcome(lambda: setattr(d, "more", 3))[0]  # noqa: B023
    assert {k: getattr(rc.__dataclass_params__, k) for k in ("init", "repr", "eq", "frozen")} == {
        k: getattr(dc.__dataclass_params__, k) for k in ("init", "repr", "eq", "frozen")}


def test_the_spec_model_takes_a_frozen_dataclass_subclass() -> None:
    from flowctx.spec.model import Loc

    @dataclasses.dataclass(frozen=True)
    class TaggedLoc(Loc):
        tag: str = ""

    t = TaggedLoc("f.yaml", 1, 2, "x")
    assert (str(t), t.tag) == ("f.yaml:1:2", "x") and t == TaggedLoc("f.yaml", 1, 2, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.line = 3  # type: ignore[misc]


@pytest.mark.parametrize("params", PARAMS, ids=str)
def test_fields_outside_init_get_their_defaults(params: dict[str, Any]) -> None:
    def make(deco: Callable[..., Any]) -> type:
        @deco(**params)
        class Later:
            a: int
            b: int = field(default=5, init=False)
            c: list[int] = field(default_factory=list, init=False)

        return Later

    rc = make(_record)
    d, r = make(dataclasses.dataclass)(1), rc(1)
    assert repr(r).split("(", 1)[1] == repr(d).split("(", 1)[1] and (r.b, r.c) == (5, [])
    assert r.c is not rc(1).c  # a new value per instance
    assert _outcome(lambda: make(_record)(1, 2))[0] == _outcome(lambda: make(dataclasses.dataclass)(1, 2))[0]


def test_the_messages_of_a_class_without_defaults_match_dataclasses() -> None:
    def make(deco: Callable[..., Any]) -> tuple[type, type]:
        @deco
        class Three:
            a: int
            b: int
            c: int

        @deco
        class Empty:
            pass

        return Three, Empty

    (d3, de), (r3, re) = make(dataclasses.dataclass), make(_record)
    for args in [(), (1,), (1, 2), (1, 2, 3, 4)]:
        assert _outcome(lambda: r3(*args)) == _outcome(lambda: d3(*args))  # noqa: B023
    assert _outcome(lambda: re(1)) == _outcome(lambda: de(1))
    assert _outcome(lambda: re(x=1)) == _outcome(lambda: de(x=1))


def test_recursive_repr_and_post_init() -> None:
    for deco in (dataclasses.dataclass, _record):

        @deco
        class Node:
            value: int
            children: list[Any] = field(default_factory=list)

            def __post_init__(self) -> None:
                if self.value < 0:
                    raise ValueError(f"negative: {self.value}")

        n = Node(1)
        n.children.append(n)
        assert repr(n) == "test_recursive_repr_and_post_init.<locals>.Node(value=1, children=[...])"
        with pytest.raises(ValueError, match="negative: -1"):
            Node(-1)


def test_a_class_body_method_wins_and_a_bad_order_is_refused() -> None:
    @_record(frozen=True)
    class Custom:
        a: int

        def __repr__(self) -> str:
            return "custom"

    assert repr(Custom(1)) == "custom"
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):

        @_record
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]

    with pytest.raises(TypeError, match="keyword-only fields are not supported"):

        @_record
        class KwOnly:
            a: int = field(default=0, kw_only=True)

    with pytest.raises(TypeError, match="InitVar fields are not supported"):

        @_record
        class WithInitVar:
            a: dataclasses.InitVar[int]

    with pytest.raises(TypeError, match="cannot define __setattr__"):

        @_record(frozen=True)
        class Settable:
            a: int

            def __setattr__(self, name: str, value: Any) -> None:
                pass


def test_the_value_classes_of_a_run_are_records() -> None:
    """The point of ``record``: the dataclasses a ``flowctx run`` imports are records (no code is
    compiled for them at import); the three made for every action call or retry test write
    their ``__init__`` out (faster than the shared one)."""
    code = (
        "import dataclasses, sys\n"
        "import flowctx.cli.run, flowctx.spec, flowctx.engine, flowctx.kv, flowctx.actions, flowctx.executors\n"
        "from flowctx._record import _init\n"
        "seen = set()\n"
        "for name, mod in list(sys.modules.items()):\n"
        "    if not name.startswith('flowctx'): continue\n"
        "    for v in list(vars(mod).values()):\n"
        "        if isinstance(v, type) and dataclasses.is_dataclass(v) and v.__module__.startswith('flowctx'):\n"
        "            seen.add((v.__qualname__, v.__init__ is _init))\n"
        "print(sorted(seen))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seen = dict(ast.literal_eval(out.stdout))
    assert {"WorkflowSpec", "TaskSpec", "Loc", "TaskInstance", "Staged", "TaskRecord", "Outcome"} <= set(seen)
    plain = sorted(name for name, record_init in seen.items() if not record_init)
    assert plain == ["ActionCall", "Outcome", "TaskScope"], plain  # their own __init__, below
    from flowctx.actions.base import Outcome
    from flowctx.engine.conductor import ActionCall
    from flowctx.render import TaskScope

    for cls in (ActionCall, Outcome, TaskScope):
        assert "_flowctx_record" in vars(cls)  # made by record all the same


def test_the_written_out_inits_keep_dataclass_behaviour() -> None:
    from flowctx.actions.base import Outcome
    from flowctx.render import TaskScope

    o = Outcome("succeeded", 1, None, 2.0)
    assert (o.status, o.result, o.error, o.started, o.finished) == ("succeeded", 1, None, 2.0, 0.0)
    assert o == Outcome("succeeded", 1, None, 2.0) and hash(o) == hash(Outcome("succeeded", 1, None, 2.0))
    assert repr(o) == "Outcome(status='succeeded', result=1, error=None, started=2.0, finished=0.0)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.status = "failed"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(o)) == o and dataclasses.replace(o, result=2).result == 2
    assert TaskScope() == TaskScope(None, None, None) and TaskScope(status="x").status == "x"
