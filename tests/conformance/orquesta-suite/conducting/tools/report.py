"""Run every conducting case on both backends; write KNOWN_FAILURES into the loader module and
FAILURES.md (grouped by behaviour class).  Usage: report.py (from the worktree venv)."""
import collections
import importlib
import json
import os
import re
import sys

WT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))  # the repository
sys.path.insert(0, WT + "/tests")
import _conformance_conducting as m  # noqa: E402

WORK = os.environ.get("CONDUCTING_WORK", "/tmp/conducting-traces")  # traces and coverage (not kept in the repository)

CLASSES = [  # (class id, title, regex on the first mismatch, or on the case id with "id:")
    ("action-expr", "Action name given as an expression (`action: <% ctx().x %> k=v`)", r"inline parameters of 'action'"),
    ("input-defaults", "Input defaults that fail or need the parent context: flowctx refuses before start, Orquesta starts and fails (or reads the parent context)", r"setup: .*default of parameter"),
    ("parent-context", "Orquesta's parent context (`context=`) is part of the workflow context (ctx().parent, input defaults reading it)", r"'parent':|id:test_workflow_conductor_context__test_app_ctx_references|id:test_workflow_conductor_context__test_bad_app_ctx_references"),
    ("input-expr", "A task `input` written as one expression (a string) instead of a mapping", r"'input' must be a mapping"),
    ("fail-command", "The `fail` engine command's own entry: Orquesta records it `failed`, flowctx `succeeded`", r"\['fail', 0, 'failed'\]"),
        ("rerun-duplicates", "Rerun: a task requested twice in one rerun must run once (Orquesta merges duplicate requests)", r"id:test_workflow_conductor_rerun__test_rerun_with_duplicate_task_requests"),
    ("rerun-order", "Rerun: Orquesta enters every rerun task in the sequence at rerun time, flowctx when the task starts, so entries of a rerun come in a different order", r"id:test_workflow_conductor_rerun__test_rerun_from_remediated_task"),
    ("action-pause", "An action reporting `paused` / `pending` / `pausing` / `canceling`: flowctx has no such outcome (the call stays running), Orquesta pauses (cancels) the task and then the workflow", r"\(event \w+( item \d+)? (paused|pending|pausing|canceling)\)"),
    ("cancel-retry", "Cancel while a task waits for (or runs) a retry: Orquesta leaves the task `retrying` in the canceled workflow; flowctx ends it `canceled` / `failed`", r"id:test_task_retry__test_workflow_cancellation"),
    ("canceled-items-result", "With-items canceled or paused: Orquesta takes a with-items task's result from the caller (the item event's `accumulated_result`), which these upstream tests leave out (`[]`) or fill with `None` for items not run; flowctx publishes the results of the items that ran (a harness artifact, not an engine difference)", r"id:test_workflow_conductor_with_items_(cancel|pause_and_resume)__.*render_output\): output: expected"),
        ("pause", "Pause: `pausing` / `paused` states differ", r"'pausing'|'paused'|'pending'|\(request paus"),
    ("cancel", "Cancel: `canceling` / `canceled` states differ", r"'canceling'|\(request cancel"),
    ("resume", "Resume / rerun: no transient `resuming` status", r"'resuming'"),
    ("retry", "Retry: the task shows no `retrying` status between attempts (the retry is a held call)", r"'retrying'"),
    ("items-error", "With-items: Orquesta logs identical error entries once (its log merges duplicates), so several failed items give one `Execution failed` error; flowctx logs one per failed item (the messages name the item)", r"Execution failed\. See result"),
    ("render-at-start", "Render errors (input, items, delay) surface when the task starts, not when it is staged (`get_next_tasks`)", r"next: expected \[\], got"),
    ("output-self-ref", "Output entries cannot refer to earlier output entries (`b: ctx(a)` where `a` is an output)", r"step \d+ \(render_output\): output: expected|output: expected .*got"),
    ("canceled-output", "A canceled workflow's output is not rendered (Orquesta renders it and logs its errors)", r"render_output\): expected 1 error"),
    ("term", "Terminal-task marking differs", r"term: expected"),
    ("empty-items", "An empty with-items task completes when it starts (no separate running state)", r"id:test_workflow_conductor_with_items__test_empty_items_list"),
    ("after-fail", "Events for staged tasks after the workflow failed: Orquesta still runs them", r"is not staged"),
]


