"""Turn the traces recorded by record_plugin.py (Orquesta 1.6.0 running its own conducting
tests) into flowctx conformance cases: tests/conformance/orquesta-suite/conducting/cases/*.yaml,
plus coverage.json (which upstream tests became cases, which did not and why).

The whole pipeline (Orquesta 1.6.0 checked out at /work/orquesta, installed in /work/venv-orquesta):

    T=tests/conformance/orquesta-suite/conducting/tools; export CONDUCTING_WORK=/tmp/conducting-traces
    mkdir -p $CONDUCTING_WORK; O=/work/venv-orquesta/bin/python
    (cd /work/orquesta && PYTHONPATH=$OLDPWD/$T $O -m pytest -q -p record_plugin orquesta/tests/unit/conducting \
        --deselect orquesta/tests/unit/conducting/test_workflow_conductor_performance.py)
    (cd /work/orquesta && RECORD_LIGHT=1 RECORD_OUT=$CONDUCTING_WORK/traces_perf.json PYTHONPATH=$OLDPWD/$T \
        $O -m pytest -q -p record_plugin orquesta/tests/unit/conducting/test_workflow_conductor_performance.py)
    (cd /work/orquesta && PYTHONPATH=$OLDPWD/$T $O -m pytest -q -p record_compose orquesta/tests/unit/composition)
    $O $T/convert.py && $O $T/provenance.py && python $T/report.py   # the last one in the project venv
"""
import collections
import glob
import json
import os
import re
import sys

import yaml

WORK = os.environ.get("CONDUCTING_WORK", "/tmp/conducting-traces")  # traces and coverage (not kept in the repository)

WT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))  # the repository
OUT = os.path.join(WT, "tests/conformance/orquesta-suite/conducting")
FIXTURES = os.path.join(WT, "tests/conformance/orquesta/workflows")
PREFIX = "orquesta/tests/unit/"
NATIVE_DONE = re.compile(r"conducting/native/test_workflow_[a-z_]+\.py")

# top-level calls replayed as steps / compared as queries; anything else makes a trace unusable
STEP_OPS = {"request_workflow_status", "update_task_state", "request_workflow_rerun", "render_workflow_output", "final_render"}
QUERY_OPS = {"get_next_tasks", "get_workflow_output", "get_workflow_initial_context", "get_workflow_terminal_context", "get_task_initial_context"}
IGNORED_OPS = {  # pure reads of Orquesta's own API whose content the snapshot already covers
    "get_workflow_status", "get_task_state_entry", "serialize", "roundtrip",
    "get_workflow_parent_context", "get_workflow_input", "get_task", "get_task_transition_contexts",
    "state.get_task", "state.serialize", "state.get_terminal_tasks", "state.get_staged_task",
}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _list(dumper, value):
    flow = all(not isinstance(v, (list, dict)) for v in value) and len(value) <= 8
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(list, _list)


def fixture_index():
    idx = {}
    for p in sorted(glob.glob(os.path.join(FIXTURES, "*.yaml"))):
        with open(p) as fh:
            idx[json.dumps(yaml.safe_load(fh), sort_keys=True)] = os.path.relpath(p, OUT)
    return idx


COMPLETED = {"succeeded", "failed", "canceled", "expired", "abandoned"}


def task_completed(snap, task, route):
    """Whether the latest sequence entry of (task, route) is completed (or retrying: completed,
    then retried) in ``snap``."""
    for t, r, status in reversed(snap.get("sequence") or []):
        if t == task and r == route:
            return status in COMPLETED or status == "retrying"
    return False


def workflow_text(wf):
    wf = {k: v for k, v in wf.items() if k != "description"}
    return yaml.safe_dump(wf, sort_keys=False, default_flow_style=False, width=1000)


