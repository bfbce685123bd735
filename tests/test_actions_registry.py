"""The action registry: decorator, entry points, ``module:function`` references, input checks,
and the ``flowctx actions`` listing."""
from __future__ import annotations

import argparse
import json
import textwrap
import warnings
from typing import Any

import pytest

import flowctx
from flowctx.actions import DEFAULT_REGISTRY, ActionRegistry, import_action_module, import_reference
from flowctx.cli import actions as actions_cli
from flowctx.errors import ActionError


@pytest.fixture
def cleanup_default():
    """Remove actions a test registers on the default registry."""
    before = set(DEFAULT_REGISTRY._actions)
    yield
    for name in set(DEFAULT_REGISTRY._actions) - before:
        del DEFAULT_REGISTRY._actions[name]


def greet(name: str, greeting: str = "hello", *, punctuation: str = "!") -> str:
    """Greet someone.

    More text that the listing does not show.
    """
    return f"{greeting} {name}{punctuation}"


def takes_anything(required: int, **rest: Any) -> dict[str, Any]:
    return {"required": required, **rest}


def positional_only(a: int, /, b: int = 2) -> int:
    return a + b


def with_context(x: int, action_context: Any = None) -> Any:
    return x


# -- decorator -------------------------------------------------------------------------------
def test_flowctx_action_decorator_registers_on_the_default_registry(cleanup_default):
    @flowctx.action("testpack.double")
    def double(n: int) -> int:
        """Double a number."""
        return 2 * n

    assert double(4) == 8  # the function is returned unchanged
    spec = DEFAULT_REGISTRY.resolve("testpack.double")
    assert spec.func is double
    assert spec.summary == "Double a number."
    assert "testpack.double" in DEFAULT_REGISTRY


def test_bare_decorator_is_a_clear_error():
    with pytest.raises(ActionError, match="not bare @action"):
        flowctx.action(greet)  # type: ignore[arg-type]


def test_register_rejects_bad_names_and_non_callables():
    reg = ActionRegistry()
    with pytest.raises(ActionError, match="non-empty string"):
        reg.register("", greet)
    with pytest.raises(ActionError, match="must be callable"):
        reg.register("x.y", 42)  # type: ignore[arg-type]


def test_child_registry_layers_on_its_parent():
    parent = ActionRegistry()
    parent.register("p.greet", greet)
    child = parent.child({"c.any": takes_anything, "p.greet": positional_only})
    assert child.resolve("c.any").func is takes_anything
    assert child.resolve("p.greet").func is positional_only  # the child's wins
    assert parent.resolve("p.greet").func is greet  # the parent is untouched
    assert [s.name for s in child] == ["c.any", "p.greet"]
    with pytest.raises(ActionError):
        parent.resolve("c.any")


def test_builtins_are_registered():
    names = {s.name for s in DEFAULT_REGISTRY}
    assert {"core.noop", "core.echo", "core.fail", "core.sleep", "core.local", "core.http", "core.inquiry"} <= names


# -- unknown actions and references ----------------------------------------------------------
def test_unknown_action_is_an_action_error_with_a_suggestion():
    with pytest.raises(ActionError, match=r"unknown action 'core.ecoh' \(did you mean 'core.echo'\?\)"):
        DEFAULT_REGISTRY.resolve("core.ecoh")
    with pytest.raises(ActionError, match="unknown action 'nothing.here'"):
        DEFAULT_REGISTRY.resolve("nothing.here")
    with pytest.raises(ActionError, match="non-empty string"):
        DEFAULT_REGISTRY.resolve("")


