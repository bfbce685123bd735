"""Engine semantics on both syntaxes and both store backends (``backend`` fixture)."""
from __future__ import annotations

import os
import threading
import time
from types import ModuleType
from typing import Any

import pytest

from flowctx import Engine, Renderer, WorkflowError
from flowctx.actions import ActionRegistry
from flowctx.spec import load_workflow

HERE = os.path.dirname(os.path.abspath(__file__))
ATTUNE = os.path.join(HERE, "conformance", "attune")


def engine(backend: ModuleType, actions: dict[str, Any] | None = None, **kw: Any) -> Engine:
    kw.setdefault("executor", "thread")
    return Engine(actions=actions, store=backend, **kw)


# ---------------------------------------------------------------- basic flow, both syntaxes
ORQ_SEQ = """
version: 1.0
input:
  - name
vars:
  - greeting: null
output:
  - greeting: "{{ ctx().greeting }}"
  - upper: "{{ ctx('greeting') | upper }}"
tasks:
  task1:
    action: core.echo message="{{ ctx().name }}"
    next:
      - when: "{{ succeeded() }}"
        publish: greeting="{{ result().stdout }}"
        do: task2
  task2:
    action: core.echo
    input:
      message: "{{ ctx().greeting }}, hello"
    next:
      - when: "{{ succeeded() }}"
        publish:
          - greeting: "{{ result().stdout }}!"
"""

LIST_SEQ = """
ref: t.seq
parameters:
  name: {type: string, required: true}
vars:
  greeting: null
tasks:
  - name: task1
    action: core.echo
    input: {message: "{{ parameters.name }}"}
    next:
      - when: "{{ succeeded() }}"
        publish:
          - greeting: "{{ task.task1.result.stdout }}"
        do: [task2]
  - name: task2
    action: core.echo
    input: {message: "{{ workflow.greeting }}, hello"}
    on_success: task3
  - name: task3
    action: core.noop
    publish:
      - greeting: "{{ task('task2').result.stdout }}!"
output_map:
  greeting: "{{ workflow.greeting }}"
"""


def test_sequential_orquesta(backend: ModuleType) -> None:
    res = engine(backend).run(ORQ_SEQ, {"name": "Ada"})
    assert res.status == "succeeded", res.errors
    assert res.output == {"greeting": "Ada, hello!", "upper": "ADA, HELLO!"}
    assert [t.task for t in res.tasks] == ["task1", "task2"]
    assert res.sequence == ["task1", "task2", "continue"]


def test_sequential_list_form(backend: ModuleType) -> None:
    res = engine(backend).run(LIST_SEQ, {"name": "Ada"})
    assert res.status == "succeeded", res.errors
    assert res.output == {"greeting": "Ada, hello!"}


def test_missing_required_parameter_is_an_error_before_running(backend: ModuleType) -> None:
    calls = []
    with pytest.raises(WorkflowError, match="name"):
        engine(backend, {"core.echo": lambda message="": calls.append(message)}).run(LIST_SEQ, {})
    assert calls == []


def test_unknown_action_fails_before_anything_runs(backend: ModuleType) -> None:
    calls: list[str] = []
    wf = """
version: 1.0
tasks:
  a:
    action: t.record
    next: [{do: b}]
  b:
    action: no.such_action
"""
    with pytest.raises(WorkflowError, match="no.such_action"):
        engine(backend, {"t.record": lambda: calls.append("a")}).run(wf)
    assert calls == []


# ---------------------------------------------------------------- branches, joins, isolation
ISOLATION = """
version: 1.0
vars:
  - cfg: {mode: base, n: 0}
tasks:
  init:
    action: core.noop
    next:
      - do: left, right
  left:
    action: core.noop
    next:
      - publish:
          - cfg: {mode: left, n: 1}
          - seen_left: "{{ ctx().cfg.mode }}"
        do: left2
  left2:
    action: t.slow
    next:
      - publish:
          - left_saw: "{{ ctx().cfg.mode }}"
        do: join
  right:
    action: core.noop
    next:
      - publish:
          - right_saw: "{{ ctx().cfg.mode }}"
        do: right2
  right2:
    action: core.noop
    next:
      - publish:
          - right_saw2: "{{ ctx().cfg.mode }}"
        do: join
  join:
    join: all
    action: core.noop
output:
  - left_saw: "{{ ctx().left_saw }}"
  - right_saw: "{{ ctx().right_saw }}"
  - right_saw2: "{{ ctx().right_saw2 }}"
  - final: "{{ ctx().cfg.mode }}"
"""


def test_branch_isolation_and_join_merge(backend: ModuleType) -> None:
    # The left branch publishes a new dict for `cfg`; the right branch must keep seeing the
    # original (Orquesta's shared-dict aliasing gets this wrong).  The join merges in arrival
    # order: left arrives last (t.slow), so its cfg wins.
    def slow() -> None:
        time.sleep(0.05)

    res = engine(backend, {"t.slow": slow}).run(ISOLATION)
    assert res.status == "succeeded", res.errors
    assert res.output == {"left_saw": "left", "right_saw": "base", "right_saw2": "base", "final": "left"}


def test_published_values_are_not_aliased(backend: ModuleType) -> None:
    # an action mutating its own input must not change the context value it came from
    def mutate(data: Any) -> Any:
        try:
            data["x"] = 99
        except TypeError:
            return "frozen"
        return "mutated"

    wf = """
version: 1.0
vars:
  - data: {x: 1}
tasks:
  t:
    action: t.mutate
    input: {data: "{{ ctx().data }}"}
    next:
      - publish: [{r: "{{ result() }}"}, {x: "{{ ctx().data.x }}"}]
output:
  - r: "{{ ctx().r }}"
  - x: "{{ ctx().x }}"
"""
    res = engine(backend, {"t.mutate": mutate}).run(wf)
    assert res.output == {"r": "mutated", "x": 1}  # a plain copy of its own: mutable, not aliased


# ---------------------------------------------------------------- failure handling
def test_failure_remediated_and_output_rendered_on_failure(backend: ModuleType) -> None:
    wf = """
version: 1.0
tasks:
  t1:
    action: core.fail message=boom
    next:
      - when: "{{ failed() }}"
        publish: [{msg: "handled"}]
        do: t2
  t2:
    action: core.noop
output:
  - msg: "{{ ctx().msg }}"
"""
    res = engine(backend).run(wf)
    assert res.status == "succeeded"
    assert res.output == {"msg": "handled"}
    wf2 = wf.replace("do: t2", "do: continue")
    res2 = engine(backend).run(wf2)
    assert res2.status == "failed"
    assert res2.output == {"msg": "handled"}
    assert res2.errors[0]["task_id"] == "t1" and "boom" in res2.errors[0]["message"]
    assert "boom" in (res2.reason or "")


def test_fail_command_and_bad_expression(backend: ModuleType) -> None:
    wf = """
version: 1.0
tasks:
  t1:
    action: core.noop
    next:
      - publish: [{v: "{{ ctx()['nope'].deeper }}"}]
        do: t2
  t2:
    action: core.noop
"""
    res = engine(backend).run(wf)
    assert res.status == "failed"
    assert res.errors and res.errors[0]["task_id"] == "t1"
    assert "nope" in res.errors[0]["message"]
    assert [t.task for t in res.tasks] == ["t1"]


