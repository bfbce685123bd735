"""``flowctx graph FILE [--format mermaid|dot]``: print the task graph of a workflow."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from flowctx.spec.loader import load_workflow
from flowctx.spec.model import ENGINE_COMMANDS, TaskSpec, Transition, WorkflowSpec

EXAMPLE = """\
Tasks are boxes (with their action), transitions are arrows labelled with their condition
(a decision's default branch is labelled 'otherwise'), engine commands (continue, noop, fail,
retry) are terminal nodes, sub-tasks of a parallel task are grouped.

examples:
  $ flowctx graph workflow.yaml > graph.mmd           # Mermaid (paste into Markdown)
  $ flowctx graph workflow.yaml --format dot | dot -Tsvg > graph.svg
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "graph",
        help="print the task graph (Mermaid or Graphviz dot)",
        description="Print the task graph of a workflow, with transitions labelled by their "
        "conditions, for docs and reviews.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="workflow YAML file")
    parser.add_argument("--format", choices=("mermaid", "dot"), default="mermaid",
                        help="output format (default: mermaid)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = load_workflow(Path(args.file))  # always a file, never YAML text
    print(render_graph(spec, args.format), end="")
    return 0


def condition_label(tr: Transition) -> str:
    """The condition of a transition without its template delimiters ('' for always)."""
    if tr.otherwise:
        return "otherwise"
    if tr.when is None:
        return ""
    text = tr.when.strip()
    for opener, closer in (("{{", "}}"), ("<%", "%>")):
        if text.startswith(opener) and text.endswith(closer) and text.count(opener) == 1:
            text = text[2:-2].strip()
    return " ".join(text.split())


def render_graph(spec: WorkflowSpec, fmt: str = "mermaid") -> str:
    if fmt == "dot":
        return _Dot(spec).render()
    return _Mermaid(spec).render()


# Words that cannot be node ids in Mermaid or dot.
_RESERVED_IDS = frozenset({"end", "graph", "subgraph", "flowchart", "style", "class", "classdef", "click",
                           "linkstyle", "default", "node", "edge", "digraph", "strict"})


class _Ids:
    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], str] = {}
        self.used: set[str] = set()

    def get(self, kind: str, name: str) -> str:
        key = (kind, name)
        if key not in self.ids:
            base = re.sub(r"\W", "_", name) or "_"
            if kind != "task":
                base = f"{kind}_{base}"
            if base[0].isdigit() or base.lower() in _RESERVED_IDS:
                base = "n_" + base
            ident, i = base, 1
            while ident in self.used:
                i += 1
                ident = f"{base}_{i}"
            self.used.add(ident)
            self.ids[key] = ident
        return self.ids[key]


def _label_parts(task: TaskSpec) -> list[str]:
    parts = [task.name]
    if task.type == "parallel":
        parts.append("(parallel)")
    elif task.action:
        parts.append(task.action)
    elif task.workflow:
        parts.append(f"workflow {task.workflow}")
    if task.with_items is not None:
        parts.append("with items")
    if task.join is not None:
        parts.append(f"join: {task.join}")
    return parts


def _edges(tasks: list[TaskSpec]) -> list[tuple[TaskSpec, Transition, str]]:
    return [(t, tr, target) for t in tasks for tr in t.transitions for target in tr.targets]


class _Mermaid:
    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec
        self.ids = _Ids()
        self.lines = ["flowchart TD"]

    @staticmethod
    def esc(text: str) -> str:
        return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;").replace("|", "#124;")

    def node(self, task: TaskSpec, indent: str) -> None:
        label = "<br/>".join(self.esc(part) for part in _label_parts(task))
        self.lines.append(f'{indent}{self.ids.get("task", task.name)}["{label}"]')

    def tasks(self, tasks: list[TaskSpec], indent: str) -> None:
        names = {t.name for t in tasks}
        for task in tasks:
            if task.subtasks:
                self.node(task, indent)
                self.lines.append(f'{indent}subgraph {self.ids.get("group", task.name)}["{self.esc(task.name)}"]')
                self.tasks(list(task.subtasks), indent + "  ")
                self.lines.append(f"{indent}end")
                self.lines.append(f'{indent}{self.ids.get("task", task.name)} -.- '
                                  f'{self.ids.get("group", task.name)}')
            else:
                self.node(task, indent)
        for task, tr, target in _edges(tasks):
            src = self.ids.get("task", task.name)
            if target in names:
                dst = self.ids.get("task", target)
            else:
                kind = "cmd" if target in ENGINE_COMMANDS else "missing"
                dst = self.ids.get(kind, f"{task.name}_{target}")
                shape = f'(["{target}"])' if kind == "cmd" else f'{{{{"{self.esc(target)} ?"}}}}'
                self.lines.append(f"{indent}{dst}{shape}")
            label = condition_label(tr)
            arrow = f'-->|"{self.esc(label)}"|' if label else "-->"
            self.lines.append(f"{indent}{src} {arrow} {dst}")

    def render(self) -> str:
        self.tasks(list(self.spec.tasks.values()), "  ")
        return "\n".join(self.lines) + "\n"


class _Dot:
    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec
        self.ids = _Ids()
        self.lines = [f"digraph {self.q(spec.name)} {{", "  rankdir=TB;", "  node [shape=box, style=rounded];"]
        self.clusters = 0

    @staticmethod
    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    def node(self, task: TaskSpec, indent: str) -> None:
        label = "\n".join(_label_parts(task))
        self.lines.append(f"{indent}{self.ids.get('task', task.name)} [label={self.q(label)}];")

    def tasks(self, tasks: list[TaskSpec], indent: str) -> None:
        names = {t.name for t in tasks}
        for task in tasks:
            self.node(task, indent)
            if task.subtasks:
                self.clusters += 1
                self.lines.append(f"{indent}subgraph cluster_{self.clusters} {{")
                self.lines.append(f"{indent}  label={self.q(task.name)};")
                self.tasks(list(task.subtasks), indent + "  ")
                self.lines.append(f"{indent}}}")
                first = task.subtasks[0].name
                self.lines.append(f"{indent}{self.ids.get('task', task.name)} -> {self.ids.get('task', first)}"
                                  " [style=dotted, arrowhead=none];")
        for task, tr, target in _edges(tasks):
            src = self.ids.get("task", task.name)
            if target in names:
                dst = self.ids.get("task", target)
            else:
                kind = "cmd" if target in ENGINE_COMMANDS else "missing"
                dst = self.ids.get(kind, f"{task.name}_{target}")
                shape = "shape=doublecircle" if kind == "cmd" else "shape=octagon, color=red"
                suffix = "" if kind == "cmd" else " ?"
                self.lines.append(f"{indent}{dst} [label={self.q(target + suffix)}, {shape}];")
            label = condition_label(tr)
            attrs = f" [label={self.q(label)}]" if label else ""
            self.lines.append(f"{indent}{src} -> {dst}{attrs};")

    def render(self) -> str:
        self.tasks(list(self.spec.tasks.values()), "  ")
        self.lines.append("}")
        return "\n".join(self.lines) + "\n"
