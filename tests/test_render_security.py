"""Sandbox escapes, resource bombs and limits: every payload must end in a TemplateError.

Never a value — not even ``None`` or ``""``.
"""
from __future__ import annotations

import pytest

from flowctx.errors import TemplateError
from flowctx.render import Renderer

SSTI_PAYLOADS = [
    # attribute walks to Python internals
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ [].__class__.__base__.__subclasses__() }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ ''['__class__'] }}",
    "{{ ''|attr('__class__') }}",
    "{{ (''|attr('__class__')|attr('__mro__'))[1] }}",
    "{{ vars.__class__ }}",
    "{{ parameters.__init__.__globals__ }}",
    "{{ task.__init__.__globals__['__builtins__'] }}",
    "{{ ctx.__globals__ }}",
    "{{ ctx.__self__ }}",
    "{{ result.__func__.__globals__ }}",
    "{{ ctx.__globals__['__builtins__']['eval']('1') }}",
    "{{ range.__globals__ }}",
    "{{ dict.__subclasses__() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ [1]|map(attribute='__class__')|list }}",
    "{{ __builtins__ }}",
    "{{ __import__('os') }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ lipsum(n=10000) }}",
    "{{ config.__class__.__init__.__globals__['os'] }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__ }}",
    "{{ url_for.__globals__ }}",
    "{{ get_flashed_messages.__globals__ }}",
    "{{ ''.__class__ is defined }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{% set x = ''.__class__ %}{{ 1 }}",
    "{{ vars.xs.append(1) }}",
    "{{ vars.cfg.update({'a': 1}) }}",
    "{{ vars.cfg.pop('a') }}",
    # format-string tricks
    "{{ '{0.__class__}'.format(parameters) }}",
    "{{ '{0.__class__.__mro__}'.format('') }}",
    "{{ '{0.__init__.__globals__}'.format(ctx) }}",
    "{{ '{x.__class__}'.format_map({'x': 1}) }}",
    "{{ '{:>2000000}'.format(1) }}",
    "{{ '{:{w}}'.format(1, w=2000000) }}",
    "{{ '%2000000d' % 1 }}",
    "{{ '%*d' % (2000000, 1) }}",
    "{{ '%s' % ('x' * 2000000) }}",
    "{{ '%(a)2000000s' % {'a': 1} }}",
    "{{ '%s%s' | format('x' * 600000, 'y' * 600000) }}",
    "{{ '%2000000s' | format('x') }}",
    # resource bombs
    "{{ range(10**10) }}",
    "{{ range(10000000000) | list }}",
    "{{ 'a' * 10**9 }}",
    "{{ 'a' * 1000000000 }}",
    "{{ [0] * 10**9 }}",
    "{{ ('a' * 100000) * 100000 }}",
    "{{ 10 ** (10 ** 10) }}",
    "{{ 9 ** 9999999 }}",
    "{{ 'a' | center(2000000000) }}",
    "{{ 'a'.center(2000000000) }}",
    "{{ 'a'.ljust(2000000000) }}",
    "{{ 'a'.zfill(2000000000) }}",
    "{{ ('a\tb' * 1000).expandtabs(100000) }}",
    "{{ ('a' * 100000).replace('a', 'b' * 100000) }}",
    "{{ ('a' * 100000) | replace('a', 'b' * 100000) }}",
    "{{ ('x' * 100000).join(range(100000) | map('string')) }}",
    "{{ range(100000) | join('x' * 100000) }}",
    "{{ 'a\nb\nc' * 1000 | indent(2000000) }}",
    "{{ [1] | batch(2000000000, 0) | list }}",
    "{{ [1] | slice(2000000000) | list }}",
    "{{ ('a' * 999999) ~ ('b' * 999999) }}",
    "{% set s = 'a' * 1000 %}{% for i in range(100000) %}{{ s }}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% macro f(s, n) %}{{ f(s ~ s, n - 1) if n else s | length }}{% endmacro %}{{ f('a', 40) }}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "{% set ns = namespace(x='a') %}{% for i in range(40) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x|length }}",
    "{% set ns = namespace(x='a') %}{% for i in range(40) %}{% set ns.x = ns.x + ns.x %}{% endfor %}{{ ns.x|length }}",
    "{{ ('a' * 600000) + ('b' * 600000) }}",
    "{{ [[1] * 1000] * 1000000 }}",
    "{{ 'a' | wordwrap(1, wrapstring='x' * 2000000) }}",
    "{{ regex_replace('a' * 100000, 'a', 'b' * 100000) }}",
    "{{ 'a' | truncate(10, end='x' * 2000000) }}",
    # issue 11: mutation through the types (the default renderer is shared by every run)
    "{{ dict.update(ctx().cfg, {'a': 'x'}) }}",
    "{{ dict.clear(parameters) }}",
    "{{ dict.pop(vars, 'secret') }}",
    "{{ dict.setdefault(vars, 'z', 1) }}",
    "{{ dict.popitem(vars) }}",
    "{{ dict['x'].update(vars, {'a': 1}) }}",
    "{{ (dict|attr('update'))(vars, {'a': 1}) }}",
    "{{ dict.mro() }}",
    # issue 11: filter attribute= arguments
    "{{ [''] | join(attribute='__class__') }}",
    "{{ [ctx] | join(attribute='__globals__') }}",
    "{{ [''] | sum(attribute='__class__', start='') }}",
    "{{ [''] | unique(attribute='__class__') | list }}",
    "{{ [''] | groupby('__class__') | list }}",
    # issue 11: amplification past the cap
    "{{ ('{0}' * 1000).format('y' * 990000) }}",
    "{{ ('{a}' * 1000).format_map({'a': 'y' * 990000}) }}",
    "{{ ('%(a)s' * 1000) % {'a': 'y' * 990000} }}",
    "{{ ('%(a)s' * 1000) | format(a='y' * 990000) }}",
    "{{ ('y' * 900000).encode('utf-32').hex() }}",
    "{{ dict.fromkeys(range(1000), 'y' * 2000) | urlencode }}",
    "{{ ('<' * 300000) | forceescape }}",
    "{% set x %}{% for i in range(300) %}{{ 'y' * 999999 }}{% endfor %}{% endset %}{{ x | length }}",
    "{{ range(300) | map('center', 999999) | list | length }}",
    # issue 11: catastrophic regular expression (regex engine under the render's time limit)
    "{{ regex_search('a' * 40 ~ '!', '(a|aa)+$') }}",
    # issue 11: nesting too deep for the parser
    "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}",
    # issue 11.14: str.format reached through |attr (Jinja2 < 3.1.6)
    "{{ ('{0.__class__}' | attr('format'))(parameters) }}",
    "{{ ('{0.__init__.__globals__}' | attr('format'))(ctx) }}",
]


