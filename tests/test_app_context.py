"""The application (parent) context and task ``input`` written as one expression, through the
real Engine, durable state and the ``flowctx run`` command, on both store backends."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from types import ModuleType
from typing import Any

import pytest

from flowctx import Engine, WorkflowError
from flowctx.spec import load_workflow, validate


def engine(backend: ModuleType, actions: dict[str, Any] | None = None, **kw: Any) -> Engine:
    kw.setdefault("executor", "thread")
    return Engine(actions=actions, store=backend, **kw)


def write(tmp_path: Any, name: str, text: str) -> str:
    path = os.path.join(str(tmp_path), name)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(textwrap.dedent(text).lstrip())
    return path


# ---------------------------------------------------------------- the application context
READS = """
version: 1.0
input:
  - a: <% ctx().parent.ex_id %>
  - j: "{{ ctx('parent').ex_id ~ '-j' }}"
  - shadowed: from-input
vars:
  - b: <% ctx().st2.user %>
  - bare: "{{ parent.ex_id }}"
output:
  - a: <% ctx().a %>
  - j: <% ctx().j %>
  - b: <% ctx().b %>
  - bare: <% ctx().bare %>
  - tenant: "{{ ctx().tenant }}"
  - shadowed: <% ctx().shadowed %>
  - task_saw: <% ctx().task_saw %>
tasks:
  t1:
    action: core.noop
    next:
      - publish:
          - task_saw: "{{ ctx().parent.ex_id }}"
