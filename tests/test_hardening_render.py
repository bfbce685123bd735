"""Issue 11 (hardening), renderer part: each class of attack is closed by a mechanism, not a payload.

1. templates cannot mutate stored values through the types (``dict.update(frozen, ...)``);
2. every filter's ``attribute=`` goes through the sandbox's attribute check;
3. the size cap holds against amplification, with memory bounded (tracemalloc peak);
4. the time limit covers regular expressions and YAQL reductions (tiny limits, error kinds only);
5. deep nesting is a TemplateError, never a bare RecursionError;
6. the ``quote`` filter / YAQL function, the list-form ``cmd`` and the validator warning;
7. Jinja2 >= 3.1.6 and both ``str.format`` escape forms.

Every behaviour test takes the ``backend`` fixture (compiled store and pure twin). No wall-clock
assertions: limits are configured tiny and the test checks which error came.
"""
from __future__ import annotations

import re
import shlex
import sys
import textwrap
import tracemalloc
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from flowctx.errors import TemplateError
from flowctx.render import Renderer

ROOT = Path(__file__).resolve().parent.parent


def _context(backend: ModuleType) -> Any:
    return backend.Context(
        parameters={"p": {"a": 1}, "owner": "me"},
        variables={"shared": {"owner": "me", "list": [1, 2]}, "xs": [1, 2], "s": "abc"},
        task_results={"t1": {"status": "succeeded", "result": {"x": 1}}},
    )


@pytest.fixture()
def ctx(backend: ModuleType) -> Any:
    return _context(backend)


@pytest.fixture(scope="module")
def r() -> Renderer:
    # one renderer for the module, like the process-wide default one: a write that got through
    # would be seen by every later test
    return Renderer(config={"k": "v", "nested": {"a": 1}})


def _state(backend: ModuleType, ctx: Any) -> Any:
    return (
        backend.thaw(ctx.parameters),
        backend.thaw(ctx.variables),
        backend.thaw(ctx.task_results),
    )


# ====================================================================== 1. mutation through types
MUTATION_PAYLOADS = [
    "{{ dict.update(ctx().shared, {'owner': 'x'}) }}",
    "{{ dict.update(vars.shared, owner='x') }}",
    "{{ dict.clear(parameters) }}",
    "{{ dict.clear(vars) }}",
    "{{ dict.pop(vars, 'xs') }}",
    "{{ dict.popitem(parameters) }}",
    "{{ dict.setdefault(vars, 'z', 1) }}",
    "{{ dict.update(config, {'k': 'x'}) }}",
    "{{ dict.clear(config.nested) }}",
    "{{ dict.update(pack.config, {'k': 'x'}) }}",
    "{{ dict.update(task.t1.result, {'x': 2}) }}",
    "{{ dict.__setitem__(vars, 'z', 1) }}",
    "{{ dict.__init__(vars, z=1) }}",
    "{{ dict.__ior__(vars, {'z': 1}) }}",
    "{{ dict['x'].update(vars, {'z': 1}) }}",
    "{{ dict[0].clear(vars) }}",
    "{{ (dict|attr('update'))(vars, {'z': 1}) }}",
    "{{ (dict|attr('clear'))(parameters) }}",
    "{{ dict.mro() }}",
    "{{ dict.mro()[1].__setattr__ }}",
    "{{ namespace.mro() }}",
    "{{ dict.keys(vars) }}",
    "{{ dict.fromkeys.__self__ }}",
    "{{ vars.update({'z': 1}) }}",
    "{{ vars.shared.clear() }}",
    "{{ parameters.p.setdefault('z', 1) }}",
    "{{ vars | attr('update') }}",
    "{{ (vars.shared|attr('pop'))('owner') }}",
    "{{ vars.xs.append(3) }}",
    "{{ [vars] | map(attribute='clear') | list }}",
    "{{ '{0.update}'.format(vars) }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% set f = dict.update %}{{ f(vars, {'z': 1}) }}",
    "{% set ns = namespace(d=vars) %}{{ dict.update(ns.d, {'z': 1}) }}",
    "{{ dict(vars).update({'z': 1}) }}",
]


@pytest.mark.parametrize("payload", MUTATION_PAYLOADS)
def test_no_mutation_through_types(r: Renderer, backend: ModuleType, payload: str) -> None:
    c = _context(backend)
    before = _state(backend, c)
    with pytest.raises(TemplateError):
        r.render_template(payload, c, task="evil", field="input.x")
    assert _state(backend, c) == before
    # the shared renderer's config and a fresh context read the original values
    assert r.render_template("{{ config.k }} {{ config.nested.a }} {{ pack.config.k }}", c) == "v 1 v"
    fresh = _context(backend)
    assert r.render_template("{{ vars.shared.owner }} {{ parameters.owner }} {{ vars.xs }}", fresh) == "me me [1, 2]"


@pytest.mark.parametrize("payload", MUTATION_PAYLOADS)
def test_no_mutation_in_conditions(r: Renderer, backend: ModuleType, payload: str) -> None:
    c = _context(backend)
    before = _state(backend, c)
    with pytest.raises(TemplateError):
        r.evaluate_condition(payload, c)
    assert _state(backend, c) == before


