"""``flowctx run``: exit codes, parameters, output modes, executors, answers, Ctrl-C."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flowctx.actions import DEFAULT_REGISTRY
from flowctx.cli import main
from flowctx.cli import run as run_cli
from flowctx.errors import FlowctxError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def _restore_registry():
    """Actions registered by --actions modules, and those modules, do not leak into other tests."""
    before = set(DEFAULT_REGISTRY._actions)
    modules = set(sys.modules)
    path = list(sys.path)
    yield
    for name in set(DEFAULT_REGISTRY._actions) - before:
        del DEFAULT_REGISTRY._actions[name]
    added = {os.path.abspath(p) for p in sys.path if p not in path}
    for name in set(sys.modules) - modules:  # only the modules imported from a directory --actions added
        file = getattr(sys.modules[name], "__file__", None) or ""
        if os.path.dirname(os.path.abspath(file)) in added:
            del sys.modules[name]
    sys.path[:] = path


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def cli(*args: str) -> int:
    return main(["run", *args])


LIST_WF = """\
ref: t.params
parameters:
  n: {type: integer, required: true}
  ratio: {type: number, default: 0.5}
  flag: {type: boolean, default: false}
  tags: {type: array, default: []}
  opts: {type: object, default: {}}
  label: {type: string, default: x}
tasks:
  - name: show
    action: core.noop
output_map:
  n: "{{ parameters.n }}"
  ratio: "{{ parameters.ratio }}"
  flag: "{{ parameters.flag }}"
  tags: "{{ parameters.tags }}"
  opts: "{{ parameters.opts }}"
  label: "{{ parameters.label }}"
"""

FAILING = """\
version: 1.0
tasks:
  first:
    action: core.echo message=ok
    next: [{do: boom}]
  boom:
    action: core.fail message="disk is full"