# ---------------------------------------------------------------- with-items
def test_with_items_concurrency_and_order(backend: ModuleType) -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def work(x: int) -> int:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.01)
        with lock:
            state["now"] -= 1
        return x * 10

    wf = """
version: 1.0
input: [xs]
tasks:
  t:
    with:
      items: x in {{ ctx().xs }}
      concurrency: 3
    action: t.work x="{{ item().x }}"
    next:
      - publish: [{out: "{{ result() }}"}]
output:
  - out: "{{ ctx().out }}"
"""
    res = engine(backend, {"t.work": work}, max_workers=8).run(wf, {"xs": list(range(12))})
    assert res.status == "succeeded", res.errors
    assert res.output == {"out": [x * 10 for x in range(12)]}
    assert 1 <= state["max"] <= 3


def test_with_items_zip_names_and_batch_size(backend: ModuleType) -> None:
    batches: list[list[int]] = []
    lock = threading.Lock()
    running: list[int] = []

    def work(i: int, name: str) -> str:
        with lock:
            running.append(i)
            batches.append(sorted(running))
        time.sleep(0.01)
        with lock:
            running.remove(i)
        return f"{i}:{name}"

    wf = """
ref: t.batch
parameters:
  ids: {type: array, default: [0, 1, 2, 3, 4]}
  names: {type: array, default: [a, b, c, d, e]}
tasks:
  - name: t
    action: t.work
    with_items: "{{ zip(parameters.ids, parameters.names) }}"
    batch_size: 2
    input: {i: "{{ item[0] }}", name: "{{ item[1] }}"}
output_map:
  out: "{{ task.t.results }}"
"""
    res = engine(backend, {"t.work": work}, max_workers=8).run(wf)
    assert res.status == "succeeded", res.errors
    assert res.output == {"out": ["0:a", "1:b", "2:c", "3:d", "4:e"]}
    # never more than one batch of 2 in flight, and batches never mix
    for snapshot in batches:
        assert len(snapshot) <= 2
        assert len({i // 2 for i in snapshot}) == 1


def test_with_items_failure_fails_task_after_inflight(backend: ModuleType) -> None:
    def work(x: int) -> int:
        if x == 2:
            raise ValueError("bad item")
        return x

    wf = """
version: 1.0
tasks:
  t:
    with: x in {{ [0, 1, 2, 3] }}
    action: t.work x="{{ item().x }}"
"""
    res = engine(backend, {"t.work": work}).run(wf)
    assert res.status == "failed"
    assert res.task("t").status == "failed"
    assert "bad item" in (res.task("t").error or "")


def test_with_items_item_context_is_a_clone_not_a_copy(backend: ModuleType) -> None:
    backend.reset_store_stats()
    res = engine(backend, executor="inline").run(
        """
version: 1.0
tasks:
  t:
    with: "{{ range(50) | list }}"
    action: core.echo message="{{ item() }}"
""")
    assert res.status == "succeeded"
    assert backend.store_stats()["items"] == 50
    assert res.metrics["items_run"] == 50


# ---------------------------------------------------------------- retry, delay, timeout, when
def test_retry_with_backoff_and_attempts(backend: ModuleType) -> None:
    attempts: list[float] = []

    def flaky() -> str:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise RuntimeError("try again")
        return "ok"

    wf = """
ref: t.retry
tasks:
  - name: t
    action: t.flaky
    retry: {count: 3, delay: 0.05, backoff: exponential, max_delay: 0.08}
output_map:
  r: "{{ task.t.result }}"
  attempts: "{{ task.t.attempts }}"
"""
    res = engine(backend, {"t.flaky": flaky}).run(wf)
    assert res.status == "succeeded", res.errors
    assert res.output == {"r": "ok", "attempts": 3}
    assert res.task("t").attempts == 3
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps[0] >= 0.045 and gaps[1] >= 0.075  # 0.05, then min(0.1, 0.08)


def test_retry_exhausted_fails(backend: ModuleType) -> None:
    count = []
    wf = """
version: 1.0
tasks:
  t:
    action: t.bad
    retry: {count: 2, when: "{{ failed() }}"}
"""
    res = engine(backend, {"t.bad": lambda: count.append(1) or 1 / 0}).run(wf)
    assert res.status == "failed"
    assert len(count) == 3


def test_timeout_takes_on_timeout_branch(backend: ModuleType) -> None:
    def slow() -> str:
        time.sleep(3)
        return "late"

    wf = """
ref: t.timeout
tasks:
  - name: t
    action: t.slow
    timeout: 0.2
    on_success: ok
    on_timeout: handle
  - name: ok
    action: core.noop
  - name: handle
    action: core.noop
"""
    t0 = time.monotonic()
    res = engine(backend, {"t.slow": slow}).run(wf)
    assert time.monotonic() - t0 < 2.5
    assert res.status == "succeeded"
    assert res.task("t").status == "timeout"
    assert [t.task for t in res.tasks] == ["t", "handle"]


def test_task_when_skips_and_delay_waits(backend: ModuleType) -> None:
    wf = """
ref: t.when
parameters:
  go: {type: boolean, default: false}
tasks:
  - name: a
    action: core.noop
    when: "{{ parameters.go }}"
    on_success: b
  - name: b
    action: core.noop
    delay: 0.1
output_map:
  a: "{{ task.a.status }}"
"""
    t0 = time.monotonic()
    res = engine(backend).run(wf)
    assert time.monotonic() - t0 >= 0.09
    assert res.status == "succeeded"
    assert res.output == {"a": "skipped"}


# ---------------------------------------------------------------- decisions, parallel, sub-workflows
DECISION = """
ref: t.decision
parameters:
  env: {type: string, default: dev}
tasks:
  - name: check
    action: core.noop
    decision:
      - when: "{{ parameters.env == 'prod' }}"
        next: approve
      - when: "{{ parameters.env == 'stage' }}"
        next: stage
      - default: deploy
  - name: approve
    action: core.noop
  - name: stage
    action: core.noop
  - name: deploy
    action: core.noop
"""


@pytest.mark.parametrize("env,expected", [("prod", "approve"), ("stage", "stage"), ("dev", "deploy")])
def test_decision_default_is_else(backend: ModuleType, env: str, expected: str) -> None:
    res = engine(backend).run(DECISION, {"env": env})
    assert res.status == "succeeded", res.errors
    assert [t.task for t in res.tasks] == ["check", expected]


def test_parallel_subtasks(backend: ModuleType) -> None:
    wf = """
ref: t.parallel
tasks:
  - name: checks
    type: parallel
    tasks:
      - name: a
        action: core.echo
        input: {message: A}
      - name: b
        action: core.echo
        input: {message: B}
    on_success: after
  - name: after
    action: core.noop
output_map:
  a: "{{ task.a.result.stdout }}"
  both: "{{ task.checks.result.b.stdout }}"
"""
    res = engine(backend).run(wf)
    assert res.status == "succeeded", res.errors
    assert res.output == {"a": "A", "both": "B"}


def test_subworkflow(backend: ModuleType, tmp_path: Any) -> None:
    (tmp_path / "child.yaml").write_text(
        """
version: 1.0
input: [n]
tasks:
  t:
    action: core.noop
output:
  - doubled: "{{ ctx().n * 2 }}"
"""
    )
    (tmp_path / "parent.yaml").write_text(
        """
ref: t.parent
tasks:
  - name: sub
    type: workflow
    workflow: child.yaml
    input: {n: 21}
output_map:
  answer: "{{ task.sub.result.doubled }}"
"""
    )
    res = engine(backend).run(str(tmp_path / "parent.yaml"))
    assert res.status == "succeeded", res.errors
    assert res.output == {"answer": 42}


# ---------------------------------------------------------------- cancel, pause, rerun
def test_cancel_running_execution(backend: ModuleType) -> None:
    gate = threading.Event()

    def block(action_context: Any = None) -> None:
        action_context.cancel_event.wait(5)

    wf = """
version: 1.0
tasks:
  a:
    action: t.block
    next: [{do: b}]
  b:
    action: core.noop
"""
    ex = engine(backend, {"t.block": block}).start(wf)
    time.sleep(0.1)
    ex.cancel()
    res = ex.wait(5)
    assert res.status == "canceled"
    assert [t.task for t in res.tasks] == ["a"]
    assert res.tasks[0].status == "canceled"
    gate.set()


def test_pause_and_resume(backend: ModuleType) -> None:
    started = threading.Event()
    release = threading.Event()

    def first() -> None:
        started.set()
        release.wait(5)

    wf = """
version: 1.0
tasks:
  a:
    action: t.first
    next: [{do: b}]
  b:
    action: core.noop
"""
    ex = engine(backend, {"t.first": first}).start(wf)
    assert started.wait(5)
    ex.pause()
    time.sleep(0.05)
    release.set()
    deadline = time.monotonic() + 5
    while ex.status != "paused" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ex.status == "paused"
    assert [i.task for i in ex.conductor.sequence] == ["a"]
    ex.resume()
    res = ex.wait(5)
    assert res.status == "succeeded"
    assert [t.task for t in res.tasks] == ["a", "b"]


def test_rerun_failed_task_keeps_history(backend: ModuleType) -> None:
    state = {"fail": True}

    def maybe() -> str:
        if state["fail"]:
            raise RuntimeError("first time")
        return "second time"

    wf = """
version: 1.0
tasks:
  a:
    action: core.noop
    next: [{do: b}]
  b:
    action: t.maybe
    next: [{when: "{{ succeeded() }}", publish: [{r: "{{ result() }}"}], do: c}]
  c:
    action: core.noop
output:
  - r: "{{ ctx().r }}"
"""
    eng = engine(backend, {"t.maybe": maybe})
    res = eng.run(wf)
    assert res.status == "failed"
    state["fail"] = False
    res2 = eng.rerun(res)
    assert res2.status == "succeeded", res2.errors
    assert res2.sequence == ["a", "b", "b", "c"]
    assert res2.output == {"r": "second time"}


# ---------------------------------------------------------------- the list-form examples
def _mock_registry() -> ActionRegistry:
    reg = ActionRegistry()
    import flowctx.actions  # noqa: F401  registers core.*

    from flowctx.actions.registry import DEFAULT_REGISTRY

    for spec in DEFAULT_REGISTRY:
        reg.register(spec.name, spec.func)

    def generic(**inputs: Any) -> dict[str, Any]:
        return {
            "text": str(inputs.get("text", "")).upper() if inputs.get("uppercase") else inputs.get("text"),
            "id": "dep-1",
            "approved": True,
            "image_name": "img",
            "image_uri": "reg/img:1",
            "health_url": f"https://{inputs.get('region', 'x')}.example/health",
            "success": True,
            "failed_regions": [],
            "summary": "ok",
            "violations": [],
        }

    # the original engine's echo answered {message}; ours answers {stdout}: the mock gives both
    reg.register("core.echo", lambda message="": {"stdout": message, "message": message})
    for wf in ("simple-workflow.yaml", "complete-workflow.yaml"):
        spec = load_workflow(os.path.join(ATTUNE, wf), validate=False)
        for task in spec.tasks.values():
            for t in (task, *task.subtasks):
                if t.action and not t.action.startswith("core."):
                    reg.register(t.action, generic)
    for name in [
        "string.transform", "validation.validate_deployment_params", "deployments.create_record",
        "docker.check_registry_health", "kubernetes.check_clusters", "database.check_pending_migrations",
        "secrets.verify_availability", "ci.build_and_test", "docker.push_image", "kubernetes.deploy_canary",
        "monitoring.analyze_canary", "kubernetes.promote_canary", "kubernetes.rollback_canary",
        "kubernetes.deploy", "http.get", "testing.run_smoke_tests", "monitoring.verify_deployment_metrics",
        "aws.update_load_balancer", "deployments.update_status", "catalog.update_service_version",
        "testing.trigger_integration_suite", "docs.update_deployment_history", "deployments.analyze_failures",
        "diagnostics.analyze_health_failures", "testing.capture_smoke_test_results",
        "monitoring.capture_metrics_failures", "kubernetes.rollback", "kubernetes.rollback_all",
        "notifications.send_multi_channel", "deployments.cleanup_resources", "aws.rollback_load_balancer",
    ]:
        reg.register(name, generic)
    return reg


def _attune_complete_fixed(tmp_path: Any) -> str:
    """complete-workflow.yaml names an on_failure handler it never defines: an unknown
    transition target is refused at load, so run a copy whose handler exists."""
    with open(os.path.join(ATTUNE, "complete-workflow.yaml"), encoding="utf-8") as fh:
        text = fh.read()
    assert "on_failure: handle_canary_failure" in text
    path = os.path.join(str(tmp_path), "complete-workflow.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text.replace("on_failure: handle_canary_failure", "on_failure: rollback_canary"))
    return path


def test_attune_simple_workflow_runs(backend: ModuleType) -> None:
    res = Engine(actions=_mock_registry(), store=backend).run(
        os.path.join(ATTUNE, "simple-workflow.yaml"), {"message": "hi", "uppercase": True}
    )
    assert res.status == "succeeded", res.errors
    assert res.output["original"] == "hi"
    assert res.output["processed"] == "HI"


@pytest.mark.parametrize("environment", ["dev", "production"])
def test_attune_complete_workflow_runs(backend: ModuleType, environment: str, tmp_path: Any) -> None:
    reg = _mock_registry()
    renderer = Renderer(config={"docker_registry": "registry.local"})
    res = Engine(
        actions=reg, store=backend, renderer=renderer, responder=lambda payload: {"approved": True}
    ).run(
        _attune_complete_fixed(tmp_path),
        {"app_name": "shop", "version": "1.2.3", "environment": environment, "regions": ["eu-1", "us-2"]},
    )
    assert res.status == "succeeded", res.errors
    names = [t.task for t in res.tasks]
    assert names[-1] == "notify_deployment_success"
    if environment == "production":
        assert "require_production_approval" in names
    assert res.output["deployed_version"] == "1.2.3"
    assert res.output["status"] == "success"
    assert res.errors == []
    assert "parallel_health_checks" in names and "update_load_balancer" in names


def _triple(x: int) -> int:
    return 3 * x


def test_module_function_action_reference(backend: ModuleType) -> None:
    wf = """
version: 1.0
tasks:
  t:
    action: test_engine:_triple
    input: {x: 14}
    next:
      - publish: [{r: "{{ result() }}"}]
output:
  - r: "{{ ctx().r }}"
"""
    res = engine(backend).run(wf)
    assert res.status == "succeeded", res.errors
    assert res.output == {"r": 42}


def test_item_render_error_fails_the_workflow_before_any_item_runs(backend: ModuleType) -> None:
    # Orquesta renders every item before the task starts (test_task_rendering_for_with_items::
    # test_bad_item_key): one error naming the task and route, the task never enters the
    # sequence, nothing runs, the workflow fails (this used to leave the engine waiting forever)
    wf = """
version: 1.0
tasks:
  deploy:
    with: "{{ range(2) }}"
    action: core.echo message="{{ nope }}"
    next: [{when: "{{ failed() }}", do: rollback}]
  rollback: {action: core.noop}
"""
    for executor in ("inline", "thread"):
        res = engine(backend, executor=executor).run(wf)
        assert res.status == "failed"
        assert res.sequence == [] and res.tasks == []
        assert len(res.errors) == 1
        err = res.errors[0]
        assert (err["task_id"], err["route"]) == ("deploy", 0)
        assert "nope" in err["message"] and "<string>:6:" in err["message"]
        assert "deploy" in (res.reason or "")


def test_large_results_publish_without_copying_and_bad_results_fail_clearly(backend: ModuleType) -> None:
    wf = """
version: 1.0
vars: [{big: null}]
output: [{n: "{{ ctx().big.blob | length }}"}]
tasks:
  make:
    action: t.big
    next:
      - publish: [{big: "{{ result() }}"}]
"""
    res = engine(backend, {"t.big": lambda: {"blob": "x" * 1_100_000}}).run(wf)
    assert res.status == "succeeded", res.errors
    assert res.output == {"n": 1_100_000}
    bad = engine(backend, {"t.big": lambda: {"s": {1, 2}}}).run(wf)
    assert bad.status == "failed"
    msg = bad.task("make").error or ""
    assert "t.big" in msg and "'set'" in msg and "result.s" in msg


def test_missing_or_unexpected_action_inputs_fail_before_anything_runs(backend: ModuleType) -> None:
    ran: list[str] = []

    def first() -> None:
        ran.append("first")

    def needs(n: int) -> int:
        return n

    wf = """
version: 1.0
tasks:
  a:
    action: t.first
    next: [{do: b}]
  b:
    action: t.needs
    input: {m: 1}
"""
    with pytest.raises(WorkflowError) as info:
        engine(backend, {"t.first": first, "t.needs": needs}).run(wf)
    msg = str(info.value)
    assert "task 'b': missing required input 'n' of action 't.needs'" in msg
    assert "unexpected input 'm'" in msg
    assert ran == []


def test_orquesta_input_defaults_that_are_expressions_are_rendered(backend: ModuleType) -> None:
    wf = """
version: 1.0
input:
  - xs: [1, 2, 3]
  - n: <% len(ctx(xs)) %>
  - label: "{{ ctx().n }} items"
tasks:
  t:
    action: core.noop
output:
  - n: "{{ ctx().n }}"
  - label: "{{ ctx().label }}"
"""
    res = engine(backend).run(wf)
    assert res.output == {"n": 3, "label": "3 items"}
    # a value the caller passes is data: never rendered
    res2 = engine(backend).run(wf, {"label": "{{ 1 + 1 }}"})
    assert res2.output == {"n": 3, "label": "{{ 1 + 1 }}"}


# ---------------------------------------------------------------- Orquesta 1.6.0 parity
# Each test names the Orquesta test (orquesta/tests/unit/conducting/...) or the probe of Orquesta
# 1.6.0 whose behaviour it reproduces.


class Flaky:
    """An action that fails its first ``fails`` calls per key (then returns the key)."""

    def __init__(self, fails: int) -> None:
        self.fails = fails
        self.calls: dict[Any, int] = {}
        self.lock = threading.Lock()

    def __call__(self, key: Any = None) -> Any:
        with self.lock:
            n = self.calls[key] = self.calls.get(key, 0) + 1
        if n <= self.fails:
            raise RuntimeError(f"{key} failed (call {n})")
        return key


RETRY_COMMAND = """
version: 1.0
tasks:
  a:
    action: t.flaky
    next:
      - when: <% failed() %>
        do: retry
      - when: <% succeeded() %>
        do: b
  b:
    action: core.noop
"""


def test_retry_command_exhausted_fails_the_workflow(backend: ModuleType) -> None:
    # fixture task-retry-command.yaml: `do: retry` is the task's retry policy (3 retries); once
    # they are used up the task has failed and nothing handles it: the workflow fails
    flaky = Flaky(fails=10)
    res = engine(backend, {"t.flaky": flaky}).run(RETRY_COMMAND)
    assert res.status == "failed"
    assert flaky.calls == {None: 4}
    assert res.sequence == ["a"]  # one task entry, no `retry` command entry (as in Orquesta)
    assert res.task("a").attempts == 4
    assert res.reason == "task 'a' failed: RuntimeError: None failed (call 4)"


def test_retry_command_succeeds_within_its_count(backend: ModuleType) -> None:
    flaky = Flaky(fails=2)
    res = engine(backend, {"t.flaky": flaky}).run(RETRY_COMMAND)
    assert res.status == "succeeded", res.reason
    assert res.sequence == ["a", "b"]
    assert res.task("a").attempts == 3


def test_output_entries_see_earlier_entries_and_survive_an_error(backend: ModuleType) -> None:
    # WorkflowSpec.render_output: entries render in order into the context; a failing entry is
    # logged, the others are kept
    wf = """
version: 1.0
output:
  - x: 1
  - y: "<% ctx().x + 1 %>"
  - bad: "{{ ctx().x / 0 }}"
  - z: "{{ ctx().y * 10 }}"
tasks:
  a:
    action: core.noop
"""
    res = engine(backend).run(wf)
    assert res.status == "failed"
    assert res.output == {"x": 1, "y": 2, "z": 20}
    assert len(res.errors) == 1 and "<string>:6:" in res.errors[0]["message"]
    assert "output 'bad'" in (res.reason or "")


def test_canceled_workflow_renders_its_output(backend: ModuleType) -> None:
    # test_workflow_conductor_cancel::test_workflow_output: the output is rendered on cancel too
    started = threading.Event()

    def block(action_context: Any = None) -> None:
        started.set()
        action_context.cancel_event.wait(5)

    wf = """
version: 1.0
vars:
  - who: me
output:
  - who: "{{ ctx().who }}"
  - n: 3
tasks:
  a:
    action: t.block
"""
    ex = engine(backend, {"t.block": block}).start(wf)
    assert started.wait(5)
    ex.cancel()
    res = ex.wait(5)
    assert res.status == "canceled"
    assert res.output == {"who": "me", "n": 3}


def test_pause_while_a_retry_waits_then_resume(backend: ModuleType) -> None:
    # a retry waiting for its delay does not start while the run is paused; the run reaches
    # `paused`, and resume continues the retries
    flaky = Flaky(fails=2)
    wf = """
version: 1.0
tasks:
  a:
    action: t.flaky
    retry:
      count: 3
      delay: 0.3
"""
    ex = engine(backend, {"t.flaky": flaky}).start(wf)
    deadline = time.monotonic() + 5
    while flaky.calls.get(None, 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    ex.pause()
    while ex.status != "paused" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert ex.status == "paused"
    calls = flaky.calls[None]
    time.sleep(0.5)  # longer than the retry delay: nothing starts while paused
    assert flaky.calls[None] == calls and ex.status == "paused"
    ex.resume()
    res = ex.wait(5)
    assert res.status == "succeeded", res.reason
    assert flaky.calls[None] == 3 and res.task("a").attempts == 3


ACTION_EXPR = """
version: 1.0
input:
  - func
tasks:
  a:
    action: ACTION
    input:
      message: hi
"""


def _with_action(action: str) -> str:
    return ACTION_EXPR.replace("ACTION", f"'{action}'")


@pytest.mark.parametrize("expr", ["<% ctx().func %>", "{{ ctx().func }}", '{{ ctx("func") | trim }}'])
def test_action_given_as_an_expression_is_rendered_at_run_time(backend: ModuleType, expr: str) -> None:
    # st2 relies on it (Orquesta TaskSpec.render evaluates `action`)
    seen: list[str] = []
    spec = _with_action(expr)
    actions = {"t.one": lambda message: seen.append(f"one:{message}"), "t.two": lambda message: seen.append(f"two:{message}")}
    assert engine(backend, actions).run(spec, {"func": "t.two"}).succeeded
    assert engine(backend, actions).run(spec, {"func": "t.one"}).succeeded
    assert seen == ["two:hi", "one:hi"]


def test_action_expression_naming_an_unknown_action_fails_the_task(backend: ModuleType) -> None:
    spec = _with_action("<% ctx().func %>")
    res = engine(backend).run(spec, {"func": "no.such_action"})
    assert res.status == "failed"
    assert res.task("a").status == "failed"
    assert "no.such_action" in (res.task("a").error or "") and "no.such_action" in (res.reason or "")


def test_action_expression_that_fails_or_gives_no_name(backend: ModuleType) -> None:
    # test_workflow_conductor_error_handling::test_get_start_tasks_with_task_action_error
    spec = _with_action("<% ctx().func.nope %>")
    res = engine(backend).run(spec, {"func": "core.noop"})
    assert res.status == "failed" and res.sequence == []
    assert [(e["task_id"], e["route"]) for e in res.errors] == [("a", 0)]
    res = engine(backend).run(_with_action("{{ ctx().func }}"), {"func": None})
    assert res.status == "failed" and "not an action name" in res.errors[0]["message"]


ITEMS = """
version: 1.0
input:
  - xs: [0, 1, 2, 3]
  - c: 2
tasks:
  t:
    with:
      items: <% ctx(xs) %>
      concurrency: CONCURRENCY
    action: t.work
    input:
      key: <% item() %>
"""


def test_with_items_keeps_handing_out_items_after_one_fails(backend: ModuleType) -> None:
    # test_workflow_conductor_with_items_failure::test_failed_item_task_active_with_concurrency:
    # item 1 fails while item 0 still runs; items 2 and 3 are still handed out, then the task fails
    release = threading.Event()
    ran: list[int] = []

    def work(key: int) -> int:
        ran.append(key)
        if key == 0:
            release.wait(5)
        if key == 1:
            release.set()
            raise RuntimeError("item 1 fails")
        return key

    res = engine(backend, {"t.work": work}, max_workers=4).run(ITEMS.replace("CONCURRENCY", "2"))
    assert res.status == "failed"
    assert sorted(ran) == [0, 1, 2, 3]
    result = res.task("t").result
    assert len(result) == 4 and [result[0], result[2], result[3]] == [0, 2, 3]
    assert result[1]["type"] == "RuntimeError"  # the failed item's result


def test_failed_item_with_nothing_else_running_ends_the_task(backend: ModuleType) -> None:
    # test_failed_item_task_dormant_with_concurrency: items after the failure are not run; the
    # result runs up to the last item that ran (as Orquesta reports it)
    ran: list[int] = []

    def work(key: int) -> int:
        ran.append(key)
        if key == 1:
            raise RuntimeError("item 1 fails")
        return key

    res = engine(backend, {"t.work": work}, executor="inline").run(ITEMS.replace("CONCURRENCY", "1"))
    assert res.status == "failed"
    assert ran == [0, 1]
    result = res.task("t").result
    assert len(result) == 2 and result[0] == 0 and result[1]["type"] == "RuntimeError"


@pytest.mark.parametrize("concurrency", [0, "<% ctx(c) %>"])
def test_with_items_concurrency_zero_means_one(backend: ModuleType, concurrency: Any) -> None:
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def work(key: int) -> int:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return key

    import dataclasses

    spec = load_workflow(ITEMS.replace("CONCURRENCY", "<% ctx(c) %>"))
    if concurrency == 0:  # a literal 0 (the loader of this branch still rejects it: spec helper)
        task = spec.tasks["t"]
        task = dataclasses.replace(task, with_items=dataclasses.replace(task.with_items, concurrency=0))
        spec = dataclasses.replace(spec, tasks={"t": task})
    res = engine(backend, {"t.work": work}, max_workers=4).run(spec, {"c": 0})
    assert res.status == "succeeded", res.reason
    assert state["most"] == 1
    assert res.task("t").result == [0, 1, 2, 3]


def test_with_items_negative_concurrency_is_one_clear_error(backend: ModuleType) -> None:
    res = engine(backend, {"t.work": lambda key: key}).run(ITEMS.replace("CONCURRENCY", "<% ctx(c) %>"), {"c": -1})
    assert res.status == "failed" and res.sequence == []
    assert len(res.errors) == 1 and "concurrency must not be negative, got -1" in res.errors[0]["message"]


def test_retrying_a_with_items_task_reruns_all_its_items(backend: ModuleType) -> None:
    # probe of Orquesta 1.6.0: an item fails, the task is `retrying` and every item is handed
    # out again
    calls: dict[int, int] = {}

    def work(key: int) -> int:
        calls[key] = calls.get(key, 0) + 1
        if key == 2 and calls[key] == 1:
            raise RuntimeError("item 2 fails once")
        return key

    wf = ITEMS.replace("CONCURRENCY", "2") + "    retry:\n      count: 1\n"
    res = engine(backend, {"t.work": work}).run(wf)
    assert res.status == "succeeded", res.reason
    assert calls == {0: 2, 1: 2, 2: 2, 3: 2}
    assert res.sequence == ["t"] and res.task("t").attempts == 2
    assert res.task("t").result == [0, 1, 2, 3]


def test_rerun_of_a_with_items_task_is_a_new_sequence_entry(backend: ModuleType) -> None:
    # test_workflow_conductor_rerun (with items, no reset): the rerun keeps the succeeded items
    calls: dict[int, int] = {}

    def work(key: int) -> int:
        calls[key] = calls.get(key, 0) + 1
        if key == 1 and calls[key] == 1:
            raise RuntimeError("item 1 fails once")
        return key

    eng = engine(backend, {"t.work": work}, executor="inline")
    first = eng.run(ITEMS.replace("CONCURRENCY", "4"))
    assert first.status == "failed"
    res = eng.rerun(first)
    assert res.status == "succeeded", res.reason
    assert res.sequence == ["t", "t"]
    assert calls == {0: 1, 1: 2, 2: 1, 3: 1}
    assert res.task("t").result == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("with_", "message"),
    [
        ("x in <% ctx(xs) %>\n    action: core.echo message=<% item(y) %>", "y"),  # test_bad_item_key
        ("<% ctx(xs) %>\n    action: core.echo message=<% item(x) %>", "not a mapping"),  # test_bad_item_type
        ("<% ctx(s) %>\n    action: core.echo message=<% item() %>", "must give a list"),  # test_bad_items_type
    ],
)
def test_bad_items_log_one_error_and_the_task_never_starts(backend: ModuleType, with_: str, message: str) -> None:
    wf = f"""
version: 1.0
vars:
  - xs: [fee, fi, fo, fum]
  - s: fee fi fo fum
tasks:
  task1:
    with: {with_}
"""
    res = engine(backend).run(wf)
    assert res.status == "failed"
    assert res.sequence == [] and res.tasks == []
    assert len(res.errors) == 1
    err = res.errors[0]
    assert (err["task_id"], err["route"]) == ("task1", 0) and message in err["message"]


def test_transition_errors_carry_route_and_transition_id(backend: ModuleType) -> None:
    # test_workflow_conductor_error_handling::test_task_transition_criteria_error and
    # ::test_task_transition_publish_seq_ref_error
    wf = """
version: 1.0
tasks:
  task1:
    action: core.noop
    next:
      - when: "{{ 1 / 0 }}"
        do: task2
      - publish: [{a: 1}, {b: "{{ ctx().a / 0 }}"}]
        do: [task3, task4]
  task2: {action: core.noop}
  task3: {action: core.noop}
  task4: {action: core.noop}
"""
    res = engine(backend).run(wf)
    assert res.status == "failed"
    assert res.sequence == ["task1"]
    assert [(e["task_id"], e["route"], e["task_transition_id"]) for e in res.errors] == [
        ("task1", 0, "task2__t0"), ("task1", 0, "task3__t0"), ("task1", 0, "task4__t0"),
    ]
    assert "next[0].when" in res.errors[0]["message"] and "next[1].publish.b" in res.errors[1]["message"]


def test_failing_input_default_or_vars_entry_is_a_failed_run(backend: ModuleType) -> None:
    # test_workflow_conductor_error_handling::test_workflow_input_seq_ref_error / _vars_error
    for wf, where in (
        ("version: 1.0\ninput:\n  - n: '{{ 1 / 0 }}'\ntasks:\n  a: {action: core.noop}\n", "<string>:3:"),
        ("version: 1.0\nvars:\n  - n: '{{ 1 / 0 }}'\n  - m: 1\ntasks:\n  a: {action: core.noop}\n", "<string>:3:"),
    ):
        res = engine(backend).run(wf)
        assert res.status == "failed" and res.sequence == []
        assert len(res.errors) == 1 and res.errors[0]["message"].startswith(where), res.errors
        assert res.reason == res.errors[0]["message"]


def test_join_count_runs_again_for_a_later_branch(backend: ModuleType) -> None:
    # probe of Orquesta 1.6.0: join: 2 of a, b, c; c arrives after the barrier ran: the barrier
    # is evaluated again and runs once more (no UnreachableJoinError)
    gate = threading.Event()

    def slow() -> None:
        gate.wait(5)

    def first_barrier() -> None:
        gate.set()

    wf = """
version: 1.0
tasks:
  start:
    action: core.noop
    next:
      - do: [a, b, c]
  a:
    action: core.noop
    next: [{do: barrier}]
  b:
    action: core.noop
    next: [{do: barrier}]
  c:
    action: t.slow
    next: [{do: barrier}]
  barrier:
    join: 2
    action: t.barrier
"""
    res = engine(backend, {"t.slow": slow, "t.barrier": first_barrier}).run(wf)
    assert res.status == "succeeded", res.errors
    assert res.sequence == ["start", "a", "b", "c", "barrier", "barrier"]
    assert res.errors == []


def test_failure_reason_names_what_failed_the_workflow(backend: ModuleType) -> None:
    wf = """
version: 1.0
tasks:
  a:
    action: core.fail
    next:
      - when: <% failed() %>
        do: b
  b:
    action: t.boom
"""

    def boom() -> None:
        raise RuntimeError("b broke")

    res = engine(backend, {"t.boom": boom}).run(wf)
    assert res.status == "failed"
    assert [e["task_id"] for e in res.errors] == ["a", "b"]  # Orquesta logs both
    assert res.reason == "task 'b' failed: RuntimeError: b broke"


def test_failure_reason_of_the_fail_command_names_the_task(backend: ModuleType) -> None:
    # test_workflow_error_handling::test_error_log_fail: Orquesta logs the failure under `fail`
    wf = """
version: 1.0
tasks:
  check:
    action: core.noop
    next:
      - do: fail
"""
    res = engine(backend).run(wf)
    assert res.status == "failed"
    assert res.sequence == ["check", "fail"]
    assert [e["task_id"] for e in res.errors] == ["fail"]
    assert res.reason == "task 'check' transitioned to fail"


def test_runaway_cycle_stops_at_max_tasks(backend: ModuleType) -> None:
    wf = """
version: 1.0
tasks:
  start:
    action: core.noop
    next: [{do: a}]
  a:
    action: core.noop
    next: [{do: b}]
  b:
    action: core.noop
    next: [{do: a}]
"""
    res = engine(backend, max_tasks=25).run(wf)
    assert res.status == "failed"
    assert len(res.sequence) == 25
    assert len(res.errors) == 1 and "limit of 25 task instances" in (res.reason or "")
    with pytest.raises(Exception, match="max_tasks"):
        engine(backend, max_tasks=0)


def test_default_task_cap_is_documented() -> None:
    from flowctx.engine.conductor import DEFAULT_MAX_TASKS

    assert Engine().max_tasks == DEFAULT_MAX_TASKS == 100_000


def test_pause_holds_a_task_delay_and_cancel_drops_it(backend: ModuleType) -> None:
    # the sibling of the retry delay: a task `delay` does not run out while paused either
    calls: list[str] = []
    wf = """
version: 1.0
tasks:
  a:
    action: core.noop
    next: [{do: b}]
  b:
    action: t.rec
    delay: 0.3
"""
    for then in ("resume", "cancel"):
        calls.clear()
        ex = engine(backend, {"t.rec": lambda: calls.append("b")}).start(wf)
        deadline = time.monotonic() + 5
        while len(ex.conductor.sequence) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        ex.pause()
        while ex.status != "paused" and time.monotonic() < deadline:
            time.sleep(0.005)
        assert ex.status == "paused"
        time.sleep(0.5)
        assert calls == []
        getattr(ex, then)()
        res = ex.wait(5)
        assert res.status == ("succeeded" if then == "resume" else "canceled")
        assert calls == (["b"] if then == "resume" else [])


def test_no_retry_once_the_workflow_has_failed(backend: ModuleType) -> None:
    # probe of Orquesta 1.6.0: `a` fails unhandled while `b` runs; `b` fails and is not retried
    started = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    def a() -> None:
        started.wait(5)
        raise RuntimeError("a broke")

    def b() -> None:
        calls.append("b")
        started.set()
        release.wait(5)
        raise RuntimeError("b broke")

    wf = """
version: 1.0
tasks:
  a:
    action: t.a
    next: [{when: "{{ failed() }}", do: noop}]
  a2:
    action: t.a2
  b:
    action: t.b
    retry: {count: 3}
"""

    def a2() -> None:
        started.wait(5)
        time.sleep(0.05)
        release.set()
        raise RuntimeError("a2 broke")

    res = engine(backend, {"t.a": a, "t.a2": a2, "t.b": b}, max_workers=4).run(wf)
    assert res.status == "failed"
    assert calls == ["b"]
    assert res.reason == "task 'a2' failed: RuntimeError: a2 broke"


def test_pausing_while_a_task_runs_then_paused(backend: ModuleType) -> None:
    # test_workflow_conductor_pause_and_resume::test_pause_and_resume_from_workflow: `pausing`
    # while a task still runs, `paused` once it ended, `running` again on resume
    started = threading.Event()
    release = threading.Event()

    def first() -> None:
        started.set()
        release.wait(5)

    wf = """
version: 1.0
tasks:
  a:
    action: t.first
    next: [{do: b}]
  b:
    action: core.noop
"""
    ex = engine(backend, {"t.first": first}).start(wf)
    assert started.wait(5)
    ex.pause()
    deadline = time.monotonic() + 5
    while ex.status != "pausing" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert ex.status == "pausing"
    release.set()
    while ex.status != "paused" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert ex.status == "paused"
    ex.resume()
    res = ex.wait(5)
    assert res.status == "succeeded" and res.sequence == ["a", "b"]


def test_durable_resume_replays_render_failures_and_the_task_cap(backend: ModuleType, tmp_path: Any) -> None:
    # a task that failed to render and a start the cap refused never enter the sequence; the
    # journal records them (sequence number -1) so a resume rebuilds the same run
    import sqlite3

    from flowctx.state.sqlite import SQLiteState

    gate = threading.Event()
    wf = """
version: 1.0
tasks:
  a:
    action: core.noop
    next: [{do: [b, c]}]
  b:
    action: t.slow
  c:
    action: core.echo message="{{ 1 / 0 }}"
  d:
    action: t.slow
"""
    src, dst = str(tmp_path / "s.db"), str(tmp_path / "copy.db")
    ex = Engine(actions={"t.slow": lambda: gate.wait(5)}, store=backend, state=SQLiteState(src)).start(wf)
    deadline = time.monotonic() + 5
    while ex.status == "running" and time.monotonic() < deadline:  # `failing`: c failed to render
        time.sleep(0.01)
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    gate.set()
    original = ex.wait(5)
    assert original.status == "failed" and original.sequence == ["a", "d"]
    with sqlite3.connect(dst) as c:
        c.execute("UPDATE leases SET expires = 0 WHERE execution_id = ?", (ex.execution_id,))
    res = Engine(actions={"t.slow": lambda: None}, store=backend).resume(ex.execution_id, SQLiteState(dst))
    assert (res.status, res.sequence, res.errors) == (original.status, original.sequence, original.errors)

    loop = "version: 1.0\ntasks:\n  s: {action: core.noop, next: [{do: a}]}\n" \
        "  a: {action: core.noop, next: [{do: b}]}\n  b: {action: core.noop, next: [{do: a}]}\n"
    path = str(tmp_path / "m.db")
    capped = Engine(store=backend, state=SQLiteState(path), max_tasks=10).run(loop)
    assert capped.status == "failed" and len(capped.sequence) == 10
    again = Engine(store=backend).resume(capped.execution_id, SQLiteState(path))
    assert (again.status, again.sequence) == (capped.status, capped.sequence)


def test_with_items_task_pauses_with_the_workflow(backend: ModuleType) -> None:
    # test_workflow_conductor_with_items_pause_and_resume::
    # test_pause_workflow_with_items_concurrency_and_active: the task is `pausing` while its
    # items in flight run, `paused` after (no further item starts), and runs the rest on resume
    started: list[int] = []
    release = threading.Event()

    def work(key: int) -> int:
        started.append(key)
        if key < 2:
            release.wait(5)
        return key

    ex = engine(backend, {"t.work": work}, max_workers=4).start(ITEMS.replace("CONCURRENCY", "2"))
    deadline = time.monotonic() + 5
    while len(started) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    ex.pause()
    while ex.status != "pausing" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert ex.status == "pausing" and ex.conductor.sequence[0].status == "pausing"
    release.set()
    while ex.status != "paused" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert ex.status == "paused" and ex.conductor.sequence[0].status == "paused"
    assert sorted(started) == [0, 1]
    ex.resume()
    res = ex.wait(5)
    assert res.status == "succeeded", res.reason
    assert sorted(started) == [0, 1, 2, 3] and res.task("t").result == [0, 1, 2, 3]


def test_conductor_resuming_status_until_something_starts(backend: ModuleType) -> None:
    # test_workflow_conductor::test_get_next_tasks_when_graph_paused: `resuming` after a resume,
    # `running` once a task starts
    from flowctx.engine.conductor import Conductor
    from flowctx.render import default_renderer

    spec = load_workflow("version: 1.0\ntasks:\n  a: {action: core.noop, next: [{do: b}]}\n  b: {action: core.noop}\n")
    c = Conductor(spec, {}, renderer=default_renderer(), store=backend)
    c.start()
    (a,) = c.start_ready()
    (call,) = c.calls_for(a)
    c.pause()
    assert c.status == "pausing"
    from flowctx.actions.base import Outcome

    c.call_done(call, Outcome("succeeded", None))
    assert c.status == "paused" and c.next_tasks() == []
    c.resume()
    assert c.status == "resuming"
    (b,) = c.start_ready()
    assert c.status == "running" and b.task == "b"


def test_conductor_canceling_until_the_calls_in_flight_report(backend: ModuleType) -> None:
    # test_workflow_conductor_cancel / _with_items_cancel: `canceling` while calls run (a
    # with-items task is `canceling` too), `canceled` once their outcomes arrived; an outcome
    # that arrives while canceling is recorded, and nothing after it starts
    from flowctx.actions.base import Outcome
    from flowctx.engine.conductor import Conductor
    from flowctx.render import default_renderer

    wf = """
version: 1.0
tasks:
  a:
    action: core.noop
    next: [{do: c}]
  b:
    with:
      items: "{{ [1, 2, 3] }}"
      concurrency: 2
    action: core.noop
  c:
    action: core.noop
output:
  - n: 1
"""
    c = Conductor(load_workflow(wf), {}, renderer=default_renderer(), store=backend)
    c.start()
    a, b = c.start_ready()
    (ca,) = c.calls_for(a)
    cb = c.calls_for(b)
    assert len(cb) == 2
    c.cancel()
    assert c.status == "canceling" and b.status == "canceling" and a.status == "running"
    c.call_done(ca, Outcome("succeeded", None))
    assert a.status == "succeeded" and c.status == "canceling" and c.next_tasks() == []
    c.call_done(cb[0], Outcome("canceled", None))
    assert c.calls_for(b) == []  # no more items while canceling
    c.call_done(cb[1], Outcome("canceled", None))
    assert c.status == "canceled" and b.status == "canceled"
    c.finish_canceled()
    assert c.task_sequence() == ["a", "b"] and c.output == {"n": 1} and c.errors == []


def test_a_canceled_task_execution_cancels_the_workflow(backend: ModuleType) -> None:
    # test_workflow_conductor::test_get_next_tasks_when_this_task_canceled: a task execution that
    # ends canceled (an executor's or a rehearsal mock's outcome; actions cannot return it) cancels
    # the workflow: nothing after it starts, the output is rendered
    from flowctx.actions.base import Outcome
    from flowctx.engine.conductor import Conductor
    from flowctx.render import default_renderer

    wf = "version: 1.0\noutput:\n  - done: yes\ntasks:\n  a: {action: core.noop, next: [{do: b}]}\n  b: {action: core.noop}\n"
    c = Conductor(load_workflow(wf), {}, renderer=default_renderer(), store=backend)
    c.start()
    (a,) = c.start_ready()
    (call,) = c.calls_for(a)
    c.call_done(call, Outcome("canceled", None, "stopped"))
    assert c.status == "canceled" and a.status == "canceled" and c.next_tasks() == []
    c.finish_canceled()
    assert c.task_sequence() == ["a"] and c.output == {"done": True} and c.errors == []


def test_a_failure_while_pausing_fails_the_run(backend: ModuleType) -> None:
    # test_workflow_conductor_pause_and_resume::test_pause_and_failed_with_task_transition_error
    started = threading.Event()
    release = threading.Event()

    def first() -> None:
        started.set()
        release.wait(5)

    wf = """
version: 1.0
tasks:
  a:
    action: t.first
    next:
      - when: "{{ 1 / 0 }}"
        do: b
  b:
    action: core.noop
"""
    ex = engine(backend, {"t.first": first}).start(wf)
    assert started.wait(5)
    ex.pause()
    deadline = time.monotonic() + 5
    while ex.status != "pausing" and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    res = ex.wait(5)
    assert res.status == "failed" and res.sequence == ["a"]
    assert res.errors[0]["task_transition_id"] == "b__t0"


def test_cli_run_max_tasks(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from flowctx.cli import main

    wf = tmp_path / "loop.yaml"
    wf.write_text(
        "version: 1.0\ntasks:\n  s: {action: core.noop, next: [{do: a}]}\n"
        "  a: {action: core.noop, next: [{do: b}]}\n  b: {action: core.noop, next: [{do: a}]}\n"
    )
    assert main(["run", "--json", "--max-tasks", "7", str(wf)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "failed" and len(out["tasks"]) == 7
    assert "limit of 7 task instances" in out["reason"]
    with pytest.raises(SystemExit):
        main(["run", "--max-tasks", "0", str(wf)])


def test_conductor_paused_items_task_runs_again_at_its_next_item(backend: ModuleType) -> None:
    # test_workflow_conductor_with_items_pause_and_resume::
    # test_pause_workflow_using_paused_status_with_items_concurrency: a with-items task paused
    # with no item in flight stays `paused` after the resume (the run is `resuming`) and is
    # `running` again once its next item starts
    from flowctx.actions.base import Outcome
    from flowctx.engine.conductor import Conductor
    from flowctx.render import default_renderer

    wf = 'version: 1.0\ntasks:\n  t:\n    with: {items: "{{ [1, 2, 3, 4] }}", concurrency: 2}\n    action: core.noop\n'
    c = Conductor(load_workflow(wf), {}, renderer=default_renderer(), store=backend)
    c.start()
    (t,) = c.start_ready()
    first = c.calls_for(t)
    assert [call.key for call in first] == [0, 1]
    for call in first:
        c.call_done(call, Outcome("succeeded", None))
    c.pause()
    assert c.status == "paused" and t.status == "paused" and c.calls_for(t) == []
    c.resume()
    assert c.status == "resuming" and t.status == "paused"
    rest = c.calls_for(t)
    assert [call.key for call in rest] == [2, 3]
    assert c.status == "running" and t.status == "running"
    for call in rest:
        c.call_done(call, Outcome("succeeded", None))
    c.finalize()
    assert c.status == "succeeded" and t.status == "succeeded"


def test_conductor_task_canceled_with_nothing_in_flight_is_not_terminal(backend: ModuleType) -> None:
    # test_workflow_conductor_with_items_cancel::
    # test_cancel_workflow_using_canceled_status_with_items_concurrency: a task the cancel ends
    # at once (no call in flight, so no completion) is not where its branch ended; one whose
    # call reported `canceled` is
    from flowctx.actions.base import Outcome
    from flowctx.engine.conductor import Conductor
    from flowctx.render import default_renderer

    wf = """
version: 1.0
tasks:
  a:
    action: core.noop
  b:
    with: {items: "{{ [1, 2, 3, 4] }}", concurrency: 2}
    action: core.noop
"""
    c = Conductor(load_workflow(wf), {}, renderer=default_renderer(), store=backend)
    c.start()
    a, b = c.start_ready()
    (ca,) = c.calls_for(a)
    for call in c.calls_for(b):
        c.call_done(call, Outcome("succeeded", None))
    c.cancel()
    assert c.status == "canceling" and b.status == "canceled" and a.status == "running"
    c.call_done(ca, Outcome("canceled", None))
    assert c.status == "canceled" and a.status == "canceled"
    c.finish_canceled()
    assert [i.task for i in c.sequence if i.term] == ["a"]


def test_conductor_rerun_of_a_task_requested_twice_runs_it_once(backend: ModuleType) -> None:
    # test_workflow_conductor_rerun::test_rerun_with_duplicate_task_requests: Orquesta merges
    # duplicate rerun requests, so the task gets one new sequence entry
    from flowctx.actions.base import Outcome
    from flowctx.engine.conductor import Conductor
    from flowctx.render import default_renderer

    wf = "version: 1.0\ntasks:\n  a: {action: core.noop}\n"
    c = Conductor(load_workflow(wf), {}, renderer=default_renderer(), store=backend)
    c.start()
    (a,) = c.start_ready()
    (call,) = c.calls_for(a)
    c.call_done(call, Outcome("failed", None, "boom"))
    c.finalize()
    assert c.status == "failed"
    c.rerun([("a", 0), ("a", 0)])
    assert [(st.task, st.route) for st in c.staged] == [("a", 0)]
    (again,) = c.start_ready()
    (call,) = c.calls_for(again)
    c.call_done(call, Outcome("succeeded", None))
    c.finalize()
    assert c.status == "succeeded" and c.task_sequence() == ["a", "a"]
