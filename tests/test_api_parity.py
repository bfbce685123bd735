"""The compiled store, its pure twin and the ``.pyi`` stub describe one API.

* public names: module ``__all__``, and the public attributes of every exported class;
* signatures: the twin (the reference, fully annotated) against the stub (parsed with ``ast``:
  names, kinds, defaults and annotations) and against the compiled module (names, kinds,
  defaults; Cython does not keep annotations);
* what ``inspect.signature`` cannot see in a cdef class (``__init__``, rich comparison, hashing,
  pickling, repr, subclassing): compared by behaviour.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pickle
import re
import types
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import flowctx

STUB = Path(flowctx.__file__).with_name("_store.pyi")
twin = importlib.import_module("flowctx._store_py")


def compiled() -> ModuleType:
    return importlib.import_module("flowctx._store")  # fails (never skips) without a build


def public(obj: Any) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


# --------------------------------------------------------------------------- the stub, parsed
class StubFunction:
    def __init__(self, node: ast.FunctionDef) -> None:
        self.name = node.name
        self.decorators = {ast.unparse(d) for d in node.decorator_list}
        a = node.args
        params: list[tuple[str, str, str | None, str | None]] = []
        positional = a.posonlyargs + a.args
        defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
        for arg, default in zip(positional, defaults):
            kind = "POSITIONAL_ONLY" if arg in a.posonlyargs else "POSITIONAL_OR_KEYWORD"
            params.append((arg.arg, kind, _unparse(default), _unparse(arg.annotation)))
        if a.vararg:
            params.append((a.vararg.arg, "VAR_POSITIONAL", None, _unparse(a.vararg.annotation)))
        for arg, default in zip(a.kwonlyargs, a.kw_defaults):
            params.append((arg.arg, "KEYWORD_ONLY", _unparse(default), _unparse(arg.annotation)))
        if a.kwarg:
            params.append((a.kwarg.arg, "VAR_KEYWORD", None, _unparse(a.kwarg.annotation)))
        self.params = params
        self.returns = _unparse(node.returns)


def _unparse(node: ast.AST | None) -> str | None:
    return None if node is None else ast.unparse(node)


def parse_stub() -> tuple[list[str], dict[str, StubFunction], dict[str, dict[str, StubFunction]]]:
    tree = ast.parse(STUB.read_text())
    all_names: list[str] = []
    functions: dict[str, StubFunction] = {}
    classes: dict[str, dict[str, StubFunction]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            all_names = list(ast.literal_eval(node.value))
        elif isinstance(node, ast.FunctionDef):
            functions[node.name] = StubFunction(node)
        elif isinstance(node, ast.ClassDef):
            classes[node.name] = {n.name: StubFunction(n) for n in node.body if isinstance(n, ast.FunctionDef)}
    return all_names, functions, classes


def sig_tuple(func: Any, with_annotations: bool) -> tuple[list[tuple[Any, ...]], str | None]:
    sig = inspect.signature(func)
    params = []
    for p in sig.parameters.values():
        default = None if p.default is inspect.Parameter.empty else repr(p.default)
        row: tuple[Any, ...] = (p.name, p.kind.name, default)
        if with_annotations:
            row += (None if p.annotation is inspect.Parameter.empty else str(p.annotation),)
        params.append(row)
    ret = None if sig.return_annotation is inspect.Signature.empty else str(sig.return_annotation)
    return params, (ret if with_annotations else None)


def stub_sig(f: StubFunction, with_annotations: bool) -> tuple[list[tuple[Any, ...]], str | None]:
    if with_annotations:
        return [tuple(p) for p in f.params], f.returns
    return [p[:3] for p in f.params], None


STUB_ALL, STUB_FUNCS, STUB_CLASSES = parse_stub()
CONTEXT_METHODS = sorted(
    n for n, f in STUB_CLASSES["Context"].items() if not n.startswith("__") and "property" not in f.decorators
)
CONTEXT_PROPERTIES = sorted(n for n, f in STUB_CLASSES["Context"].items() if "property" in f.decorators)


# --------------------------------------------------------------------------- names
def test_module_names_match() -> None:
    assert list(twin.__all__) == STUB_ALL
    assert sorted(STUB_ALL) == sorted(set(STUB_FUNCS) | set(STUB_CLASSES))
    for name in STUB_ALL:
        assert hasattr(twin, name), name


@pytest.mark.compiled
def test_compiled_module_names_match() -> None:
    mod = compiled()
    assert list(mod.__all__) == list(twin.__all__)
    assert public(mod) >= set(twin.__all__)
    assert {n for n in public(mod) if callable(getattr(mod, n))} - set(mod.__all__) <= {"Mapping"}


@pytest.mark.parametrize("cls", ["Context", "FrozenDict", "FrozenList"])
def test_class_public_names_match(backend: ModuleType, cls: str) -> None:
    assert public(getattr(backend, cls)) == public(getattr(twin, cls))
    # the stub lists exactly the public attributes the twin's class defines itself
    stub_public = {n for n in STUB_CLASSES[cls] if not n.startswith("_")}
    assert stub_public == {n for n in vars(getattr(twin, cls)) if not n.startswith("_")}


def test_context_properties_and_methods(backend: ModuleType) -> None:
    ctx = backend.Context()
    for name in CONTEXT_PROPERTIES:
        descriptor = inspect.getattr_static(backend.Context, name)
        assert hasattr(descriptor, "__get__") and not callable(getattr(ctx, name)), name
        with pytest.raises(AttributeError):
            setattr(ctx, name, 1)
    for name in CONTEXT_METHODS:
        assert callable(getattr(ctx, name)), name
    assert isinstance(inspect.getattr_static(backend.Context, "from_export"), classmethod)
    assert isinstance(inspect.getattr_static(twin.Context, "from_export"), classmethod)


# --------------------------------------------------------------------------- signatures
@pytest.mark.parametrize("name", sorted(STUB_FUNCS))
def test_function_signatures_twin_vs_stub(name: str) -> None:
    assert sig_tuple(getattr(twin, name), True) == stub_sig(STUB_FUNCS[name], True)


@pytest.mark.parametrize("name", CONTEXT_METHODS + ["__init__"])
def test_context_signatures_twin_vs_stub(name: str) -> None:
    func = getattr(twin.Context, name)
    expected = stub_sig(STUB_CLASSES["Context"][name], True)
    if name == "from_export":  # a bound classmethod: inspect drops ``cls``
        expected = (expected[0][1:], expected[1])
    assert sig_tuple(func, True) == expected


@pytest.mark.parametrize("name", CONTEXT_PROPERTIES)
def test_property_types_twin_vs_stub(name: str) -> None:
    prop = inspect.getattr_static(twin.Context, name)
    assert isinstance(prop, property)
    assert sig_tuple(prop.fget, True) == stub_sig(STUB_CLASSES["Context"][name], True)


@pytest.mark.compiled
@pytest.mark.parametrize("name", sorted(STUB_FUNCS))
def test_function_signatures_compiled_vs_twin(name: str) -> None:
    assert sig_tuple(getattr(compiled(), name), False) == sig_tuple(getattr(twin, name), False)


@pytest.mark.compiled
@pytest.mark.parametrize("name", CONTEXT_METHODS)
def test_context_signatures_compiled_vs_twin(name: str) -> None:
    mod = compiled()
    assert sig_tuple(getattr(mod.Context, name), False) == sig_tuple(getattr(twin.Context, name), False)


@pytest.mark.parametrize("cls", ["FrozenDict", "FrozenList"])
def test_frozen_types_stub_lists_every_refused_mutator(backend: ModuleType, cls: str) -> None:
    for name in STUB_CLASSES[cls]:
        assert hasattr(getattr(backend, cls), name), f"{cls}.{name}"


FROZEN_METHODS = [(cls, name) for cls in ("FrozenDict", "FrozenList") for name in sorted(STUB_CLASSES[cls])]


def _without_self_annotation(sig: tuple[list[tuple[Any, ...]], str | None]) -> tuple[list[tuple[Any, ...]], str | None]:
    params, ret = sig
    if params and params[0][0] in ("self", "cls"):
        params = [params[0][:3] + (None,) * (len(params[0]) - 3), *params[1:]]
    return params, ret


def _is_slot_wrapper(obj: Any) -> bool:
    return isinstance(
        obj, (types.WrapperDescriptorType, types.MethodWrapperType, types.MethodDescriptorType, types.BuiltinMethodType)
    )


@pytest.mark.parametrize("cls,name", FROZEN_METHODS)
def test_frozen_signatures_twin_vs_stub(cls: str, name: str) -> None:
    """Every method the stub gives FrozenDict / FrozenList: the twin's full signature (names,
    kinds, defaults, annotations) is the stub's."""
    func = inspect.getattr_static(getattr(twin, cls), name)
    if isinstance(func, staticmethod):  # __new__
        func = func.__func__
    stub = STUB_CLASSES[cls][name]
    if _is_slot_wrapper(func):  # inherited from tuple (FrozenList.__hash__): kinds only
        assert [p[1] for p in sig_tuple(func, False)[0]] == ["POSITIONAL_ONLY"] * len(stub.params)
        return
    assert _without_self_annotation(sig_tuple(func, True)) == _without_self_annotation(stub_sig(stub, True))


