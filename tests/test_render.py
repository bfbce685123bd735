"""Renderer behaviour: names, functions, typed results, conditions, errors — on both backends."""
from __future__ import annotations

import json
import re
import uuid

import pytest

from flowctx.errors import TemplateError, WorkflowError
from flowctx.render import Renderer, TaskScope, default_renderer


@pytest.fixture(scope="module")
def r() -> Renderer:
    return Renderer()


@pytest.fixture()
def ctx(backend):
    c = backend.Context(
        parameters={"n": 5, "regions": ["us-east", "eu-west", "ap-south"], "app_name": "shop", "environment": "production",
                    "flag": True, "shared": "from-params"},
        variables={"greeting": "hello", "count": 1, "xs": [1, 2, 3], "which": "a", "proceed": True,
                   "members": ["alice", "bob"], "messages": ["hi", "yo"], "items": "var-items", "shared": "from-vars",
                   "cfg": {"a": {"b": [10, 20]}}},
        task_results={
            "t1": {"status": "succeeded", "result": {"x": 42, "image_uri": "reg/app:1", "items": [1]}, "error": None},
            "deploy": {"status": "failed", "result": None, "error": {"message": "boom"},
                       "results": [{"health_url": "http://a"}, {"health_url": "http://b"}], "failed_items": [1]},
        },
        system={"timestamp": 1700000000, "execution_id": "ex-1", "identity": {"login": "ops"}},
    )
    return c


OK = TaskScope(status="succeeded", result={"answer": 7, "text": "done"}, statuses={"t1": "succeeded", "deploy": "failed"})
FAIL = TaskScope(status="failed", result="bad")


# --------------------------------------------------------------------------- typed results
@pytest.mark.parametrize(
    "src, expected",
    [
        ("{{ parameters.n }}", 5),
        ("{{ parameters.n + 1 }}", 6),
        ("  {{ parameters.n }}  ", 5),
        ("{{ parameters.flag }}", True),
        ("{{ parameters.missing | default(None) }}", None),
        ("{{ parameters.regions }}", ["us-east", "eu-west", "ap-south"]),
        ("{{ vars.cfg }}", {"a": {"b": [10, 20]}}),
        ("{{ [1, parameters.n] }}", [1, 5]),
        ("{{ {'k': parameters.n} }}", {"k": 5}),
        ("n={{ parameters.n }}", "n=5"),
        ("{{ parameters.n }}{{ parameters.n }}", "55"),
        ("{{ parameters.n }} and {{ vars.count }}", "5 and 1"),
        ("{% if parameters.flag %}yes{% else %}no{% endif %}", "yes"),
        ("{% raw %}{{ not rendered }}{% endraw %}", "{{ not rendered }}"),
        ("Regions: {{ parameters.regions | join(', ') }}", "Regions: us-east, eu-west, ap-south"),
        ("{{ parameters.regions | first }}", "us-east"),
        ("{{ parameters.regions | slice(start=1) }}", ["eu-west", "ap-south"]),
        ("{{ parameters.regions | length }}", 3),
        ("R: {{ parameters.regions }}", "R: ['us-east', 'eu-west', 'ap-south']"),
        ("C: {{ vars.cfg }}", "C: {'a': {'b': [10, 20]}}"),
        ("{{ '}}' }}", "}}"),
        ("plain text", "plain text"),
        ("", ""),
    ],
)
def test_typed_results(r, ctx, src, expected):
    out = r.render_template(src, ctx)
    assert out == expected or (isinstance(out, tuple) and list(out) == expected)
    if isinstance(expected, str):
        assert type(out) is str