def test_mutation_error_names_what_was_refused(r: Renderer, ctx: Any) -> None:
    with pytest.raises(TemplateError) as ei:
        r.render_template("{{ dict.update(ctx().shared, {'owner': 'x'}) }}", ctx, task="t", field="input.x")
    msg = str(ei.value)
    assert "task 't'" in msg and "input.x" in msg and "update" in msg and "unsafe" in msg


def test_mutating_call_mechanism(backend: ModuleType) -> None:
    """The call check itself: mutators are recognised however the callable was obtained."""
    from flowctx.render import _guard

    frozen = backend.freeze({"a": {"b": 1}, "l": [1]}, "x")
    assert _guard.mutating_call(dict.update, (frozen, {})) is not None
    assert _guard.mutating_call(dict.update, ({}, {})) is not None  # a mutator of a builtin type
    assert _guard.mutating_call(dict[int].update, ({},)) is not None  # through a GenericAlias
    assert _guard.mutating_call(list.__setitem__, ([1], 0, 2)) is not None
    assert _guard.mutating_call(object.__setattr__, (object(), "a", 1)) is not None
    assert _guard.mutating_call(dict.__init__, (frozen,)) is not None
    assert _guard.mutating_call(set.add, (set(), 1)) is not None
    assert _guard.mutating_call(bytearray.extend, (bytearray(), b"x")) is not None
    assert _guard.mutating_call({}.update, ({"a": 1},)) is not None
    assert _guard.mutating_call([].append, (1,)) is not None
    assert _guard.mutating_call([].__setitem__, (0, 1)) is not None
    assert _guard.mutating_call(dict.keys, (frozen,)) is not None  # any unbound method on a stored value
    # reading is fine
    assert _guard.mutating_call(dict.keys, ({},)) is None
    assert _guard.mutating_call(frozen.get, ("a",)) is None
    assert _guard.mutating_call("x".upper, ()) is None
    assert _guard.mutating_call(len, (frozen,)) is None


def test_legit_reads_still_work(r: Renderer, ctx: Any) -> None:
    assert r.render_template("{{ dict.fromkeys(['a', 'b'], 0) }}", ctx) == {"a": 0, "b": 0}
    assert r.render_template("{{ dict(vars.shared, extra=1) }}", ctx) == {"owner": "me", "list": [1, 2], "extra": 1}
    assert r.render_template("{{ vars.shared.get('owner') }}", ctx) == "me"
    assert r.render_template("{{ vars.shared.keys() | list }}", ctx) == ["owner", "list"]
    assert r.render_template("{{ vars.shared | dictsort | first }}", ctx) == ("list", (1, 2))


def test_yaql_never_mutates(r: Renderer, backend: ModuleType, ctx: Any) -> None:
    pytest.importorskip("yaql")
    before = _state(backend, ctx)
    assert r.render_template("<% ctx().shared.set(owner, 'x') %>", ctx) == {"owner": "x", "list": [1, 2]}
    assert r.render_template("<% ctx().shared + {owner => 'x'} %>", ctx) == {"owner": "x", "list": [1, 2]}
    assert r.render_template("<% ctx().shared.delete(owner) %>", ctx) == {"list": [1, 2]}
    assert _state(backend, ctx) == before


# ====================================================================== 2. filter attribute=
ATTRIBUTE_PAYLOADS = [
    "{{ [''] | join(attribute='__class__') }}",
    "{{ [ctx] | join(attribute='__globals__') }}",
    "{{ [ctx] | join(attribute='__self__') }}",
    "{{ [[ctx]] | join(attribute='0.__globals__') }}",
    "{{ [''] | join(',', attribute='__class__.__mro__') }}",
    "{{ [1] | sum(attribute='__class__') }}",
    "{{ [''] | sum(attribute='__class__', start='') }}",
    "{{ [ctx] | sort(attribute='__globals__') }}",
    "{{ ['', 'a'] | sort(attribute='__class__') | list }}",
    "{{ [''] | unique(attribute='__class__') | list }}",
    "{{ ['', 'a'] | min(attribute='__class__') }}",
    "{{ ['', 'a'] | max(attribute='__class__') }}",
    "{{ [''] | groupby('__class__') | list }}",
    "{{ [''] | groupby(attribute='__class__') | list }}",
    "{{ [''] | map(attribute='__class__') | list }}",
    "{{ [ctx] | map(attribute='__globals__') | list }}",
    "{{ [''] | selectattr('__class__') | list }}",
    "{{ [''] | rejectattr('__class__') | list }}",
    "{{ [''] | selectattr('__class__', 'defined') | list }}",
    "{{ [''] | map('attr', '__class__') | list }}",
    "{{ [vars] | map(attribute='update') | list }}",
    "{{ [vars] | join(attribute='update') }}",
]


@pytest.mark.parametrize("payload", ATTRIBUTE_PAYLOADS)
def test_filter_attribute_goes_through_the_sandbox(r: Renderer, ctx: Any, payload: str) -> None:
    with pytest.raises(TemplateError, match="unsafe"):
        r.render_template(payload, ctx)


