"""``flowctx actions``: list the actions a workflow can call, with their parameters."""
from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from typing import Any

from flowctx.actions import DEFAULT_REGISTRY, ActionRegistry, ActionSpec
from flowctx.cli._common import import_actions

EXAMPLE = """\
examples:
  flowctx actions                       every action: built-ins, installed packages' entry points
  flowctx actions 'core.*'              only the names matching a glob
  flowctx actions --actions myactions.py --json
                                        include the actions a module registers, as JSON

Parameters come from each function's signature: `name` is required, `name=default` optional,
`**kwargs` accepts any input.  Besides these names, a workflow can call any Python function
as 'module:function'.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "actions",
        help="list the available actions and their parameters",
        description="List the actions workflows can call: the built-in core.* actions, actions "
        "registered with @flowctx.action in the modules given with --actions, and those installed "
        "packages provide through the 'flowctx.actions' entry-point group.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("patterns", nargs="*", metavar="PATTERN", help="only actions whose name matches a glob (e.g. 'core.*')")
    parser.add_argument(
        "--actions",
        dest="action_modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module (dotted name or .py file) that registers actions; repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    parser.set_defaults(func=run)


def collect(registry: ActionRegistry, patterns: list[str] | None = None) -> list[ActionSpec]:
    """The actions of ``registry`` (entry points loaded) whose names match any of ``patterns``."""
    registry.load_entry_points()
    specs = list(registry)
    if patterns:
        specs = [s for s in specs if any(fnmatch.fnmatchcase(s.name, p) or p == s.name for p in patterns)]
    return specs


def _plain_default(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def as_json(specs: list[ActionSpec]) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "summary": _clean(s.summary),
            "source": s.source,
            "parameters": [
                {
                    "name": p.name,
                    "required": p.required,
                    **({"default": _plain_default(p.default)} if p.kind == "keyword" and not p.required else {}),
                    **({"any_other": True} if p.kind == "var_keyword" else {}),
                }
                for p in s.parameters()
            ],
        }
        for s in specs
    ]


def _clean(text: str) -> str:
    return text.replace("``", "")


def format_text(specs: list[ActionSpec]) -> str:
    lines: list[str] = []
    for s in specs:
        params = ", ".join(str(p) for p in s.parameters())
        origin = f"   [{s.source}]" if s.source not in ("code",) else ""
        lines.append(f"{s.name}({params}){origin}")
        if s.summary:
            lines.append(f"    {_clean(s.summary)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import_actions(args.action_modules)
    specs = collect(DEFAULT_REGISTRY, args.patterns)
    if args.json:
        print(json.dumps(as_json(specs), indent=2))
        return 0
    if not specs:
        print(f"no action matches {' '.join(args.patterns)!s}", file=sys.stderr)
        return 1
    print(format_text(specs))
    return 0
