"""Head-to-head: Orquesta 1.6 and flowctx on the same with-items workflow, per item, same run.

    ORQUESTA_PYTHON=/path/to/venv/bin/python python benchmarks/orquesta_compare.py [--kb 1000]

Orquesta 1.6 is not on PyPI (PyPI has 1.2, which does not import on Python 3.11): install it from
its source (github.com/StackStorm/orquesta, tag v1.6.0) into a virtualenv of its own, e.g.
``python3.10 -m venv /tmp/oq && /tmp/oq/bin/pip install ./orquesta`` (its requirements.txt pins
Jinja2<3.1 and jsonschema<=3.2), and point ``ORQUESTA_PYTHON`` at that interpreter.  Without it the
script says so and runs only the flowctx side.

The workflow: an input ``blob`` of ``--kb`` records of ~1 KB (1 MB by default) and one task
``fan`` that runs ``core.noop`` over N items, each rendering one input that reads the blob.  Orquesta is
driven through its own conductor API (``WorkflowConductor``: start, ``get_next_tasks``, then a
running and a succeeded event per item, as its unit tests drive it) in a subprocess of
``ORQUESTA_PYTHON``; flowctx runs the same definition through ``Engine`` with the inline executor
(no thread hand-offs: both sides measure the engine, not the actions).  Printed: seconds per item
for Orquesta at N = 10 and 30, flowctx at the same N and at 10,000, and the ratio at each N.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

WORKFLOW = """\
version: 1.0
input:
  - blob
  - n
tasks:
  fan:
    with: "{{{{ range(ctx().n) | list }}}}"
    action: core.noop
    input:
      value: "{{{{ ctx().blob.records[item() % (ctx().blob.records | length)].name }}}}"
"""

# Runs under ORQUESTA_PYTHON: our driver of Orquesta's public conductor API (no Orquesta code here).
DRIVER = textwrap.dedent('''
    import json, sys, time
    from orquesta import conducting, events, statuses
    from orquesta.specs import native as native_specs

    n, kb, wf = int(sys.argv[1]), int(sys.argv[2]), sys.stdin.read()
    blob = {"records": [{"name": "r%d" % i, "pad": "x" * 1000} for i in range(kb)]}
    spec = native_specs.WorkflowSpec(wf)
    assert spec.inspect() == {}, spec.inspect()
    started = time.perf_counter()
    conductor = conducting.WorkflowConductor(spec, inputs={"blob": blob, "n": n})
    conductor.request_workflow_status(statuses.RUNNING)
    tasks = conductor.get_next_tasks()
    assert [t["id"] for t in tasks] == ["fan"] and len(tasks[0]["actions"]) == n
    for i in range(n):
        conductor.update_task_state("fan", 0, events.TaskItemActionExecutionEvent(i, statuses.RUNNING))
    for i in range(n):
        conductor.update_task_state(
            "fan", 0, events.TaskItemActionExecutionEvent(i, statuses.SUCCEEDED, result=i)
        )
    assert conductor.get_workflow_status() == statuses.SUCCEEDED, conductor.get_workflow_status()
    took = time.perf_counter() - started
    print(json.dumps({"n": n, "seconds": took}))
''')


def orquesta_per_item(python: str, n: int, kb: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(DRIVER)
        script = fh.name
    try:
        run = subprocess.run(
            [python, script, str(n), str(kb)], input=WORKFLOW.format(), capture_output=True, text=True, timeout=3600,
        )
    finally:
        os.unlink(script)
    if run.returncode != 0:
        raise SystemExit(f"orquesta_compare: the Orquesta side failed:\n{run.stderr.strip()}")
    return float(json.loads(run.stdout.strip().splitlines()[-1])["seconds"]) / n


def flowctx_per_item(n: int, kb: int) -> float:
    from flowctx.engine.runner import Engine
    from flowctx.spec import load_workflow

    spec = load_workflow(WORKFLOW.format())
    blob = {"records": [{"name": f"r{i}", "pad": "x" * 1000} for i in range(kb)]}
    engine = Engine(executor="inline")
    engine.run(spec, {"blob": blob, "n": 2})  # warm-up: caches, first imports
    started = time.perf_counter()
    res = engine.run(spec, {"blob": blob, "n": n})
    took = time.perf_counter() - started
    assert res.succeeded and len(res.tasks[0].result) == n, res.reason
    return took / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kb", type=int, default=1000, help="context size: records of ~1 KB (default 1000)")
    parser.add_argument("--counts", default="10,30", help="item counts for both engines (default 10,30)")
    parser.add_argument("--big", type=int, default=10000, help="item count for flowctx alone (default 10000)")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    python = os.environ.get("ORQUESTA_PYTHON")
    import flowctx

    print(f"context: {args.kb} records of ~1 KB; flowctx store: {flowctx.BACKEND}")
    print(f"{'items':>7} {'orquesta s/item':>16} {'flowctx s/item':>15} {'ratio':>9}")
    for n in counts:
        fx = flowctx_per_item(n, args.kb)
        if python:
            oq = orquesta_per_item(python, n, args.kb)
            print(f"{n:>7} {oq:>16.4f} {fx:>15.6f} {oq / fx:>8.0f}x")
        else:
            print(f"{n:>7} {'-':>16} {fx:>15.6f} {'-':>9}")
    fx = flowctx_per_item(args.big, args.kb)
    print(f"{args.big:>7} {'-':>16} {fx:>15.6f} {'-':>9}")
    if not python:
        print("ORQUESTA_PYTHON is not set: only flowctx ran (see this script's docstring for Orquesta 1.6)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