def test_filter_attribute_legit(r: Renderer, ctx: Any) -> None:
    rows = "[{'a': 'x', 'n': 2, 'd': {'b': 1}}, {'a': 'y', 'n': 1, 'd': {'b': 2}}]"
    assert r.render_template("{{ " + rows + " | join(',', attribute='a') }}", ctx) == "x,y"
    assert r.render_template("{{ " + rows + " | join(attribute='d.b') }}", ctx) == "12"
    assert r.render_template("{{ [[1, 2], [3]] | join(attribute='0') }}", ctx) == "13"
    assert r.render_template("{{ " + rows + " | sum(attribute='n') }}", ctx) == 3
    assert r.render_template("{{ " + rows + " | sort(attribute='n') | map(attribute='a') | list }}", ctx) == ["y", "x"]
    assert r.render_template("{{ " + rows + " | max(attribute='n') }}", ctx)["a"] == "x"
    assert r.render_template("{{ task.t1 | list }}", ctx) == ["status", "result"]


# ====================================================================== 3. amplification
AMPLIFIERS = [
    # str.format / format_map with repeated fields
    "{{ ('{0}' * 1000).format('y' * 990000) }}",
    "{{ ('{0}{0}').format('y' * 600000) }}",
    "{{ ('{a}' * 1000).format_map({'a': 'y' * 990000}) }}",
    "{{ ('{0!r}' * 200).format('\\x00' * 100000) }}",
    "{{ ('{0:>900000}' * 3).format('y') }}",
    "{{ '{:.999999f}'.format(1e300) }}",
    "{{ ('{0[a]}' * 1000).format({'a': 'y' * 990000}) }}",
    "{{ (('{0}' * 1000)|attr('format'))('y' * 990000) }}",
    # %-format with repeated mapping keys
    "{{ ('%(a)s' * 1000) % {'a': 'y' * 990000} }}",
    "{{ ('%(a(b))s' * 1000) % {'a(b)': 'y' * 990000} }}",
    "{{ ('%(a)s' * 1000) | format(a='y' * 990000) }}",
    "{{ ('%(a)r' * 100) % {'a': '\\x00' * 100000} }}",
    "{{ '%.999999f' % 1e300 }}",
    "{{ ('%900000s' * 3) % ('a', 'b', 'c') }}",
    # growing str / bytes methods
    "{{ ('y' * 900000).encode('utf-32').hex() }}",
    "{{ ('y' * 600000).encode('utf-8').hex() }}",
    "{{ ('y' * 600000).encode('utf-16') }}",
    "{{ ('\\u00e9' * 300000).encode('ascii', 'xmlcharrefreplace') }}",
    "{{ ('\\u00df' * 600000).upper() }}",
    "{{ ('\\u00df' * 600000) | upper }}",
    "{{ ('\\u00df' * 600000) | title }}",
    # escaping / encoding filters
    "{{ dict.fromkeys(range(1000), 'y' * 2000) | urlencode }}",
    "{{ {'a': '&' * 400000} | urlencode }}",
    "{{ [('a', '\u00e9' * 200000)] | urlencode }}",
    "{{ ('\\u00e9' * 200000) | urlencode }}",
    "{{ ('<' * 300000) | forceescape }}",
    "{{ ('<' * 300000) | e }}",
    "{{ ('<' * 300000) | escape }}",
    "{{ {'a': '<' * 300000} | xmlattr }}",
    "{{ ('<' * 300000) | tojson }}",
    "{{ ('\\u00e9' * 300000) | to_json_string }}",
    "{{ ('a.com ' * 100000) | urlize }}",
    "{{ 'a.com' | urlize(target='x' * 999990) }}",
    "{{ [1, [2, [3]]] | tojson(indent=1000000) }}",
    "{% autoescape true %}{% set m %}x{% endset %}{{ m + ('<' * 300000) }}{% endautoescape %}",
    "{% autoescape true %}{% set m %}{0}{% endset %}{{ (m * 200).format('<' * 5000) }}{% endautoescape %}",
    # accumulation in buffers, lazy producers and containers
    "{% set x %}{% for i in range(300) %}{{ 'y' * 999999 }}{% endfor %}{% endset %}{{ x | length }}",
    "{% macro m() %}{% for i in range(300) %}{{ 'y' * 999999 }}{% endfor %}{% endmacro %}{{ m() | length }}",
    "{% filter upper %}{% for i in range(300) %}{{ 'y' * 999999 }}{% endfor %}{% endfilter %}",
    "{{ range(300) | map('center', 999999) | list | length }}",
    "{{ range(300) | map('center', 999999) | join | length }}",
    "{{ range(300) | map('center', 999999) | sort | length }}",
    "{% set ns = namespace(d={}) %}{% for i in range(300) %}{% set ns.d = dict(ns.d, **{i|string: 'y' * 999999}) %}{% endfor %}",
    "{{ dict.fromkeys(range(1000), 'y' * 9000) | length }}",
    "{% set ns = namespace(a='y' * 600000, b='y' * 600000) %}",
    "{{ [['y' * 600000], ['y' * 600000]] | sum(start=[]) | length }}",
    "{{ zip(" + ", ".join(["range(100000)"] * 12) + ") | length }}",
    # Markup (inside an explicit autoescape block): its Python-level methods escape their arguments
    "{% autoescape true %}{% set m %}x{% endset %}{{ m.center(100000000) }}{% endautoescape %}",
    "{% autoescape true %}{% set m %}x{% endset %}{{ m.join(['<' * 300000]) }}{% endautoescape %}",
    "{% autoescape true %}{% set m %}x{% endset %}{{ m.replace('x', '<' * 300000) }}{% endautoescape %}",
    # nested format specs are resolved first, then checked
    "{{ '{0:{1}}'.format('x', '>999999999') }}",
    "{{ '{0:{w}}'.format('x', w=2000000) }}",
]

