"""YAQL (``<% %>``) rendering: the Orquesta conformance expressions, typed results, errors."""
from __future__ import annotations

import builtins

import pytest

from flowctx.errors import TemplateError
from flowctx.render import Renderer, TaskScope

pytest.importorskip("yaql")


@pytest.fixture(scope="module")
def r() -> Renderer:
    return Renderer()


@pytest.fixture()
def ctx(backend):
    return backend.Context(
        parameters={"members": ["alice", "bob"], "messages": ["hi", "yo"], "n": 5},
        variables={"greeting": "hello", "count": 1, "which": "a", "proceed": True, "fork1": False,
                   "xs": [1, 2, 3], "a": True, "b": False, "file": "/tmp/x", "cfg": {"k": [1, 2]}},
        task_results={"t1": {"status": "succeeded", "result": {"x": 42}}},
        system={"execution_id": "ex-1"},
    )


OK = TaskScope(status="succeeded", result="RESULT", statuses={"t1": "succeeded"})
FAIL = TaskScope(status="failed", result={"err": "bad"})


@pytest.mark.parametrize(
    "src, scope, expected",
    [
        ("<% ctx().greeting %>", None, "hello"),
        ("<% ctx(greeting) %>", None, "hello"),
        ("<% ctx('greeting') %>", None, "hello"),
        ('<% ctx("greeting") %>', None, "hello"),
        ("<% ctx(members) %>", None, ["alice", "bob"]),  # parameters (Orquesta input) are in ctx()
        ("<% ctx().count + 1 %>", None, 2),
        ("<% ctx().xs %>", None, [1, 2, 3]),
        ("<% ctx().cfg %>", None, {"k": [1, 2]}),
        ("<% result() %>", OK, "RESULT"),
        ("<% succeeded() %>", OK, True),
        ("<% failed() %>", OK, False),
        ("<% failed()  %>", FAIL, True),
        ("<% completed() %>", FAIL, True),
        ("<% succeeded() and ctx().count < 2 %>", OK, True),
        ('<% succeeded() and ctx().which = "a" %>', OK, True),
        ('<% succeeded() and ctx().which = "b" %>', OK, False),
        ("<% succeeded() and not ctx().which in list(a, b) %>", OK, False),
        ("<% list(a, b) %>", None, ["a", "b"]),
        ("<% succeeded() and ctx(a) %>", OK, True),
        ("<% succeeded() and ctx(b) %>", OK, False),
        ("<% not ctx().fork1 %>", None, True),
        ("<% succeeded() and not result() %>", OK, False),
        ("<% zip(ctx(members), ctx(messages)) %>", None, [["alice", "hi"], ["bob", "yo"]]),
        ('<% ctx("greeting") %>, <% result() %>', OK, "hello, RESULT"),
        ("<% ctx().greeting %> <% result() %>", OK, "hello RESULT"),
        ("rm -f <% ctx().file %>", None, "rm -f /tmp/x"),
        ("n=<% ctx(n) %> xs=<% ctx(xs) %>", None, "n=5 xs=[1, 2, 3]"),
        ("<% task_status(t1) %>", OK, "succeeded"),
        ("<% task(t1).result.x %>", None, 42),
        ("<% $.greeting %>", None, "hello"),
        ("<% $parameters.n %>", None, 5),
        ("<% $vars.greeting %>", None, "hello"),
        ("<% $system.execution_id %>", None, "ex-1"),
        ("<% ctx().xs.select($ * 2) %>", None, [2, 4, 6]),
        ("<% ctx().xs.where($ > 1).len() %>", None, 2),
        ("<% str(5) %>", None, "5"),
        ("<% json('[1, 2]') %>", None, [1, 2]),
        ("<% to_json_string(ctx().cfg) %>", None, '{"k": [1, 2]}'),
        ("<% regex_match(ctx().file, '/tmp/.*') %>", None, True),
    ],
)
def test_yaql_expressions(r, ctx, src, scope, expected):
    out = r.render_template(src, ctx, scope=scope)
    if isinstance(out, tuple):
        out = list(out)
    if isinstance(out, dict):
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
    assert out == expected