@pytest.fixture(scope="module")
def r() -> Renderer:
    return Renderer(timeout=1.0)  # the regex payload ends at the time limit


@pytest.fixture()
def ctx(backend):
    return backend.Context(
        parameters={"p": 1},
        variables={"xs": [1, 2], "cfg": {"a": 1}, "secret": "TOP-SECRET"},
        task_results={"t1": {"status": "succeeded", "result": {"x": 1}}},
    )


def test_enough_payloads():
    assert len(SSTI_PAYLOADS) >= 30


@pytest.mark.parametrize("payload", SSTI_PAYLOADS)
def test_payload_is_an_error(r, backend, ctx, payload):
    before = (backend.thaw(ctx.parameters), backend.thaw(ctx.variables))
    with pytest.raises(TemplateError):
        r.render_template(payload, ctx, task="evil", field="input.cmd")
    assert (backend.thaw(ctx.parameters), backend.thaw(ctx.variables)) == before


@pytest.mark.parametrize("payload", SSTI_PAYLOADS)
def test_payload_in_condition_is_an_error(r, ctx, payload):
    with pytest.raises(TemplateError):
        r.evaluate_condition(payload, ctx)


def test_error_says_which_template_and_task(r, ctx):
    with pytest.raises(TemplateError) as ei:
        r.render_template("{{ ''.__class__.__mro__ }}", ctx, task="evil", field="input.cmd")
    msg = str(ei.value)
    assert "evil" in msg and "input.cmd" in msg and "__class__" in msg and "unsafe" in msg


def test_output_cap(ctx):
    rr = Renderer(max_output=1000)
    assert len(rr.render_template("{{ 'a' * 1000 }}", ctx)) == 1000
    with pytest.raises(TemplateError, match="size limit"):
        rr.render_template("{% for i in range(200) %}abcdef{% endfor %}", ctx)
    with pytest.raises(TemplateError, match="limit"):
        rr.render_template("{{ 'a' * 1001 }}", ctx)