YAQL_AMPLIFIERS = [
    "<% let(x => 'y' * 900000) -> $x + $x + $x %>",
    "<% let(x => 'y' * 900000) -> concat($x, $x) %>",
    "<% let(x => 'y' * 9000) -> range(200).select($x).join('') %>",
    "<% let(x => 'y' * 9000) -> ''.join(range(200).select($x)) %>",
    "<% ('a' * 999999).replace('a', 'bb') %>",
    "<% range(30).aggregate($1 + $1, 'a').len() %>",
    "<% range(300).select('y' * 999999).len() %>",
    "<% range(300).select('y' * 999999) %>",
    "<% range(300).select('y' * 999999).toList() %>",
    "<% range(26).aggregate($1 * $1, 3) > 0 %>",
    "<% shiftBitsLeft(1, 100000000) > 0 %>",
    "<% str(range(100000).select(['yyyyyyyyyyyyyyyyyyyy', 'yyyyyyyyyyyyyyyyyy']).toList()) %>",
    "<% let(x => range(50000).toList()) -> zip(" + ", ".join(["$x"] * 25) + ") %>",
]

_PEAK_LIMIT = 40 * 1024 * 1024  # the payloads would allocate 100 MB to 1 GB without the checks


def _peak_of_failed_render(r: Renderer, ctx: Any, payload: str) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match="(?i)limit"):
            r.render_template(payload, ctx)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("payload", AMPLIFIERS)
def test_amplification_stops_before_allocating(r: Renderer, ctx: Any, payload: str) -> None:
    assert _peak_of_failed_render(r, ctx, payload) < _PEAK_LIMIT


@pytest.mark.parametrize("payload", YAQL_AMPLIFIERS)
def test_yaql_amplification_stops_before_allocating(r: Renderer, ctx: Any, payload: str) -> None:
    pytest.importorskip("yaql")
    r.render_template("<% 1 %>", ctx)  # build the YAQL front outside the measured window
    assert _peak_of_failed_render(r, ctx, payload) < _PEAK_LIMIT


def test_amplifiers_below_the_cap_still_work(r: Renderer, ctx: Any) -> None:
    assert r.render_template("{{ ('{0}' * 10).format('y' * 99999) }}", ctx) == "y" * 999990
    assert r.render_template("{{ ('%(a)s' * 10) % {'a': 'y' * 99999} }}", ctx) == "y" * 999990
    assert r.render_template("{{ '{0!r}-{1:>4}'.format('a', 7) }}", ctx) == "'a'-   7"
    assert r.render_template("{{ '{:.2f}|{:,}'.format(3.14159, 1234567) }}", ctx) == "3.14|1,234,567"
    assert r.render_template("{{ ('y' * 400000).encode('utf-8').hex() | length }}", ctx) == 800000
    assert r.render_template("{{ ('a' * 400000) | upper | length }}", ctx) == 400000
    assert r.render_template("{{ 'a b&c' | urlencode }}", ctx) == "a%20b%26c"
    assert r.render_template("{{ {'a': 'x y', 'b': 2} | urlencode }}", ctx) == "a=x+y&b=2"
    assert r.render_template("{{ '<a>' | e }}", ctx) == "&lt;a&gt;"
    assert r.render_template("{{ {'a': '<'} | tojson }}", ctx) == '{"a": "\\u003c"}'
    assert r.render_template("{{ ('x' | safe) + '<' }}", ctx) == "x<"
    assert len(r.render_template("{{ ('x' | safe) + ('<' * 300000) }}", ctx)) == 300001  # str: no escaping
    assert r.render_template("{{ {'id': 'a<b'} | xmlattr }}", ctx) == ' id="a&lt;b"'
    assert r.render_template("{% set x %}{% for i in range(3) %}ab{% endfor %}{% endset %}{{ x }}", ctx) == "ababab"
    assert r.render_template("{{ range(5) | map('string') | join(',') }}", ctx) == "0,1,2,3,4"
    assert r.render_template("{{ [[1], [2, 3]] | sum(start=[]) }}", ctx) == [1, 2, 3]
    assert r.render_template("{{ 'x' | e | e }}", ctx) == "x"
    assert type(r.render_template("{{ 'x' | safe }}", ctx)) is str
    assert r.render_template("{{ '{}|{}'.format(vars.shared, vars.xs) }}", ctx) == "{'owner': 'me', 'list': [1, 2]}|[1, 2]"
    assert r.render_template("{{ zip([1, 2], [3, 4]) }}", ctx) == [[1, 3], [2, 4]]
    big = ctx.clone()
    big.set_var("big", "x" * 900000)  # loop variables holding big data do not count against namespace()
    assert r.render_template("{% for b in [vars.big] %}{% set ns = namespace(a=1) %}{{ ns.a }}{% endfor %}", big) == "1"
    assert r.render_template("{{ '{0:{1}}|{x:>{w}}'.format('a', '>3', x='b', w=2) }}", ctx) == "  a| b"