def test_random_file_name(r, ctx):
    out = r.render_template("/tmp/<% str(random(1000000, 9999999)) %>", ctx)
    assert out.startswith("/tmp/") and 1000000 <= int(out[5:]) <= 9999999


def test_item_functions(r, ctx):
    c = ctx.with_item({"member": "alice", "message": "hi"}, 0)
    assert r.render_template("<% item(member) %>", c) == "alice"
    assert r.render_template('"<% item(member) %>, resistance is futile!"', c) == '"alice, resistance is futile!"'
    c2 = ctx.with_item("bob", 1)
    assert r.render_template("<% item() %>", c2) == "bob"
    assert r.render_template("<% $item %>", c2) == "bob"
    assert r.render_template("<% $index %>", c2) == 1
    with pytest.raises(TemplateError, match="with-items"):
        r.render_template("<% item() %>", ctx)


def test_yaql_orquesta_function_semantics(r, backend):
    """zip(pad =>), json(), private ctx() names and distinct() over mappings, as in Orquesta 1.6.0."""
    c = backend.Context(variables={"a": [1, 2, 3], "b": ["x"], "__p": 1,
                                   "d": [{"a": 1}, {"b": 2}, {"a": 1}], "pairs": [["a", 1], ["b", 2], ["c", 1]]})
    assert r.render_template("<% zip(ctx().a, ctx().b) %>", c) == [[1, "x"], [2, None], [3, None]]
    assert r.render_template("<% zip(ctx().a, ctx().b, pad => 0) %>", c) == [[1, "x"], [2, 0], [3, 0]]
    assert list(r.render_template("<% zip(ctx().a) %>", c)) == [1, 2, 3]
    assert r.render_template("<% zip(null) %>", c) == []
    with pytest.raises(TemplateError):
        r.render_template("<% json(123) %>", c)
    with pytest.raises(TemplateError, match="private"):
        r.render_template("<% ctx('__p') %>", c)
    assert "__p" not in r.render_template("<% ctx() %>", c)
    assert r.render_template("<% ctx().d.distinct() %>", c) == [{"a": 1}, {"b": 2}]
    assert [list(p) for p in r.render_template("<% ctx().pairs.distinct($[1]) %>", c)] == [["a", 1], ["b", 2]]
    assert r.render_template("<% ctx().a.distinct() %>", c) == [1, 2, 3]
    # str() shows values read from the context as YAQL shows its own (lists as tuples)
    assert r.render_template("<% str(ctx().a) %>", c) == "(1, 2, 3)"
    assert r.render_template("<% str(ctx().d[0]) %> <% str(null) %> <% str(true) %>", c) == "{'a': 1} null true"
    assert r.render_template("<% ctx().d.join(';') %>", c) == "{'a': 1};{'b': 2};{'a': 1}"


def test_yaql_conditions(r, ctx):
    assert r.evaluate_condition("<% succeeded() %>", ctx, scope=OK) is True
    assert r.evaluate_condition("<% failed() %>", ctx, scope=OK) is False
    assert r.evaluate_condition("<% ctx().proceed %>", ctx) is True
    with pytest.raises(TemplateError):
        r.evaluate_condition("<% ctx(nope) %>", ctx)


def test_yaql_native_value_is_not_copied(r, ctx):
    out = r.render_template("<% ctx(xs) %>", ctx)
    assert out is ctx.variables["xs"]


@pytest.mark.parametrize(
    "src, pattern",
    [
        ("<% ctx( %>", "syntax"),
        ("<% %>", "empty"),
        ("<% nosuchfunc() %>", "unknown"),
        ("<% ctx(nope) %>", "nope"),
        ("<% result() %>", "result"),
        ("<% $nope %>", "nope"),
    ],
)
def test_yaql_errors(r, ctx, src, pattern):
    with pytest.raises(TemplateError, match=pattern) as ei:
        r.render_template(src, ctx, task="t", field="input")
    assert ei.value.source == src and ei.value.task == "t"


