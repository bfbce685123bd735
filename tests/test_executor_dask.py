"""The Dask executor against real clusters: a LocalCluster of 2 worker processes (fixture), and a
`dask scheduler` plus two `dask worker` processes started as separate processes on 127.0.0.1,
each worker in its own working directory, driven through the CLI."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")  # in the test extra: installed in CI

from flowctx import Engine  # noqa: E402
from flowctx.actions import DEFAULT_REGISTRY, import_action_module  # noqa: E402
from flowctx.errors import ActionError  # noqa: E402
from flowctx.executors.dask import DaskExecutor  # noqa: E402

HERE = Path(__file__).resolve().parent
ACTIONS = HERE / "dask_actions" / "wfactions.py"

FANOUT = """\
version: 1.0
input:
  - n: 12
vars:
  - shared: "{{ range(2000) | list }}"
tasks:
  fan:
    with: "{{ range(ctx().n) }}"
    action: dtest.where
    input:
      i: "{{ item() }}"
      shared: "{{ ctx().shared }}"
output:
  - results: "{{ task('fan').results }}"
"""


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
        silence_logs=50,
    )
    c = distributed.Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def actions_loaded() -> None:
    import_action_module(str(ACTIONS))


def _engine(client: Any, backend: ModuleType, **kw: Any) -> Engine:
    return Engine(actions=DEFAULT_REGISTRY, executor=DaskExecutor(client), store=backend, **kw)


def test_with_items_runs_on_the_workers(client, actions_loaded, backend, tmp_path) -> None:
    wf = tmp_path / "fan.yaml"
    wf.write_text(FANOUT)
    res = _engine(client, backend).run(str(wf), {"n": 40})
    assert res.succeeded, res.reason
    results = res.output["results"]
    assert [r["i"] for r in results] == list(range(40))
    worker_pids = set(client.run(os.getpid).values())
    assert {r["pid"] for r in results} <= worker_pids
    assert os.getpid() not in {r["pid"] for r in results}
    assert all(r["shared"] == 2000 for r in results)  # the shared input arrived whole


def test_failures_and_timeouts_report_one_outcome_each(client, actions_loaded, backend, tmp_path) -> None:
    wf = tmp_path / "mixed.yaml"
    wf.write_text(
        "ref: dtest.mixed\n"
        "tasks:\n"
        "  - name: fan\n"
        "    action: dtest.boom\n"
        "    with_items: '{{ range(6) | list }}'\n"
        "    input: {i: '{{ item }}'}\n"
        "    on_complete: slow\n"
        "  - name: slow\n"
        "    action: dtest.sleep\n"
        "    timeout: 1\n"
        f"    input: {{seconds: 60, pidfile: '{tmp_path / 'slow.pid'}'}}\n"
    )
    res = _engine(client, backend).run(str(wf))
    assert not res.succeeded
    fan = [r for r in res.tasks if r.task == "fan"][0]
    assert "item 1 fails on purpose" in (fan.error or "") or "item 1 fails on purpose" in res.reason
    slow = [r for r in res.tasks if r.task == "slow"][0]
    assert slow.status == "timeout", slow
    # the call ran in a child process of a worker, and that child was killed: the worker is free
    pid = int((tmp_path / "slow.pid").read_text())
    assert pid not in set(client.run(os.getpid).values())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)
    assert client.submit(sum, [1, 2], pure=False).result(timeout=30) == 3


def test_an_action_the_workers_cannot_import_fails_that_call_naming_it(client, backend, tmp_path) -> None:
    mod = tmp_path / "only_here_pkg"
    (mod).mkdir()
    (mod / "__init__.py").write_text("def act(x):\n    return x\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import only_here_pkg

        ex = DaskExecutor(client)
        ex._uploaded.add("only_here_pkg")  # pretend it was installed: the worker must say it is not
        box: list[Any] = []
        ex.submit(only_here_pkg.act, {"x": 1}, on_done=box.append)
        ex.flush()
        deadline = time.monotonic() + 30
        while not box and time.monotonic() < deadline:
            time.sleep(0.02)
        assert box and box[0].status == "failed"
        assert "action 'act' cannot be imported on Dask worker tcp://127.0.0.1:" in box[0].error
        assert "only_here_pkg" in box[0].error
        ex.shutdown()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("only_here_pkg", None)


def test_lambdas_are_refused_before_the_run(client) -> None:
    ex = DaskExecutor(client)
    with pytest.raises(ActionError, match="not an importable top-level function"):
        ex.check(lambda: 1, "t")
    ex.shutdown()


def test_unreachable_scheduler_is_one_clear_error() -> None:
    port = _free_port()
    with pytest.raises(ActionError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        DaskExecutor(scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=1)


def test_cli_unreachable_scheduler_exits_2_before_any_task(tmp_path) -> None:
    wf = tmp_path / "one.yaml"
    marker = tmp_path / "ran"
    wf.write_text(f"version: 1.0\ntasks:\n  t:\n    action: core.local\n    input: {{cmd: 'touch {marker}'}}\n")
    port = _free_port()
    run = subprocess.run(
        [sys.executable, "-m", "flowctx", "run", str(wf), "--executor", "dask", "--scheduler", f"tcp://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "FLOWCTX_DASK_CONNECT_TIMEOUT": "1"},
    )
    assert run.returncode == 2, run.stderr
    assert f"tcp://127.0.0.1:{port}" in run.stderr
    assert "Traceback" not in run.stderr
    assert not marker.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return True


@pytest.fixture
def separate_cluster(tmp_path) -> Iterator[str]:
    """`dask scheduler` and two `dask worker` processes, each worker in its own directory."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    bindir = Path(sys.executable).parent
    procs = [subprocess.Popen(
        [str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )]
    try:
        for k in range(2):
            wdir = tmp_path / f"worker{k}"
            wdir.mkdir()
            procs.append(subprocess.Popen(
                [str(bindir / "dask"), "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                 "--host", "127.0.0.1", "--local-directory", str(wdir)],
                cwd=wdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
            ))
        with distributed.Client(address, timeout=60, set_as_default=False) as c:
            c.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_cli_with_items_on_separate_scheduler_and_workers(separate_cluster, tmp_path) -> None:
    wf = tmp_path / "fan.yaml"
    wf.write_text(FANOUT)
    run = subprocess.run(
        [sys.executable, "-m", "flowctx", "run", str(wf), "-p", "n=20", "--executor", "dask",
         "--scheduler", separate_cluster, "--actions", str(ACTIONS), "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    results = doc["output"]["results"]
    assert [r["i"] for r in results] == list(range(20))
    cwds = {r["cwd"] for r in results}
    assert cwds <= {str(tmp_path / "worker0"), str(tmp_path / "worker1")}, cwds  # ran in the workers
    assert len({r["pid"] for r in results}) >= 1


def test_a_lost_worker_fails_its_calls_naming_the_worker(backend, tmp_path) -> None:
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
            silence_logs=50,
        )
        client = distributed.Client(cluster, set_as_default=False)
        try:
            import_action_module(str(ACTIONS))
            pidfile = tmp_path / "worker.pid"
            ex = DaskExecutor(client)
            box: list[Any] = []
            from wfactions import sleep as sleep_action

            ex.submit(sleep_action, {"seconds": 60, "pidfile": str(pidfile)}, on_done=box.append)
            ex.flush()
            deadline = time.monotonic() + 60
            while not pidfile.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(int(pidfile.read_text()), signal.SIGKILL)  # the worker process itself
            while not box and time.monotonic() < deadline:
                time.sleep(0.05)
            assert box and box[0].status == "failed"
            assert "the Dask worker running it was lost" in box[0].error
            assert "tcp://127.0.0.1:" in box[0].error
            ex.shutdown()
        finally:
            client.close()
            cluster.close()


def test_durable_run_on_dask(client, actions_loaded, backend, tmp_path) -> None:
    from flowctx.state import SQLiteState

    wf = tmp_path / "fan.yaml"
    wf.write_text(FANOUT)
    db = str(tmp_path / "runs.db")
    res = Engine(actions=DEFAULT_REGISTRY, executor=DaskExecutor(client), store=backend, state=db).run(str(wf), {"n": 15})
    assert res.succeeded, res.reason
    st = SQLiteState(db)
    try:
        rows = [r for r in st.task_executions(res.execution_id) if r["task"] == "fan" and r["status"] == "succeeded"]
        assert sorted(r["item_key"] for r in rows) == list(range(15))
        assert st.get_execution(res.execution_id)["status"] == "succeeded"
    finally:
        st.close()


@pytest.mark.parametrize("isolate", ["timeout", "always"])
def test_a_result_the_engine_cannot_unpickle_fails_that_call_alone(client, actions_loaded, backend, isolate) -> None:
    """Outcomes were pickled per chunk: one result the engine could not unpickle failed every
    call of its chunk (other tasks' calls too) with a CRITICAL traceback from Dask; now each
    call's outcome is unpickled on its own."""
    import threading

    from flowctx.actions.base import FAILED, SUCCEEDED

    func = DEFAULT_REGISTRY.resolve("dtest.unloadable").func
    ex = DaskExecutor(client, isolate=isolate)
    n = 40 if isolate == "timeout" else 4  # 40: several calls per Dask task
    got: dict[int, Any] = {}
    done = threading.Event()

    def on_done(i: int) -> Any:
        def f(outcome: Any) -> None:
            got[i] = outcome
            if len(got) == n:
                done.set()
        return f

    try:
        for i in range(n):
            ex.submit(func, {"i": i, "tag": backend.freeze([i])}, on_done=on_done(i))
        ex.flush()
        assert done.wait(120)
    finally:
        ex.shutdown()
    bad = got.pop(1)
    assert bad.status == FAILED and "cannot be received from the worker" in bad.error, bad
    assert "ValueError" in bad.error
    assert {i: (o.status, o.result) for i, o in got.items()} == {i: (SUCCEEDED, i) for i in got}


def test_cli_scheduler_without_dask_is_a_usage_error(tmp_path) -> None:
    wf = tmp_path / "one.yaml"
    wf.write_text("version: 1.0\ntasks:\n  t:\n    action: core.noop\n")
    run = subprocess.run([sys.executable, "-m", "flowctx", "run", str(wf), "--scheduler", "tcp://127.0.0.1:1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip() == "flowctx: error: --scheduler needs --executor dask (the thread executor runs on this machine)"