def snap_expect(snap, prev, final=False, output=False):
    """Expected observations; only keys whose value changed since the previous step are written
    (the runner carries every key forward, so each step is still checked in full)."""
    cur = {
        "status": "unset" if snap["status"] in (None, "null") else snap["status"],
        "sequence": [list(s) for s in snap["sequence"]],
        "errors": [{k: v for k, v in e.items() if k != "task_transition_id"} for e in snap["errors"]],
        "routes": snap["routes"],
    }
    if final:
        cur["term"] = [list(t) for t in snap["term"]]
    out = {k: v for k, v in cur.items() if prev.get(k, "<unset>") != v}
    prev.update(cur)
    if output:  # Orquesta's output exists once rendered (explicitly): compared at these steps only
        out["output"] = snap["output"]
    return out


def expected_call(op):
    info = op.get("task")
    ev = op["args"][2]["event"]
    if not info or "actions" not in info:
        return None
    acts = info["actions"]
    if "item_id" in ev:
        acts = [a for a in acts if a.get("item_id") == ev["item_id"]]
    if not acts:
        return None
    a = acts[0]
    call = {"action": a.get("action"), "input": a.get("input") or {}}
    return call


SPARSE = {"conducting/test_workflow_conductor_performance.py"}  # stress sizes: sequence at the end only


EXCLUDE = {  # test -> why no case (the data would not be worth its size)
    "test_serialization_function_of_data_size": "measures Orquesta's serialize() of a 1 MB random input (flowctx's store sizes are in benchmarks/); a 1 MB case file is not worth it",
}


