"""``flowctx rehearse``: run workflows against mocked action outcomes and check expectations."""
from __future__ import annotations

import argparse
import glob
import os
import sys

EXAMPLE = """\
examples (paths of this repository):
  flowctx rehearse tests/conformance/orquesta/specs/rehearsals__sequential_success.yaml
  flowctx rehearse tests/conformance/orquesta/specs/          # every spec in a directory

A spec names the workflow, its inputs, mocked action outcomes
(mock_action_executions: [{task_id, status, result, item_id, seq_id, num_iter}])
and what must happen (expected_task_sequence, expected_routes,
expected_workflow_status, expected_errors, expected_output, expected_term_tasks).
A spec with rerun_of/rerun_tasks continues the final state of another spec.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "rehearse",
        help="test workflows with mocked action outcomes",
        description=(
            "Rehearse workflows: run each spec's workflow with mocked action outcomes in "
            "deterministic batches and compare task sequence, routes, status, errors, output "
            "and terminal tasks. Prints one line per spec (with the first mismatch) and "
            "'N passed, M failed'; exits 1 if any spec failed."
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("specs", nargs="+", metavar="SPEC", help="rehearsal spec files (YAML) or directories")
    p.add_argument("-v", "--verbose", action="store_true", help="print every mismatch, not just the first")
    p.set_defaults(func=main)


def _expand(paths: list[str]) -> list[str]:
    out: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            out.extend(sorted(glob.glob(os.path.join(path, "*.yaml")) + glob.glob(os.path.join(path, "*.yml"))))
        else:
            out.append(path)
    return out


def main(args: argparse.Namespace) -> int:
    from flowctx.rehearse import rehearse

    files = _expand(args.specs)
    results = rehearse(*files)
    passed = failed = 0
    for res in results:
        name = os.path.basename(res.spec_file)
        if res.ok:
            passed += 1
            note = " (mismatch expected and found)" if res.mismatches else ""
            print(f"PASS {name}{note}")
        else:
            failed += 1
            print(f"FAIL {name}: {res.first_mismatch}")
            if args.verbose:
                for m in res.mismatches[1:]:
                    print(f"     {m}")
    print(f"{passed} passed, {failed} failed")
    sys.stdout.flush()
    return 1 if failed else 0
