"""``flowctx validate FILE...``: check workflow files, print every problem, exit 1 on errors."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flowctx.errors import WorkflowError
from flowctx.spec.loader import load_workflow
from flowctx.spec.problems import Problem
from flowctx.spec.validate import validate

EXAMPLE = """\
Each problem is printed on one line as  FILE:LINE:COL: error|warning: MESSAGE [TASK].
What `flowctx run` would refuse is reported here first: unknown actions (core.* always; every
name with --actions), missing sub-workflow files and inputs they do not declare, functions that
do not exist, variables referenced before assignment.
A file without errors prints  FILE: ok  (its warnings, if any, are printed before).

example:
  $ flowctx validate deploy.yaml broken.yaml
  deploy.yaml: ok
  broken.yaml:12:13: error: transition to unknown task 'tsk3' (did you mean 'task3'?) [task2]
  broken.yaml:20:11: error: join: 3 can never be satisfied: only 2 tasks lead to 'task8' (task3, task5) [task8]

exit status: 0 if no file has an error, 1 otherwise (with --strict, warnings count as errors).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check workflow files and print every problem",
        description="Load and check workflow files (Orquesta native v1 or list form): YAML, "
        "structure, task graph, values, template syntax and undefined variables.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="workflow YAML file(s)")
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    parser.add_argument(
        "--actions", dest="action_modules", action="append", default=[], metavar="MODULE",
        help="import a module (dotted name or .py file) that registers actions, as `flowctx run` does; "
        "then the action set is known and every action name must resolve (without it only names in "
        "flowctx's core. namespace are checked); repeatable",
    )
    parser.add_argument(
        "--context", metavar="FILE|JSON",
        help="the application context the run will get (as `flowctx run --context`): its names are "
        "defined, reading them is not 'referenced before assignment'",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only (no warnings, no 'ok')")
    parser.set_defaults(func=run)


def check_file(path: str, actions: Any = None, context_names: Any = ()) -> list[Problem]:
    """Every problem of one workflow file (a file that cannot be read or parsed gives one);
    ``actions``: the registry holding the whole action set, when it is known; ``context_names``:
    the names of the application context the run will get."""
    try:
        spec = load_workflow(Path(path), validate=False)  # always a file, never YAML text
    except WorkflowError as exc:
        if exc.problems:
            return list(exc.problems)
        return [Problem("error", exc.message, None)]
    return validate(spec, actions=actions, extra_names=context_names)


def run(args: argparse.Namespace) -> int:
    actions = None
    if args.action_modules:
        from flowctx.actions import DEFAULT_REGISTRY, import_action_module

        for module in args.action_modules:
            import_action_module(module)
        actions = DEFAULT_REGISTRY
    context_names: Any = ()
    if args.context is not None:
        from flowctx.cli.run import read_context_option

        context_names = read_context_option(args.context)
    failed = False
    for path in args.files:
        problems = check_file(path, actions, context_names)
        bad = [p for p in problems if p.is_error or (args.strict and p.severity == "warning")]
        for p in problems:
            if args.quiet and not p.is_error:
                continue
            print(p if p.loc is not None else f"{path}: {p.severity}: {p.message}")
        if bad:
            failed = True
        elif not args.quiet:
            print(f"{path}: ok")
    sys.stdout.flush()
    return 1 if failed else 0
