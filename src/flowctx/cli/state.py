"""``flowctx resume | rerun | pause | cancel | list | show | export | import``: durable
executions in a state file.

``flowctx run WORKFLOW --state FILE`` makes a run durable; if the process dies, ``flowctx
resume EXECUTION_ID --state FILE`` continues it where it stopped.  ``pause`` / ``resume`` /
``cancel`` of an execution another process is running go through the state file: that engine
looks for requests every 0.25 s (with its lease heartbeat) and acts on them as
:meth:`Execution.pause` & co. do — a pause lets running actions finish and starts nothing new.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from flowctx.cli._common import (
    import_actions,
    kv_secrets,
    load_config,
    make_renderer,
    masker_for_stored,
    open_kv_option,
)
from flowctx.cli.run import executor_name, executor_options

EXAMPLES = """\
examples:
  flowctx run examples/fanout.yaml --actions examples/actions.py --state runs.db
  flowctx list --state runs.db
  flowctx show 3f2a9c1b7e10 --state runs.db
  flowctx resume 3f2a9c1b7e10 --state runs.db
  flowctx show 3f2a9c1b7e10 --state runs.db --task deploy
  flowctx pause 3f2a9c1b7e10 --state runs.db     (another process runs it)
  flowctx resume 3f2a9c1b7e10 --state runs.db    (un-pauses it there, or continues a dead run)
  flowctx cancel 3f2a9c1b7e10 --state runs.db
  flowctx rerun 3f2a9c1b7e10 --state runs.db --task deploy
  flowctx export 3f2a9c1b7e10 --state runs.db -o run.json
  flowctx import run.json --state other.db