def convert_trace(tr, fixtures, sparse=False):
    """-> (case dict, None) or (None, reason)."""
    why = EXCLUDE.get(tr["test"].split("::")[-1])
    if why:
        return None, why
    if tr.get("error"):
        return None, f"conductor construction raised ({tr['error'][:80]}): spec validation, not conducting"
    ops = tr["ops"]
    note = None
    bad = sorted({o["op"] for o in ops if o["op"] not in STEP_OPS | QUERY_OPS | IGNORED_OPS})
    if bad:
        first_bad = min(i for i, o in enumerate(ops) if o["op"] not in STEP_OPS | QUERY_OPS | IGNORED_OPS)
        if not any(o["op"] in STEP_OPS for o in ops[:first_bad]):
            return None, "drives Orquesta internals: " + ", ".join(bad)
        # keep the workflow-visible part the test drove before it turned to Orquesta's internals
        ops = ops[:first_bad]
        note = ("the upstream test goes on with Orquesta internals (" + ", ".join(bad) + "); "
                "this case is the workflow-visible part before them")
    if not any(o["op"] in STEP_OPS | QUERY_OPS for o in ops):
        return None, "asserts only Orquesta's own API / serialized state (no conducting step)"
    wf = tr["workflow"]
    case = {}
    if note:
        case["note"] = note
    key = json.dumps(wf, sort_keys=True)
    if key in fixtures:
        case["workflow_file"] = fixtures[key]
    else:
        case["workflow"] = workflow_text(wf)
    if tr.get("inputs"):
        case["inputs"] = tr["inputs"]
    if tr.get("context"):
        case["context"] = tr["context"]
    steps = []
    prev = {}
    init = tr.get("initial") or {}
    if init:
        snap_expect(init, prev)
    rendered = False
    last_step = max(i for i, o in enumerate(ops) if o["op"] in STEP_OPS | QUERY_OPS)
    for i, o in enumerate(ops):
        name = o["op"]
        if name not in STEP_OPS | QUERY_OPS:
            continue
        st = {}
        a = o["args"]
        if name == "request_workflow_status":
            st["do"] = "request"
            st["status"] = a[0] if a else o["kwargs"].get("status")
        elif name == "update_task_state":
            a = list(a) + [o["kwargs"].get(k) for k in ("task_id", "route", "event")[len(a):]]
            if not isinstance(a[2], dict) or "event" not in a[2]:
                return None, "passes a non-event to update_task_state (Orquesta's Python argument check)"
            ev = a[2]["event"]
            st["do"] = "event"
            st["task"] = a[0]
            st["route"] = a[1]
            st["status"] = ev["status"]
            if "item_id" in ev:
                st["item"] = ev["item_id"]
            if "result" in ev:
                st["result"] = ev["result"]
            if "accumulated_result" in ev and task_completed(o.get("snap") or {}, a[0], a[1]):
                # Orquesta takes a with-items task's result from the event that completes it
                # (make_task_result; its retry is decided with it too): the caller's list is
                # written on such events only
                st["accumulated_result"] = ev["accumulated_result"]
            if ev["type"] not in ("ActionExecutionEvent", "TaskItemActionExecutionEvent"):
                return None, f"sends an Orquesta-internal event ({ev['type']})"
            call = expected_call(o) if ev["status"] == "running" else None
            if call is not None:
                st["call"] = call
        elif name == "request_workflow_rerun":
            reqs = a[0] if a else o["kwargs"].get("task_requests")
            st["do"] = "rerun"
            if reqs:
                st["tasks"] = [
                    {"task": r["rerun_request"]["task_id"], "route": r["rerun_request"]["route"],
                     **({"reset_items": True} if r["rerun_request"]["reset_items"] else {})}
                    for r in reqs
                ]
        elif name == "render_workflow_output":
            st["do"] = "render_output"
        elif name == "final_render":
            st["do"] = "render_output"
            st["note"] = "added by the recorder after the test's last step (Orquesta renders output when asked)"
        elif name == "get_workflow_output":
            st["do"] = "output"
        elif name == "get_next_tasks":
            st["do"] = "next_tasks"
        elif name == "get_workflow_initial_context":
            st["do"] = "initial_context"
        elif name == "get_workflow_terminal_context":
            st["do"] = "terminal_context"
        elif name == "get_task_initial_context":
            st["do"] = "task_context"
            st["task"], st["route"] = a[0], a[1]
        rendered = rendered or name in ("render_workflow_output", "final_render")
        # before Orquesta rendered it, its output is None because nobody asked: not compared
        exp = snap_expect(o["snap"], prev, final=(i == last_step),
                          output=rendered and name in ("render_workflow_output", "final_render", "get_workflow_output"))
        if sparse and i != last_step:
            exp.pop("sequence", None)
            prev.pop("sequence", None)
        if "raises" in o:
            exp["raises"] = o["raises"].split(":", 1)[0]
        elif name == "get_next_tasks":
            nxt = []
            for t in o["result"]:
                e = {"task": t["id"], "route": t["route"]}
                ids = [x.get("item_id") for x in t["actions"] if "item_id" in x]
                if "items_count" in t:
                    e["items"] = ids
                nxt.append(e)
            exp["next"] = nxt
        elif name in ("get_workflow_initial_context", "get_workflow_terminal_context", "get_task_initial_context"):
            exp["context"] = o["result"]
        if exp:
            st["expect"] = exp
        steps.append(st)
    if sparse:
        case["sparse"] = ["sequence"]  # stated at the last step only (a stress-size case)
    case["steps"] = steps
    return case, None