def _plain(v):
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def test_native_values_are_the_stored_frozen_values(r, ctx, backend):
    out = r.render_template("{{ parameters.regions }}", ctx)
    assert out is ctx.parameters["regions"]  # zero-copy
    assert isinstance(out, backend.FrozenList)


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    "src, expected",
    [
        ("{{ parameters.app_name }}", "shop"),
        ("{{ vars.greeting }}", "hello"),
        ("{{ variables.greeting }}", "hello"),
        ("{{ workflow.greeting }}", "hello"),
        ("{{ task.t1.result.x }}", 42),
        ("{{ tasks.t1.result.x }}", 42),
        ("{{ task('t1').result.x }}", 42),
        ("{{ task['t1'].status }}", "succeeded"),
        ("{{ task.t1.result.image_uri }}", "reg/app:1"),
        ("{{ task.t1.result.items }}", [1]),  # the key, not dict.items
        ("{{ task.deploy.error.message }}", "boom"),
        ("{{ task.deploy.results | map(attribute='health_url') | list }}", ["http://a", "http://b"]),
        ("{{ task.deploy.failed_items | length }}", 1),
        ("{{ system.timestamp }}", 1700000000),
        ("{{ system.identity.login }}", "ops"),
        ("{{ greeting }}", "hello"),
        ("{{ app_name }}", "shop"),
        ("{{ shared }}", "from-vars"),  # variables first, then parameters
        ("{{ items }}", "var-items"),
        ("{{ 'x' if parameters.environment == 'production' else 'y' }}", "x"),
    ],
)
def test_names(r, ctx, src, expected):
    assert _plain(r.render_template(src, ctx)) == expected


def test_item_and_index(r, ctx):
    c = ctx.with_item({"member": "alice", "message": "hi"}, 3)
    assert r.render_template("{{ item.member }}", c) == "alice"
    assert r.render_template("{{ item('member') }}", c) == "alice"
    assert _plain(r.render_template("{{ item() }}", c)) == {"member": "alice", "message": "hi"}
    assert r.render_template("{{ index }}", c) == 3
    assert r.render_template("{{ index }}:{{ item.message }}", c) == "3:hi"
    c2 = ctx.with_item("us-east", 0)
    assert r.render_template("{{ item }}", c2) == "us-east"
    assert r.render_template("{{ item() }}", c2) == "us-east"
    with pytest.raises(TemplateError, match="item"):
        r.render_template("{{ item }}", ctx)
    with pytest.raises(TemplateError, match="with-items"):
        r.render_template("{{ item() }}", ctx)
    with pytest.raises(TemplateError, match="not a mapping"):
        r.render_template("{{ item('x') }}", c2)


def test_config_and_keystore(ctx):
    rr = Renderer(config={"docker_registry": "reg.example"}, keystore={"token": "s3cret"})
    assert rr.render_template("{{ config.docker_registry }}", ctx) == "reg.example"
    assert rr.render_template("{{ keystore.token }}", ctx) == "s3cret"
    with pytest.raises(TemplateError, match="config"):
        Renderer().render_template("{{ config.docker_registry }}", ctx)


# --------------------------------------------------------------------------- functions
def test_workflow_functions(r, ctx):
    assert _plain(r.render_template("{{ ctx() }}", ctx))["greeting"] == "hello"
    assert r.render_template("{{ ctx().greeting }}", ctx) == "hello"
    assert r.render_template("{{ ctx('greeting') }}", ctx) == "hello"
    assert r.render_template("{{ ctx('n') }}", ctx) == 5  # parameters are part of ctx()
    assert r.render_template("{{ ctx().n }}", ctx) == 5
    assert r.render_template("{{ result() }}", ctx, scope=FAIL) == "bad"
    assert r.render_template("{{ result().answer }}", ctx, scope=OK) == 7
    assert r.render_template("{{ succeeded() }}", ctx, scope=OK) is True
    assert r.render_template("{{ failed() }}", ctx, scope=OK) is False
    assert r.render_template("{{ failed() }}", ctx, scope=FAIL) is True
    assert r.render_template("{{ completed() }}", ctx, scope=FAIL) is True
    assert r.render_template("{{ completed() }}", ctx, scope=TaskScope(status="running")) is False
    assert r.render_template("{{ timed_out() }}", ctx, scope=TaskScope(status="timeout")) is True
    assert r.render_template("{{ completed() }}", ctx, scope=TaskScope(status="timeout")) is True
    assert r.render_template("{{ task_status('deploy') }}", ctx, scope=OK) == "failed"
    assert r.render_template("{{ task_status('t1') }}", ctx) == "succeeded"  # from the task record
    assert r.render_template("{{ task_status('nope') }}", ctx) == "null"  # Orquesta's UNSET status
    assert r.render_template("{{ task().status }}", ctx, scope=OK) == "succeeded"
    with pytest.raises(TemplateError, match="result"):
        r.render_template("{{ result() }}", ctx)
    with pytest.raises(TemplateError, match="succeeded"):
        r.render_template("{{ succeeded() }}", ctx)
    with pytest.raises(TemplateError, match="nope"):
        r.render_template("{{ ctx('nope') }}", ctx)
    with pytest.raises(TemplateError, match="nope"):
        r.render_template("{{ task('nope') }}", ctx)