SHORT = {
    "action-expr": "action name as an expression is not supported",
    "input-defaults": "bad or parent-context input defaults refused before start",
    "rerun-duplicates": "a task requested twice in one rerun must run once",
    "rerun-order": "rerun entries enter the sequence when they start, not at rerun time",
    "parent-context": "Orquesta's parent context is not in the workflow context",
    "input-expr": "task input given as one expression is refused",
    "fail-command": "fail command entry is succeeded, Orquesta failed",
    "action-pause": "an action cannot report paused/pending/pausing/canceling",
    "cancel-retry": "Orquesta leaves a retrying task retrying in a canceled workflow",
    "canceled-items-result": "with-items result is the caller's accumulated_result in Orquesta (harness artifact)",
    "pause": "pausing/paused states differ",
    "cancel": "canceling/canceled states differ",
    "resume": "no transient resuming status",
    "retry": "no retrying task status between attempts",
    "items-error": "one error per failed item; Orquesta merges identical entries",
    "render-at-start": "render errors surface at task start, not when staged",
    "output-self-ref": "output entries cannot refer to earlier outputs",
    "canceled-output": "a canceled workflow's output is not rendered",
    "term": "terminal-task marking differs",
    "empty-items": "empty with-items task completes at start",
    "after-fail": "staged tasks cannot start after the workflow failed",
}


def _key(problem):
    """What a difference is about: status, sequence, errors, output, a refused step ..."""
    head = re.sub(r"^step \d+ \([^)]*\): ", "", problem).split(":")[0]
    if head in ("status", "sequence", "routes", "output", "term", "call", "next", "context"):
        return head
    if head.startswith("next items"):
        return "next"
    if "error" in head:
        return "errors"
    if head.startswith("flowctx could not") or head.startswith("expected Orquesta"):
        return "step refused/accepted"
    return head[:40]


def classify(cid, first):
    text = f"id:{cid} | {first}"  # a pattern may name case ids (id:...) or match the difference
    for key, _title, rx in CLASSES:
        if re.search(rx, text):
            return key
    return "other"


