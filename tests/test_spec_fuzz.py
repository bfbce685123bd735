"""Fuzzing the loader: whatever the input, ``load_workflow`` returns a spec or raises
:class:`WorkflowError` (never anything else), never hangs, and never constructs YAML tags.

Bounded in the normal suite (a few seconds); ``FLOWCTX_FUZZ_LONG=1`` runs the long version
(``-m slow``) with thousands of cases per strategy.
"""
from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowctx.cli.graph import render_graph
from flowctx.errors import WorkflowError
from flowctx.spec import WorkflowSpec, load_workflow, validate

LONG = os.environ.get("FLOWCTX_FUZZ_LONG", "") not in ("", "0")


def _root() -> Path:
    here = Path(__file__).parent / "conformance"
    return here if (here / "orquesta" / "workflows").is_dir() else Path("/work/shared/conformance")


SEEDS = [p.read_text() for p in sorted((_root() / "orquesta" / "workflows").glob("*.yaml"))]
SEEDS += [p.read_text() for p in sorted((_root() / "attune").glob("*.yaml"))]
SEED_DOCS = [yaml.safe_load(s) for s in SEEDS]

MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / f"flowctx-fuzz-tag-executed-{os.getpid()}"


def check(doc: Any) -> None:
    """The property: a spec or a WorkflowError, quickly; validation and graphing never crash."""
    start = time.perf_counter()
    try:
        spec = load_workflow(doc, file="fuzz.yaml", validate=False)
    except WorkflowError as exc:
        assert "internal error" not in str(exc), str(exc)
        assert exc.problems and str(exc.problems[0]).startswith("fuzz.yaml:")
        return
    finally:
        assert time.perf_counter() - start < 5.0
    assert isinstance(spec, WorkflowSpec)
    problems = validate(spec)
    for p in problems:
        assert p.severity in ("error", "warning")
        assert str(p).startswith(("fuzz.yaml:", "<string>:"))
    try:
        load_workflow(doc, file="fuzz.yaml")
    except WorkflowError as exc:
        assert any(p.severity == "error" for p in problems)
        assert "internal error" not in str(exc)
    else:
        assert not any(p.severity == "error" for p in problems)
    if not any(p.severity == "error" for p in problems):
        render_graph(spec, "mermaid")
        render_graph(spec, "dot")
    assert not MARKER.exists(), "a YAML tag was executed"


# -- strategies ---------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30),
    st.sampled_from(["<% ctx().x %>", "{{ x }}", "{{", "<%", "%>", "all", "noop", "fail", "continue",
                     "a=1 b=<% 2 %>", "x in <% ctx(xs) %>", "core.echo message=hi", "task1, task2",
                     "-1", "0", "1e400", "9" * 5000, "{% for %}", "&a", "*a", "!!python/object:os.system"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10) | scalars.filter(
        lambda v: v is not None and not isinstance(v, float)), inner, max_size=4)),
    max_leaves=20,
)

WORKFLOW_KEYS = ["version", "description", "input", "vars", "tasks", "output", "ref", "parameters",
                 "output_map", "label"]
TASK_KEYS = ["action", "input", "with", "join", "retry", "delay", "next", "name", "type", "when",
             "with_items", "concurrency", "batch_size", "timeout", "publish", "on_success", "on_failure",
             "on_complete", "on_timeout", "decision", "tasks", "workflow"]


@st.composite
def workflow_shaped(draw: Any) -> Any:
    task = st.dictionaries(st.sampled_from(TASK_KEYS), values, max_size=6)
    tasks = st.one_of(st.dictionaries(st.text(min_size=1, max_size=8), task, max_size=4),
                      st.lists(task, max_size=4), values)
    doc = draw(st.dictionaries(st.sampled_from(WORKFLOW_KEYS), values, max_size=5))
    doc["tasks"] = draw(tasks)
    return doc


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _replace(node: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        new = dict(node)
    else:
        new = list(node)
    new[head] = _replace(node[head], rest, value)
    return new


@st.composite
def wrong_type_mutation(draw: Any) -> str:
    doc = draw(st.sampled_from(SEED_DOCS))
    path = draw(st.sampled_from(_paths(doc)))
    value = draw(st.one_of(scalars, st.just([]), st.just({}), st.just([1, [2]]), st.just({"k": {"v": None}})))
    return _dump(_replace(doc, path, value))


@st.composite
def text_mutation(draw: Any) -> str:
    text = draw(st.sampled_from(SEEDS))
    rnd = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(1, 5))):
        op = rnd.randrange(4)
        i = rnd.randrange(len(text) + 1)
        j = min(len(text), i + rnd.randrange(1, 40))
        if op == 0:
            text = text[:i] + text[j:]
        elif op == 1:
            text = text[:i] + rnd.choice([":", "- ", "\n  ", "[", "{", "&x ", "*x", "!!str ", "'", '"', "\t",
                                          "<% ", "{{ ", "#", "? ", "|\n"]) + text[i:]
        elif op == 2:
            lines = text.splitlines(keepends=True)
            if len(lines) > 2:
                a, b = rnd.randrange(len(lines)), rnd.randrange(len(lines))
                lines[a], lines[b] = lines[b], lines[a]
            text = "".join(lines)
        else:
            text = text[:i] + text[i:j] * rnd.randrange(2, 4) + text[j:]
    return text