def test_helper_functions_and_filters(r, ctx):
    assert r.render_template("{{ json('{\"a\": [1, 2]}') }}", ctx) == {"a": [1, 2]}
    assert r.render_template("{{ zip(vars.members, vars.messages) }}", ctx) == [["alice", "hi"], ["bob", "yo"]]
    assert json.loads(r.render_template("{{ to_json_string(vars.cfg) }}", ctx)) == {"a": {"b": [10, 20]}}
    assert json.loads(r.render_template("{{ vars.cfg | to_json_string }}", ctx)) == {"a": {"b": [10, 20]}}
    assert json.loads(r.render_template("{{ vars.cfg | tojson }}", ctx)) == {"a": {"b": [10, 20]}}
    assert r.render_template("{{ from_json_string('[1]') }}", ctx) == [1]
    assert r.render_template("{{ '[1]' | from_json_string }}", ctx) == [1]
    assert r.render_template("{{ to_yaml_string(vars.cfg) | from_yaml_string }}", ctx) == {"a": {"b": [10, 20]}}
    assert r.render_template("{{ regex_match('abc123', '[a-z]+\\\\d+') }}", ctx) is True
    assert r.render_template("{{ 'abc' | regex_match('\\\\d') }}", ctx) is False
    assert r.render_template("{{ regex_replace('a-b-c', '-', '+') }}", ctx) == "a+b+c"
    assert r.render_template("{{ 'v1.2' | regex_replace('v(\\\\d)', 'version \\\\1') }}", ctx) == "version 1.2"
    assert re.match(r"\d{4}-\d\d-\d\dT", r.render_template("{{ now() }}", ctx))
    uuid.UUID(r.render_template("{{ uuid() }}", ctx))
    assert r.render_template("{{ range(3) | list }}", ctx) == [0, 1, 2]
    assert r.render_template("{{ dict(a=1) }}", ctx) == {"a": 1}


def test_orquesta_function_semantics(r, backend):
    """zip(), json() and ctx() as Orquesta 1.6.0 defines them (see the expressions conformance group)."""
    c = backend.Context(variables={"a": [1, 2, 3], "b": ["x"], "__private": {"k": 1}, "n": None, "d": {"k": "v"}})
    assert r.render_template("{{ zip(ctx().a, ctx().b) }}", c) == [[1, "x"], [2, None], [3, None]]  # longest
    assert r.render_template("{{ zip(ctx().a, ctx().b, pad='-') }}", c) == [[1, "x"], [2, "-"], [3, "-"]]
    assert r.render_template("{{ zip(ctx().a) }}", c) == [1, 2, 3]  # one list is returned as it is
    assert r.render_template("{{ zip(ctx().n) }}", c) == [] and r.render_template("{{ zip() }}", c) == []
    assert r.render_template("{{ zip([], ctx().b, pad=0) }}", c) == [[0, "x"]]
    with pytest.raises(TemplateError, match="size limit"):
        Renderer(max_output=100).render_template("{{ zip(range(60), range(2)) }}", c)
    assert r.render_template("{{ json(ctx().d) }}", c) == {"k": "v"}  # a mapping is returned as it is
    for bad in ("123", "false", "['a']", "none"):
        with pytest.raises(TemplateError, match="json"):
            r.render_template("{{ json(%s) }}" % bad, c)
    assert "__private" not in r.render_template("{{ ctx() }}", c)
    assert sorted(r.render_template("{{ ctx().keys() | list }}", c)) == ["a", "b", "d", "n"]
    with pytest.raises(TemplateError, match="private"):
        r.render_template("{{ ctx('__private') }}", c)
    with pytest.raises(TemplateError):
        r.render_template("{{ ctx()['__private'] }}", c)
    # a list read from the context concatenates with a literal list (it is a frozen tuple inside)
    assert r.render_template("{{ ctx().a + [4] }}", c) == [1, 2, 3, 4]
    assert r.render_template("{{ [0] + ctx().a }}", c) == [0, 1, 2, 3]
    with pytest.raises(TemplateError, match="size limit"):
        Renderer(max_output=50).render_template("{{ ctx().a + range(40) | list }}", c)


