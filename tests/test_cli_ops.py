"""CLI consistency and operations: option names, early refusals, secrets, the seed examples,
``--config``, the key-value store, the metrics endpoint, graph pictures (issues 12.7, 12.9,
12.10, 16.1, 16.3, 16.4)."""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from _backend_env import env_for
from flowctx.actions import DEFAULT_REGISTRY
from flowctx.cli import build_parser, main
from flowctx.state import SQLiteState

ROOT = Path(__file__).resolve().parents[1]
ATTUNE = ROOT / "tests" / "conformance" / "attune"


@pytest.fixture(autouse=True)
def _restore_registry():
    """--actions modules may add or replace actions: put the registry and sys.modules back."""
    before = dict(DEFAULT_REGISTRY._actions)
    modules = set(sys.modules)
    path = list(sys.path)
    yield
    DEFAULT_REGISTRY._actions.clear()
    DEFAULT_REGISTRY._actions.update(before)
    added = {os.path.abspath(p) for p in sys.path if p not in path}
    for name in set(sys.modules) - modules:
        file = getattr(sys.modules[name], "__file__", None) or ""
        if os.path.dirname(os.path.abspath(file)) in added:
            del sys.modules[name]
    sys.path[:] = path


@pytest.fixture(autouse=True)
def _kv_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the user's ~/.flowctx/kv.json."""
    monkeypatch.setenv("FLOWCTX_KV", str(tmp_path / "default-kv.json"))


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)