def test_yaql_check(r):
    r.check("<% ctx().x %>")
    with pytest.raises(TemplateError):
        r.check("<% ctx(.x %>")


def test_yaql_error_line(r, ctx):
    with pytest.raises(TemplateError) as ei:
        r.render_template("first\nsecond <% ctx(nope) %>", ctx)
    assert ei.value.position == 2


def test_without_yaql_installed(ctx, monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "yaql" or name.startswith("yaql."):
            raise ImportError("No module named 'yaql'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    rr = Renderer()
    with pytest.raises(TemplateError, match=r"flowctx\[yaql\]"):
        rr.render_template("<% ctx(greeting) %>", ctx)
    with pytest.raises(TemplateError, match=r"flowctx\[yaql\]"):
        rr.check("<% ctx(greeting) %>")
    assert rr.render_template("{{ vars.greeting }}", ctx) == "hello"  # Jinja unaffected


# ---------------------------------------------------------------------- compiled call sites
# A parsed statement is a tree of call sites (flowctx.render._yaql._CallSites); these forms take
# the compiled path and must give what yaql's own evaluation of the same parse gives: the value or
# the error (type and message) and the number of steps (guarded calls) counted on the way.
def _both_ways(r, ctx, src):
    from flowctx.render import _monotonic, _running
    from flowctx.render._scope import Scope

    front = r._yaql_front()
    with front._lock:
        plain = front.engine(src)
    compiled = front.calls.statement(plain)
    out = []
    for stmt in (plain, compiled):
        s = Scope(r, ctx, OK)
        s.deadline = _monotonic() + r.timeout
        try:
            with _running(s):
                out.append(("ok", front.evaluate(stmt, s), s.steps))
        except Exception as exc:  # noqa: BLE001 -- the outcome compared is the exception itself
            out.append(("err", type(exc).__name__, str(exc), s.steps))
    return compiled is not plain, out[0], out[1]


def _has_compiled_lambda(stmt):
    from flowctx.render._yaql import _Compiled

    def walk(run):
        site = getattr(run, "__self__", None)
        if site is None or not hasattr(site, "bodies"):
            return False
        return bool(site.bodies) or any(walk(a) for a in site.args) or any(
            walk(b.run) or walk(b.mrun) for b in site.bodies.values() if isinstance(b, _Compiled))

    return walk(stmt.run)


@pytest.mark.parametrize(
    "src, lam",
    [
        ("ctx(a) and ctx(b)", True),
        ("ctx(b) or ctx(count) > 0", True),
        ("succeeded() and ctx(count) > 0", True),
        ("not ctx(a) or ctx(b)", True),
        ("not ctx(xs)", False),
        ("ctx(b) and ctx(nope)", True),  # short circuit: the right side is never evaluated
        ("ctx(a) or ctx(nope)", True),
        ("ctx(a) and ctx(nope)", True),  # ... and here it is (the error of ctx(nope))
        # `and` / `or` get their compiled bodies as thunks over the call's context: inside a
        # lambda ($ is the item), nested, and with the operand's own value as the result
        ("$.xs.where($ > 1 and $ < 3)", True),
        ("$.xs.select($ = 1 or $ = 3)", True),
        ("ctx(count) and ctx(greeting)", True),
        ("(ctx(b) or ctx(a)) and (ctx(a) or ctx(nope))", True),
        # ... done in the call site's own frame (_Site.native): a constant operand is its value,
        # a lazy operand (select) still counted against the size cap as the result
        ("ctx(a) and true", True),
        ("false or ctx(count)", True),
        ("null and ctx(nope)", True),
        ("ctx(b) or $.xs.select($ * 2)", True),
        ("$.xs.select($) and true", True),
        ("ctx(a) and ctx(b) and ctx(count) or ctx(xs)", True),
        ("ctx(xs).select($ > 1 and ctx(a) or false)", True),
        ("range(5).toList().len() and ctx(nope)", True),
        # `.` hands its compiled method body the receiver directly: chained, inside a lambda
        ("ctx(greeting).toUpper().len()", True),
        ("$.xs.select($.toString()).join(',')", True),
        ("ctx(cfg).keys().select($.len()).sum()", True),
        ("ctx(xs).len() + 1", True),
        ("ctx(greeting).toUpper()", True),
        ("ctx(cfg).keys().len()", True),
        ("$.xs.select($ * 2)", True),
        ("$.xs.where($ > 1).select($ + ctx(count))", True),
        ("ctx(xs).select($nope)", True),
        ("ctx(count).len()", True),  # a method on the wrong type: NoMatchingMethodException
        ("ctx(count).nosuch()", True),  # no such method at all: the body runs yaql's path and error
        ("ctx(count).toUpper(ctx(nope))", True),  # the receiver fails before the argument runs
        ("ctx(xs).select($ * 'x')", True),
        ("range(20).select(range($).len()).sum()", True),
        ("let(x => 3) -> $x and ctx(a)", False),
        ("def(f, $ * 2) -> ctx(xs).select(f($))", True),
        ("ctx(xs).select(let(y => $) -> $y + 1)", True),
        ("ctx(greeting)?.len()", False),
    ],
)
def test_yaql_compiled_sites_match_yaql(r, ctx, src, lam):
    compiled, plain, fast = _both_ways(r, ctx, src)
    assert compiled
    assert fast == plain
    front = r._yaql_front()
    with front._lock:
        stmt = front.calls.statement(front.engine(src))
    assert _has_compiled_lambda(stmt) is lam


def test_yaql_short_circuit_and_wrong_type(r, ctx):
    assert r.render_template("<% ctx(b) and ctx(nope) %>", ctx) is False
    assert r.render_template("<% ctx(a) or ctx(nope) %>", ctx) is True
    with pytest.raises(TemplateError, match="nope"):
        r.render_template("<% ctx(a) and ctx(nope) %>", ctx)
    with pytest.raises(TemplateError, match="No method \"len\" for receiver 1 matches"):
        r.render_template("<% ctx(count).len() %>", ctx)
    assert r.render_template("<% $.xs.where($ > 1).select($ * 2) %>", ctx) == [4, 6]


def test_yaql_compiled_lambda_step_budget(ctx):
    few = Renderer(max_steps=100)  # checked every 1024 steps
    # each select() item is a few guarded calls: the budget fails inside the compiled lambda
    with pytest.raises(TemplateError, match="step limit"):
        few.render_template("<% range(400).select($ * 2 + 1).sum() %>", ctx)
    assert few.render_template("<% range(5).select($ * 2 + 1).sum() %>", ctx) == 25
    _, plain, fast = _both_ways(few, ctx, "range(400).select($ * 2 + 1).sum()")
    assert fast == plain and plain[0] == "err" and "step limit" in plain[2]


@pytest.mark.parametrize("src", ["<% $__flowctx %>", "x <% $__flowctx %>", "<% [1].select($__flowctx) %>",
                                 "<% let(x => $__flowctx) -> $x %>", "<% $__flowctx.renderer %>",
                                 "<% ctx(a) and $__flowctx %>"])
def test_yaql_cannot_read_the_evaluation_scope(r, ctx, src):
    # the evaluation context holds the render's scope under this name: a template never gets it
    with pytest.raises(TemplateError, match="unknown name '\\$__flowctx'"):
        r.render_template(src, ctx)
    _, plain, fast = _both_ways(r, ctx, src.split("<%")[1].split("%>")[0].strip())
    assert fast == plain and plain[0] == "err" and "__flowctx" in plain[2]