def main():
    data = {"traces": [], "outcomes": {}}
    for path in sys.argv[1:] or [os.path.join(WORK, "traces.json"), os.path.join(WORK, "traces_perf.json")]:
        d = json.load(open(path))
        data["traces"] += d["traces"]
        data["outcomes"].update(d["outcomes"])
    fixtures = fixture_index()
    by_test = collections.defaultdict(list)
    for tr in data["traces"]:
        if tr["test"]:
            by_test[tr["test"]].append(tr)
    modules = collections.defaultdict(list)
    coverage = {}
    for nodeid in sorted(set(data["outcomes"]) | set(by_test)):
        path, cls, test = nodeid.split("::")
        mod = path[len(PREFIX):]
        if NATIVE_DONE.fullmatch(mod):
            coverage[f"{mod}::{cls}::{test}"] = {"cases": [], "reason": "covered by tests/conformance/orquesta (rehearsal specs)"}
            continue
        prov = f"{mod}::{cls}::{test}"
        traces = [t for t in by_test.get(nodeid, []) if t["n"] >= 0 or t.get("ops")]
        made, reasons = [], []
        usable = [t for t in traces if t["n"] >= 0]
        for tr in usable:
            case, why = convert_trace(tr, fixtures, sparse=mod in SPARSE)
            if case is None:
                reasons.append(why)
                continue
            base = os.path.basename(mod)[:-3]
            cid = f"{base}__{test}" + (f"__{tr['n'] + 1}" if len(usable) > 1 else "")
            modules[mod].append({"id": cid, "provenance": prov, **case})
            made.append(cid)
        if not traces:
            reasons.append("no WorkflowConductor is driven")
        coverage[prov] = {"cases": made, "reason": "; ".join(sorted(set(reasons))) or None}
    os.makedirs(os.path.join(OUT, "cases"), exist_ok=True)
    for mod, cases in sorted(modules.items()):
        name = mod.replace("/", "__")[:-3] + ".yaml"
        with open(os.path.join(OUT, "cases", name), "w") as fh:
            fh.write(f"# flowctx conformance cases derived from Orquesta 1.6.0 {mod}\n")
            fh.write("# recorded by running the upstream tests under Orquesta (see ../PROVENANCE.md)\n")
            yaml.dump({"module": mod, "cases": cases}, fh, Dumper=_Dumper, sort_keys=False, width=1000)
    with open(os.path.join(WORK, "coverage.json"), "w") as fh:
        json.dump(coverage, fh, indent=1)
    n = sum(len(c) for c in modules.values())
    print(f"{n} cases in {len(modules)} modules; {sum(1 for v in coverage.values() if not v['cases'])} tests without a case")




COMPOSE_JSON = os.path.join(WORK, "compose.json")


def convert_composition(path=COMPOSE_JSON):
    recs = json.load(open(path))
    by_mod = collections.defaultdict(list)
    cov = {}
    for r in recs:
        p, cls, test = r["test"].split("::")
        mod = p[len(PREFIX):]
        g = r["graph"]
        nodes = [n["id"] for n in g["nodes"]]
        graph = {
            "nodes": sorted(nodes),
            "joins": {n["id"]: n["barrier"] for n in g["nodes"] if "barrier" in n},
            "splits": sorted(n["id"] for n in g["nodes"] if n["id"] in n.get("splits", [])),
            "edges": sorted(
                [nodes[i], e["id"], e["key"], e["ref"], e.get("criteria") or []]
                for i, adj in enumerate(g["adjacency"]) for e in adj
            ),
        }
        retries = {n["id"]: n["retry"] for n in g["nodes"] if "retry" in n}
        if retries:
            graph["retries"] = retries
        wf = os.path.join(FIXTURES, r["wf_name"] + ".yaml")
        assert os.path.exists(wf), wf
        cid = f"{os.path.basename(mod)[:-3]}__{test}"
        cid = "composition_" + cid[len("test_"):] if cid.startswith("test_") else cid
        by_mod[mod].append({"id": cid, "provenance": f"{mod}::{cls}::{test}",
                            "workflow_file": os.path.relpath(wf, OUT), "graph": graph})
        cov[f"{mod}::{cls}::{test}"] = {"cases": [cid], "reason": None}
    for mod, cases in by_mod.items():
        name = mod.replace("/", "__")[:-3] + ".yaml"
        with open(os.path.join(OUT, "cases", name), "w") as fh:
            fh.write(f"# flowctx graph-shape cases derived from Orquesta 1.6.0 {mod}\n")
            fh.write("# recorded: the execution graph Orquesta composed for each fixture (see ../PROVENANCE.md)\n")
            yaml.dump({"module": mod, "cases": cases}, fh, Dumper=_Dumper, sort_keys=False, width=1000)
    cov["composition/native/test_composer.py::WorkflowComposerTest::test_get_composer"] = {
        "cases": [], "reason": "checks Orquesta's plugin lookup of its composer module (Python API)"}
    with open(os.path.join(WORK, "coverage_extra.json"), "w") as fh:
        json.dump(cov, fh, indent=1)
    print(sum(len(c) for c in by_mod.values()), "graph cases")


if __name__ == "__main__":
    main()
    convert_composition()