def test_yaql_below_the_cap_still_works(r: Renderer, ctx: Any) -> None:
    pytest.importorskip("yaql")
    assert r.render_template("<% 'ab' + 'c' %>", ctx) == "abc"
    assert r.render_template("<% concat('a', 'b', 'c') %>", ctx) == "abc"
    assert r.render_template("<% ['a', 'b'].join('-') %>", ctx) == "a-b"
    assert r.render_template("<% '-'.join(['a', 'b']) %>", ctx) == "a-b"
    assert r.render_template("<% 'abab'.replace('a', 'x') %>", ctx) == "xbxb"
    assert r.render_template("<% range(10).select($ * 2).where($ > 14) %>", ctx) == [16, 18]
    assert r.render_template("<% range(5).aggregate($1 + $2, 0) %>", ctx) == 10
    assert r.render_template("<% 3 * 4 %>", ctx) == 12


def test_cap_is_configurable(backend: ModuleType) -> None:
    c = _context(backend)
    small = Renderer(max_output=100)
    assert small.render_template("{{ ('{0}' * 10).format('y' * 10) }}", c) == "y" * 100
    for payload in ["{{ ('{0}' * 11).format('y' * 10) }}", "{{ ('%(a)s' * 11) % {'a': 'y' * 10} }}",
                    "{{ ('<' * 30) | e }}", "{% set x %}{% for i in range(11) %}{{ 'y' * 10 }}{% endfor %}{% endset %}"]:
        with pytest.raises(TemplateError, match="size limit"):
            small.render_template(payload, c)


# ====================================================================== 4. time limit
REGEX_BOMB = "'a' * 40 ~ '!'"
EVIL = "'(a|aa)+$'"


@pytest.fixture(scope="module")
def r_quick() -> Renderer:
    return Renderer(timeout=0.05)


@pytest.mark.parametrize(
    "payload",
    [
        "{{ regex_search(" + REGEX_BOMB + ", " + EVIL + ") }}",
        "{{ regex_match(" + REGEX_BOMB + ", " + EVIL + ") }}",
        "{{ regex_replace(" + REGEX_BOMB + ", " + EVIL + ", 'x') }}",
        "{{ (" + REGEX_BOMB + ") | regex_search(" + EVIL + ") }}",
        "{{ (" + REGEX_BOMB + ") is regex_search(" + EVIL + ") }}",
        "{% for i in range(3) %}{{ regex_search(" + REGEX_BOMB + ", " + EVIL + ") }}{% endfor %}",
    ],
)
def test_regex_under_the_time_limit(r_quick: Renderer, ctx: Any, payload: str) -> None:
    with pytest.raises(TemplateError, match="time limit") as ei:
        r_quick.render_template(payload, ctx, task="t", field="input.x")
    assert "task 't'" in str(ei.value) and "input.x" in str(ei.value)


def test_constant_folded_regex_is_under_the_time_limit(r_quick: Renderer, ctx: Any) -> None:
    # a literal subject is folded by Jinja's optimizer while compiling: also under the limit
    with pytest.raises(TemplateError, match="time limit"):
        r_quick.render_template("{{ '" + "a" * 40 + "!' | regex_search('(a|aa)+$') }}", ctx)


@pytest.mark.parametrize(
    "payload",
    [
        "<% ('a' * 40 + '!').matches('(a|aa)+$') %>",
        "<% ('a' * 40 + '!') =~ '(a|aa)+$' %>",
        "<% ('a' * 40 + '!') !~ '(a|aa)+$' %>",
        "<% regex('(a|aa)+$').matches('a' * 40 + '!') %>",
        "<% regex('(a|aa)+$').search('a' * 40 + '!') %>",
        "<% regex('(a|aa)+$').searchAll('a' * 40 + '!') %>",
        "<% regex('(a|aa)+$').replace('a' * 40 + '!', 'x') %>",
        "<% ('a' * 40 + '!').replace(regex('(a|aa)+$'), 'x') %>",
        "<% regex('(a|aa)+$').split('a' * 40 + '!') %>",
        "<% regex_search('a' * 40 + '!', '(a|aa)+$') %>",
    ],
)
def test_yaql_regex_under_the_time_limit(r_quick: Renderer, ctx: Any, payload: str) -> None:
    pytest.importorskip("yaql")
    with pytest.raises(TemplateError, match="time limit"):
        r_quick.render_template(payload, ctx)


REGEX_COMPILE_BOMBS = ["(?:a{65535}){65535}", "a{1000000}", "(?:(?:a{100}){100}){100}", "(" * 3000 + "a" + ")" * 3000]


@pytest.mark.parametrize("pattern", REGEX_COMPILE_BOMBS, ids=lambda p: p[:20])
def test_regex_compile_is_bounded(r: Renderer, ctx: Any, pattern: str) -> None:
    """The engine unrolls fixed repeats at compile time (not interruptible): refused beforehand."""
    c = ctx.clone()
    c.set_var("pat", pattern)
    for src in ["{{ regex_search('aaa', vars.pat) }}", "{{ regex_replace('aaa', vars.pat, 'x') }}"]:
        with pytest.raises(TemplateError, match="regular expression"):
            r.render_template(src, c)
    if pytest.importorskip("yaql"):
        with pytest.raises(TemplateError, match="regular expression"):
            r.render_template("<% regex($.pat).matches('aaa') %>", c)
        with pytest.raises(TemplateError, match="regular expression"):
            r.render_template("<% 'aaa' =~ $.pat %>", c)


