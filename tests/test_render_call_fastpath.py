"""The direct-call fast path for a scope's own functions (``item()``, ``ctx()`` ...) in
``FlowEnvironment.call`` behaves like the generic path: same values, loops, step budget."""
from __future__ import annotations

from types import ModuleType

import pytest

from flowctx.errors import TemplateError
from flowctx.render import Renderer, TaskScope


def test_scope_functions_through_the_fast_path(backend: ModuleType) -> None:
    r = Renderer()
    ctx = backend.Context({"p": 1}, {"v": {"k": 2}}).with_item({"host": "h1"}, 3)
    assert r.render_template("{{ item() }}", ctx) == {"host": "h1"}
    assert r.render_template("{{ item('host') }}", ctx) == "h1"
    assert r.render_template("{{ ctx().v.k + ctx('p') }}", ctx) == 3
    # inside a loop Jinja passes _loop_vars to every call: it must not reach the function
    assert r.render_template("{% for i in range(2) %}{{ item('host') }}{{ ctx('p') }}{% endfor %}", ctx) == "h11h11"
    scope = TaskScope(status="succeeded", result={"x": 1}, statuses={})
    assert r.render_template("{{ result().x if succeeded() else 0 }}", ctx, scope=scope) == 1
    with pytest.raises(TemplateError, match="no key"):
        r.render_template("{{ item('nope') }}", ctx)


def test_fast_path_calls_count_against_the_step_budget(backend: ModuleType) -> None:
    r = Renderer(max_steps=2000)
    ctx = backend.Context({}, {}).with_item("x", 0)
    with pytest.raises(TemplateError, match="step limit"):
        r.render_template("{% for i in range(1500) %}{{ item() }}{{ item() }}{% endfor %}", ctx)