def test_from_yaml_string_is_safe(r, ctx):
    with pytest.raises(TemplateError):
        r.render_template("{{ from_yaml_string('!!python/object/apply:os.system [\"true\"]') }}", ctx)


# --------------------------------------------------------------------------- render_json
def test_render_json(r, ctx):
    spec = {
        "app": "{{ parameters.app_name }}",
        "n": "{{ parameters.n }}",
        "{{ parameters.app_name }}_key": ["{{ vars.count }}", 3, None, True, "x"],
        "nested": {"msg": "Hello {{ vars.greeting }}", "static": "no templates"},
        7: 8,
    }
    out = r.render_json(spec, ctx)
    assert out == {"app": "shop", "n": 5, "shop_key": [1, 3, None, True, "x"],
                   "nested": {"msg": "Hello hello", "static": "no templates"}, 7: 8}
    assert r.render_json(5, ctx) == 5
    assert r.render_json(None, ctx) is None
    s = "no markup {here}"
    assert r.render_json(s, ctx) is s


def test_render_json_error_names_path(r, ctx):
    with pytest.raises(TemplateError) as ei:
        r.render_json({"a": {"b": ["{{ nope }}"]}}, ctx, task="t9", field="input")
    assert ei.value.task == "t9" and ei.value.field == "input.a.b[0]"


# --------------------------------------------------------------------------- conditions
@pytest.mark.parametrize(
    "src, expected",
    [
        ("parameters.environment == 'production'", True),
        ("{{ parameters.environment == 'production' }}", True),
        ("{{ parameters.n > 10 }}", False),
        ("parameters.n > 1 and vars.proceed", True),
        ("not vars.proceed", False),
        ("'eu-west' in parameters.regions", True),
        ("vars.xs", True),
        ("vars.xs | length == 0", False),
        ("{{ vars.which in ['a', 'b'] }}", True),
        ("{% if vars.proceed %}true{% else %}false{% endif %}", True),
        ("{% if not vars.proceed %}true{% else %}false{% endif %}", False),
        ("succeeded() and ctx().count < 2", True),
        ("{{ succeeded() }}", True),
        ("{{ failed() }}", False),
        (True, True),
        (False, False),
        (None, False),
    ],
)
def test_conditions(r, ctx, src, expected):
    assert r.evaluate_condition(src, ctx, scope=OK) is expected


def test_condition_errors_are_errors(r, ctx):
    with pytest.raises(TemplateError):
        r.evaluate_condition("vars.nope == 1", ctx)
    with pytest.raises(TemplateError):
        r.evaluate_condition("{{ vars.nope }}", ctx)
    with pytest.raises(TemplateError):
        r.evaluate_condition("1 +", ctx)
    with pytest.raises(TemplateError):
        r.evaluate_condition("", ctx)
    with pytest.raises(TemplateError):
        r.evaluate_condition("succeeded()", ctx)  # no task scope


def test_default_renderer(ctx):
    # The store does not know the renderer (no Context.render_template): render through one.
    assert default_renderer().render_template("{{ parameters.n }}", ctx) == 5
    assert default_renderer().render_json({"a": "{{ vars.greeting }}"}, ctx) == {"a": "hello"}
    assert default_renderer().evaluate_condition("parameters.n == 5", ctx) is True
    assert not hasattr(ctx, "render_template")
    assert isinstance(default_renderer(), Renderer)
    assert default_renderer() is default_renderer()