def flowctx(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowctx", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


RECORDER = '''
import os
import flowctx

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log")


@flowctx.action("ops.record")
def record(x=None):
    with open(LOG, "a") as fh:
        fh.write(repr(x) + "\\n")
    return {"x": x}
'''


# ============================================================ 12.7 CLI consistency
def test_run_and_resume_name_the_pool_size_the_same_way(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    run = parser.parse_args(["run", "wf.yaml", "--workers", "3"])
    resume = parser.parse_args(["resume", "abc", "--state", "x.db", "--workers", "3"])
    old = parser.parse_args(["resume", "abc", "--state", "x.db", "--max-workers", "4"])
    assert run.workers == resume.workers == 3 and old.workers == 4
    with pytest.raises(SystemExit):
        main(["resume", "--help"])
    text = capsys.readouterr().out
    assert "--workers N" in text and "--max-workers" not in text  # the alias works but is not advertised
    with pytest.raises(SystemExit):
        parser.parse_args(["resume", "abc", "--state", "x.db", "--workers", "0"])


def test_rehearse_help_names_paths_that_exist(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["rehearse", "--help"])
    text = capsys.readouterr().out
    paths = re.findall(r"^  flowctx rehearse (\S+)", text, re.M)
    assert paths
    for p in paths:
        assert (ROOT / p).exists(), p
    assert main(["rehearse", paths[0]]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out


def test_answer_for_an_unknown_task_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "ops_rec.py", RECORDER)
    wf = write(tmp_path, "inq.yaml", """\
        version: 1.0
        tasks:
          first:
            action: ops.record x=1
            next: [{do: approve}]
          approve:
            action: core.inquiry
        """)
    code = main(["run", wf, "--actions", str(tmp_path / "ops_rec.py"), "--answer", "aprove={ok: true}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no task 'aprove'" in err and "did you mean 'approve'?" in err
    assert not (tmp_path / "calls.log").exists()
    assert main(["run", wf, "--actions", str(tmp_path / "ops_rec.py"), "--answer", "approve={ok: true}",
                 "--json"]) == 0


def test_answer_for_a_task_of_a_sub_workflow_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "child.yaml", """\
        version: 1.0
        tasks:
          ask:
            action: core.inquiry
            next: [{publish: [{a: "{{ result() }}"}]}]
        output: [{a: "{{ ctx().a }}"}]
        """)
    wf = write(tmp_path, "parent.yaml", """\
        ref: t.parent
        tasks:
          - name: sub
            type: workflow
            workflow: child.yaml
        output_map:
          a: "{{ task.sub.result.a }}"
        """)
    assert main(["run", wf, "--answer", "ask=yes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == {"a": "yes"}


def test_a_broken_list_or_mapping_parameter_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "ops_rec.py", RECORDER)
    wf = write(tmp_path, "xs.yaml", """\
        version: 1.0
        input:
          - xs: []
          - opts
        tasks:
          t:
            with: "{{ ctx().xs }}"
            action: ops.record x="{{ item() }}"
        output: [{opts: "{{ ctx().opts }}"}]
        """)
    mod = str(tmp_path / "ops_rec.py")
    assert main(["run", wf, "--actions", mod, "-p", "xs=[a"]) == 2
    err = capsys.readouterr().err
    assert "parameter 'xs'" in err and "'[a'" in err
    assert main(["run", wf, "--actions", mod, "-p", "opts={k: v"]) == 2  # no default: still refused
    err = capsys.readouterr().err
    assert "parameter 'opts'" in err and "not valid YAML" in err and "quote it" in err
    assert not (tmp_path / "calls.log").exists()
    # a list default makes the parameter an array: a,b works, and quoting keeps a string
    assert main(["run", wf, "--actions", mod, "-p", "xs=a,b", "-p", "opts='{k: v'", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "succeeded" and doc["output"] == {"opts": "{k: v"}
    assert sorted((tmp_path / "calls.log").read_text().split()) == ["'a'", "'b'"]  # items run in parallel


def test_actions_replacing_a_built_in_is_never_silent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "my_echo.py", """\
        import flowctx

        @flowctx.action("core.echo")
        def echo(message=""):
            return {"stdout": "mocked " + str(message)}
        """)
    wf = write(tmp_path, "e.yaml", """\
        version: 1.0
        tasks:
          t:
            action: core.echo message=hi
            next: [{publish: [{out: "{{ result().stdout }}"}]}]
        output: [{out: "{{ ctx().out }}"}]
        """)
    assert main(["run", wf, "--actions", str(tmp_path / "my_echo.py"), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "flowctx: warning: --actions" in err and "replaces the built-in action 'core.echo'" in err
    assert json.loads(out)["output"] == {"out": "mocked hi"}  # warned, and the replacement is used


STEPS_WF = """\
version: 1.0
tasks:
  fan:
    with: {items: "{{ range(3) }}", concurrency: 1}
    action: ops.step i="{{ item() }}"
"""


def interrupted_copy(tmp_path: Path, backend: ModuleType, dead: float = 0.0, workflow: str = STEPS_WF,
                     renderer: Any = None) -> tuple[str, str]:
    """A durable run stopped after its first item: a consistent copy of its database with the
    lease orphaned; with ``dead``, every recorded time is moved ``dead`` seconds into the past
    (the process "died" that long ago)."""
    import threading

    from flowctx import Engine

    gate = threading.Event()
    seen: list[int] = []

    def step(i: int) -> int:
        seen.append(i)
        if i >= 1:
            gate.wait(10)
        return i

    wf = write(tmp_path, "steps.yaml", workflow)
    db = str(tmp_path / "live.db")
    st = SQLiteState(db, batch_size=1, flush_interval=0.0)
    ex = Engine(actions={"ops.step": step}, store=backend, state=st, renderer=renderer).start(wf)
    try:
        deadline = time.monotonic() + 20
        while len(st.task_executions(ex.execution_id)) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        copy = str(tmp_path / "crashed.db")
        with sqlite3.connect(db) as a, sqlite3.connect(copy) as b:
            a.backup(b)
    finally:
        gate.set()
    assert ex.wait(20).succeeded
    st.close()
    with sqlite3.connect(copy) as c:
        c.execute("UPDATE leases SET expires = 0")
        if dead:
            c.execute("UPDATE executions SET created = created - ?, updated = updated - ?", (dead, dead))
            c.execute("UPDATE task_executions SET started = started - ?, finished = finished - ?", (dead, dead))
            c.execute("UPDATE task_instances SET started = started - ?, finished = finished - ?", (dead, dead))
    return copy, ex.execution_id


def test_resuming_a_finished_execution_says_there_is_nothing_to_do(
    backend: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, eid = interrupted_copy(tmp_path, backend)
    DEFAULT_REGISTRY.register("ops.step", lambda i: i)
    assert main(["resume", eid, "--state", db]) == 0
    assert "resumed:" in capsys.readouterr().out
    assert main(["resume", eid, "--state", db]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"execution {eid} already succeeded (finished ") and "nothing to resume" in out
    assert "resumed:" not in out
    assert main(["resume", eid, "--state", db, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["resumed"] is False and doc["status"] == "succeeded"


def test_list_and_show_durations_leave_out_the_time_the_process_was_dead(
    backend: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, eid = interrupted_copy(tmp_path, backend, dead=3600.0)
    assert main(["list", "--state", db, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["state"] == "interrupted" and row["duration"].endswith("(interrupted)")
    assert row["running_seconds"] < 600  # not the hour since it "died"
    DEFAULT_REGISTRY.register("ops.step", lambda i: i)
    assert main(["resume", eid, "--state", db]) == 0
    capsys.readouterr()
    assert main(["show", eid, "--state", db, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["resumes"] == 1
    assert info["stopped_seconds"] > 3000 and info["running_seconds"] < 600
    (fan,) = info["tasks"]  # started before the "crash", finished after the resume
    assert fan["duration"] < 600
    assert main(["show", eid, "--state", db]) == 0
    text = " ".join(capsys.readouterr().out.split())  # rich may wrap the line at any width
    assert "stopped, resumed 1x" in text
    assert main(["list", "--state", db]) == 0
    assert "resumed 1x" in " ".join(capsys.readouterr().out.split())


def test_resume_reads_the_key_value_store_and_config_again(
    backend: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowctx import Renderer

    wf = STEPS_WF + """\
    next: [{do: greet}]
  greet:
    action: core.echo message="{{ kv('greeting') }} from {{ config.site }}"
    next: [{publish: [{said: "{{ result().message }}"}]}]
output: [{said: "{{ ctx().said }}"}]
"""
    values = {"greeting": "hello"}
    db, eid = interrupted_copy(tmp_path, backend, workflow=wf,
                               renderer=Renderer(keystore=values, config={"site": "lab"}))
    kv = str(tmp_path / "kv.json")
    assert main(["kv", "set", "greeting", "hello", "--kv", kv]) == 0
    config = write(tmp_path, "config.yaml", "site: lab\n")
    DEFAULT_REGISTRY.register("ops.step", lambda i: i)
    capsys.readouterr()
    assert main(["resume", eid, "--state", db, "--kv", kv, "--config", config, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == {"said": "hello from lab"}
    assert main(["resume", eid, "--state", db, "--kv", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert "--kv" in err and "no such file" in err


# ============================================================ 12.9 secrets
SECRET_WF = """\
ref: t.secret
parameters:
  token: {type: string, secret: true, required: true}
  user: {type: string, default: ada}
tasks:
  - name: use
    action: core.echo
    input:
      message: "login {{ parameters.user }} with {{ parameters.token }}"
    on_success: boom
  - name: boom
    action: core.fail
    input:
      message: "rejected token {{ parameters.token }}"
output_map:
  said: "{{ task.use.result.message }}"
  token: "{{ parameters.token }}"
"""


def test_secret_parameters_are_masked_in_everything_displayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wf = write(tmp_path, "secret.yaml", SECRET_WF)
    db = str(tmp_path / "runs.db")
    token = "hunter2-very-secret"
    assert main(["run", wf, "-p", f"token={token}", "--state", db, "--json", "--results"]) == 1
    out, err = capsys.readouterr()
    assert token not in out and token not in err
    doc = json.loads(out)
    assert doc["output"] == {"said": "login ada with ********", "token": "********"}
    assert "rejected token ********" in err
    assert main(["run", wf, "-p", f"token={token}"]) == 1  # plain output
    out, err = capsys.readouterr()
    assert token not in out + err and "********" in out
    eid = doc["execution_id"]
    for args in (["show", eid, "--state", db], ["show", eid, "--state", db, "--json"],
                 ["list", "--state", db], ["resume", eid, "--state", db]):
        assert main(args) == 0
        out, err = capsys.readouterr()
        assert token not in out + err, args
    assert main(["show", eid, "--state", db, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == {"token": "********", "user": "ada"}
    assert info["output"]["token"] == "********"
    # stored as it is (resume needs it), in a file only its owner can read
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    with sqlite3.connect(db) as c:
        (params,) = c.execute("SELECT parameters FROM executions").fetchone()
    assert token in params
    exported, other = str(tmp_path / "x.json"), str(tmp_path / "other.db")
    assert main(["export", eid, "--state", db, "-o", exported]) == 0  # a faithful copy, for moving state
    assert main(["import", exported, "--state", other]) == 0
    assert stat.S_IMODE(os.stat(other).st_mode) == 0o600
    capsys.readouterr()
    assert main(["show", eid, "--state", other]) == 0
    assert token not in capsys.readouterr().out


def test_secret_key_values_are_masked_in_show_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kv = str(tmp_path / "kv.json")
    assert main(["kv", "set", "api_token", "tok-abcdef-123", "--secret", "--kv", kv]) == 0
    capsys.readouterr()
    wf = write(tmp_path, "k.yaml", """\
        version: 1.0
        tasks:
          t:
            action: core.echo message="token {{ kv('api_token') }}"
            next: [{publish: [{said: "{{ result().message }}"}]}]
        output: [{said: "{{ ctx().said }}"}]
        """)
    db = str(tmp_path / "runs.db")
    assert main(["run", wf, "--kv", kv, "--state", db, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["output"] == {"said": "token ********"}
    assert main(["show", doc["execution_id"], "--state", db, "--kv", kv]) == 0
    out = capsys.readouterr().out
    assert "tok-abcdef-123" not in out and "token ********" in out


# ============================================================ 12.10 the seed examples, --config
SEED_ACTIONS = '''
import os
import flowctx
from flowctx.spec import load_workflow

HERE = {here!r}


def generic(**inputs):
    text = inputs.get("text", "")
    return {{
        "text": str(text).upper() if inputs.get("uppercase") else text,
        "id": "dep-1", "approved": True, "image_name": "img", "image_uri": "reg/img:1",
        "health_url": "https://%s.example/health" % inputs.get("region", "x"),
        "success": True, "failed_regions": [], "summary": "ok", "violations": [],
        "registry_seen": inputs.get("registry"),
    }}


for wf in ("simple-workflow.yaml", "complete-workflow.yaml"):
    spec = load_workflow(os.path.join(HERE, wf), validate=False)
    for task in spec.tasks.values():
        for t in (task, *task.subtasks):
            if t.action and not t.action.startswith("core.") and t.action not in flowctx.actions.DEFAULT_REGISTRY:
                flowctx.action(t.action)(generic)
'''


def test_the_seed_examples_run_through_the_cli(backend: ModuleType, tmp_path: Path) -> None:
    mod = write(tmp_path, "seed_actions.py", SEED_ACTIONS.format(here=str(ATTUNE)))
    env = env_for(backend)
    res = flowctx("run", str(ATTUNE / "simple-workflow.yaml"), "--actions", mod,
                  "-p", "message=hello", "-p", "uppercase=true", "--json", env=env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["output"] == {"original": "hello", "processed": "HELLO",
                             "final": "Workflow complete. Result: HELLO"}
    assert "warning" not in res.stderr  # the module replaces nothing
    config = write(tmp_path, "config.yaml", "docker_registry: registry.local:5000\n")
    # complete-workflow.yaml sends deploy_canary's failure to a task it never defines: like
    # Orquesta, flowctx refuses a transition to an unknown task, so run a copy that names one
    text = (ATTUNE / "complete-workflow.yaml").read_text()
    assert "on_failure: handle_canary_failure" in text
    refused = flowctx("run", str(ATTUNE / "complete-workflow.yaml"), "--actions", mod, env=env)
    assert refused.returncode == 2 and "transition to unknown task 'handle_canary_failure'" in refused.stderr
    complete = write(tmp_path, "complete-workflow.yaml",
                     text.replace("on_failure: handle_canary_failure", "on_failure: rollback_canary"))
    res = flowctx("run", complete, "--actions", mod, "--config", config,
                  "-p", "app_name=shop", "-p", "version=1.2.3", "-p", "environment=production",
                  "-p", "regions=eu-1,us-2", "--answer", "require_production_approval={approved: true}",
                  "--json", "--results", env=env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["output"]["status"] == "success" and doc["output"]["deployed_version"] == "1.2.3"
    tasks = {t["task"]: t for t in doc["tasks"]}
    assert tasks["require_production_approval"]["result"] == {"approved": True}
    assert tasks["build_and_test"]["result"]["registry_seen"] == "registry.local:5000"  # pack.config
    assert doc["tasks"][-1]["task"] == "notify_deployment_success"


def test_config_file_errors_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, "c.yaml", """\
        version: 1.0
        tasks:
          t: {action: core.noop}
        output: [{r: "{{ config.region }}"}, {p: "{{ pack.config.region }}"}]
        """)
    assert main(["run", wf, "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "--config" in capsys.readouterr().err
    bad = write(tmp_path, "bad.yaml", "- a\n- b\n")
    assert main(["run", wf, "--config", bad]) == 2
    assert "expected a mapping" in capsys.readouterr().err
    good = write(tmp_path, "good.json", '{"region": "eu-1"}')
    assert main(["run", wf, "--config", good, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == {"r": "eu-1", "p": "eu-1"}


# ============================================================ 16.1 key-value store
KV_WF = """\
version: 1.0
tasks:
  t:
    action: core.echo message="{{ st2kv('system.greeting') }}, {{ kv('user') }} ({{ kv('token') }})"
    next: [{publish: [{said: "{{ result().message }}"}, {hosts: "{{ st2kv('system.hosts') }}"}]}]
output: [{said: "{{ ctx().said }}"}, {hosts: "{{ ctx().hosts }}"}]
"""


@pytest.mark.parametrize("store", ["kv.json", "state.db"])
def test_kv_commands_and_workflows_reading_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], store: str
) -> None:
    kv = str(tmp_path / store)
    if store.endswith(".db"):
        SQLiteState(kv).close()  # an existing state database
    for args in (["greeting", "hello"], ["user", "ada"], ["hosts", "[web1, web2]"],
                 ["token", "tok-1234567", "--secret"]):
        assert main(["kv", "set", *args, "--kv", kv]) == 0
    capsys.readouterr()
    assert main(["kv", "get", "hosts", "--kv", kv]) == 0
    assert json.loads(capsys.readouterr().out) == ["web1", "web2"]
    assert main(["kv", "get", "token", "--kv", kv]) == 0
    assert capsys.readouterr().out.strip() == "********"
    assert main(["kv", "get", "token", "--kv", kv, "--reveal"]) == 0
    assert capsys.readouterr().out.strip() == "tok-1234567"
    assert main(["kv", "list", "--kv", kv]) == 0
    listing = capsys.readouterr().out
    assert "greeting" in listing and "hello" in listing and "tok-1234567" not in listing
    assert main(["kv", "list", "--kv", kv, "--json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["token"] == {**rows["token"], "value": "********", "secret": True}
    assert main(["kv", "get", "gretting", "--kv", kv]) == 2
    assert "did you mean 'greeting'?" in capsys.readouterr().err

    wf = write(tmp_path, "kv.yaml", KV_WF)
    assert main(["run", wf, "--kv", kv, "--json"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert doc["output"] == {"said": "hello, ada (********)", "hosts": ["web1", "web2"]}
    assert "tok-1234567" not in out

    assert main(["kv", "delete", "user", "--kv", kv]) == 0
    assert main(["kv", "delete", "user", "--kv", kv]) == 2
    capsys.readouterr()
    assert main(["run", wf, "--kv", kv]) == 1  # an unknown key fails the task, naming the key
    err = capsys.readouterr().err
    assert "kv('user'): no key 'user' in the key-value store" in err and "task 't'" in err
    if store.endswith(".db"):
        assert main(["list", "--state", kv]) == 0  # still a valid state file
    assert stat.S_IMODE(os.stat(kv).st_mode) == 0o600 or store.endswith(".db")
    fresh = str(tmp_path / "fresh.db")  # a new .db path becomes a state file only its owner reads
    assert main(["kv", "set", "k", "v", "--kv", fresh]) == 0
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o600
    assert main(["list", "--state", fresh]) == 0


def test_kv_default_store_and_bad_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kv", "set", "n", "42"]) == 0  # FLOWCTX_KV (the fixture) names the default store
    assert json.loads((tmp_path / "default-kv.json").read_text())["keys"]["n"]["value"] == 42
    assert main(["kv", "set", "s", "42", "--string"]) == 0
    assert main(["kv", "get", "s", "--json"]) == 0
    capsys.readouterr()
    assert main(["kv", "set", "x", "[a"]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("[1, 2]")
    assert main(["kv", "list", "--kv", str(tmp_path / "junk.json")]) == 2
    assert "not a flowctx key-value file" in capsys.readouterr().err
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE t (x)")
    assert main(["kv", "list", "--kv", str(other)]) == 2
    assert "not a flowctx state file" in capsys.readouterr().err


# ============================================================ 16.3 metrics endpoint
METRICS_WF = """\
version: 1.0
tasks:
  warm:
    with: "{{ range(5) }}"
    action: core.noop
    next: [{do: wait}]
  wait:
    action: ops.wait_for_file
"""

WAITER = '''
import os
import time
import flowctx

HERE = os.path.dirname(os.path.abspath(__file__))


@flowctx.action("ops.wait_for_file")
def wait_for_file():
    open(os.path.join(HERE, "waiting"), "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(HERE, "go")):
        if time.monotonic() > deadline:
            raise RuntimeError("the test never said go")
        time.sleep(0.02)
    return "done"
'''


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """The samples of a Prometheus text page: (name, labels, value)."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, line
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def sample(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_metrics_port_serves_prometheus_metrics_while_the_run_lasts(backend: ModuleType, tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client")
    mod = write(tmp_path, "waiter.py", WAITER)
    wf = write(tmp_path, "m.yaml", METRICS_WF)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowctx", "run", wf, "--actions", mod, "--metrics-port", "0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for(backend),
    )
    try:
        line = proc.stderr.readline()  # printed before the run starts
        m = re.match(r"flowctx: metrics on (http://127\.0\.0\.1:(\d+)/metrics)", line)
        assert m, line
        url, port = m.group(1), int(m.group(2))
        deadline = time.monotonic() + 60
        while not (tmp_path / "waiting").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        samples = scrape(url)
        info = [lab for n, lab, _v in samples if n == "flowctx_execution_info"]
        assert len(info) == 1 and info[0]["status"] == "running" and info[0]["workflow"] == "m", info
        eid = info[0]["execution_id"]
        assert sample(samples, "flowctx_execution_tasks", execution_id=eid, status="running") == 1  # wait
        assert sample(samples, "flowctx_execution_tasks", execution_id=eid, status="succeeded") == 1  # warm
        assert sample(samples, "flowctx_execution_items_run_total", execution_id=eid, workflow="m") == 5
        assert sample(samples, "flowctx_execution_item_contexts_total", execution_id=eid) >= 5
        assert sample(samples, "flowctx_execution_renders_total", execution_id=eid) >= 1
        assert sample(samples, "flowctx_execution_elapsed_seconds", execution_id=eid) >= 0
        (tmp_path / "go").touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out)["status"] == "succeeded"
    with pytest.raises(OSError):  # the endpoint lived as long as the run
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)


def test_metrics_port_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    wf = write(tmp_path, "n.yaml", "version: 1.0\ntasks:\n  t: {action: core.noop}\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        assert main(["run", wf, "--metrics-port", str(busy)]) == 2
    assert f"--metrics-port {busy}: cannot listen on 127.0.0.1:{busy}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", wf, "--metrics-port", "70000"])


def test_metrics_port_without_prometheus_client_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = write(tmp_path, "n.yaml", "version: 1.0\ntasks:\n  t: {action: core.noop}\n")
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails as if not installed
    assert main(["run", wf, "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "flowctx: error: --metrics-port needs prometheus_client: pip install 'flowctx[metrics]'\n"


def test_embedders_choose_the_prometheus_registry(backend: ModuleType) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    from flowctx import Engine
    from flowctx.state import metrics

    mine = prometheus_client.CollectorRegistry()
    assert metrics.export_prometheus("succeeded", {"items_run": 3}, registry=mine)
    assert mine.get_sample_value("flowctx_items_run_total") == 3
    assert mine.get_sample_value("flowctx_executions_total", {"status": "succeeded"}) == 1
    global_before = prometheus_client.REGISTRY.get_sample_value("flowctx_items_run_total") or 0
    previous = metrics.use_registry(mine)
    try:
        res = Engine(store=backend).run("version: 1.0\ntasks:\n  t:\n    with: '{{ range(4) }}'\n    action: core.noop\n")
        assert res.succeeded
    finally:
        metrics.use_registry(previous)
    assert mine.get_sample_value("flowctx_items_run_total") == 7
    assert (prometheus_client.REGISTRY.get_sample_value("flowctx_items_run_total") or 0) == global_before


# ============================================================ 16.4 graph pictures
GRAPH_WF = """\
version: 1.0
tasks:
  fetch:
    action: core.echo message=hi
    next:
      - when: "{{ succeeded() }}"
        do: build
      - when: "{{ failed() }}"
        do: alert
  build:
    action: core.fail
  alert:
    action: core.noop
"""


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed (apt-get install graphviz)")
@pytest.mark.parametrize("fmt, magic", [("svg", b"<svg"), ("png", b"\x89PNG\r\n\x1a\n")])
def test_graph_pictures_with_graphviz(tmp_path: Path, fmt: str, magic: bytes) -> None:
    wf = write(tmp_path, "g.yaml", GRAPH_WF)
    out = tmp_path / f"g.{fmt}"
    res = flowctx("graph", wf, "--format", fmt, "-o", str(out))
    assert res.returncode == 0, res.stderr
    data = out.read_bytes()
    assert magic in data[:400]
    if fmt == "svg":
        assert b"fetch" in data and b"build" in data
    res = subprocess.run([sys.executable, "-m", "flowctx", "graph", wf, "--format", fmt], capture_output=True,
                         check=False)
    assert res.returncode == 0 and res.stdout == data  # the same picture on standard output


def test_graph_picture_without_graphviz_is_one_clear_line(tmp_path: Path) -> None:
    wf = write(tmp_path, "g.yaml", GRAPH_WF)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = dict(os.environ, PATH=str(empty))
    env.pop("FLOWCTX_DOT", None)
    res = flowctx("graph", wf, "--format", "svg", "-o", str(tmp_path / "x.svg"), env=env)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "Graphviz" in res.stderr and "not installed" in res.stderr
    assert "--format dot" in res.stderr and not (tmp_path / "x.svg").exists()
    res = flowctx("graph", wf, "--format", "dot", env=env)  # the text formats need nothing
    assert res.returncode == 0 and res.stdout.startswith("digraph")


def test_graph_status_colours_tasks_by_an_execution(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, "g.yaml", GRAPH_WF)
    db = str(tmp_path / "runs.db")
    assert main(["run", wf, "--state", db, "--json"]) == 1
    eid = json.loads(capsys.readouterr().out)["execution_id"]
    assert main(["graph", wf, "--format", "dot", "--status", eid, "--state", db]) == 0
    dot = capsys.readouterr().out
    assert re.search(r'fetch \[label="fetch\\ncore.echo\\n\[succeeded\]", style="rounded,filled", '
                     r'fillcolor="#c8e6c9"', dot)
    assert re.search(r'build \[label="build\\ncore.fail\\n\[failed\]".*fillcolor="#ffcdd2"', dot)
    assert re.search(r'alert \[label="alert\\ncore.noop\\n\[not run\]"', dot)
    assert main(["graph", wf, "--status", eid, "--state", db]) == 0
    mermaid = capsys.readouterr().out
    assert "class fetch st_succeeded;" in mermaid and "class build st_failed;" in mermaid
    par = write(tmp_path, "par.yaml", """\
        ref: t.par
        tasks:
          - name: p
            type: parallel
            tasks:
              - {name: x, action: core.noop}
              - {name: y, action: core.fail}
            on_complete: done
          - {name: done, action: core.noop}
        """)
    assert main(["run", par, "--state", db, "--json"]) == 0
    pid = json.loads(capsys.readouterr().out)["execution_id"]
    assert main(["graph", par, "--format", "dot", "--status", pid, "--state", db]) == 0
    dot = capsys.readouterr().out
    for name, status in (("p", "failed"), ("x", "succeeded"), ("y", "failed"), ("done", "succeeded")):
        assert re.search(rf'\b{name} \[label="[^"]*\[{status}\]"', dot), (name, dot)
    assert main(["graph", wf, "--status", "nope", "--state", db]) == 2
    assert "no execution 'nope'" in capsys.readouterr().err
    assert main(["graph", wf, "--status", eid]) == 2
    assert "--status needs --state" in capsys.readouterr().err
