"""Write tests/conformance/orquesta-suite/conducting/PROVENANCE.md from coverage.json."""
import collections
import glob
import json
import os
import re

import yaml

WORK = os.environ.get("CONDUCTING_WORK", "/tmp/conducting-traces")  # traces and coverage (not kept in the repository)

WT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))  # the repository
OUT = WT + "/tests/conformance/orquesta-suite/conducting"
UP = os.environ.get("ORQUESTA_TESTS", "/work/orquesta/orquesta/tests/unit") + "/"

cov = json.load(open(os.path.join(WORK, "coverage.json")))
extra = json.load(open(os.path.join(WORK, "coverage_extra.json"))) if os.path.exists(os.path.join(WORK, "coverage_extra.json")) else {}
cov.update(extra)
for t in ("success", "failure", "bad_test_spec", "bad_base_path", "bad_test_spec_dir", "multiple"):
    cov[f"commands/test_rehearse_command.py::WorkflowRehearsalSpecTest::test_rehearse_{t}"] = {
        "cases": [f"rehearse_command__test_rehearse_{t}"], "reason": None}

# upstream tests per module (from the source, so nothing that never ran is missed)
upstream = collections.OrderedDict()
paths = [p for d in ("conducting", "composition", "commands") for p in sorted(glob.glob(UP + d + "/**/test_*.py", recursive=True))]
for path in paths:
    mod = path[len(UP):]
    cls = None
    for line in open(path):
        m = re.match(r"class (\w+)", line)
        if m:
            cls = m.group(1)
        m = re.match(r"    def (test_\w+)", line)
        if m:
            upstream.setdefault(mod, []).append(f"{mod}::{cls}::{m.group(1)}")
for t, v in cov.items():
    if v.get("reason") == "no WorkflowConductor is driven":
        if t.endswith("test_runtime_function_of_splits_count"):
            v["reason"] = "times spec.inspect() of a 25-split workflow (no conductor; inspection and timing)"
        elif t.startswith("conducting/test_workflow_state.py"):
            v["reason"] = "unit test of Orquesta's WorkflowState data structure (Python API, no workflow-visible behaviour)"
        else:
            v["reason"] = "asserts spec.inspect() only (a spec-inspection check: the inspection group's concern)"
    elif (v.get("reason") or "").startswith("drives Orquesta internals"):
        v["reason"] += " (Python API with no flowctx counterpart)"
PERF = "conducting/test_workflow_conductor_performance.py"
for t in upstream.get(PERF, []):
    cov.setdefault(t, {"cases": [], "reason": "stress test of Orquesta's run time / serialization size on large graphs (not run by the recorder; flowctx measures scale in benchmarks/)"})

