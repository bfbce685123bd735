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