"""


# ====================================================================== success / failure
def test_success_plain_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(str(EXAMPLES / "hello-orquesta.yaml"), "-p", "name=Ada") == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == "output: {"
    body = json.loads(out[len("output: "): out.rindex("}") + 1])
    assert body == {"greeting": "Hello, Ada!", "shouted": "HELLO, ADA!"}
    assert lines[-1].startswith("succeeded in ")
    assert "2 task(s), 2 action call(s)" in lines[-1]
    assert "\x1b[" not in out  # no terminal escapes when not a terminal


def test_failure_exits_1_with_one_line_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(write(tmp_path, "fail.yaml", FAILING)) == 1
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == ["flowctx: workflow failed: task 'boom' failed: disk is full"]
    assert out.splitlines()[-1].startswith("failed in ")
    assert "task boom failed: disk is full" in out


def test_failure_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(write(tmp_path, "fail.yaml", FAILING), "--json") == 1
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["status"] == "failed"
    assert doc["reason"] == "task 'boom' failed: disk is full"
    assert doc["errors"] and doc["errors"][0]["task_id"] == "boom"
    assert [(t["task"], t["status"]) for t in doc["tasks"]] == [("first", "succeeded"), ("boom", "failed")]
    assert "flowctx: workflow failed: task 'boom'" in err


# ====================================================================== parameters
def test_parameters_typed_by_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, "p.yaml", LIST_WF)
    rc = cli(wf, "-p", "n=7", "-p", "ratio=2.5", "-p", "flag=yes", "-p", "tags=a,b",
             "-p", "opts={k: [1, 2]}", "-p", "label=42", "--json")
    assert rc == 0
    out = json.loads(capsys.readouterr().out)["output"]
    assert out == {"n": 7, "ratio": 2.5, "flag": True, "tags": ["a", "b"], "opts": {"k": [1, 2]}, "label": "42"}


def test_untyped_parameters_are_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, "o.yaml", """\
        version: 1.0
        input: [a, b, c, d, e, f]
        output:
          - got: "{{ [ctx().a, ctx().b, ctx().c, ctx().d, ctx().e, ctx().f] }}"
        tasks:
          t: {action: core.noop}
        """)
    rc = cli(wf, "-p", "a=42", "-p", "b=[x, 1]", "-p", "c=no", "-p", "d=2024-01-02",
             "-p", "e=hello world", "-p", 'f="42"', "--json")
    assert rc == 0
    got = json.loads(capsys.readouterr().out)["output"]["got"]
    assert got == [42, ["x", 1], "no", "2024-01-02", "hello world", "42"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-p", "n=abc"], "parameter 'n': expected an integer, got 'abc'"),
        (["-p", "n=1", "-p", "ratio=fast"], "parameter 'ratio': expected a number"),
        (["-p", "n=1", "-p", "flag=maybe"], "parameter 'flag': expected a boolean"),
        (["-p", "n=1", "-p", "opts=[1]"], "parameter 'opts': expected an object"),
        ([], "missing required parameter 'n'"),
        (["-p", "n=1", "-p", "nn=2"], "unknown parameter 'nn'"),
        (["-p", "n"], "-p 'n': expected NAME=VALUE"),
    ],
)
def test_bad_parameters_exit_2_naming_the_parameter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    assert cli(write(tmp_path, "p.yaml", LIST_WF), *args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("flowctx: error: ")
    assert needle in err


def test_schema_violation_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(str(EXAMPLES / "hello-list.yaml"), "-p", "times=0", "-p", "nope=1") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "parameter 'times': 0 is less than the minimum of 1" in err
    assert "unknown parameter 'nope'" in err


def test_params_file_yaml_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, "p.yaml", LIST_WF)
    yml = write(tmp_path, "params.yaml", "n: 3\ntags: [x, y]\nlabel: from-file\n")
    assert cli(wf, "--params-file", yml, "-p", "label=from-cli", "--json") == 0
    out = json.loads(capsys.readouterr().out)["output"]
    assert (out["n"], out["tags"], out["label"]) == (3, ["x", "y"], "from-cli")
    js = tmp_path / "params.json"
    js.write_text(json.dumps({"n": 9, "opts": {"deep": {"x": 1}}}))
    assert cli(wf, "--params-file", str(js), "--json") == 0
    out = json.loads(capsys.readouterr().out)["output"]
    assert (out["n"], out["opts"]) == (9, {"deep": {"x": 1}})


def test_params_file_problems_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, "p.yaml", LIST_WF)
    assert cli(wf, "--params-file", str(tmp_path / "missing.yaml")) == 2
    assert "--params-file" in capsys.readouterr().err
    assert cli(wf, "--params-file", write(tmp_path, "list.yaml", "- 1\n- 2\n")) == 2
    assert "expected a mapping" in capsys.readouterr().err
    assert cli(wf, "--params-file", write(tmp_path, "bad.yaml", "n: [1\n")) == 2
    assert "not valid YAML or JSON" in capsys.readouterr().err
    assert cli(wf, "--params-file", write(tmp_path, "str.yaml", "n: three\n")) == 2
    assert "parameter 'n'" in capsys.readouterr().err


def test_coerce_parameter_unions_and_fallbacks() -> None:
    assert run_cli.coerce_parameter("x", "5", {"type": ["integer", "string"]}) == 5
    assert run_cli.coerce_parameter("x", "five", {"type": ["integer", "string"]}) == "five"
    assert run_cli.coerce_parameter("x", "null", {"type": ["null", "integer"]}) is None
    assert run_cli.coerce_parameter("x", "1e3", {"type": "number"}) == 1000.0
    assert run_cli.coerce_parameter("x", "[]", {"type": "array"}) == []
    assert run_cli.coerce_parameter("x", "anything", {"type": "custom"}) == "anything"
    with pytest.raises(FlowctxError, match="expected an integer or null"):
        run_cli.coerce_parameter("x", "1.5", {"type": ["integer", "null"]})
    with pytest.raises(FlowctxError, match="expected a number"):
        run_cli.coerce_parameter("x", "nan", {"type": "number"})
    assert run_cli.parse_yaml_value("off") == "off"
    assert run_cli.parse_yaml_value("true") is True
    assert run_cli.parse_yaml_value("{a: 1}") == {"a": 1}
    assert run_cli.parse_yaml_value("[unclosed") == "[unclosed"
    assert run_cli.parse_yaml_value("") == ""


# ====================================================================== output modes
def test_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(str(EXAMPLES / "hello-list.yaml"), "-p", "times=3", "--json") == 0
    out, err = capsys.readouterr()
    assert err == ""
    doc = json.loads(out)
    assert {"status", "backend", "reason", "workflow", "execution_id", "elapsed", "output", "errors",
            "tasks", "metrics"} <= set(doc)
    assert doc["status"] == "succeeded" and doc["reason"] is None and doc["errors"] == []
    assert doc["workflow"] == "examples.hello_list"
    assert doc["output"]["lines"] == ["1: Hello, world!", "2: Hello, world!", "3: Hello, world!"]
    assert [t["task"] for t in doc["tasks"]] == ["greet", "repeat"]
    repeat = doc["tasks"][1]
    assert set(repeat) == {"task", "route", "status", "attempts", "started", "finished", "duration", "items", "error"}
    assert repeat["items"] == 3 and repeat["status"] == "succeeded" and repeat["duration"] >= 0
    assert doc["metrics"]["actions"] == 4
    assert doc["elapsed"] > 0


def test_json_with_results(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(str(EXAMPLES / "hello-orquesta.yaml"), "--json", "--results") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tasks"][0]["result"] == {"stdout": "Hello, world!", "message": "Hello, world!"}


def test_non_tty_subprocess_is_plain() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "flowctx", "run", str(EXAMPLES / "hello-list.yaml"), "-p", "name=Bo"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "\x1b" not in proc.stdout
    assert '"greeting": "Hello, Bo!"' in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith("succeeded in ")


def test_terminal_mode_shows_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(run_cli, "_stdout_is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "120")
    assert cli(str(EXAMPLES / "hello-list.yaml"), "-p", "times=4") == 0
    out = capsys.readouterr().out
    for word in ("task", "route", "status", "attempts", "duration", "items", "greet", "repeat", "succeeded"):
        assert word in out
    assert "✔ succeeded in" in out
    assert "Hello, world!" in out


def test_live_display_tracks_with_items() -> None:
    from io import StringIO

    from rich.console import Console

    from flowctx.engine.runner import Engine

    console = Console(file=StringIO(), force_terminal=True, width=100)
    display = run_cli.LiveDisplay(console, "wf")
    with display:
        res = Engine(on_event=display.hook).run(str(EXAMPLES / "hello-list.yaml"), {"times": 5})
    assert res.succeeded
    text = console.file.getvalue()
    assert "repeat" in text and "5/5" in text
    assert "2 task(s) finished" in text


# ====================================================================== actions, executors, answers
ACTIONS_PY = """\
import os
import flowctx

