"""Bad input through the public surfaces: one clear message, a consistent result, no traceback.

Each test is a regression test for a robustness bug found by feeding adversarial workflows,
actions and files to ``flowctx.Engine`` and the ``flowctx`` command.
"""
from __future__ import annotations

import json
import time
from types import ModuleType
from typing import Any

import pytest

from flowctx import Engine, WorkflowError

# A legal loop with no exit: `a` runs core.noop (an inline action) forever.
LOOP = """
version: 1.0
vars:
  - i: 0
tasks:
  init:
    action: core.noop
    next:
      - do: a
  a:
    action: core.noop
    next:
      - publish:
          - i: "{{ ctx().i + 1 }}"
        do: a
"""


def engine(backend: ModuleType, actions: dict[str, Any] | None = None, **kw: Any) -> Engine:
    kw.setdefault("executor", "thread")
    return Engine(actions=actions, store=backend, **kw)


# ---------------------------------------------------------------- control of endless loops
def test_cancel_stops_a_loop_of_inline_actions(backend: ModuleType) -> None:
    # inline actions' outcomes never went through the event queue, so a cancel (Ctrl-C in
    # `flowctx run`) queued behind them was never read and the loop ran until memory ran out
    for executor in ("thread", "inline"):
        ex = engine(backend, executor=executor).start(LOOP)
        time.sleep(0.2)
        ex.cancel()
        res = ex.wait(timeout=10)
        assert res.status == "canceled"
        # the call in flight ends as canceled, or keeps the outcome it reported while the run
        # was canceling (Orquesta's `canceling`); nothing starts after it
        assert res.tasks[-1].status in ("canceled", "succeeded")
        assert all(t.status == "succeeded" for t in res.tasks[:-1])


def test_pause_and_resume_a_loop_of_inline_actions(backend: ModuleType) -> None:
    ex = engine(backend).start(LOOP)
    time.sleep(0.1)
    ex.pause()
    deadline = time.monotonic() + 10
    while ex.status != "paused" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ex.status == "paused"
    n = len(ex.conductor.sequence)
    time.sleep(0.1)
    assert len(ex.conductor.sequence) == n  # nothing new starts while paused
    ex.resume()
    time.sleep(0.1)
    ex.cancel()
    assert ex.wait(timeout=10).status == "canceled"
    assert len(ex.conductor.sequence) > n


# ---------------------------------------------------------------- retry / delay / timeout values
def test_retry_delay_that_fails_to_render_fails_the_task_not_the_engine(backend: ModuleType) -> None:
    # it escaped Engine.run as a TemplateError (the CLI said "flowctx: error:" with exit 2)
    wf = """
version: 1.0
tasks:
  a:
    action: core.fail
    retry:
      count: 2
      delay: "{{ 1/0 }}"
"""
    res = engine(backend).run(wf)
    assert res.status == "failed"
    assert res.task("a").status == "failed"
    # where it is written, then the task (named once) and the field
    assert res.reason.startswith("<string>:8:14: task 'a', field 'retry.delay'"), res.reason
    assert res.reason.count("task 'a'") == 1
    assert "ZeroDivisionError" in res.reason


def test_retry_max_delay_may_be_a_template(backend: ModuleType) -> None:
    # the validator accepts a template; the engine did float("{{ ... }}") -> ValueError traceback
    wf = """
ref: t.r
tasks:
  - name: a
    action: core.fail
    retry:
      count: 2
      delay: 0.001
      max_delay: "{{ 0.002 }}"
      backoff: exponential
"""
    res = engine(backend).run(wf)
    assert res.status == "failed"
    assert res.task("a").attempts == 3


def test_exponential_backoff_after_a_thousand_retries(backend: ModuleType) -> None:
    # base * 2 ** 1024 raised OverflowError out of the engine
    wf = """
ref: t.r
tasks:
  - name: a
    action: core.fail
    retry:
      count: 1100
      delay: 0.000001
      max_delay: 0.000001
      backoff: exponential
"""
    res = engine(backend, executor="inline").run(wf)
    assert res.status == "failed"
    assert res.task("a").attempts == 1101