SPECIAL_DOCS = [
    # alias bombs (billion laughs) in several shapes
    "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9)) + "tasks: {}\n",
    "vars:\n  - a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"  - v{i}: &v{i} [{', '.join(['*a' if i == 0 else f'*v{i - 1}'] * 10)}]\n" for i in range(8))
    + "tasks:\n  t1:\n    action: core.noop\n    input:\n      x: *v7\n",
    "- &a [&b [&c [&d [x]]]]\n- [*a, *a, *a, *b, *b, *c, *d]\n",
    "a: &a {<<: *a}\n",
    "x: &x [*x]\n",
    # tags that must never be constructed
    f"tasks:\n  t1:\n    action: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{MARKER}']]\n",
    f"!!python/object/apply:os.system ['touch {MARKER}']\n",
    "tasks: !!python/name:os.system\n",
    "tasks: !!python/module:os\n",
    "tasks: !custom {a: 1}\n",
    "tasks: !!set {a, b}\n",
    "tasks: !!omap [a: 1]\n",
    "version: !!binary aGVsbG8=\ntasks: {t: {action: core.noop}}\n",
    # deep nesting, huge numbers, odd scalars
    "tasks: " + "[" * 2000 + "]" * 2000 + "\n",
    "tasks: " + "{a: " * 500 + "1" + "}" * 500 + "\n",
    "tasks:\n" + "".join("  " * i + "- \n" for i in range(1, 300)),
    "version: 1.0\ntasks:\n  t1:\n    delay: " + "9" * 100000 + "\n",
    "version: 1.0\ntasks:\n  t1:\n    retry: {count: 1e999, delay: -1e999}\n",
    "version: 1.0\ntasks:\n  t1:\n    join: 99999999999999999999999999999\n",
    "version: 1.0\ntasks:\n  t1:\n    with: {items: [1], concurrency: .nan}\n",
    "version: 2001-12-14t21:59:43.10-05:00\ntasks: {t: {}}\n",
    "? [complex, key]\n: value\ntasks: {}\n",
    "tasks: {[a]: {}}\n",
    "%YAML 1.1\n%TAG ! tag:example.com,2000:\n---\ntasks: !foo {}\n",
    "tasks: {}\n...\n---\ntasks: {}\n",
    "",
    "\x00\x01",
    "\ufeffversion: 1.0\ntasks: {t: {action: core.noop}}\n",
    "tasks:\n  \x85: {}\n",
]

bad_bytes = st.binary(max_size=200).map(lambda b: b"version: 1.0\ntasks:\n  t1:\n    action: " + b)


# -- tests --------------------------------------------------------------------------------------

N = 3000 if LONG else 60
FUZZ = settings(max_examples=N, deadline=None if LONG else 2000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], database=None)


@FUZZ
@given(st.one_of(values.map(_dump), st.text(max_size=300)))
def test_random_documents(doc: str) -> None:
    check(doc)


@FUZZ
@given(workflow_shaped().map(_dump))
def test_workflow_shaped_documents(doc: str) -> None:
    check(doc)


@FUZZ
@given(wrong_type_mutation())
def test_wrong_type_in_every_field(doc: str) -> None:
    check(doc)


@FUZZ
@given(text_mutation())
def test_mutated_valid_workflows(doc: str) -> None:
    check(doc)


@FUZZ
@given(bad_bytes)
def test_arbitrary_bytes(doc: bytes) -> None:
    check(doc)


@pytest.mark.parametrize("doc", SPECIAL_DOCS, ids=[f"special{i}" for i in range(len(SPECIAL_DOCS))])
def test_special_documents(doc: str) -> None:
    start = time.perf_counter()
    check(doc)
    assert time.perf_counter() - start < 2.0


def test_every_field_of_every_seed_with_every_wrong_type() -> None:
    """Deterministic sweep: paths of the seed workflows replaced by each kind of wrong value
    (every path of every seed in the long mode, a fixed random sample otherwise)."""
    kinds = [None, True, -1, 0, 2**70, 1.5, "", "x", [], {}, [None], {"a": [1]}]
    combos = [(d, p, v) for d, doc in enumerate(SEED_DOCS) for p in _paths(doc) for v in range(len(kinds))]
    if not LONG:
        combos = random.Random(7).sample(combos, 100)
    for d, path, v in combos:
        check(_dump(_replace(SEED_DOCS[d], path, kinds[v])))


@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason="set FLOWCTX_FUZZ_LONG=1 for the long fuzz run")
def test_long_fuzz_marker() -> None:
    """The long mode runs every fuzz test above with thousands of cases each."""
    assert N >= 3000