# --------------------------------------------------------------------------- check / is_template / refs
def test_check(r):
    r.check("{{ parameters.n }}")
    r.check("plain")
    r.check("{% for x in xs %}{{ x }}{% endfor %}")
    r.check("parameters.n == ", condition=False)  # not a template: nothing to check
    r.check("{{ parameters.n ")  # no complete {{ }}: text, as in Orquesta (see the siblings below)
    for bad in ["{% for x in %}", "{{ 1 + }}", "{% if x %}", "<% ctx( %>", "{{ a }} <% b %>"]:
        with pytest.raises(TemplateError):
            r.check(bad)
    with pytest.raises(TemplateError):
        r.check("parameters.n ==", condition=True)


def test_is_template(r):
    assert r.is_template("{{ x }}") and r.is_template("{% if %}") and r.is_template("<% x %>")
    assert not r.is_template("plain {x}") and not r.is_template(5) and not r.is_template(None)


def test_referenced_variables(r):
    assert r.referenced_variables("{{ vars.a }} {{ variables['b'] }} {{ workflow.c }}") == {"a", "b", "c"}
    assert r.referenced_variables("{{ ctx().d }} {{ ctx('e') }}") == {"d", "e"}
    assert r.referenced_variables("{{ bare + 1 }}{% for i in xs %}{{ i }}{% endfor %}") == {"bare", "xs"}
    assert r.referenced_variables("{{ parameters.x }} {{ task.t.result }} {{ item }}") == set()
    assert r.referenced_variables("vars.a == 1") == {"a"}
    assert r.referenced_variables("<% ctx().f %> <% ctx(g) %> <% ctx('h') %> <% $.i %>") == {"f", "g", "h", "i"}
    assert r.referenced_variables(5) == set()


# --------------------------------------------------------------------------- errors
def test_error_names_template_line_task_field(r, ctx):
    src = "line one\n{{ vars.greeting }}\n{{ nope.x }}"
    with pytest.raises(TemplateError) as ei:
        r.render_template(src, ctx, task="t1", field="input.msg")
    e = ei.value
    assert e.source == src and e.position == 3 and e.task == "t1" and e.field == "input.msg"
    assert "nope" in str(e) and "t1" in str(e) and "line 3" in str(e)


def test_syntax_error_position(r, ctx):
    with pytest.raises(TemplateError) as ei:
        r.render_template("a\nb\n{% if %}", ctx)
    assert ei.value.position == 3 and "syntax" in ei.value.reason


def test_native_error_position(r, ctx):
    with pytest.raises(TemplateError) as ei:
        r.render_template("\n\n{{ vars.greeting +\n nope }}", ctx)
    assert ei.value.position in (3, 4)


def test_runtime_errors(r, ctx):
    for src in ["{{ 1 / 0 }}", "{{ parameters.n + 'x' }}", "{{ vars.xs.append(4) }}", "{{ unknown_fn() }}"]:
        with pytest.raises(TemplateError):
            r.render_template(src, ctx)


def test_mixing_languages_is_an_error(r, ctx):
    with pytest.raises(TemplateError, match="one language"):
        r.render_template("{{ vars.greeting }} <% ctx(greeting) %>", ctx)