def test_regex_keeps_re_syntax(r: Renderer, ctx: Any) -> None:
    assert r.render_template("{{ regex_search('abab', '(?P<x>ab)(?P=x)') }}", ctx) is True
    assert r.render_template("{{ regex_search('ab', '(?<=a)b') }}", ctx) is True
    assert r.render_template("{{ regex_search('ab', '(a)\\1') }}", ctx) is False
    assert r.render_template("{{ regex_match('a' * 20000, 'a{20000}') }}", ctx) is True
    c = ctx.clone()
    c.set_var("pat", r"\p{L}")
    with pytest.raises(TemplateError):  # not Python re syntax (Orquesta would refuse it too)
        r.render_template("{{ regex_search('a', vars.pat) }}", c)


def test_yaql_regex_functions_keep_their_meaning(r: Renderer, ctx: Any) -> None:
    pytest.importorskip("yaql")
    assert r.render_template("<% regex('a.c').matches('xabc') %>", ctx) is True
    assert r.render_template("<% 'xabc'.matches('A.C') %>", ctx) is False
    assert r.render_template("<% regex('A.C', ignoreCase => true).matches('abc') %>", ctx) is True
    assert r.render_template("<% 'abc' =~ 'b' %>", ctx) is True
    assert r.render_template("<% 'abc' !~ 'b' %>", ctx) is False
    assert r.render_template("<% regex('a.c').search('xabc') %>", ctx) == "abc"
    assert r.render_template("<% regex('(a)(?P<n>b)').search('xab', $2.value + $n.value) %>", ctx) == "ab"
    assert r.render_template("<% regex('a').searchAll('aXa') %>", ctx) == ["a", "a"]
    assert r.render_template("<% regex(',').split('a,b,c', 1) %>", ctx) == ["a", "b,c"]
    assert r.render_template("<% 'a,b'.split(regex(',')) %>", ctx) == ["a", "b"]
    assert r.render_template("<% regex('b').replace('abab', 'Z') %>", ctx) == "aZaZ"
    assert r.render_template("<% regex('(b)').replaceBy('abab', $1.value.toUpper()) %>", ctx) == "aBaB"
    assert r.render_template("<% escapeRegex('a.b') %>", ctx) == "a\\.b"
    assert r.render_template("<% isRegex(regex('a')) %>", ctx) is True


def test_jinja_regex_helpers_keep_their_meaning(r: Renderer, ctx: Any) -> None:
    assert r.render_template("{{ regex_match('abc', 'a.c') }}", ctx) is True
    assert r.render_template("{{ regex_match('xabc', 'a.c') }}", ctx) is False
    assert r.render_template("{{ regex_search('xABC', 'a.c', ignorecase=True) }}", ctx) is True
    assert r.render_template("{{ regex_replace('a1b22', '(\\\\d+)', '<\\\\1>') }}", ctx) == "a<1>b<22>"
    assert r.render_template("{{ 'abc' is regex_match('a') }}", ctx) is True
    with pytest.raises(TemplateError):
        r.render_template("{{ regex_match('a', '(') }}", ctx)


def test_yaql_reductions_count_steps(backend: ModuleType) -> None:
    pytest.importorskip("yaql")
    c = _context(backend)
    few = Renderer(max_steps=100)
    assert few.render_template("<% range(10).aggregate($1 + $2, 0) %>", c) == 45
    with pytest.raises(TemplateError, match="step limit"):
        few.render_template("<% [1, 2, 3, 4, 5, 6, 7, 8].select($ * 2).aggregate($1 + $2, 0) + "
                            "range(2000).aggregate($1 + $2, 0) %>", c)
    # a reduction over a literal list (no range() ticks) is counted by its calls
    lit = "[" + ", ".join(["1"] * 1500) + "]"
    with pytest.raises(TemplateError, match="step limit"):
        few.render_template("<% " + lit + ".aggregate($1 + $2, 0) %>", c)


def test_yaql_time_limit(backend: ModuleType) -> None:
    pytest.importorskip("yaql")
    c = _context(backend)
    slow = Renderer(timeout=0.0001, max_steps=10**9)
    with pytest.raises(TemplateError, match="time limit"):
        slow.render_template("<% [" + ", ".join(["1"] * 3000) + "].aggregate($1 + $2, 0) %>", c)


def test_time_limit_names_task_field_and_file_line(backend: ModuleType, tmp_path: Path) -> None:
    from flowctx import Engine

    wf = tmp_path / "bomb.yaml"
    wf.write_text(textwrap.dedent("""\
        version: 1.0
        input: [s]
        tasks:
          t1:
            action: core.echo
            input:
              message: "{{ regex_search(ctx().s, '(a|aa)+$') }}"
        """))
    res = Engine(renderer=Renderer(timeout=0.05), executor="inline", store=backend).run(str(wf), {"s": "a" * 40 + "!"})
    assert res.status == "failed"
    msg = res.errors[0]["message"]
    assert f"{wf}:7:" in msg and "task 't1'" in msg and "input.message" in msg and "time limit" in msg