def test_step_limit(ctx):
    rr = Renderer(max_steps=5000)
    assert rr.render_template("{% for i in range(1000) %}{% endfor %}ok", ctx) == "ok"
    with pytest.raises(TemplateError, match="step limit"):
        rr.render_template("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", ctx)


def test_time_limit(ctx):
    rr = Renderer(timeout=0.01, max_steps=10**12)
    with pytest.raises(TemplateError, match="time limit"):
        rr.render_template("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", ctx)
    with pytest.raises(TemplateError, match="time limit"):
        rr.render_template("{{ regex_match('a' * 40 ~ '!', '(a|aa)+$') }}", ctx)


def test_legit_large_but_allowed(r, ctx):
    assert len(r.render_template("{{ 'ab' * 400000 }}", ctx)) == 800000
    assert r.render_template("{{ range(100000) | list | length }}", ctx) == 100000
    assert r.render_template("{{ 2 ** 64 }}", ctx) == 2**64
    assert r.render_template("{{ '%5d|%-3s|' % (42, 'x') }}", ctx) == "   42|x  |"
    assert r.render_template("{{ '{:>5}'.format('x') }}", ctx) == "    x"
    assert r.render_template("{{ 'x' | center(5) }}", ctx) == "  x  "
    assert r.render_template("{{ '%s-%s' | format('a', 'b') }}", ctx) == "a-b"
    assert r.render_template("{{ 'a b c' | replace(' ', '_') }}", ctx) == "a_b_c"
    assert r.render_template("{{ [1, 2] + [3] }}", ctx) == [1, 2, 3]
    assert r.render_template("{{ vars.xs | list + [3] }}", ctx) == [1, 2, 3]
    assert r.render_template("{% set ns = namespace(n=0) %}{% for x in vars.xs %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}", ctx) == "3"
    assert r.render_template("{{ 'a\nb' | indent(2, first=True) }}", ctx) == "  a\n  b"
    assert r.render_template("{{ 'a' ~ 1 ~ vars.xs }}", ctx) == "a1[1, 2]"
    assert r.render_template("{% for x in vars.xs %}{{ loop.index }}/{{ loop.length }} {% endfor %}", ctx) == "1/2 2/2 "


def test_python_range_is_never_visible(r, ctx):
    for src in ["{{ range(10**6) }}", "{% for i in range(10**6) %}{% endfor %}", "range(10**6) | length > 0"]:
        with pytest.raises(TemplateError, match="(?i)range"):
            if src.startswith("range"):
                r.evaluate_condition(src, ctx)
            else:
                r.render_template(src, ctx)


YAQL_PAYLOADS = [
    "<% ''.__class__ %>",
    "<% ctx().__class__ %>",
    "<% range(10000000000).len() %>",
    "<% range(0, 10000000000).sum() %>",
    "<% 'a' * 1000000000 %>",
    "<% list(range(10000000)) %>",
    "<% now().__class__ %>",
    "<% ctx().__class__.__mro__ %>",
    "<% sequence().take(10) %>",
    "<% repeat(1).len() %>",
    "<% [1].cycle().len() %>",
    "<% pow(10, 10000000) %>",
    "<% range(1000000).select(range(1000000).sum()) %>",
    "<% str(ctx()).__len__() %>",
    # issue 11
    "<% range(26).aggregate($1 * $1, 3) %>",
    "<% ('a' * 40 + '!').matches('(a|aa)+$') %>",
    "<% ('a' * 40 + '!') =~ '(a|aa)+$' %>",
    "<% regex('(a|aa)+$').search('a' * 40 + '!') %>",
    "<% let(x => 'y' * 900000) -> $x + $x + $x %>",
    "<% let(x => 'y' * 9000) -> range(200).select($x).join('') %>",
    "<% range(300).select('y' * 999999) %>",
    "<% " + "(" * 3000 + "1" + ")" * 3000 + " %>",
]


@pytest.fixture(scope="module")
def r_fast() -> Renderer:
    return Renderer(timeout=1.0)


@pytest.mark.parametrize("payload", YAQL_PAYLOADS)
def test_yaql_payloads(r_fast, ctx, payload):
    pytest.importorskip("yaql")
    with pytest.raises(TemplateError):
        r_fast.render_template(payload, ctx)