partial = {c["id"] for p in glob.glob(OUT + "/cases/*.yaml") for c in yaml.safe_load(open(p))["cases"] if c.get("note")}
n_cases = sum(len(yaml.safe_load(open(p))["cases"]) for p in glob.glob(OUT + "/cases/*.yaml"))
lines = [
    "# Provenance: conducting group\n\n",
    "Upstream: StackStorm Orquesta **1.6.0** (`/work/orquesta`, Apache-2.0), "
    "`orquesta/tests/unit/conducting/` (275 tests in 23 modules), plus `composition/` (25 tests: "
    "the task graph Orquesta composes) and `commands/test_rehearse_command.py` (6 tests).\n\n",
    "## How the data was derived\n\n",
    "The upstream tests were **run** under Orquesta 1.6.0 (`/work/venv-orquesta`) with a recording "
    "pytest plugin (`tools/record_plugin.py`) that wraps every public method of "
    "`WorkflowConductor` and `WorkflowState`. For each conductor a test creates it records the "
    "workflow definition, inputs and parent context, every top-level call the test makes "
    "(status requests, action execution events with their results and item ids, rerun requests, "
    "output rendering, next-task and context queries) with its return value or exception, and "
    "after every call a snapshot of Orquesta's state: workflow status, the task sequence with "
    "each entry's status, routes, errors, terminal tasks, output. For every `running` event it "
    "also records the action and rendered input Orquesta hands out for that task (item). "
    "An item event's `accumulated_result` (the with-items task result the test passed; Orquesta "
    "takes the task's result from it) is written on the events after which the task was "
    "completed or retrying, the only ones where Orquesta uses it. "
    "After a test, a conductor it left completed without asking for the output has its output "
    "rendered once more (st2 does this on completion) and that is recorded as a final "
    "`render_output` step. A converter (`tools/convert.py`, whose docstring gives the whole pipeline) turns each trace into one case of "
    "`cases/<module>.yaml`; expected values are Orquesta's recorded observations, never copied "
    "from the asserts. Serialize/deserialize round trips were followed (the deserialized "
    "conductor continues the same case).\n\n",
    "Workflows: the parsed definition of each test, written back as YAML with its `description` "
    "dropped (the facts a case needs; no upstream file is copied). A definition identical to one "
    "in `tests/conformance/orquesta/workflows/` is referenced by path instead.\n\n",
    "Upstream tests that did **not** become cases, and why: they construct no conductor "
    "(WorkflowState / graph unit tests, spec-inspection checks), or they drive Orquesta's "
    "internals (`add_task_state`, `log_entry`, `make_task_context` + `_evaluate_task_retry`), or "
    "pass a non-event to check Python argument types, or are stress tests, or are the eight "
    "`conducting/native/test_workflow_*.py` modules already covered by "
    "`tests/conformance/orquesta/specs` (88 rehearsal specs, including the two "
    "`fixtures/rehearsals` specs of `commands/test_rehearse_command.py`) and sampled by "
    "`/work/shared/conformance/orquesta-more` (47 specs). A test that drives the conductor and then "
    "turns to internals (`make_task_context`, `log_entry`, `add_task_state`) gives a case of the "
    "part before (marked `note` in the data, and below).\n\n",
    "Composition: the same kind of plugin (`tools/record_compose.py`) recorded the execution graph "
    "Orquesta composed for each fixture (nodes, join barriers, split points, edges with key, "
    "transition index and criteria, retry attributes); the fixtures are all in "
    "`tests/conformance/orquesta/workflows/` and referenced by path. The rehearsal command: "
    "`orquesta-rehearse` 1.6.0 was run on its fixtures (exit status and message noted in "
    "`cases/commands__test_rehearse_command.yaml`); the two specs in `rehearse/` were written "
    "for this group with the fixtures' facts (inputs, mocked results, expectations).\n\n",
    "## Mapping onto flowctx\n\n",
    "See the docstring of `tests/_conformance_conducting.py`: pause, resume and cancel requests "
    "are the Conductor's own (`pause()` / `mark_paused()`, `resume()`, `cancel()`). Operations "
    "flowctx lacks: a public "
    "'fail this workflow' request (mapped to `Conductor._request_fail()`), action outcomes "
    "`pending` / `paused` / `pausing` / `canceling` (the call stays running), Orquesta's parent "
    "context (passed as flowctx's `system` namespace). Orquesta's `expired` is flowctx's "
    "`timeout`. Output is compared at the steps where Orquesta rendered it.\n\n",
    f"## Coverage ({n_cases} cases)\n\n",
    "| module | upstream tests | tests with cases | cases | not converted |\n|---|---|---|---|---|\n",
]
tot = [0, 0, 0, 0]
for mod, tests in upstream.items():
    with_c = sum(1 for t in tests if cov.get(t, {}).get("cases"))
    nc = sum(len(cov.get(t, {}).get("cases", [])) for t in tests)
    lines.append(f"| {mod} | {len(tests)} | {with_c} | {nc} | {len(tests) - with_c} |\n")
    for i, v in enumerate((len(tests), with_c, nc, len(tests) - with_c)):
        tot[i] += v
lines.append(f"| **total** | {tot[0]} | {tot[1]} | {tot[2]} | {tot[3]} |\n\n")
lines.append("## Per test\n\n")
for mod, tests in upstream.items():
    lines.append(f"### {mod}\n\n")
    for t in tests:
        v = cov.get(t, {"cases": [], "reason": "not recorded"})
        name = t.split("::", 1)[1]
        if v["cases"]:
            part = " (the workflow-visible part before the test turns to Orquesta internals)" if set(v["cases"]) & partial else ""
            lines.append(f"- `{name}` -> {', '.join('`' + c + '`' for c in v['cases'])}{part}\n")
        else:
            lines.append(f"- `{name}`: not converted: {v['reason']}\n")
    lines.append("\n")
open(OUT + "/PROVENANCE.md", "w").write("".join(lines))
print(tot)
