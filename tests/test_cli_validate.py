"""`flowctx validate` and `flowctx graph`."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from flowctx.cli import graph as graph_cmd
from flowctx.cli import validate as validate_cmd

GOOD = """\
version: 1.0
tasks:
  task1:
    action: core.noop
    next:
      - when: <% succeeded() %>
        do: task2
      - when: <% failed() %>
        do: fail
  task2:
    action: core.echo message="done"
"""

BAD = """\
version: 1.0
tasks:
  task1:
    actoin: core.noop
    next:
      - do: tsk2
  task2:
    join: 3
"""

LIST_FORM = """\
ref: demo.deploy
parameters:
  env: {type: string, default: dev}
tasks:
  - name: check
    action: core.noop
    decision:
      - when: "{{ parameters.env == 'prod' }}"
        next: approve
      - default: deploy
  - name: approve
    action: core.noop
    on_success: deploy
    on_timeout: noop
  - name: deploy
    type: parallel
    tasks:
      - {name: a, action: core.noop}
      - {name: b, action: core.noop}
"""


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flowctx")
    sub = parser.add_subparsers()
    validate_cmd.register(sub)
    graph_cmd.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, text in (("good", GOOD), ("bad", BAD), ("list", LIST_FORM)):
        p = tmp_path / f"{name}.yaml"
        p.write_text(text)
        out[name] = p
    return out


def test_validate_ok(files, capsys) -> None:
    assert run_cli(["validate", str(files["good"]), str(files["list"])]) == 0
    assert capsys.readouterr().out == f"{files['good']}: ok\n{files['list']}: ok\n"


def test_validate_failing(files, capsys) -> None:
    assert run_cli(["validate", str(files["good"]), str(files["bad"])]) == 1
    bad = files["bad"]
    assert capsys.readouterr().out.splitlines() == [
        f"{files['good']}: ok",
        f"{bad}:4:5: error: unknown key 'actoin' in task (did you mean 'action'?) [task1]",
        f"{bad}:6:13: error: transition to unknown task 'tsk2' (did you mean 'task2'?) [task1]",
        f"{bad}:8:11: error: join: 3 can never be satisfied: only 0 tasks lead to 'task2' [task2]",
    ]


def test_validate_unreadable_and_unparseable(tmp_path, capsys) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("tasks: [\n")
    missing = tmp_path / "missing.yaml"
    assert run_cli(["validate", str(broken), str(missing)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{broken}:2:1: error: invalid YAML: ")
    assert out[1].startswith(f"{missing}:1:1: error: cannot read workflow file: ")


def test_validate_warnings_and_strict(tmp_path, capsys) -> None:
    p = tmp_path / "warn.yaml"
    p.write_text("ref: demo.warn\ntasks:\n  - name: t1\n    action: core.echo\n    input:\n"
                 "      message: '{{ workflow.nope }}'\n")
    assert run_cli(["validate", str(p)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{p}:6:16: warning: variable 'nope' in 'input.message' is never defined")
    assert out[1] == f"{p}: ok"
    assert run_cli(["validate", "--strict", str(p)]) == 1
    assert run_cli(["validate", "-q", str(p)]) == 0
    capsys.readouterr()


def test_validate_help_has_example(capsys) -> None:
    with pytest.raises(SystemExit):
        run_cli(["validate", "--help"])
    out = capsys.readouterr().out
    assert "example:" in out and "flowctx validate" in out


def test_graph_mermaid(files, capsys) -> None:
    assert run_cli(["graph", str(files["good"])]) == 0
    assert capsys.readouterr().out == (
        "flowchart TD\n"
        '  task1["task1<br/>core.noop"]\n'
        '  task2["task2<br/>core.echo"]\n'
        '  task1 -->|"succeeded()"| task2\n'
        '  cmd_task1_fail(["fail"])\n'
        '  task1 -->|"failed()"| cmd_task1_fail\n'
    )


def test_graph_dot(files, capsys) -> None:
    assert run_cli(["graph", "--format", "dot", str(files["good"])]) == 0
    assert capsys.readouterr().out == (
        'digraph "good" {\n'
        "  rankdir=TB;\n"
        "  node [shape=box, style=rounded];\n"
        '  task1 [label="task1\\ncore.noop"];\n'
        '  task2 [label="task2\\ncore.echo"];\n'
        '  task1 -> task2 [label="succeeded()"];\n'
        '  cmd_task1_fail [label="fail", shape=doublecircle];\n'
        '  task1 -> cmd_task1_fail [label="failed()"];\n'
        "}\n"
    )


def test_graph_list_form_decision_and_parallel(files, capsys) -> None:
    assert run_cli(["graph", str(files["list"])]) == 0
    out = capsys.readouterr().out
    assert "  check -->|\"succeeded() and (parameters.env == 'prod')\"| approve\n" in out
    assert '  check -->|"otherwise"| deploy\n' in out
    assert '  approve -->|"timed_out()"| cmd_approve_noop\n' in out
    assert '  subgraph group_deploy["deploy"]\n' in out
    assert '    a["a<br/>core.noop"]\n' in out
    assert run_cli(["graph", "--format", "dot", str(files["list"])]) == 0
    out = capsys.readouterr().out
    assert "  subgraph cluster_1 {\n" in out
    assert '  check -> deploy [label="otherwise"];\n' in out


def test_graph_escapes_and_reserved_ids(tmp_path, capsys) -> None:
    p = tmp_path / "q.yaml"
    p.write_text('version: 1.0\ntasks:\n  end:\n    action: core.noop\n    next:\n'
                 '      - when: <% ctx().x = "a|b" %>\n        do: graph\n  graph:\n    action: core.noop\n'
                 'vars:\n  - x: 1\n')
    assert run_cli(["graph", str(p)]) == 0
    out = capsys.readouterr().out
    assert '  n_end -->|"ctx().x = #quot;a#124;b#quot;"| n_graph\n' in out


def test_graph_refuses_invalid_workflow(files) -> None:
    from flowctx.errors import WorkflowError

    with pytest.raises(WorkflowError):
        run_cli(["graph", str(files["bad"])])


def test_commands_registered() -> None:
    from flowctx.cli import COMMANDS

    assert "validate" in COMMANDS and "graph" in COMMANDS


# ---------------------------------------------------------------- what `run` would refuse, found by validate
def _validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, *args: str,
              name: str = "wf.yaml") -> tuple[int, list[str]]:
    p = tmp_path / name
    p.write_text(text)
    code = run_cli(["validate", *args, str(p)])
    out = [line.replace(str(tmp_path) + "/", "") for line in capsys.readouterr().out.splitlines()]
    return code, out


def test_validate_missing_subworkflow_file(tmp_path, capsys) -> None:
    code, out = _validate(tmp_path, capsys, "version: 1.0\ntasks:\n  t1:\n    action: child.yaml\n")
    assert code == 1
    assert out == ["wf.yaml:4:13: error: sub-workflow file not found: child.yaml [t1]"]


def test_validate_subworkflow_inputs_must_be_declared(tmp_path, capsys) -> None:
    (tmp_path / "child.yaml").write_text(
        "ref: demo.child\nparameters:\n  name: {type: string, required: true}\n  greeting: {default: hi}\n"
        "tasks:\n  - name: c\n    action: core.noop\n")
    code, out = _validate(tmp_path, capsys, "version: 1.0\ntasks:\n  t1:\n    action: child.yaml\n"
                          "    input:\n      nmae: x\n")
    assert code == 1
    assert out == [
        "wf.yaml:4:13: error: missing required input 'name' of sub-workflow child.yaml [t1]",
        "wf.yaml:6:13: error: input 'nmae' is not an input of sub-workflow child.yaml (did you mean 'name'?) "
        "(it declares: greeting, name) [t1]",
    ]
    code, out = _validate(tmp_path, capsys, "version: 1.0\ntasks:\n  t1:\n    action: child.yaml\n"
                          "    input:\n      name: x\n")
    assert (code, out) == (0, ["wf.yaml: ok"])


def test_validate_unknown_core_action_always(tmp_path, capsys) -> None:
    code, out = _validate(tmp_path, capsys, "version: 1.0\ntasks:\n  t1:\n    action: core.echoz message=hi\n")
    assert code == 1
    assert out[0].startswith("wf.yaml:4:13: error: unknown action 'core.echoz': there is no such flowctx built-in "
                             "(did you mean 'core.echo'?)")


def test_validate_builtin_missing_required_input(tmp_path, capsys) -> None:
    code, out = _validate(tmp_path, capsys, "version: 1.0\ntasks:\n  t1:\n    action: core.echo\n")
    assert code == 1
    assert out == ["wf.yaml:4:13: error: missing required input 'message' of action 'core.echo' [t1]"]


def test_validate_other_actions_only_when_the_action_set_is_known(tmp_path, capsys) -> None:
    wf = "version: 1.0\ntasks:\n  t1:\n    action: no.such.action\n  t2:\n    action: vtest.known x=1\n"
    code, out = _validate(tmp_path, capsys, wf)
    assert (code, out) == (0, ["wf.yaml: ok"])  # st2 packs and the like: the action set is unknown
    mod = tmp_path / "vtest_actions.py"
    mod.write_text("import flowctx\n\n@flowctx.action('vtest.known')\ndef known(x):\n    return x\n")
    code, out = _validate(tmp_path, capsys, wf, "--actions", str(mod))
    assert code == 1
    assert len(out) == 1 and out[0].startswith("wf.yaml:4:13: error: ") and "no.such.action" in out[0]
    assert out[0].endswith("[t1]")


def test_validate_unknown_function(tmp_path, capsys) -> None:
    code, out = _validate(tmp_path, capsys, "version: 1.0\ntasks:\n  t1:\n    action: core.echo\n    input:\n"
                          "      message: <% st2kvx('system.x') %>\n")
    assert code == 1
    assert out == ["wf.yaml:6:16: error: unknown function 'st2kvx()' in 'input.message' (did you mean 'st2kv'?) [t1]"]


def test_known_functions_are_the_renderers() -> None:
    from flowctx.render import default_renderer
    from flowctx.spec import load_workflow, validate

    jinja = default_renderer().function_names("jinja")
    assert jinja is not None and {"ctx", "zip", "json", "range"} <= jinja
    calls = " ".join(f"{{{{ {n}() }}}}" for n in sorted(jinja) if n.isidentifier())
    spec = load_workflow(f"version: 1.0\ntasks:\n  t1:\n    action: core.echo\n    input:\n      message: '{calls}'\n",
                         validate=False)
    assert [p for p in validate(spec) if "unknown function" in p.message] == []
    spec = load_workflow("version: 1.0\ntasks:\n  t1:\n    action: core.echo\n    input:\n"
                         "      message: '{{ nosuchfn(1) }} {{ x | default(1) }} {{ [1].pop() }}'\n", validate=False)
    assert [p.message for p in validate(spec) if "unknown function" in p.message] == [
        "unknown function 'nosuchfn()' in 'input.message'"]


def test_validate_orquesta_version(tmp_path, capsys) -> None:
    code, out = _validate(tmp_path, capsys, "version: 2.0\ntasks:\n  t1:\n    action: core.noop\n")
    assert code == 1
    assert out == ["wf.yaml:1:10: error: unsupported Orquesta version '2.0': Orquesta workflows are version 1.0 "
                   "(the only version Orquesta knows)"]


def test_validate_cycle_without_conditional_exit(tmp_path, capsys) -> None:
    wf = ("version: 1.0\ntasks:\n  a:\n    action: core.noop\n    next:\n      - do: b\n"
          "  b:\n    action: core.noop\n    next:\n      - when: <% succeeded() %>\n        do: c\n"
          "  c:\n    action: core.noop\n    next:\n      - do: b\n")
    code, out = _validate(tmp_path, capsys, wf)
    assert code == 0
    assert out == ["wf.yaml:7:3: warning: cycle b -> c -> b has no conditional exit: no transition in it depends on "
                   "data (only on task status), so it runs until a task fails [b]", "wf.yaml: ok"]
    # a loop back on failure (a retry loop) or on data is fine
    code, out = _validate(tmp_path, capsys, wf.replace("<% succeeded() %>", "<% failed() %>"))
    assert out == ["wf.yaml: ok"]


def test_validate_action_given_as_an_expression(tmp_path, capsys) -> None:
    # rendered when the task runs (Orquesta renders it too): the spec keeps the string as written
    from flowctx.spec import load_workflow

    wf = "version: 1.0\ninput:\n  - which\ntasks:\n  t1:\n    action: <% ctx().which %> message=hi\n"
    code, out = _validate(tmp_path, capsys, wf)
    assert (code, out) == (0, ["wf.yaml: ok"])
    spec = load_workflow(tmp_path / "wf.yaml")
    assert spec.tasks["t1"].action == "<% ctx().which %>"
    assert dict(spec.tasks["t1"].input) == {"message": "hi"}


def test_validate_inspection_errors(tmp_path, capsys) -> None:
    wf = ("version: 1.0\nvars:\n  - a: <% ctx().b %>\n  - b: 1\ntasks:\n  t1:\n    with: x in <% ctx('__secret') %>\n"
          "    next:\n      - do: t2\n  t2:\n    action: core.noop\n    with: foo; bar in <% ctx().a %>\n")
    code, out = _validate(tmp_path, capsys, wf)
    assert code == 1
    assert out == [
        "wf.yaml:3:8: error: variable 'b' in 'vars.a' is referenced before assignment (no input, var or publish on "
        "the way to it defines it)",
        "wf.yaml:7:11: error: a with-items task needs an 'action' (what to run for each item) [t1]",
        "wf.yaml:7:11: error: variable '__secret' in 'with.items' is private (names starting with '__' cannot be "
        "referenced) [t1]",
        "wf.yaml:7:11: error: variable '__secret' in 'with.items' is referenced before assignment (no input, var or "
        "publish on the way to it defines it) [t1]",
        "wf.yaml:12:11: error: malformed with-items 'foo; bar in <% ctx().a %>': expected one expression, or "
        "'x in <expression>' / 'x, y in <expression>' [t2]",
    ]


def test_validate_list_form_decision_default_to_unknown_task(tmp_path, capsys) -> None:
    wf = ("ref: demo.decide\ntasks:\n  - name: pick\n    action: core.noop\n    decision:\n"
          "      - when: '{{ true }}'\n        next: go\n      - default: nowhere\n  - name: go\n    action: core.noop\n")
    code, out = _validate(tmp_path, capsys, wf)
    assert code == 1
    assert out == ["wf.yaml:8:18: error: transition to unknown task 'nowhere' [pick]"]


def test_validate_join_behind_nested_forks(tmp_path, capsys) -> None:
    # task4 is reached twice (a split); its branches and task3's meet in the join task5
    wf = ("version: 1.0\ntasks:\n  task1:\n    action: core.noop\n    next:\n      - do: task2, task3\n"
          "  task2:\n    action: core.noop\n    next:\n      - do: task4\n"
          "  task3:\n    action: core.noop\n    next:\n      - do: task4, task5\n"
          "  task4:\n    action: core.noop\n    next:\n      - do: task5\n"
          "  task5:\n    join: all\n    action: core.noop\n")
    code, out = _validate(tmp_path, capsys, wf)
    assert code == 1
    assert out == ["wf.yaml:20:11: error: join task 'task5' is unreachable: nested forks from tasks reached by "
                   "several transitions lead to it, so the level at which it joins is ambiguous [task5]"]