"""


def _positive_int(text: str) -> int:
    from flowctx.cli.run import _positive_int as check

    return check(text)


def _state_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", required=True, metavar="FILE", help="the state database (SQLite file)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "resume",
        help="continue a durable execution that stopped (crash, kill, reboot) or was paused",
        description=(
            "Continue a durable execution. If another process is running it (paused with `flowctx "
            "pause`), ask that process to resume it. Otherwise rebuild its state from the state "
            "file (recorded results are reused, never recomputed), run again only the action calls "
            "that had no recorded outcome, and finish the workflow here; core.inquiry answers given "
            "to the original run are kept, --answer adds or replaces some. Exit code 0 if the "
            "workflow succeeded, 1 if it failed or was canceled, 2 for an unknown or finished "
            "execution, 130 / 143 on Ctrl-C / SIGTERM (the run is canceled)."
        ),
        epilog=EXAMPLES, formatter_class=fmt,
    )
    _driving_args(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser(
        "rerun",
        help="run failed tasks of a finished durable execution again",
        description=(
            "Rebuild a finished execution from the state file and run the given tasks again "
            "(default: every failed task), keeping its history (Orquesta's rerun): the tasks "
            "after them run as the workflow says; a with-items task runs its failed items again "
            "(all of them with --reset-items). Exit codes as for `flowctx run`."
        ),
        epilog=EXAMPLES, formatter_class=fmt,
    )
    _driving_args(p)
    p.add_argument("--task", dest="tasks", action="append", default=[], metavar="TASK",
                   help="a task to run again (repeatable; default: every failed task)")
    p.add_argument("--reset-items", action="store_true",
                   help="with-items tasks run every item again, not only the failed ones")
    p.set_defaults(func=cmd_rerun)

    for name, verb, text in (
        ("pause", "pause", "Ask the process running a durable execution to pause it: running actions "
         "finish, nothing new starts, the execution waits as 'paused' until `flowctx resume`. Waits "
         "(--wait seconds) until it is paused; exit 0 when paused, 1 if it finished or is still "
         "finishing running actions when the wait ends, 2 for an unknown, finished or not running "
         "execution."),
        ("cancel", "cancel", "Cancel a durable execution: the process running it stops (running "
         "actions are asked to stop, commands' process groups and pool workers are killed) and it "
         "ends as 'canceled'. An execution no process runs (interrupted) is marked canceled here. "
         "Exit 0 when it ended canceled, 1 if it finished otherwise, 2 for an unknown or finished "
         "execution."),
    ):
        p = sub.add_parser(name, help=f"{verb} a durable execution (another process may be running it)",
                           description=text, epilog=EXAMPLES, formatter_class=fmt)
        p.add_argument("execution_id", metavar="EXECUTION_ID")
        _state_arg(p)
        p.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                       help="how long to wait for the running engine to act (default 60)")
        p.set_defaults(func=cmd_pause if name == "pause" else cmd_cancel)

    p = sub.add_parser(
        "list",
        help="list the executions in a state file",
        description="List the executions in a state file, newest first. An execution shown as "
        "'interrupted' was running when its process stopped: `flowctx resume` continues it.",
        epilog=EXAMPLES, formatter_class=fmt,
    )
    _state_arg(p)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "show",
        help="show one execution: status, output, a per-task table, metrics",
        description="Show one execution of a state file: status, errors, output, one row per task "
        "instance (status, attempts, items done, timings) and the run's metrics.",
        epilog=EXAMPLES, formatter_class=fmt,
    )
    p.add_argument("execution_id", metavar="EXECUTION_ID")
    _state_arg(p)
    p.add_argument("--task", metavar="TASK", help="show one task: its inputs (as the run rendered them), "
                   "result, error, attempts and, for core.local, stdout / stderr, per call")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    p.add_argument("--kv", metavar="FILE",
                   help="mask the secret values of this key-value store too (default: the default store)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "export",
        help="write one execution's full state as JSON",
        description="Write one execution's full state (execution row, journal, task executions) as JSON.",
        epilog=EXAMPLES, formatter_class=fmt,
    )
    p.add_argument("execution_id", metavar="EXECUTION_ID")
    _state_arg(p)
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "import",
        help="add an exported execution to a state file",
        description="Add an execution exported with `flowctx export` to a state file "
        "(it can then be shown or resumed there).",
        epilog=EXAMPLES, formatter_class=fmt,
    )
    p.add_argument("file", metavar="FILE", help="the JSON file `flowctx export` wrote ('-' for standard input)")
    _state_arg(p)
    p.set_defaults(func=cmd_import)


def _driving_args(p: argparse.ArgumentParser) -> None:
    """Options of the commands that drive an execution here (resume, rerun)."""
    p.add_argument("execution_id", metavar="EXECUTION_ID")
    _state_arg(p)
    p.add_argument(
        "--actions", dest="action_modules", action="append", default=[], metavar="MODULE",
        help="import a module (dotted name or .py file) that registers actions; repeatable "
        "(default: the modules the original run and its sub-workflows used, when they still exist)",
    )
    p.add_argument("--executor", type=executor_name, default="thread", metavar="KIND",
                   help="where actions run: thread (default), process, inline, dask, or a plug-in (as for run)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --executor dask: the address of a running Dask scheduler (tcp://HOST:PORT)")
    p.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="size of the executor's pool (as for `flowctx run`)")
    # the old spelling, kept working but not advertised
    p.add_argument("--max-workers", dest="workers", type=_positive_int, help=argparse.SUPPRESS)
    p.add_argument("--answer", dest="answers", action="append", default=[], metavar="TASK=VALUE",
                   help="answer core.inquiry in task TASK (as for `flowctx run`; adds to or replaces "
                   "the answers the original run was given)")
    p.add_argument("--answers-file", metavar="FILE", help="a YAML or JSON mapping TASK -> answer for core.inquiry")
    p.add_argument("--config", metavar="FILE", help="the workflow's `config` / `pack.config` (as for run)")
    p.add_argument("--kv", metavar="FILE", help="the key-value store st2kv() / kv() read (as for run)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


# ---------------------------------------------------------------------------- helpers
def _open(path: str, *, must_exist: bool = True) -> Any:
    from flowctx.errors import StateError
    from flowctx.state import SQLiteState

    if must_exist and not os.path.exists(path):
        raise StateError(f"{path}: no such state file")
    return SQLiteState(path)  # a new one is created with mode 0600


def _console() -> Any:
    from rich.console import Console

    width = None if sys.stdout.isatty() else 120
    return Console(file=sys.stdout, highlight=False, soft_wrap=False, width=width)


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _seconds(d: float) -> str:
    if d < 1:
        return f"{d * 1000:.0f} ms"
    if d < 120:
        return f"{d:.2f} s"
    return f"{d / 60:.1f} min"


def _dur(a: float | None, b: float | None) -> str:
    """The time from ``a`` to ``b`` (``-`` when either is unknown)."""
    return "-" if not a or not b else _seconds(max(0.0, b - a))


def running_time(state: Any, execution_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """How long an execution actually ran: its wall-clock span minus the time between a process
    dying and ``flowctx resume`` starting the next one.

    A gap is measured from the last recorded activity before a ``resumed`` journal record to the
    first one after it (records of one execution share one position counter), so the time the
    dead process spent on calls that never reported is not counted.  Returns ``{seconds, span,
    resumes, dead, finished}``; ``seconds`` is None before anything was recorded."""
    created = row.get("created") or 0.0
    with state._guard() as c:
        resumes = [p for (p,) in c.execute(
            "SELECT pos FROM journal WHERE execution_id = ? AND kind = 'resumed' ORDER BY pos", (execution_id,))]
        acts = c.execute(
            "SELECT pos, started, finished FROM task_executions WHERE execution_id = ? ORDER BY pos", (execution_id,)
        ).fetchall()
    finished = row.get("finished")
    end = finished or max([row.get("updated") or created] + [f or s or 0.0 for _p, s, f in acts])
    gaps = []
    for pos in resumes:
        before = [max(s or 0.0, f or 0.0) for p, s, f in acts if p < pos]
        after = [s or f for p, s, f in acts if p > pos and (s or f)]
        last = max([created, *before])
        first = min(after) if after else end
        if first > last:
            gaps.append((last, first))
    span = max(0.0, end - created) if created else None
    seconds = None if span is None else active_seconds(created, end, gaps)
    return {"seconds": seconds, "span": span, "resumes": len(resumes), "dead": sum(b - a for a, b in gaps),
            "gaps": gaps, "finished": bool(finished)}


def active_seconds(start: float, end: float, gaps: list[tuple[float, float]]) -> float:
    """``end - start`` without the parts of ``gaps`` (dead-process intervals) inside it."""
    total = max(0.0, end - start)
    for a, b in gaps:
        total -= max(0.0, min(b, end) - max(a, start))
    return max(0.0, total)


def _running_text(info: dict[str, Any], state_word: str, short: bool = False) -> str:
    """``12.3 s`` / ``12.3 s (interrupted)`` / ``12.3 s running (+ 4 min stopped, resumed 1x)``
    (``short``: ``12.3 s (resumed 1x)``)."""
    if info["seconds"] is None:
        return "-"
    text = _seconds(info["seconds"])
    if info["resumes"] and short:
        text += f" (resumed {info['resumes']}x)"
    elif info["resumes"]:
        text += f" running (+ {_seconds(info['dead'])} stopped, resumed {info['resumes']}x)"
    if state_word == "interrupted":
        text += " (interrupted)"
    elif not info["finished"]:
        text += " so far"
    return text


def _status(row: dict[str, Any], lease: dict[str, Any] | None) -> str:
    if row["status"] in ("running", "paused") and (lease is None or lease.get("stale")):
        return "interrupted"
    return str(row["status"])


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def describe(state: Any, execution_id: str, secrets: list[Any] | None = None) -> dict[str, Any]:
    """What ``flowctx show --json`` prints for one execution (``secrets``: more values to mask)."""
    row = state.get_execution(execution_id)
    lease = state.lease(execution_id)
    calls = state.task_executions(execution_id)
    latest: dict[int, dict[Any, tuple[int, str]]] = {}
    ncalls: dict[int, int] = {}
    for c in calls:
        ncalls[c["seq"]] = ncalls.get(c["seq"], 0) + 1
        keys = latest.setdefault(c["seq"], {})
        prev = keys.get(c["item_key"])
        if prev is None or c["attempt"] >= prev[0]:
            keys[c["item_key"]] = (c["attempt"], c["status"])
    tasks = []
    for inst in state.task_instances(execution_id):
        t = dict(inst)
        t["name"] = inst["task"] if not inst["route"] else f"{inst['task']}__r{inst['route']}"
        if inst["items"] is not None and inst["status"] == "running":
            t["items_done"] = sum(1 for _a, s in latest.get(inst["seq"], {}).values() if s != "running")
        t["calls"] = ncalls.get(inst["seq"], 0)
        t["duration"] = None if not inst["finished"] or not inst["started"] else (inst["started"], inst["finished"])
        tasks.append(t)
    masker = masker_for_stored(row, secrets or ())
    out = {k: v for k, v in row.items() if k != "source"}
    out["parameters"] = masker.parameters(row.get("parameters"))
    out["output"] = masker.value(row.get("output"))
    out["errors"] = masker.value(row.get("errors"))
    for t in tasks:
        t["error"] = masker.value(t.get("error"))
    out["state"] = _status(row, lease)
    out["lease"] = lease
    out["tasks"] = tasks
    out["records"] = state.counts(execution_id)
    timing = running_time(state, execution_id, row)
    for t in tasks:  # a task that ran across a crash: the time it actually ran
        if t["duration"] is not None:
            t["duration"] = active_seconds(t["duration"][0], t["duration"][1], timing["gaps"])
    out["running_seconds"] = timing["seconds"]
    out["stopped_seconds"] = timing["dead"]
    out["resumes"] = timing["resumes"]
    return out


# ---------------------------------------------------------------------------- commands
def cmd_list(args: argparse.Namespace) -> int:
    state = _open(args.state)
    try:
        rows = state.list_executions()
        for r in rows:
            r["state"] = "interrupted" if r["status"] in ("running", "paused") and r["owner"] is None else r["status"]
            timing = running_time(state, r["id"], r)
            r["running_seconds"] = timing["seconds"]
            r["duration"] = _running_text(timing, r["state"], short=True)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        if not rows:
            print(f"no executions in {args.state}")
            return 0
        from rich.table import Table

        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        for col in ("EXECUTION", "WORKFLOW", "STATUS", "TASKS", "STARTED", "DURATION", "RUNNING IN"):
            table.add_column(col, no_wrap=col in ("EXECUTION", "STARTED", "DURATION"))
        for r in rows:
            table.add_row(
                r["id"], r["workflow"], r["state"], str(r["tasks"]), _when(r["created"]),
                r["duration"], r["owner"] or "-",
            )
        _console().print(table)
        return 0
    finally:
        state.close()


def describe_task(state: Any, execution_id: str, task: str) -> dict[str, Any]:
    """What ``flowctx show --task`` prints: every instance of ``task`` with each call's inputs
    (rendered again by a read-only replay, as the run rendered them), recorded result, error,
    attempt and timings."""
    from flowctx import thaw
    from flowctx.engine import Engine
    from flowctx.errors import StateError
    from flowctx.state.replay import inspect

    conductor, calls = inspect(Engine(), execution_id, state)
    times = {r["seq"]: r for r in state.task_instances(execution_id)}
    recorded: dict[tuple[int, Any, int], dict[str, Any]] = {}
    for c in state.task_executions(execution_id):
        recorded[(c["seq"], c["item_key"], c["attempt"])] = c
    out = []
    for inst in conductor.sequence:
        if inst.task != task or inst.is_command:
            continue
        rows = []
        keys = sorted({k for k in recorded if k[0] == inst.seq} | {k for k in calls if k[0] == inst.seq},
                      key=lambda k: (str(type(k[1])), k[1] if k[1] is not None else -1, k[2]))
        for key in keys:
            rec = recorded.get(key, {})
            call = calls.get(key)
            rows.append({
                "item": key[1], "attempt": key[2],
                "action": getattr(call, "action", None),
                "inputs": thaw(call.inputs) if call is not None else None,
                "status": rec.get("status", "not recorded (running when the process stopped?)"),
                "result": rec.get("result"), "error": rec.get("error"),
                "started": rec.get("started"), "finished": rec.get("finished"),
            })
        out.append({
            "task": inst.task, "route": inst.route, "instance": inst.seq, "status": inst.status,
            "attempts": max(inst.attempts, 1), "error": inst.error, "result": thaw(inst.result),
            "items": len(inst.items) if inst.items is not None else None,
            "started": times.get(inst.seq, {}).get("started"), "finished": times.get(inst.seq, {}).get("finished"),
            "calls": rows,
        })
    if not out:
        names = sorted({i.task for i in conductor.sequence if not i.is_command})
        raise StateError(f"execution {execution_id} has no task {task!r} that ran (tasks that ran: "
                         f"{', '.join(names) or 'none'})")
    return {"execution_id": execution_id, "task": task, "instances": out}


def _show_task(args: argparse.Namespace, info: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    w = sys.stdout.write
    for inst in info["instances"]:
        route = f", route {inst['route']}" if inst["route"] else ""
        items = f", {inst['items']} item(s)" if inst["items"] is not None else ""
        w(f"task {inst['task']} (instance {inst['instance']}{route}): {inst['status']}, {inst['attempts']} "
          f"attempt(s){items}, started {_when(inst['started'])}, duration {_dur(inst['started'], inst['finished'])}\n")
        if inst["error"]:
            w(f"error: {inst['error']}\n")
        for call in inst["calls"]:
            label = "call" if call["item"] is None else f"item {call['item']}"
            w(f"  {label}, attempt {call['attempt']}: {call['status']}"
              f" ({_dur(call['started'], call['finished'])})" + (f" action {call['action']}" if call["action"] else "") + "\n")
            w(f"    inputs: {_short(call['inputs'], 2000)}\n")
            if call["error"]:
                w(f"    error:  {call['error']}\n")
            result = call["result"]
            if isinstance(result, dict) and ("stdout" in result or "stderr" in result):
                for stream in ("stdout", "stderr"):
                    text = result.get(stream) or ""
                    w(f"    {stream}:" + (" (empty)\n" if not text else "\n"))
                    for line in str(text).splitlines():
                        w(f"      {line}\n")
                if "return_code" in result:
                    w(f"    return code: {result['return_code']}\n")
            elif result is not None:
                w(f"    result: {_short(result, 2000)}\n")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    secrets = kv_secrets(args.kv)
    state = _open(args.state)
    try:
        if getattr(args, "task", None):
            masker = masker_for_stored(state.get_execution(args.execution_id), secrets or ())
            return _show_task(args, masker.value(describe_task(state, args.execution_id, args.task)))
        info = describe(state, args.execution_id, secrets)
    finally:
        state.close()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    from rich.table import Table

    con = _console()
    con.print(f"[bold]execution[/bold] {info['id']}  [bold]workflow[/bold] {info['workflow']}")
    if info.get("file"):
        con.print(f"file:     {info['file']}", markup=False)
    state_line = info["state"]
    lease = info.get("lease")
    if lease and not lease.get("stale"):
        state_line += f" (in process {lease['pid']} on {lease['host']})"
    con.print(f"status:   {state_line}", markup=False)
    timing = {"seconds": info["running_seconds"], "dead": info["stopped_seconds"], "resumes": info["resumes"],
              "finished": bool(info["finished"])}
    con.print(f"started:  {_when(info['created'])}   finished: {_when(info['finished'])}   "
              f"duration: {_running_text(timing, info['state'])}", markup=False)
    if info.get("parameters"):
        con.print(f"parameters: {_short(info['parameters'])}", markup=False)
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for col in ("#", "TASK", "STATUS", "ATTEMPTS", "ITEMS", "STARTED", "DURATION", "ERROR"):
        table.add_column(col, overflow="fold")
    for t in info["tasks"]:
        items = "-" if t["items"] is None else f"{t.get('items_done') or 0}/{t['items']}"
        table.add_row(
            str(t["seq"]), t["name"], t["status"], str(t["attempts"]), items,
            _when(t["started"]).split(" ")[-1], "-" if t["duration"] is None else _seconds(t["duration"]),
            _short(t["error"] or "", 60),
        )
    con.print()
    con.print(table)
    if info.get("errors"):
        con.print()
        con.print("[bold]errors[/bold]")
        for err in info["errors"]:
            where = f"task {err['task_id']!r}: " if err.get("task_id") else ""
            con.print(f"  {where}{err.get('message')}", markup=False)
    if info.get("output") is not None and info["status"] != "running":
        con.print()
        con.print("[bold]output[/bold]")
        con.print(_short(info["output"], 2000), markup=False)
    m = info.get("metrics") or {}
    rec = info["records"]
    con.print()
    con.print("[bold]metrics[/bold]")
    if m:
        con.print(
            f"  items run {m.get('items_run', 0)}, clones {m.get('clones', 0)}, item contexts "
            f"{m.get('item_contexts', 0)}, action calls {m.get('action_calls', 0)}", markup=False,
        )
        con.print(
            f"  render {m.get('render_time', 0):.3f} s ({m.get('renders', 0)} renders), actions "
            f"{m.get('action_time', 0):.3f} s, queue wait mean "
            f"{m.get('queue_wait', 0) / max(1, m.get('action_calls', 0)) * 1000:.1f} ms / max "
            f"{m.get('queue_wait_max', 0) * 1000:.1f} ms", markup=False,
        )
        con.print(
            f"  state: {m.get('flushes', 0)} flushes, {m.get('records_written', 0)} records, flush latency mean "
            f"{m.get('flush_latency_mean', 0) * 1000:.2f} ms / max {m.get('flush_latency_max', 0) * 1000:.2f} ms"
            + (f", resumed {m['resumes']}x (replayed {m.get('replayed_events', 0)} records in "
               f"{m.get('replay_time', 0) * 1000:.1f} ms)" if m.get("resumes") else ""),
            markup=False,
        )
        sizes = m.get("context_size") or []
        if sizes:
            con.print("  context size (keys / approx. bytes per namespace):", markup=False)
            for s in sizes:
                label = "initial" if s.get("after") is None else f"after {s['after']}"
                parts = ", ".join(
                    f"{ns} {s[ns]['keys']}/{_bytes(s[ns]['bytes'])}"
                    for ns in ("parameters", "variables", "task_results", "system") if isinstance(s.get(ns), dict)
                )
                con.print(f"    {label}: {parts}", markup=False)
    con.print(
        f"  stored: {rec['journal']} journal records, {rec['task_executions']} task executions, "
        f"{rec['task_instances']} task instances", markup=False,
    )
    return 0


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_FINAL = _FINISHED = ("succeeded", "failed", "canceled")


def _live_owner(state: Any, execution_id: str) -> dict[str, Any] | None:
    lease = state.lease(execution_id)
    return lease if lease is not None and not lease.get("stale") else None


def _check_open(state: Any, execution_id: str, verb: str) -> dict[str, Any]:
    """The execution row; one clear error for an unknown or finished execution."""
    from flowctx.errors import StateError

    row: dict[str, Any] = state.get_execution(execution_id)  # unknown: StateError "no execution ..."
    if row["status"] in _FINAL:
        raise StateError(f"execution {execution_id} already finished ({row['status']}): nothing to {verb}")
    return row


def _wait_status(state: Any, execution_id: str, done: Any, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + max(0.0, seconds)
    while True:
        row: dict[str, Any] = state.get_execution(execution_id)
        if done(row) or time.monotonic() >= deadline:
            return row
        time.sleep(0.1)


def _drive(args: argparse.Namespace, *, rerun: list[str | tuple[str, int]] | None = None) -> int:
    """Resume (or rerun) an execution in this process and report it as `flowctx run` does."""
    from flowctx.actions import DEFAULT_REGISTRY
    from flowctx.cli.run import failure_reason, make_responder, settle_actions, wait_for
    from flowctx.engine import Engine

    config = load_config(args.config) if args.config else None
    kv = open_kv_option(args.kv)
    state = _open(args.state)
    try:
        row = state.get_execution(args.execution_id)
        masker = masker_for_stored(row, kv.secret_values())
        if rerun is None and row["status"] in _FINISHED:
            return _nothing_to_resume(args, row, masker)
        options = row.get("options") or {}
        modules = list(args.action_modules)
        if not modules:
            modules = [m for m in options.get("action_modules", []) if os.path.isfile(m)]
        import_actions(modules)
        kept = options.get("answers") if isinstance(options.get("answers"), dict) else None
        responder = make_responder(args, kept)
        if responder is not None and (args.answers or args.answers_file):
            # kept with the execution, like the answers given to `run` (nobody else runs it: the
            # lease is taken by the resume below)
            state.update_execution(args.execution_id, {"options": {**options, "answers": responder.answers}})  # type: ignore[attr-defined]
        engine = Engine(
            actions=DEFAULT_REGISTRY, executor=args.executor, max_workers=args.workers, state=state,
            executor_options=executor_options(args), renderer=make_renderer(config, kv.values() or None),
            responder=responder,
        )
        t = time.time()
        ex = engine.resume(args.execution_id, background=True, rerun=rerun,
                           reset_items=bool(getattr(args, "reset_items", False)))
        res, interrupted = wait_for(ex)
        elapsed = time.time() - t
        settle_actions()
    finally:
        state.close()
    res = masker.result(res)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2, default=str))
    else:
        m = res.metrics
        what = "rerun" if rerun is not None else "resumed"
        print(
            f"execution {res.execution_id} {res.status} in {elapsed:.2f} s "
            f"({what}: {m.get('replayed_events', 0)} recorded records replayed in "
            f"{m.get('replay_time', 0) * 1000:.0f} ms, {m.get('action_calls', 0)} action calls made)"
        )
        if res.output is not None:
            print(json.dumps(res.output, indent=2, default=str))
    if res.status != "succeeded":
        print(f"flowctx: workflow {res.status}: {masker.text(failure_reason(res))}", file=sys.stderr)
    if interrupted:
        return 128 + interrupted
    return 0 if res.succeeded else 1


def cmd_resume(args: argparse.Namespace) -> int:
    from flowctx.errors import StateError

    kv = open_kv_option(args.kv)  # bad options are usage errors (exit 2) whatever the execution's state
    if args.config:
        load_config(args.config)
    state = _open(args.state)
    try:
        row = state.get_execution(args.execution_id)
        if row["status"] in _FINISHED:
            return _nothing_to_resume(args, row, masker_for_stored(row, kv.secret_values()))
        owner = _live_owner(state, args.execution_id)
        if owner is not None:  # another process runs it: un-pause it there
            if row["status"] != "paused" and "pause" not in state.open_requests(args.execution_id):
                raise StateError(
                    f"execution {args.execution_id} is running in process {owner['pid']} on {owner['host']} "
                    "and is not paused: nothing to resume"
                )
            state.request(args.execution_id, "resume")
            row = _wait_status(state, args.execution_id,
                               lambda r: r["status"] != "paused" and not state.open_requests(args.execution_id), 10.0)
            if row["status"] == "paused":
                print(f"flowctx: execution {args.execution_id}: resume requested; process {owner['pid']} has not "
                      "acted on it yet", file=sys.stderr)
                return 1
            print(f"execution {args.execution_id} resumed (in process {owner['pid']} on {owner['host']})")
            return 0
    finally:
        state.close()
    return _drive(args)


def cmd_rerun(args: argparse.Namespace) -> int:
    from flowctx.errors import StateError

    state = _open(args.state)
    try:
        row = state.get_execution(args.execution_id)
        if row["status"] not in _FINAL:
            owner = _live_owner(state, args.execution_id)
            where = f"running in process {owner['pid']} on {owner['host']}" if owner else "interrupted"
            hint = "" if owner else f": `flowctx resume {args.execution_id}` continues it"
            raise StateError(f"execution {args.execution_id} has not finished ({where}); rerun is for a "
                             f"finished execution{hint}")
    finally:
        state.close()
    return _drive(args, rerun=list(args.tasks))


def cmd_pause(args: argparse.Namespace) -> int:
    from flowctx.errors import StateError

    state = _open(args.state)
    try:
        row = _check_open(state, args.execution_id, "pause")
        owner = _live_owner(state, args.execution_id)
        if owner is None:
            raise StateError(
                f"execution {args.execution_id} is not running in any process (interrupted): nothing to pause; "
                f"`flowctx resume {args.execution_id} --state {args.state}` continues it"
            )
        if row["status"] == "paused":
            print(f"execution {args.execution_id} is already paused (in process {owner['pid']} on {owner['host']})")
            return 0
        state.request(args.execution_id, "pause")
        row = _wait_status(state, args.execution_id, lambda r: r["status"] in ("paused", *_FINAL), args.wait)
    finally:
        state.close()
    if row["status"] == "paused":
        print(f"execution {args.execution_id} paused (in process {owner['pid']} on {owner['host']}); "
              f"`flowctx resume {args.execution_id} --state {args.state}` continues it")
        return 0
    if row["status"] in _FINAL:
        print(f"flowctx: execution {args.execution_id} finished ({row['status']}) before it paused", file=sys.stderr)
        return 1
    print(f"flowctx: execution {args.execution_id}: pause requested; running actions have not finished after "
          f"{args.wait:g} s (it pauses when they have)", file=sys.stderr)
    return 1


def cmd_cancel(args: argparse.Namespace) -> int:
    state = _open(args.state)
    try:
        _check_open(state, args.execution_id, "cancel")
        owner = _live_owner(state, args.execution_id)
        if owner is None:
            return _cancel_here(state, args.execution_id)
        state.request(args.execution_id, "cancel")
        row = _wait_status(state, args.execution_id, lambda r: r["status"] in _FINAL, args.wait)
    finally:
        state.close()
    if row["status"] == "canceled":
        print(f"execution {args.execution_id} canceled (in process {owner['pid']} on {owner['host']})")
        return 0
    if row["status"] in _FINAL:
        print(f"flowctx: execution {args.execution_id} finished ({row['status']}) before the cancel", file=sys.stderr)
        return 1
    print(f"flowctx: execution {args.execution_id}: cancel requested; process {owner['pid']} has not finished "
          f"canceling after {args.wait:g} s", file=sys.stderr)
    return 1


def _cancel_here(state: Any, execution_id: str) -> int:
    """Cancel an execution no process runs: rebuild it (taking its lease), cancel, record."""
    from flowctx.engine import Engine
    from flowctx.state import rebuild

    engine = Engine(state=state)
    conductor = rebuild(engine, execution_id, state)
    conductor.cancel()
    conductor.finish_canceled()
    conductor.journal.finish(conductor, {})
    print(f"execution {execution_id} canceled (it was interrupted; nothing was running)")
    return 0



def _nothing_to_resume(args: argparse.Namespace, row: dict[str, Any], masker: Any) -> int:
    """``flowctx resume`` of an execution that already finished: say so, change nothing."""
    when = _when(row.get("finished"))
    if args.json:
        print(json.dumps({"execution_id": row["id"], "status": row["status"], "resumed": False,
                          "finished": row.get("finished"), "output": masker.value(row.get("output")),
                          "message": "already finished: nothing to resume"}, indent=2, default=str))
    else:
        print(f"execution {row['id']} already {row['status']} (finished {when}): nothing to resume")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    state = _open(args.state)
    try:
        data = state.export_execution(args.execution_id)
    finally:
        state.close()
    text = json.dumps(data, indent=1, default=str)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.write("\n")
    else:
        print(text)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from flowctx.errors import StateError

    try:
        if args.file == "-":
            data = json.load(sys.stdin)
        else:
            with open(args.file, encoding="utf-8") as fh:
                data = json.load(fh)
    except OSError as exc:
        raise StateError(f"{args.file}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise StateError(f"{args.file}: not JSON ({exc})") from None
    state = _open(args.state, must_exist=False)
    try:
        eid = state.import_execution(data)
    finally:
        state.close()
    print(f"imported execution {eid} into {args.state}")
    return 0