# --------------------------------------------------------------------------- inert data
def test_data_is_inert(r, ctx):
    c = ctx.clone()
    c.set_var("secret", "TOP-SECRET")
    # an action result containing template text, published into a variable
    c.set_task_result("t2", {"status": "succeeded", "result": {"a": "{{ vars.secret }}", "b": "<% ctx(secret) %>"}})
    scope = TaskScope(status="succeeded", result=c.get_task_result("t2")["result"])
    c.set_var("published_a", r.render_template("{{ result().a }}", c, scope=scope))
    c.set_var("published_b", r.render_template("<% result().b %>", c, scope=scope))
    for src in ["{{ vars.published_a }}", "{{ published_a }}", "{{ ctx('published_a') }}", "<% ctx(published_a) %>",
                "<% ctx().published_a %>"]:
        assert r.render_template(src, c) == "{{ vars.secret }}"
    for src in ["{{ vars.published_b }}", "<% ctx(published_b) %>"]:
        assert r.render_template(src, c) == "<% ctx(secret) %>"
    assert r.render_template("x={{ vars.published_a }}", c) == "x={{ vars.secret }}"
    assert r.render_template("x=<% ctx(published_b) %>", c) == "x=<% ctx(secret) %>"
    assert r.render_json({"k": "{{ task.t2.result }}"}, c)["k"]["a"] == "{{ vars.secret }}"
    assert r.evaluate_condition("vars.published_a == '{{ vars.secret }}'", c) is True


# --------------------------------------------------------------------------- cache
def test_lru_cache_is_bounded_and_hits(ctx):
    rr = Renderer(cache_size=4)
    for i in range(10):
        assert rr.render_template(f"{{{{ {i} }}}}", ctx) == i
    info = rr.cache_info()
    assert info.currsize == 4 and info.maxsize == 4
    rr.render_template("{{ 9 }}", ctx)
    assert rr.cache_info().hits == info.hits + 1
    rr.clear_cache()
    assert rr.cache_info().currsize == 0


def test_renders_do_not_copy_or_change_the_context(r, ctx):
    before = ctx.export()
    r.render_template("{% for x in vars.xs %}{{ x }}{% endfor %}", ctx)
    r.render_json({"a": "{{ ctx() }}"}, ctx)
    assert ctx.export() == before


# --------------------------------------------------------------------------- which strings are expressions
# Orquesta 1.6.0's rule (orquesta.expressions.{jinja,yql}; recorded with /work/orquesta): only a
# complete {{ }}, {% %} or <% %> makes a string an expression; an opener without its closer is
# text; text after the last complete <% %> is text; both languages in one string is an error.
@pytest.mark.parametrize(
    "src, expected",
    [
        ("{{ x", "{{ x"),
        ("x }}", "x }}"),
        ("100 {% done", "100 {% done"),
        ("echo <% done", "echo <% done"),
        ("%> alone", "%> alone"),
        ("}} alone", "}} alone"),
        ("<% ctx().greeting %> and <% b", "hello and <% b"),
        ("<% ctx().greeting %> {{ b", "hello {{ b"),
        ("{{ ctx().greeting }} <% b", "hello <% b"),
        ("<% ctx().greeting %> %>", "hello %>"),
        ("{{ ctx().greeting }} }}", "hello }}"),
    ],
)
def test_lone_delimiters_are_text(r, ctx, src, expected):
    assert r.is_template(src) == (src != expected)
    r.check(src)  # Orquesta's validation reports nothing for any of them
    assert r.render_template(src, ctx) == expected
    assert r.render_json({"k": [src]}, ctx) == {"k": [expected]}


@pytest.mark.parametrize(
    "src, pattern",
    [
        ("{{ ctx().greeting }} and {{ b", "syntax error"),  # a complete {{ }}: the whole text is Jinja
        ("{{ 1 }} {%", "syntax error"),
        ("{% if true %}yes", "syntax error"),
        ("<% ctx().greeting %> {{ ctx().count }}", "one language per string"),
        ("{% raw %}<% x %>{% endraw %}", "one language per string"),
        ("{{ ctx().proceed ? 1 : 2 }}", "syntax error"),  # Jinja has no C-style conditional
        ("s={{ vars.count == 2 ? 'two' : 'other' }}", "syntax error"),
    ],
)
def test_expressions_orquesta_rejects(r, ctx, src, pattern):
    with pytest.raises(TemplateError, match=pattern):
        r.check(src)
    with pytest.raises(TemplateError, match=pattern):
        r.render_template(src, ctx)


def test_c_style_ternary_is_not_an_orquesta_condition(r, ctx):
    with pytest.raises(TemplateError, match="syntax"):
        r.evaluate_condition("vars.proceed ? false : true", ctx)