@flowctx.action("cli_test.square")
def square(x: int) -> dict:
    return {"value": x * x, "pid": os.getpid()}
"""

SQUARES = """\
version: 1.0
input: [{xs: [1, 2, 3]}]
output:
  - values: "{{ task('sq').results | map(attribute='value') | list }}"
  - pids: "{{ task('sq').results | map(attribute='pid') | list | unique | list }}"
tasks:
  sq:
    with: "{{ ctx().xs }}"
    action: cli_test.square x="{{ item() }}"
"""


def test_actions_from_a_py_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mod = write(tmp_path, "cli_test_actions_a.py", ACTIONS_PY)
    wf = write(tmp_path, "sq.yaml", SQUARES)
    assert cli(wf, "--actions", mod, "--json") == 0
    out = json.loads(capsys.readouterr().out)["output"]
    assert out["values"] == [1, 4, 9]
    assert out["pids"] == [os.getpid()]


def test_unknown_action_without_actions_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(write(tmp_path, "sq.yaml", SQUARES)) == 2
    err = capsys.readouterr().err
    assert "cli_test.square" in err and err.startswith("flowctx: error:")


def test_bad_actions_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(str(EXAMPLES / "hello-orquesta.yaml"), "--actions", str(tmp_path / "nope.py")) == 2
    assert "no such file" in capsys.readouterr().err


def test_process_executor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mod = write(tmp_path, "cli_test_actions_b.py", ACTIONS_PY)
    wf = write(tmp_path, "sq.yaml", SQUARES)
    assert cli(wf, "--actions", mod, "--executor", "process", "--workers", "1", "--json") == 0
    out = json.loads(capsys.readouterr().out)["output"]
    assert out["values"] == [1, 4, 9]
    assert len(out["pids"]) == 1 and out["pids"][0] != os.getpid()  # ran in a worker process


def test_inline_executor(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(str(EXAMPLES / "hello-list.yaml"), "--executor", "inline", "--json") == 0
    assert json.loads(capsys.readouterr().out)["status"] == "succeeded"


def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli(str(EXAMPLES / "hello-list.yaml"), "--executor", "gpu")
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        cli(str(EXAMPLES / "hello-list.yaml"), "--workers", "0")
    assert exc.value.code == 2
    capsys.readouterr()
    assert cli("no-such-workflow.yaml") == 2
    assert "no-such-workflow.yaml: no such file" in capsys.readouterr().err


INQUIRY = """\
version: 1.0
tasks:
  approve:
    action: core.inquiry
    input:
      prompt: deploy?
      schema:
        type: object
        properties: {approved: {type: boolean}, by: {type: string}}
        required: [approved]
    next:
      - when: "{{ succeeded() and result().approved }}"
        do: deploy
  deploy:
    action: core.echo message="deployed by {{ task('approve').result.by }}"