@pytest.mark.compiled
@pytest.mark.parametrize("cls,name", FROZEN_METHODS)
def test_frozen_signatures_compiled_vs_twin(cls: str, name: str) -> None:
    """Names, kinds and defaults of every FrozenDict / FrozenList method, compiled vs twin.

    A C slot of the extension type (``__getitem__``, ``__eq__`` ...) reports CPython's generic
    parameter names (``value``), so for those the kinds are compared (all positional-only, as
    in the stub); ``FrozenDict.__new__`` is the extension type's generic constructor, compared by
    behaviour in test_frozen_constructors_match.
    """
    mod = compiled()
    ours = getattr(getattr(mod, cls), name)
    ref = getattr(getattr(twin, cls), name)
    if cls == "FrozenDict" and name == "__new__":
        return
    try:
        got = sig_tuple(ours, False)[0]
    except ValueError:  # __or__ / __ror__: a binary slot, no text signature
        got = [("self", "POSITIONAL_ONLY", None), ("value", "POSITIONAL_ONLY", None)]
    if isinstance(ours, (types.WrapperDescriptorType, types.MethodWrapperType)) or name in ("__or__", "__ror__"):
        want = sig_tuple(ref, False)[0]
        assert [p[1:] for p in got][1:] == [("POSITIONAL_ONLY", None)] * (len(want) - 1)
        assert all(p[1] == "POSITIONAL_ONLY" for p in want[1:]), want
        return
    # FrozenDict's C methods (binding=False) take ``self`` positional-only: the same call forms
    assert _self_kind_free(sig_tuple(ours, False)) == _self_kind_free(sig_tuple(ref, False))