def test_non_finite_numbers_from_templates_name_task_and_field(backend: ModuleType) -> None:
    # NaN reached the executor ("an action timeout must be ...", no task, the run aborted);
    # inf as a delay raised OverflowError from the engine loop, int(inf) for concurrency too
    for fld, text, n in (
        ("timeout", "timeout: \"{{ 'nan' }}\"", 0),
        ("delay", "delay: \"{{ 'inf' }}\"", 0),
        ("delay", "delay: \"{{ parameters.n }}\"", float("inf")),
        ("concurrency", "concurrency: \"{{ parameters.n }}\"", float("inf")),
        ("batch_size", "batch_size: \"{{ parameters.n }}\"", float("nan")),
        ("retry.delay", "retry: {count: 1, delay: \"{{ 'nan' }}\"}", 0),
    ):
        wf = f"""
ref: t.r
parameters:
  n: {{type: number}}
tasks:
  - name: a
    action: core.fail
    with_items: "{{{{ [1] }}}}"
    {text}
"""
        res = engine(backend).run(wf, {"n": n})
        assert res.status == "failed", fld
        assert f"task 'a', field '{fld}': {fld} must be a finite number" in res.reason, (fld, res.reason)
        assert res.reason.startswith("<string>:"), res.reason


def test_a_delay_longer_than_the_platform_wait_limit_waits_and_can_be_canceled(backend: ModuleType) -> None:
    # the engine's queue wait got timeout=1e10 > threading.TIMEOUT_MAX: OverflowError
    wf = """
ref: t.r
tasks:
  - name: a
    action: core.noop
    delay: 10000000000
"""
    ex = engine(backend).start(wf)
    time.sleep(0.2)
    assert not ex.done
    ex.cancel()
    res = ex.wait(timeout=10)
    assert res.status == "canceled"