output:
  - answer: "{{ task('approve').result }}"
"""


def test_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, "inq.yaml", INQUIRY)
    assert cli(wf, "--answer", "approve.approved=true", "--answer", "approve.by=ada", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["output"]["answer"] == {"approved": True, "by": "ada"}
    assert [t["task"] for t in doc["tasks"]] == ["approve", "deploy"]

    answers = write(tmp_path, "answers.yaml", "approve: {approved: false}\n")
    assert cli(wf, "--answers-file", answers, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert [t["task"] for t in doc["tasks"]] == ["approve"]

    assert cli(wf, "--answer", "approve={approved: maybe}") == 1
    assert "does not match the schema" in capsys.readouterr().err

    assert cli(wf, "--answer", "other=1") == 2  # not a task of the workflow: refused before the run
    assert "--answer other=...: the workflow 'inq' has no task 'other'" in capsys.readouterr().err
    assert cli(wf, "--answer", "deploy=1") == 1  # a task, but not the one asking
    assert "no answer for the inquiry of task 'approve'" in capsys.readouterr().err

    assert cli(wf) == 1
    assert "core.inquiry needs a responder" in capsys.readouterr().err


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in ("--params-file", "--executor", "--actions", "--answer", "--json", "examples:",
                 "flowctx run examples/hello-orquesta.yaml -p name=Ada", "exit status"):
        assert text in out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "run" in capsys.readouterr().out


# ====================================================================== clean endings
needs_pgrep = pytest.mark.skipif(shutil.which("pgrep") is None, reason="needs pgrep (procps)")


def _pgrep(pattern: str) -> list[str]:
    proc = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return proc.stdout.split()


@needs_pgrep
def test_timed_out_last_task_leaves_no_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = f"sleep 41.{os.getpid()}"
    wf = write(tmp_path, "slow.yaml", f"""\
        tasks:
          - name: slow
            action: core.local
            input: {{cmd: "{marker}"}}
            timeout: 0.3
        """)
    proc = subprocess.run([sys.executable, "-m", "flowctx", "run", wf], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "flowctx: workflow failed: task 'slow' timeout" in proc.stderr
    time.sleep(0.2)
    assert _pgrep(marker) == []


@needs_pgrep
def test_ctrl_c_cancels_cleanly(tmp_path: Path) -> None:
    marker = f"sleep 43.{os.getpid()}"
    wf = write(tmp_path, "sleepy.yaml", f"""\
        version: 1.0
        tasks:
          nap:
            with: "{{{{ range(3) }}}}"
            action: core.local cmd="{marker}"
        """)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowctx", "run", wf],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while len(_pgrep(marker)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _pgrep(marker), "the commands never started"
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - started < 5
    assert proc.returncode == 130
    assert "canceling the workflow" in err
    assert "flowctx: workflow canceled" in err
    assert out.splitlines()[-1].startswith("canceled in ")
    time.sleep(0.2)
    assert _pgrep(marker) == []


def test_summary_helpers() -> None:
    assert run_cli.format_seconds(0.0123) == "12.3 ms"
    assert run_cli.format_seconds(0.43) == "430 ms"
    assert run_cli.format_seconds(2.5) == "2.50 s"
    assert run_cli.format_seconds(None) == "-"
    assert run_cli.one_line("a\n  b\tc") == "a b c"



def test_comma_list_parameter_is_typed_by_its_items_schema() -> None:
    from flowctx.cli.run import coerce_parameter

    assert coerce_parameter("xs", "1,2", {"type": "array", "items": {"type": "string"}}) == ["1", "2"]
    assert coerce_parameter("xs", "1,2", {"type": "array", "items": {"type": "integer"}}) == [1, 2]
    assert coerce_parameter("xs", "1,2", {"type": "array"}) == [1, 2]