LIST_TERNARY = """
ref: t.ternary
parameters:
  proceed: {type: boolean, default: true}
  count: {type: integer, default: 1}
tasks:
  - name: t1
    action: core.echo
    input:
      message: "{{ parameters.proceed ? 'yes' : 'no' }}"
    next:
      - when: "parameters.count == 2 ? false : true"
        do: [t2]
  - name: t2
    action: core.noop
output_map:
  status: "{{ parameters.proceed ? 'rolled_back' : 'success' }}"
  nested: "s={{ 0 ? 'a' : parameters.count == 1 ? 'b' : 'c' }}"
  literal: "{{ '?' ~ 'x' }}"
  text: "is it? yes: no"
"""


@pytest.mark.parametrize("proceed, status", [(True, "rolled_back"), (False, "success")])
def test_list_form_c_style_ternary_is_translated_at_load(backend, proceed, status):
    # the list form (attune's complete-workflow.yaml output_map) writes `c ? a : b`; its loader
    # turns it into Jinja's conditional, so the renderer itself stays Orquesta's Jinja
    from flowctx import Engine
    from flowctx.spec import load_workflow

    spec = load_workflow(LIST_TERNARY)
    assert spec.tasks["t1"].input["message"] == "{{ (('yes') if (parameters.proceed) else ('no')) }}"
    res = Engine(store=backend, executor="inline").run(LIST_TERNARY, {"proceed": proceed})
    assert res.succeeded, res.reason
    assert [t.task for t in res.tasks] == ["t1", "t2"]  # the bare `when` ternary was translated too
    assert res.task("t1").result["stdout"] == ("yes" if proceed else "no")
    assert res.output == {"status": status, "nested": "s=b", "literal": "?x", "text": "is it? yes: no"}
    # the same text in an Orquesta-syntax workflow is an error, as in Orquesta
    orq = "version: 1.0\ntasks:\n  t1:\n    action: core.echo\n    input:\n      message: \"{{ ctx().p ? 'a' : 'b' }}\"\n"
    with pytest.raises(WorkflowError, match="syntax error"):
        load_workflow(orq)


SPLIT = """
version: 1.0
tasks:
  t1:
    action: core.noop
    next:
      - do: [t2, t3]
  t2:
    action: core.noop
    next:
      - publish: [x: ok]
        do: t4
  t3:
    action: core.noop
    next:
      - publish: [x: bad]
        do: t4
  t4:
    action: t.check x="{{ ctx().x }}"
    next:
      - when: "{{ completed() }}"
        do: t5
  t5:
    action: core.noop
    next:
      - do: t6
  t6:
    action: core.noop
    next:
      - do: t7
  t7:
    action: t.record via="{{ ctx().x }}" t4="{{ task_status('t4') }}" t1="{{ task_status('t1') }}"
"""


def test_task_status_along_split_routes_in_a_run(backend):
    """t4 runs on two routes (no join), failing on one: each route's t7 sees its own t4 (both t4 runs
    have finished by then, so one status per task name would show the same status on both)."""
    from flowctx import Engine

    seen = []

    def check(x: str) -> str:
        if x == "bad":
            raise RuntimeError("bad route")
        return x

    Engine(actions={"t.check": check, "t.record": lambda **kw: seen.append(kw)}, store=backend,
           executor="inline").run(SPLIT)
    assert sorted((s["via"], s["t4"], s["t1"]) for s in seen) == [("bad", "failed", "succeeded"),
                                                                   ("ok", "succeeded", "succeeded")]


def test_lone_delimiters_reach_the_action_as_text(backend):
    from flowctx import Engine

    wf = (
        "version: 1.0\ntasks:\n  t1:\n    action: core.echo\n    input:\n"
        "      message: \"100 {% done, echo <% done, {{ x\"\n"
    )
    res = Engine(store=backend, executor="inline").run(wf)
    assert res.succeeded, res.reason
    assert res.task("t1").result["stdout"] == "100 {% done, echo <% done, {{ x"