"""

CONTEXT = {"parent": {"ex_id": "12345"}, "st2": {"user": "ada"}, "tenant": "acme", "shadowed": "from-context"}


def test_context_is_read_by_inputs_vars_tasks_and_output(backend: ModuleType) -> None:
    res = engine(backend).run(READS, context=CONTEXT)
    assert res.succeeded, res.reason
    assert res.output == {
        "a": "12345", "j": "12345-j", "b": "ada", "bare": "12345", "tenant": "acme",
        "shadowed": "from-input",  # an input (and a var) of the same name wins, as in Orquesta
        "task_saw": "12345",
    }


def test_context_values_are_data_never_rendered(backend: ModuleType) -> None:
    wf = """
    version: 1.0
    output:
      - v: <% ctx().payload %>
      - w: "{{ ctx().payload2 }}"
    tasks:
      t1:
        action: core.noop
    """
    res = engine(backend).run(textwrap.dedent(wf), context={"payload": "{{ 6 * 7 }}", "payload2": "<% 1 + 1 %>"})
    assert res.succeeded, res.reason
    assert res.output == {"v": "{{ 6 * 7 }}", "w": "<% 1 + 1 %>"}


def test_context_is_frozen_and_copied_once(backend: ModuleType) -> None:
    seen: list[Any] = []

    def grab(x: Any) -> Any:
        seen.append(x)
        return None

    wf = """
    version: 1.0
    tasks:
      t1:
        action: t.grab
        input:
          x: <% ctx().parent %>
    """
    ctx = {"parent": {"ids": [1, 2]}}
    eng = engine(backend, {"t.grab": grab})
    ex = eng.start(textwrap.dedent(wf), context=ctx, background=True)
    ctx["parent"]["ids"].append(3)  # the caller's later change is not seen by the run
    res = ex.wait(30)
    assert res.succeeded, res.reason
    assert seen == [{"ids": [1, 2]}]
    frozen = ex.conductor.context["parent"]
    assert isinstance(frozen, backend.FrozenDict)
    with pytest.raises(TypeError):
        frozen["ids"] = []  # type: ignore[index]


def test_bad_context_references_fail_with_one_error_each(backend: ModuleType) -> None:
    wf = """
    version: 1.0
    input:
      - a: <% ctx().x %>
    vars:
      - b: <% ctx().y %>
    tasks:
      t1:
        action: core.noop
    """
    # the validator knows no such names: refused before anything runs
    with pytest.raises(WorkflowError, match="variable 'x' in 'input.a' is referenced before assignment"):
        engine(backend).run(textwrap.dedent(wf))
    # unvalidated (as Orquesta's conductor runs it): each bad expression is one error
    res = engine(backend).run(load_workflow(textwrap.dedent(wf), validate=False))
    assert res.status == "failed"
    messages = [e["message"] for e in res.errors]
    assert any("default of parameter 'a'" in m and "ctx().x" in m for m in messages), messages
    assert any("cannot render variable 'b'" in m and "ctx().y" in m for m in messages), messages
    assert res.tasks == []
    # with the context both render and the run succeeds
    assert engine(backend).run(textwrap.dedent(wf), context={"x": 1, "y": 2}).succeeded


@pytest.mark.parametrize(
    "context, message",
    [
        (["not", "a", "mapping"], "the context must be a mapping"),
        ({"s": {1, 2}}, "invalid context"),
        ({1: "x"}, "names must be strings"),
    ],
)
def test_invalid_context_is_refused_before_the_run(backend: ModuleType, context: Any, message: str) -> None:
    with pytest.raises(WorkflowError, match=message):
        engine(backend).run(READS, context=context)


def test_durable_run_keeps_its_context_for_rerun(backend: ModuleType, tmp_path: Any) -> None:
    broken = {"on": True}

    def work(v: str) -> str:
        if broken["on"]:
            raise RuntimeError("boom")
        return v

    wf = """
    version: 1.0
    vars:
      - v: <% ctx().parent.ex_id %>
    output:
      - got: <% ctx().got %>
    tasks:
      t1:
        action: t.work
        input:
          v: <% ctx().v %>
        next:
          - when: <% succeeded() %>
            publish:
              - got: <% result() %>
    """
    db = os.path.join(str(tmp_path), "state.db")
    first = engine(backend, {"t.work": work}, state=db).run(textwrap.dedent(wf), context={"parent": {"ex_id": "p-7"}})
    assert first.status == "failed"
    broken["on"] = False
    # a new engine (as a new process would): the conductor is rebuilt from the state file
    again = engine(backend, {"t.work": work}, state=db).resume(first.execution_id, rerun=["t1"])
    assert again.succeeded, again.reason
    assert again.output == {"got": "p-7"}


def test_subworkflow_sees_its_parent(backend: ModuleType, tmp_path: Any) -> None:
    write(tmp_path, "child.yaml", """
        version: 1.0
        output:
          - parent: <% ctx().parent %>
          - tenant: <% ctx().tenant %>
        tasks:
          c1:
            action: core.noop
    """)
    main = write(tmp_path, "main.yaml", """
        version: 1.0
        output:
          - child: <% ctx().child %>
        tasks:
          call:
            action: child.yaml
            next:
              - publish:
                  - child: <% result() %>
    """)
    res = engine(backend).run(main, context={"tenant": "acme", "parent": {"ex_id": "outer"}})
    assert res.succeeded, res.reason
    child = res.output["child"]
    assert child["tenant"] == "acme"  # the caller's context is inherited
    assert child["parent"] == {
        "execution_id": res.execution_id, "workflow": "main", "task": "call", "route": 0, "item": None,
        "parent": {"ex_id": "outer"},  # the caller's own parent, one level up
    }


# ---------------------------------------------------------------- the CLI
def _cli(backend: ModuleType, *args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("FLOWCTX_PURE_PYTHON", None)
    if backend.__name__.endswith("_store_py"):
        env["FLOWCTX_PURE_PYTHON"] = "1"
    return subprocess.run([sys.executable, "-m", "flowctx", *args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=cwd)


def test_cli_context_inline_json_and_file(backend: ModuleType, tmp_path: Any) -> None:
    wf = write(tmp_path, "wf.yaml", READS)
    proc = _cli(backend, "run", wf, "--json", "--context", json.dumps(CONTEXT))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"]["a"] == "12345"
    ctx_file = write(tmp_path, "ctx.yaml", """
        parent: {ex_id: from-file}
        st2: {user: bob}
        tenant: acme
    """)
    proc = _cli(backend, "run", wf, "--json", "--context", ctx_file)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)["output"]
    assert out["a"] == "from-file" and out["b"] == "bob"


@pytest.mark.parametrize(
    "value, message",
    [
        ("{not json", "flowctx: error: --context: not a valid JSON object ("),
        ("[1, 2]", "flowctx: error: --context '[1, 2]': no such file (give a file or a JSON object)"),
        ("missing.yaml", "flowctx: error: --context 'missing.yaml': no such file (give a file or a JSON object)"),
        # a context without the names the workflow reads: the validator says so, nothing runs
        ('{"s": 1}', "variable 'parent' in 'input.a' is referenced before assignment"),
    ],
)
def test_cli_bad_context_is_a_usage_error(backend: ModuleType, tmp_path: Any, value: str, message: str) -> None:
    wf = write(tmp_path, "wf.yaml", READS)
    proc = _cli(backend, "run", wf, "--context", value, cwd=str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_help_names_the_context_option() -> None:
    proc = subprocess.run([sys.executable, "-m", "flowctx", "run", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "--context FILE|JSON" in proc.stdout


# ---------------------------------------------------------------- input as one expression
EXPR_INPUT = """
version: 1.0
input:
  - args
  - lang: yaql