def _self_kind_free(sig: tuple[list[tuple[Any, ...]], str | None]) -> tuple[list[tuple[Any, ...]], str | None]:
    params, ret = sig
    if params and params[0][0] == "self":
        params = [("self", "SELF", *params[0][2:]), *params[1:]]
    return params, ret


def test_frozen_constructors_match(backend: ModuleType) -> None:
    for args, kwargs in [((), {}), (({"a": [1]},), {}), (([("a", 1)],), {"b": {"c": []}}), ((), {"k": (1,)})]:
        got, ref = backend.FrozenDict(*args, **kwargs), twin.FrozenDict(*args, **kwargs)
        assert thaw_all(got) == thaw_all(ref)
    for value in ((), [1, [2]], ({"a": []},), iter([1, 2])):
        assert list(backend.FrozenList(value)) == list(twin.FrozenList(value)) or value.__class__.__name__ == "list_iterator"
    for bad in (lambda m: m.FrozenDict({1: 2}), lambda m: m.FrozenDict(1), lambda m: m.FrozenList([object()]), lambda m: m.FrozenList(1)):
        with pytest.raises(TypeError) as got_info:
            bad(backend)
        with pytest.raises(TypeError) as ref_info:
            bad(twin)
        assert str(got_info.value).replace("flowctx._store.", "") == str(ref_info.value).replace("flowctx._store_py.", "")


def thaw_all(value: Any) -> Any:
    return twin.thaw(value)


# --------------------------------------------------------------------------- behaviour of dunders
def test_init_accepts_positional_and_keyword_arguments(backend: ModuleType) -> None:
    args = ({"p": 1}, {"v": 2}, {"t": 3}, {"s": 4})
    by_position = backend.Context(*args)
    by_keyword = backend.Context(parameters=args[0], variables=args[1], task_results=args[2], system=args[3])
    assert by_position == by_keyword
    assert by_position.export() == twin.Context(*args).export()
    assert backend.Context().export() == twin.Context().export()
    with pytest.raises(TypeError):
        backend.Context(bogus=1)
    with pytest.raises(TypeError):
        backend.Context({}, {}, {}, {}, {})


def test_init_again_replaces_the_content(backend: ModuleType) -> None:
    ctx = backend.Context(variables={"a": 1})
    clone = ctx.clone()
    ctx.__init__(variables={"b": 2})
    assert dict(ctx.variables) == {"b": 2} and dict(clone.variables) == {"a": 1}