def main():
    results = {}
    for be_name in ("flowctx._store", "flowctx._store_py"):
        be = importlib.import_module(be_name)
        for c in m.cases():
            try:
                p = m.check(c, be)
            except Exception as e:  # noqa: BLE001
                p = [f"CRASH {type(e).__name__}: {e}"]
            results.setdefault(c.id, {})[be_name] = p
    later = {}  # case -> what later steps show too (all_steps run; may be knock-on effects)
    be = importlib.import_module("flowctx._store")
    for c in m.cases():
        try:
            allp = m.check(c, be, all_steps=True)
        except Exception:  # noqa: BLE001
            continue
        first = results[c.id]["flowctx._store"]
        rest = [p for p in allp if p not in first]
        if rest and first:
            keys = sorted({_key(p) for p in rest})
            later[c.id] = (len({p.split(":")[0] for p in rest}), keys)
    fails = {}
    for cid, r in results.items():
        a, b = r["flowctx._store"], r["flowctx._store_py"]
        if a != b:
            print("BACKENDS DIFFER", cid, a[:1], b[:1])
        if a or b:
            fails[cid] = (a or b)[0]
    cases = {c.id: c for c in m.cases()}
    by_class = collections.defaultdict(list)
    for cid, first in fails.items():
        by_class[classify(cid, first)].append(cid)
    titles = {k: t for k, t, _ in CLASSES}
    titles["other"] = "Other"
    total = len(results)
    passing = total - len(fails)
    # KNOWN_FAILURES block
    lines = ["KNOWN_FAILURES: dict[str, str] = {  # generated from a run of the group; see FAILURES.md\n"]
    for key in [k for k, _, _ in CLASSES] + ["other"]:
        for cid in sorted(by_class.get(key, [])):
            reason = SHORT.get(key, "")
            if key == "other":
                reason = re.sub(r"\s+", " ", fails[cid])[:100]
            lines.append(f"    {cid!r}: {('[' + key + '] ' + reason)!r},\n")
    lines.append("}\n")
    path = WT + "/tests/_conformance_conducting.py"
    src = open(path).read()
    src = re.sub(r"KNOWN_FAILURES: dict\[str, str\] = \{(?:\}|.*?\n\})\n", "".join(lines), src, flags=re.S)
    open(path, "w").write(src)
    # FAILURES.md
    out = [
        "# Conducting group: cases flowctx fails\n\n",
        f"{passing} of {total} cases pass on both store backends (compiled and pure); "
        f"{len(fails)} fail and are strict xfails in `KNOWN_FAILURES` (tests/_conformance_conducting.py).\n",
        "Each line: case id, then the first difference (later steps usually repeat it). "
        "`expected` is what Orquesta 1.6.0 did, `got` what flowctx does. "
        "Regenerate with `python tests/conformance/orquesta-suite/conducting/tools/report.py` (project venv).\n\n",
        "How the steps map onto flowctx (tests/_conformance_conducting.py docstring): a pause request is "
        "`Conductor.pause()` (`pausing`; the driver calls `mark_paused()` once no started call is in flight), "
        "`running` / `resuming` after it is `Conductor.resume()`, a cancel is `Conductor.cancel()` (`canceling` "
        "until the calls in flight report; `finish_canceled()` once `canceled`), a `failed` request is "
        "`Conductor._request_fail()`, action outcomes `pending`/`paused`/`pausing`/`canceling` leave the call "
        "running, a `running` event is `begin()` + `calls_for()` + `call_started()` (of a task staged before "
        "the workflow failed too), an item's completion passes the event's `accumulated_result` (`[]` when "
        "none) as `call_done(accumulated_result=)`, `next_tasks` is "
        "`Conductor.next_tasks()` (plus with-items instances that can start more items). A case stops at its "
        "first difference, so a fixed class may uncover a later one.\n\n",
        "| class | in short | cases |\n|---|---|---|\n",
    ]
    order = [k for k, _, _ in CLASSES] + ["other"]
    for key in order:
        if by_class.get(key):
            out.append(f"| [{key}](#{key}) | {SHORT.get(key, 'other')} | {len(by_class[key])} |\n")
    for key in order:
        ids = sorted(by_class.get(key, []))
        if not ids:
            continue
        out.append(f"\n## {key}\n\n{titles[key]}. {len(ids)} case(s).\n\n")
        for cid in ids:
            diff = re.sub(r"\s+", " ", fails[cid])
            if len(diff) > 600:
                diff = diff[:600] + " ..."
            more = ""
            if cid in later:
                n, keys = later[cid]
                more = f" — later, {n} more step(s) differ in: {', '.join(keys)[:200]}"
            out.append(f"- `{cid}` ({cases[cid].provenance.split('::')[0]}): {diff}{more}\n")
    open(WT + "/tests/conformance/orquesta-suite/conducting/FAILURES.md", "w").write("".join(out))
    json.dump({"fails": fails, "classes": by_class}, open(os.path.join(WORK, "report.json"), "w"), indent=1)
    print(f"{passing} of {total} pass on both backends")
    for key in order:
        if by_class.get(key):
            print(f"  {key}: {len(by_class[key])}")


if __name__ == "__main__":
    main()