# ---------------------------------------------------------------- sub-workflows
def _write(tmp_path: Any, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_missing_subworkflow_file_is_reported_before_anything_runs(backend: ModuleType, tmp_path: Any) -> None:
    # it was found only when the task ran, after every task before it
    wf = _write(tmp_path, "main.yaml", """
version: 1.0
tasks:
  first:
    action: t.count
    next:
      - do: sub
  sub:
    action: nothere.yaml
""")
    calls: list[int] = []
    with pytest.raises(WorkflowError) as ei:
        engine(backend, {"t.count": lambda: calls.append(1)}).run(wf)
    msg = str(ei.value)
    assert "main.yaml:9:13: error: sub-workflow file not found: " in msg  # refused by the validator
    assert msg.endswith("nothere.yaml [sub]")
    assert calls == []


def test_subworkflow_that_calls_itself_stops_with_one_message(backend: ModuleType, tmp_path: Any) -> None:
    # it recursed ~600 levels until "can't start new thread", with a 32 KB nested reason
    # and a task result too deep for `flowctx run --json` (RecursionError traceback)
    wf = _write(tmp_path, "self.yaml", """
version: 1.0
tasks:
  a:
    action: self.yaml
""")
    res = engine(backend).run(wf)
    assert res.status == "failed"
    assert res.reason == (
        f"task 'a' failed: sub-workflows nested more than 50 deep at {wf} "
        "(does a workflow call itself without a condition that stops it?)"
    )
    json.dumps(res.to_dict())


def test_subworkflow_failure_names_its_file_and_inner_task(backend: ModuleType, tmp_path: Any) -> None:
    _write(tmp_path, "child.yaml", """
version: 1.0
tasks:
  inner:
    action: core.echo message="{{ ctx()['nope'] }}"
""")
    wf = _write(tmp_path, "parent.yaml", """
ref: t.parent
tasks:
  - name: outer
    type: workflow
    workflow: child.yaml
""")
    res = engine(backend).run(wf)
    assert res.status == "failed"
    child = str(tmp_path / "child.yaml")
    assert res.reason.startswith(
        f"task 'outer' failed: sub-workflow {child}: {child}:5:13: "
        "task 'inner', field 'input.message'"
    ), res.reason


def test_subworkflows_run_on_the_process_executor(backend: ModuleType, tmp_path: Any) -> None:
    # "action 'Engine._subworkflow.<locals>.run_subworkflow' cannot run on the process executor"
    _write(tmp_path, "child.yaml", """
version: 1.0
input:
  - x
tasks:
  inner:
    action: core.echo message="{{ ctx().x }}"
output:
  - said: "{{ task('inner').result.stdout }}"
""")
    wf = _write(tmp_path, "parent.yaml", """
version: 1.0
tasks:
  outer:
    action: child.yaml
    input:
      x: hi
output:
  - r: "{{ task('outer').result }}"
""")
    res = engine(backend, executor="process", max_workers=1).run(wf)
    assert res.status == "succeeded", res.reason
    assert res.output == {"r": {"said": "hi"}}


# ---------------------------------------------------------------- files that are not workflow files
@pytest.mark.parametrize("name", ["adir", "workflow", "42"])
def test_a_path_that_is_not_a_file_says_so(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    # a directory, or a file name without .yaml that does not exist, was read as YAML text:
    # "<string>:1:1: error: a workflow must be a mapping, got a string"
    from flowctx.spec import load_workflow

    (tmp_path / "adir").mkdir()
    monkeypatch.chdir(tmp_path)
    reason = "Is a directory" if name == "adir" else "No such file or directory"
    with pytest.raises(WorkflowError) as ei:
        load_workflow(name)
    assert str(ei.value) == f"{name}:1:1: error: cannot read workflow file: {reason}"
    with pytest.raises(WorkflowError):
        Engine().run(name)


def test_validate_and_graph_read_their_argument_as_a_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowctx.cli import main

    (tmp_path / "adir").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "adir", "no:such"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "adir:1:1: error: cannot read workflow file: Is a directory",
        "no:such:1:1: error: cannot read workflow file: No such file or directory",
    ]
    assert main(["graph", "no:such"]) == 2
    assert capsys.readouterr().err == (
        "flowctx: error: no:such:1:1: error: cannot read workflow file: No such file or directory\n"
    )


def test_a_nul_in_a_file_name_is_a_workflow_error() -> None:
    from flowctx.spec import load_workflow

    with pytest.raises(WorkflowError) as ei:
        load_workflow("a\x00.yaml")
    assert "internal error" not in str(ei.value)
    assert "cannot read workflow file: the file name contains a NUL character" in str(ei.value)


# ---------------------------------------------------------------- parameters
@pytest.mark.parametrize("value, detail", [
    ({1, 2}, "value for 'n' has unsupported type 'set'"),
    ({1: 2}, "key 1 in 'n' has unsupported type 'int'"),
    ([b"x"], "value for 'n[0]' has unsupported type 'bytes'"),
])
def test_parameters_no_context_can_hold_raise_before_the_run(backend: ModuleType, value: Any, detail: str) -> None:
    # Engine.start promises bad parameters raise there; an Orquesta input (no schema) holding a
    # set started the run and came back as a failed execution with no task
    wf = """
version: 1.0
input:
  - n
tasks:
  a:
    action: core.echo message="{{ ctx().n }}"
"""
    with pytest.raises(WorkflowError) as ei:
        engine(backend).run(wf, {"n": value})
    assert str(ei.value).startswith(f"invalid parameters for workflow 'workflow':\n  parameter 'n': {detail}")


# ---------------------------------------------------------------- rehearsal specs
@pytest.mark.parametrize("extra, message", [
    ("mock_action_executions: 5", "mock_action_executions must be a list, got int"),
    ("mock_action_executions: [{task_id: a, status: weird}]",
     "mock_action_executions[0].status must be one of succeeded, failed, timeout, canceled, running, got 'weird'"),
    ("mock_action_executions: [{task_id: a, num_iter: x}]",
     "mock_action_executions[0].num_iter must be a whole number >= 0, got 'x'"),
    ("mock_action_executions: [{task_id: a, item_id: -1}]",
     "mock_action_executions[0].item_id must be a whole number >= 0, got -1"),
])
def test_malformed_mocks_fail_the_spec_with_a_message(tmp_path: Any, extra: str, message: str) -> None:
    # a TypeError/ValueError traceback (or, for an unknown status, a silent 'failed')
    from flowctx import rehearse

    _write(tmp_path, "wf.yaml", "version: 1.0\ntasks:\n  a:\n    action: core.noop\n")
    spec = _write(tmp_path, "spec.yaml", f"workflow: wf.yaml\n{extra}\n")
    [res] = rehearse(spec)
    assert not res.ok
    assert res.mismatches == [f"error: {spec}: {message}"]


@pytest.mark.parametrize("extra, message", [
    ("expected_routes: 5", "expected_routes must be a list, got int"),
    ("expected_errors: [x]", "expected_errors must be a list of mappings"),
    ("expected_task_sequence: abc", "expected_task_sequence must be a list, got str"),
])
def test_malformed_expectations_are_a_spec_error(tmp_path: Any, extra: str, message: str) -> None:
    from flowctx import rehearse

    _write(tmp_path, "wf.yaml", "version: 1.0\ntasks:\n  a:\n    action: core.noop\n")
    spec = _write(tmp_path, "spec.yaml", f"workflow: wf.yaml\n{extra}\n")
    with pytest.raises(WorkflowError) as ei:
        rehearse(spec)
    assert str(ei.value) == f"{spec}: {message}"


def test_malformed_rerun_tasks_fail_the_spec(tmp_path: Any) -> None:
    from flowctx import rehearse

    _write(tmp_path, "wf.yaml", "version: 1.0\ntasks:\n  a:\n    action: core.fail\n")
    _write(tmp_path, "first.yaml", "workflow: wf.yaml\nexpected_workflow_status: failed\n")
    spec = _write(tmp_path, "again.yaml", "rerun_of: first.yaml\nrerun_tasks: a\n")
    [res] = rehearse(spec)
    assert res.mismatches == [f"error: {spec}: rerun_tasks must be a list of {{task_id, route, reset_items}}"]


def test_flowctx_rehearse_is_callable_after_the_module_was_imported(tmp_path: Any) -> None:
    # `import flowctx.rehearse` before the first `flowctx.rehearse(...)` bound the package
    # attribute to the module: "TypeError: 'module' object is not callable"
    import flowctx
    import flowctx.rehearse  # noqa: F401

    _write(tmp_path, "wf.yaml", "version: 1.0\ntasks:\n  a:\n    action: core.noop\n")
    spec = _write(tmp_path, "spec.yaml", "workflow: wf.yaml\n")
    [res] = flowctx.rehearse(spec)
    assert res.ok, res.mismatches


def test_canceling_a_run_cancels_its_running_subworkflow(backend: ModuleType, tmp_path: Any) -> None:
    # the parent reported 'canceled' at once while the child ran on and started its next task
    marker = tmp_path / "child-went-on"
    _write(tmp_path, "child.yaml", f"""
version: 1.0
tasks:
  wait:
    action: core.sleep seconds=2
    next:
      - do: after
  after:
    action: core.local
    input:
      cmd: "touch {marker}"
""")
    wf = _write(tmp_path, "parent.yaml", """
version: 1.0
tasks:
  sub:
    action: child.yaml
""")
    ex = engine(backend).start(wf)
    time.sleep(0.3)
    ex.cancel()
    assert ex.wait(timeout=10).status == "canceled"
    time.sleep(2.5)
    assert not marker.exists()


def test_run_json_output_is_valid_json_with_non_finite_floats(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from flowctx.cli import main

    wf = tmp_path / "nan.yaml"
    wf.write_text('version: 1.0\ntasks:\n  a:\n    action: test_robustness:_nan_action\n'
                  '    next:\n      - publish: [{v: "{{ result() }}"}]\noutput:\n  - v: "{{ ctx().v }}"\n')
    assert main(["run", str(wf), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output"] == {"v": {"x": "nan", "y": "inf"}}


def _nan_action() -> dict[str, float]:
    return {"x": float("nan"), "y": float("inf")}