def test_rich_comparison_and_hash(backend: ModuleType) -> None:
    a, b = backend.Context(variables={"x": 1}), backend.Context(variables={"x": 1})
    assert a == b and not (a != b)
    assert a != backend.Context(variables={"x": 2})
    assert (a == 1) is False and (a != 1) is True
    for order in (lambda: a < b, lambda: a <= b, lambda: a > b, lambda: a >= b):
        with pytest.raises(TypeError, match="not supported between instances of"):
            order()
    assert backend.Context.__hash__ is None
    with pytest.raises(TypeError, match="unhashable"):
        hash(a)


def test_frozen_value_equality_and_hash(backend: ModuleType) -> None:
    fl = backend.freeze([1, [2, {"a": [3]}]])
    assert fl == [1, [2, {"a": [3]}]] and [1, [2, {"a": [3]}]] == fl
    assert fl == (1, (2, {"a": (3,)}))
    assert fl != [1, 2] and not (fl != [1, [2, {"a": [3]}]])
    assert hash(backend.freeze([1, "a"])) == hash((1, "a"))
    assert backend.freeze({"a": [1]}) == {"a": [1]}
    with pytest.raises(TypeError):
        hash(backend.freeze({"a": 1}))  # a dict: unhashable, like the dict it replaces


def test_reduce_and_repr_match_the_twin(backend: ModuleType) -> None:
    ctx = backend.Context({"p": 1}, {"v": [1]}, {"t": {"r": 2}}, {"s": "x"}).with_item({"i": 1}, 3)
    ref = twin.Context({"p": 1}, {"v": [1]}, {"t": {"r": 2}}, {"s": "x"}).with_item({"i": 1}, 3)
    func, args = ctx.__reduce__()
    ref_func, ref_args = ref.__reduce__()
    assert func.__name__ == ref_func.__name__ == "_rebuild" and args == ref_args
    assert repr(ctx) == repr(ref)
    assert pickle.loads(pickle.dumps(ctx)).export() == ref.export()
    value = {"a": [1, {"b": None}]}
    assert repr(backend.freeze(value)) == repr(twin.freeze(value))
    assert repr(backend.freeze([1, "x"])) == repr(twin.freeze([1, "x"]))


def test_error_messages_match_the_twin(backend: ModuleType) -> None:
    def message(mod: ModuleType, action: Any) -> str:
        with pytest.raises((TypeError, ValueError, KeyError)) as info:
            action(mod)
        return f"{info.type.__name__}: {info.value}"

    actions = [
        lambda m: m.Context(variables=[1]),
        lambda m: m.Context(parameters={1: 2}),
        lambda m: m.Context().set_var(1, 2),
        lambda m: m.Context().set_var("v", {"a": {1}}),
        lambda m: m.Context().set_task_result("t", [b"x"]),
        lambda m: m.Context().set_system("s", {2: 1}),
        lambda m: m.Context().with_item(1, "0"),
        lambda m: m.Context().with_item(object(), 0),
        lambda m: m.Context().merge(1),
        lambda m: m.Context().delete_var("nope"),
        lambda m: m.Context.from_export({"x": 1}),
        lambda m: m.Context.from_export({"item": 1}),
        lambda m: m.Context.from_export(3),
        lambda m: m.freeze({"k": set()}, "name"),
        lambda m: m.freeze({"a": 1}).update(b=1),
        lambda m: m.freeze([1]).append(2),
    ]
    for action in actions:
        assert message(backend, action) == message(twin, action)


def test_subclassing_behaviour_matches(backend: ModuleType) -> None:
    # FrozenDict / FrozenList can be subclassed on both; a subclass instance is re-frozen.
    for mod in (backend, twin):
        sub = type("Sub", (mod.FrozenDict,), {})
        frozen = mod.freeze({"a": sub({"x": 1})})
        assert type(frozen["a"]) is mod.FrozenDict


# --------------------------------------------------------------------------- layering
def test_store_does_not_know_the_renderer() -> None:
    """The store is the lowest layer: neither backend imports anything else of flowctx."""
    twin_src = Path(twin.__file__).read_text()
    pyx = Path(__file__).resolve().parents[1] / "ext" / "_store.pyx"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(twin_src)):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert not {m for m in imported if m.startswith("flowctx")}, imported
    pyx_imports = re.findall(r"^\s*(?:from\s+(\S+)\s+c?import|c?import\s+(\S+))", pyx.read_text(), re.M)
    assert not [m for pair in pyx_imports for m in pair if m.startswith("flowctx")], pyx_imports
    assert "import_module" not in pyx.read_text() and "__import__" not in pyx.read_text()
    assert not hasattr(twin.Context, "render_template")