tasks:
  t1:
    action: t.take
    input: <% ctx().args %>
    next:
      - do: t2
  t2:
    action: t.take
    input: "{{ ctx().args }}"
"""


def test_input_as_one_expression_renders_to_the_mapping(backend: ModuleType) -> None:
    calls: list[dict[str, Any]] = []

    def take(**kw: Any) -> None:
        calls.append(kw)

    res = engine(backend, {"t.take": take}).run(EXPR_INPUT, {"args": {"message": "hi", "n": [1, 2]}})
    assert res.succeeded, res.reason
    assert calls == [{"message": "hi", "n": [1, 2]}] * 2
    assert isinstance(calls[0], dict) and isinstance(calls[0]["n"], list)  # plain copies for the action


def test_input_expression_with_items(backend: ModuleType) -> None:
    calls: list[dict[str, Any]] = []

    def take(**kw: Any) -> None:
        calls.append(kw)

    wf = """
    version: 1.0
    input:
      - xs
    tasks:
      t1:
        with: <% ctx().xs %>
        action: t.take
        input: <% item() %>
    """
    res = engine(backend, {"t.take": take}, max_workers=1).run(
        textwrap.dedent(wf), {"xs": [{"message": "a"}, {"message": "b"}]}
    )
    assert res.succeeded, res.reason
    assert sorted(c["message"] for c in calls) == ["a", "b"]


@pytest.mark.parametrize(
    "value, gave", [("[1, 2]", "a list [1, 2]"), ("'text'", "a string 'text'"), ("5", "a number 5"), ("null", "null")]
)
def test_input_expression_giving_no_mapping_fails_the_task(
    backend: ModuleType, tmp_path: Any, value: str, gave: str
) -> None:
    path = write(tmp_path, "wf.yaml", f"""
        version: 1.0
        input:
          - v: {value}
        tasks:
          t1:
            action: core.echo
            input: <% ctx().v %>
    """)
    res = engine(backend).run(path)
    assert res.status == "failed"
    message = res.errors[0]["message"]
    assert message == (
        f"{path}:7:12: task 't1', field 'input': the input expression gave {gave}, not a mapping of input "
        "names to values in template '<% ctx().v %>'"
    )
    assert res.errors[0]["task_id"] == "t1"


def test_input_expression_in_validation(tmp_path: Any) -> None:
    ok = load_workflow(EXPR_INPUT, validate=False)
    assert ok.tasks["t1"].input == "<% ctx().args %>"
    assert [p for p in validate(ok) if p.severity == "error"] == []
    # a name the expression reads that nothing defines is reported like any other reference
    bad_ref = EXPR_INPUT.replace("ctx().args %>", "ctx().nope %>")
    assert any("nope" in p.message for p in validate(load_workflow(bad_ref, validate=False)))
    # a plain string and inline parameters with an expression are refused at load
    with pytest.raises(WorkflowError, match="'input' must be a mapping, got a string"):
        load_workflow(EXPR_INPUT.replace("<% ctx().args %>", "just text"))
    inline = EXPR_INPUT.replace("action: t.take\n    input: <%", "action: t.take message=x\n    input: <%")
    with pytest.raises(WorkflowError, match="cannot be combined with inline parameters"):
        load_workflow(inline)
    # a mapping input keeps its static checks: an unknown input of a built-in is still found
    mapping = """
    version: 1.0
    tasks:
      t1:
        action: core.echo
        input:
          mesage: hi
    """
    assert any("mesage" in p.message for p in validate(load_workflow(textwrap.dedent(mapping), validate=False)))


def test_cli_validate_accepts_an_input_expression(tmp_path: Any) -> None:
    path = write(tmp_path, "wf.yaml", EXPR_INPUT.replace("t.take", "core.echo"))
    proc = subprocess.run([sys.executable, "-m", "flowctx", "validate", path], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_validate_takes_the_context_names(tmp_path: Any) -> None:
    path = write(tmp_path, "wf.yaml", READS)
    cmd = [sys.executable, "-m", "flowctx", "validate", path]
    bare = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert bare.returncode == 1 and "variable 'parent' in 'input.a' is referenced before assignment" in bare.stdout
    given = subprocess.run(cmd + ["--context", json.dumps(CONTEXT)], capture_output=True, text=True, timeout=60)
    assert given.returncode == 0, given.stdout + given.stderr
    assert given.stdout.strip().endswith(f"{path}: ok")