def test_module_function_reference_is_imported_and_cached():
    reg = ActionRegistry()
    spec = reg.resolve("test_actions_registry:greet")
    assert spec.func is greet
    assert spec.source == "reference"
    assert reg.resolve("test_actions_registry:greet") is spec
    assert reg.resolve("json:dumps").func is json.dumps
    assert import_reference("os.path:join") is __import__("os").path.join


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("no_such_module_xyz:f", "cannot import action 'no_such_module_xyz:f'"),
        ("json:no_such_function", "module 'json' has no attribute 'no_such_function'"),
        ("json:__doc__", "is not callable"),
        (":f", "must look like 'module:function'"),
        ("json:", "must look like 'module:function'"),
    ],
)
def test_bad_references_are_action_errors(ref: str, message: str):
    with pytest.raises(ActionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ActionRegistry().resolve(ref)


def test_reference_to_a_module_that_raises_on_import(tmp_path, monkeypatch):
    (tmp_path / "broken_actions_mod.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ActionError, match="raised RuntimeError: boom at import"):
        ActionRegistry().resolve("broken_actions_mod:f")


# -- entry points ----------------------------------------------------------------------------
@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """An installed distribution 'fx-plugin' (a dist-info on sys.path) with flowctx.actions."""
    (tmp_path / "fx_plugin_actions.py").write_text(
        textwrap.dedent(
            '''
            def hello(who: str = "world") -> str:
                """Say hello from a plug-in."""
                return f"hello {who}"

            def shadowed() -> str:
                return "from the plug-in"
            '''
        )
    )
    info = tmp_path / "fx_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fx-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[flowctx.actions]\n"
        "fxplugin.hello = fx_plugin_actions:hello\n"
        "fxplugin.shadowed = fx_plugin_actions:shadowed\n"
        "fxplugin.broken = fx_plugin_actions:does_not_exist\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_entry_point_actions_are_found(plugin_dist):
    reg = ActionRegistry()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = reg.resolve("fxplugin.hello")
    assert spec.func(who="flowctx") == "hello flowctx"
    assert spec.source == "entry point (fx-plugin)"
    assert spec.summary == "Say hello from a plug-in."
    # the broken entry point is a warning naming it, not an error for the others
    assert any("fxplugin.broken" in str(w.message) for w in caught)
    with pytest.raises(ActionError, match="unknown action 'fxplugin.broken'"):
        reg.resolve("fxplugin.broken")


def test_code_registration_wins_over_an_entry_point(plugin_dist):
    reg = ActionRegistry()
    reg.register("fxplugin.shadowed", lambda: "from code")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.load_entry_points()
    assert reg.resolve("fxplugin.shadowed").func() == "from code"
    assert reg.resolve("fxplugin.hello").func() == "hello world"


def test_entry_points_of_a_child_registry_land_on_the_root(plugin_dist):
    root = ActionRegistry()
    child = root.child({"c.x": greet})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert child.resolve("fxplugin.hello") is root.get("fxplugin.hello")


# -- input checks ----------------------------------------------------------------------------
def test_check_inputs_accepts_a_good_call():
    spec = ActionRegistry().register("t.greet", greet)
    assert spec.check_inputs({"name": "x"}) == []
    assert spec.check_inputs({"name": "x", "greeting": "hi", "punctuation": "?"}) == []


def test_check_inputs_names_task_action_and_parameter():
    spec = ActionRegistry().register("t.greet", greet)
    problems = spec.check_inputs({"greting": "hi"}, task="say_hi")
    assert problems == [
        "task 'say_hi': missing required input 'name' of action 't.greet'",
        "task 'say_hi': unexpected input 'greting' for action 't.greet' (its parameters: name, greeting, punctuation)",
    ]
    # without a task the message still names action and parameter
    assert spec.check_inputs({}) == ["missing required input 'name' of action 't.greet'"]


def test_check_inputs_with_var_keyword_accepts_extra_names():
    spec = ActionRegistry().register("t.any", takes_anything)
    assert spec.check_inputs({"required": 1, "whatever": 2}) == []
    assert spec.check_inputs({"whatever": 2}, task="t") == ["task 't': missing required input 'required' of action 't.any'"]


def test_check_inputs_reserves_action_context():
    spec = ActionRegistry().register("t.ctx", with_context)
    assert spec.wants_context()
    assert [p.name for p in spec.parameters()] == ["x"]
    assert spec.check_inputs({"x": 1}) == []
    assert spec.check_inputs({"x": 1, "action_context": 2}, task="t") == [
        "task 't': input 'action_context' of action 't.ctx' is reserved for the engine"
    ]
    assert not ActionRegistry().register("t.greet", greet).wants_context()


def test_check_inputs_positional_only_parameters():
    spec = ActionRegistry().register("t.pos", positional_only)
    problems = spec.check_inputs({"a": 1, "b": 2}, task="t")
    assert problems[0] == (
        "task 't': action 't.pos' has a positional-only parameter 'a' that a workflow cannot pass "
        "(inputs are passed by name)"
    )
    assert "unexpected input 'a'" in problems[1]


def test_check_inputs_rejects_a_non_mapping():
    spec = ActionRegistry().register("t.greet", greet)
    assert spec.check_inputs(["x"], task="t") == [  # type: ignore[arg-type]
        "task 't': the input of action 't.greet' must be a mapping of parameter names to values, got list"
    ]


def test_check_inputs_of_builtins(backend):
    local = DEFAULT_REGISTRY.resolve("core.local")
    frozen = backend.freeze({"cmd": "true", "cwd": "/"})
    assert local.check_inputs(frozen) == []
    assert local.check_inputs(backend.freeze({"command": "true"}), task="sh") == [
        "task 'sh': missing required input 'cmd' of action 'core.local'",
        "task 'sh': unexpected input 'command' for action 'core.local' (its parameters: cmd, cwd, env, timeout)",
    ]
    assert DEFAULT_REGISTRY.resolve("core.noop").check_inputs({"anything": 1}) == []


def test_signature_less_callables_are_not_checked():
    import inspect

    with pytest.raises(ValueError):
        inspect.signature(dict)  # a builtin without a signature
    spec = ActionRegistry().register("t.dict", dict)
    assert spec.signature is None
    assert spec.check_inputs({"anything": 1}) == []
    assert spec.parameters() == []
    assert not spec.wants_context()


# -- action modules (--actions) --------------------------------------------------------------
def test_import_action_module_from_a_file(tmp_path, cleanup_default, monkeypatch):
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    path = tmp_path / "my_flow_actions.py"
    path.write_text(
        textwrap.dedent(
            '''
            import flowctx

            @flowctx.action("mine.shout")
            def shout(text: str) -> str:
                """Upper-case the text."""
                return text.upper()
            '''
        )
    )
    import_action_module(str(path))
    assert DEFAULT_REGISTRY.resolve("mine.shout").func(text="a") == "A"
    with pytest.raises(ActionError, match="no such file"):
        import_action_module(str(tmp_path / "missing.py"))
    with pytest.raises(ActionError, match="cannot import action module 'no_such_mod_qq'"):
        import_action_module("no_such_mod_qq")


# -- flowctx actions -------------------------------------------------------------------------
def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flowctx")
    sub = parser.add_subparsers()
    actions_cli.register(sub)
    args = parser.parse_args(["actions", *argv])
    return args.func(args)


def test_actions_command_lists_parameters_and_first_doc_line(capsys):
    assert _run_cli([]) == 0
    out = capsys.readouterr().out
    assert "core.local(cmd, cwd=None, env=None, timeout=None)" in out
    assert "    Run a shell command; result {stdout, stderr, return_code, succeeded, failed}." in out
    assert "core.echo(message)" in out
    assert "core.noop(**kwargs)" in out
    assert "action_context" not in out


def test_actions_command_with_module_pattern_and_json(tmp_path, capsys, cleanup_default, monkeypatch):
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    (tmp_path / "listing_actions.py").write_text(
        textwrap.dedent(
            '''
            import flowctx

            @flowctx.action("listing.greet")
            def greet(name, greeting="hello", **extra):
                """Greet someone.

                Not shown.
                """
            '''
        )
    )
    assert _run_cli(["--json", "--actions", str(tmp_path / "listing_actions.py"), "listing.*"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == [
        {
            "name": "listing.greet",
            "summary": "Greet someone.",
            "source": "code",
            "parameters": [
                {"name": "name", "required": True},
                {"name": "greeting", "required": False, "default": "hello"},
                {"name": "extra", "required": False, "any_other": True},
            ],
        }
    ]
    assert _run_cli(["nothing.matches.*"]) == 1
    assert "no action matches" in capsys.readouterr().err


def test_actions_command_is_registered_in_the_cli():
    from flowctx import cli

    assert "actions" in cli.COMMANDS