# ====================================================================== 5. deep nesting
def _deep(open_: str, inner: str, close: str, n: int = 3000) -> str:
    return open_ * n + inner + close * n


DEEP = [
    "{{ " + _deep("(", "1", ")") + " }}",
    "{{ " + _deep("[", "", "]") + " }}",
    "{{ " + _deep("{'a': ", "1", "}") + " }}",
    "{{ " + "not " * 3000 + "true }}",
    "{{ " + "-" * 3000 + "1 }}",
    "{{ 1" + " + 1" * 3000 + " }}",
    "{{ 'a'" + " | upper" * 3000 + " }}",
    "{{ x" + ".a" * 3000 + " }}",
    "{{ " + "f(" * 3000 + ")" * 3000 + " }}",
    "{{ " + "1 if true else (" * 3000 + "2" + ")" * 3000 + " }}",
    "{{ " + "true ? (" * 3000 + "1" + " : 2)" * 3000 + " }}",
    "x {{ " + _deep("(", "1", ")") + " }} y",
    "{% if true %}" * 3000 + "x" + "{% endif %}" * 3000,
    "{% for i in [1] %}" * 3000 + "x" + "{% endfor %}" * 3000,
]
YAQL_DEEP = [
    "<% " + _deep("(", "1", ")") + " %>",
    "<% " + _deep("[", "1", "]") + " %>",
    "<% " + _deep("{a => ", "1", "}") + " %>",
    "<% " + "not " * 3000 + "true %>",
    "<% 1" + " + 1" * 3000 + " %>",
]


def _value_or_template_error(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A value or a TemplateError: any other exception (RecursionError ...) fails the test."""
    try:
        return fn(*args, **kwargs)
    except TemplateError as exc:
        return exc


@pytest.mark.parametrize("payload", [DEEP[0], DEEP[1], DEEP[2], DEEP[11]], ids=lambda s: s[:24])
def test_deep_brackets_are_a_template_error(backend: ModuleType, payload: str) -> None:
    rr = Renderer()
    c = _context(backend)
    with pytest.raises(TemplateError, match="nested too deeply|recursion") as ei:
        rr.render_template(payload, c, task="t", field="input.x")
    assert "task 't'" in str(ei.value) and "input.x" in str(ei.value)
    with pytest.raises(TemplateError):
        rr.check(payload)


@pytest.mark.parametrize("payload", DEEP, ids=lambda s: s[:24])
def test_deep_nesting_never_raises_a_bare_error(backend: ModuleType, payload: str) -> None:
    rr = Renderer()  # fresh: a failed compile is cached per renderer
    c = _context(backend)
    _value_or_template_error(rr.render_template, payload, c, task="t", field="input.x")
    _value_or_template_error(rr.evaluate_condition, payload, c)
    _value_or_template_error(rr.check, payload)
    _value_or_template_error(rr.check, payload, condition=True)
    assert isinstance(rr.referenced_variables(payload), set)


def test_deep_bare_condition_is_a_template_error(backend: ModuleType) -> None:
    rr = Renderer()
    with pytest.raises(TemplateError):
        rr.evaluate_condition(_deep("(", "true", ")"), _context(backend))
    with pytest.raises(TemplateError):
        rr.check(_deep("(", "true", ")"), condition=True)


@pytest.mark.parametrize("payload", YAQL_DEEP, ids=lambda s: s[:24])
def test_yaql_deep_nesting_never_raises_a_bare_error(backend: ModuleType, payload: str) -> None:
    pytest.importorskip("yaql")
    rr = Renderer()
    _value_or_template_error(rr.render_template, payload, _context(backend))
    _value_or_template_error(rr.evaluate_condition, payload, _context(backend))
    if payload.startswith("<% ((("):
        with pytest.raises(TemplateError):
            rr.render_template(payload, _context(backend))


def test_deep_recursion_at_run_time(backend: ModuleType) -> None:
    c = _context(backend)
    rr = Renderer(max_steps=10**9)
    with pytest.raises(TemplateError, match="(?i)recursion|limit"):
        rr.render_template("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", c)
    assert sys.getrecursionlimit() >= 1000  # the renderer did not lower it for everybody


# ====================================================================== 6. quote / shell
def _with(ctx: Any, name: str, value: Any) -> Any:
    c = ctx.clone()
    c.set_var(name, value)
    return c


def test_quote_filter(r: Renderer, ctx: Any) -> None:
    for value in ["a b; rm -rf /", "it's", "$(id)", "`id`", "", "plain", "a\nb"]:
        assert r.render_template("{{ v | quote }}", _with(ctx, "v", value)) == shlex.quote(value)
    assert r.render_template("{{ 5 | quote }}", ctx) == "5"
    assert r.render_template("{{ quote(vars.s ~ ' x') }}", ctx) == "'abc x'"  # a function too, like every helper
    assert "quote" in r.function_names("jinja")
    assert r.render_template("{{ vars.xs | quote }}", ctx) == "'[1, 2]'"
    assert r.render_template("echo {{ vars.s | quote }}", ctx) == "echo abc"


def test_quote_in_yaql(r: Renderer, ctx: Any) -> None:
    pytest.importorskip("yaql")
    assert r.render_template("<% quote(\"it's; id\") %>", ctx) == shlex.quote("it's; id")
    assert r.render_template("echo <% quote($.s) %>", ctx) == "echo abc"
    assert "quote" in r.function_names("yaql")


def _run(backend: ModuleType, tmp_path: Path, body: str, params: dict[str, Any]) -> Any:
    from flowctx import Engine

    wf = tmp_path / "sh.yaml"
    wf.write_text(textwrap.dedent(body))
    return Engine(executor="inline", store=backend).run(str(wf), params)


HOSTILE = "a b; echo INJECTED $(echo X) 'q'"


def test_quoted_string_cmd_is_not_injectable(backend: ModuleType, tmp_path: Path) -> None:
    res = _run(backend, tmp_path, """\
        version: 1.0
        input: [x]
        tasks:
          t1:
            action: core.local
            input:
              cmd: printf '%s' {{ ctx().x | quote }}
        output:
          - out: "{{ task('t1').result.stdout }}"
        """, {"x": HOSTILE})
    assert res.status == "succeeded", res.errors
    assert res.output["out"] == HOSTILE


def test_list_cmd_is_not_injectable(backend: ModuleType, tmp_path: Path) -> None:
    res = _run(backend, tmp_path, """\
        version: 1.0
        input: [x]
        tasks:
          t1:
            action: core.local
            input:
              cmd: [printf, "%s", "{{ ctx().x }}"]
        output:
          - out: "{{ task('t1').result.stdout }}"
        """, {"x": HOSTILE})
    assert res.status == "succeeded", res.errors
    assert res.output["out"] == HOSTILE


def test_validator_warns_on_unquoted_shell_interpolation(tmp_path: Path) -> None:
    from flowctx.spec import load_workflow
    from flowctx.spec.validate import validate

    def warnings(cmd: str) -> list[str]:
        wf = tmp_path / "w.yaml"
        wf.write_text(f"version: 1.0\ninput: [x]\ntasks:\n  t1:\n    action: core.local\n    input:\n      cmd: {cmd}\n")
        return [str(p) for p in validate(load_workflow(str(wf))) if not p.is_error and "quote" in str(p)]

    assert warnings('"echo {{ ctx().x }}"')
    assert "w.yaml:7" in warnings('"echo {{ ctx().x }}"')[0]
    assert warnings('"echo <% $.x %>"')
    assert not warnings('"echo {{ ctx().x | quote }}"')
    assert not warnings('"echo <% quote($.x) %>"')
    assert not warnings('[echo, "{{ ctx().x }}"]')
    assert not warnings('"{{ ctx().x }}"')  # the whole command is one value
    assert not warnings("echo plain")


def test_examples_and_readme_quote_shell_interpolation() -> None:
    """Every string ``cmd`` in examples/ and the README that interpolates an expression quotes it."""
    expr = re.compile(r"\{\{-?(.*?)-?\}\}|<%(.*?)%>")
    texts = [(p.name, p.read_text(encoding="utf-8")) for p in sorted((ROOT / "examples").glob("*.yaml"))]
    texts.append(("README.md", (ROOT / "README.md").read_text(encoding="utf-8")))
    checked = 0
    for name, text in texts:
        for line in text.splitlines():
            m = re.search(r"""\bcmd(?:=|:\s)\s*(["']?)(.*)""", line)
            if not m or m.group(2).lstrip().startswith("["):
                continue
            for e in expr.finditer(m.group(2)):
                inner = (e.group(1) or e.group(2) or "").strip()
                checked += 1
                assert re.search(r"\|\s*quote\s*$", inner) or inner.startswith("quote("), f"{name}: {line.strip()}"
    assert checked >= 1


def test_shell_action_supports_the_list_form() -> None:
    from flowctx.actions.shell import _argv

    assert _argv(["printf", "%s", "a b"]) == ["printf", "%s", "a b"]
    assert _argv("echo hi")[:2] == ["/bin/sh", "-c"]


# ====================================================================== 7. Jinja2 >= 3.1.6
def test_jinja2_version_is_pinned() -> None:
    import jinja2

    version = tuple(int(x) for x in re.findall(r"\d+", jinja2.__version__)[:3])
    assert version >= (3, 1, 6)
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"Jinja2>=3.1.6"' in pyproject


@pytest.mark.parametrize(
    "payload",
    [
        "{{ '{0.__class__}'.format(x) }}",
        "{{ '{0.__class__.__mro__}'.format(x) }}",
        "{{ ('{0.__class__}' | attr('format'))(x) }}",
        "{{ ('{0.__init__.__globals__}' | attr('format'))(ctx) }}",
        "{{ ('{x.__class__}' | attr('format_map'))({'x': x}) }}",
        "{{ ('{0.__class__}')['format'](x) }}",
        "{% set f = '{0.__class__}'|attr('format') %}{{ f(x) }}",
        "{{ (('{0.__class__}'|safe)|attr('format'))(x) }}",
    ],
)
def test_str_format_escapes(r: Renderer, ctx: Any, payload: str) -> None:
    with pytest.raises(TemplateError):
        r.render_template(payload, _with(ctx, "x", "s"))
