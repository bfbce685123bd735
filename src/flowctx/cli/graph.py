"""``flowctx graph FILE [--format mermaid|dot|svg|png]``: the task graph of a workflow, as text
(Mermaid, Graphviz dot) or as a picture drawn by Graphviz's ``dot`` (when it is installed);
``--status ID --state FILE`` colours the tasks by how an execution went."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from flowctx.errors import FlowctxError

from flowctx.spec.loader import load_workflow
from flowctx.spec.model import ENGINE_COMMANDS, TaskSpec, Transition, WorkflowSpec

EXAMPLE = """\
Tasks are boxes (with their action), transitions are arrows labelled with their condition
(a decision's default branch is labelled 'otherwise'), engine commands (continue, noop, fail,
retry) are terminal nodes, sub-tasks of a parallel task are grouped.

examples:
  $ flowctx graph workflow.yaml > graph.mmd           # Mermaid (paste into Markdown)
  $ flowctx graph workflow.yaml --format dot | dot -Tsvg > graph.svg
  $ flowctx graph workflow.yaml --format svg -o graph.svg      # needs Graphviz (`dot`)
  $ flowctx graph workflow.yaml --format png -o graph.png --status 3f2a9c1b7e10 --state runs.db

--status colours each task by its latest instance in that execution: succeeded green,
failed / timed out red, running blue, canceled orange, skipped grey, never reached white.
"""

#: status -> (fill colour, border colour) for --status
STATUS_COLOURS = {
    "succeeded": ("#c8e6c9", "#2e7d32"),
    "failed": ("#ffcdd2", "#c62828"),
    "timeout": ("#ffcdd2", "#c62828"),
    "timed_out": ("#ffcdd2", "#c62828"),
    "running": ("#bbdefb", "#1565c0"),
    "pending": ("#bbdefb", "#1565c0"),
    "paused": ("#fff9c4", "#f9a825"),
    "canceled": ("#ffe0b2", "#ef6c00"),
    "skipped": ("#eeeeee", "#757575"),
}
NOT_RUN = "not run"
PICTURES = ("svg", "png")


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
    parser.add_argument("--format", choices=("mermaid", "dot", *PICTURES), default="mermaid",
                        help="output format (default: mermaid); svg and png are drawn by Graphviz's `dot`")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument("--status", metavar="EXECUTION_ID",
                        help="colour the tasks by their status in this execution (needs --state)")
    parser.add_argument("--state", metavar="FILE", help="the state database of --status")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.status and not args.state:
        raise FlowctxError("--status needs --state FILE (the state database the execution is in)")
    if args.state and not args.status:
        raise FlowctxError("--state needs --status EXECUTION_ID (the execution whose statuses to show)")
    if args.format in PICTURES and args.output is None and _is_terminal(sys.stdout):
        raise FlowctxError(f"--format {args.format} writes a binary picture: use -o FILE or redirect standard output")
    dot = find_dot() if args.format in PICTURES else None
    spec = load_workflow(Path(args.file))  # always a file, never YAML text
    status = execution_statuses(args.state, args.status) if args.status else None
    if args.format in PICTURES:
        assert dot is not None
        data = draw(render_graph(spec, "dot", status), args.format, dot)
    else:
        data = render_graph(spec, args.format, status).encode("utf-8")
    if args.output:
        try:
            with open(args.output, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            raise FlowctxError(f"-o {args.output}: cannot write ({exc.strerror or exc})") from None
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


def find_dot() -> str:
    """The path of Graphviz's ``dot`` (``$FLOWCTX_DOT`` or on ``PATH``), or one clear error."""
    dot = os.environ.get("FLOWCTX_DOT") or shutil.which("dot")
    if not dot or not os.access(dot, os.X_OK):
        raise FlowctxError(
            "svg and png pictures are drawn by Graphviz's `dot`, which is not installed (not on PATH): "
            "install Graphviz (apt-get install graphviz, dnf install graphviz, brew install graphviz) "
            "or print the text with --format dot / --format mermaid"
        )
    return dot


def draw(dot_text: str, fmt: str, dot: str, timeout: float = 60.0) -> bytes:
    """``dot -T<fmt>`` of ``dot_text``: the picture's bytes."""
    try:
        proc = subprocess.run([dot, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FlowctxError(f"Graphviz `dot` did not finish drawing the graph in {timeout:g} s") from None
    except OSError as exc:
        raise FlowctxError(f"cannot run Graphviz `dot` ({dot}): {exc.strerror or exc}") from None
    if proc.returncode != 0 or not proc.stdout:
        detail = " ".join(proc.stderr.decode("utf-8", "replace").split())[:300]
        raise FlowctxError(f"Graphviz `dot -T{fmt}` failed (exit {proc.returncode}): {detail or 'no output'}")
    return proc.stdout


def execution_statuses(state_path: str, execution_id: str) -> dict[str, str]:
    """Task name -> status of its latest instance in a stored execution."""
    from flowctx.errors import StateError
    from flowctx.state import SQLiteState

    if not os.path.exists(state_path):
        raise StateError(f"{state_path}: no such state file")
    state = SQLiteState(state_path)
    try:
        state.get_execution(execution_id)  # one clear error for an unknown execution
        rows = state.task_instances(execution_id)
        calls = state.task_executions(execution_id)
    finally:
        state.close()
    out: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: r["seq"]):
        out[row["task"]] = str(row["status"])
    subtasks: dict[str, str] = {}  # a parallel task's calls are keyed by the sub-task's name
    for call in sorted(calls, key=lambda c: c["pos"]):
        if isinstance(call["item_key"], str):
            subtasks[call["item_key"]] = str(call["status"])
    for name, status in subtasks.items():
        out.setdefault(name, status)
    return out


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


def render_graph(spec: WorkflowSpec, fmt: str = "mermaid", status: Mapping[str, str] | None = None) -> str:
    """The graph as Mermaid or dot text; ``status`` (task -> status) colours the tasks."""
    if fmt == "dot":
        return _Dot(spec, status).render()
    return _Mermaid(spec, status).render()


def _status_of(status: Mapping[str, str] | None, task: TaskSpec) -> str | None:
    if status is None:
        return None
    return status.get(task.name, NOT_RUN)


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
    def __init__(self, spec: WorkflowSpec, status: Mapping[str, str] | None = None) -> None:
        self.spec = spec
        self.status = status
        self.ids = _Ids()
        self.lines = ["flowchart TD"]
        self.classes: dict[str, list[str]] = {}

    @staticmethod
    def esc(text: str) -> str:
        return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;").replace("|", "#124;")

    def node(self, task: TaskSpec, indent: str) -> None:
        parts = _label_parts(task)
        st = _status_of(self.status, task)
        if st is not None:
            parts.append(f"[{st}]")
            self.classes.setdefault(st, []).append(self.ids.get("task", task.name))
        label = "<br/>".join(self.esc(part) for part in parts)
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
        for st, ids in self.classes.items():
            fill, stroke = STATUS_COLOURS.get(st, ("#ffffff", "#9e9e9e"))
            name = "st_" + re.sub(r"\W", "_", st)
            self.lines.append(f"  classDef {name} fill:{fill},stroke:{stroke};")
            self.lines.append(f"  class {','.join(ids)} {name};")
        return "\n".join(self.lines) + "\n"


class _Dot:
    def __init__(self, spec: WorkflowSpec, status: Mapping[str, str] | None = None) -> None:
        self.spec = spec
        self.status = status
        self.ids = _Ids()
        self.lines = [f"digraph {self.q(spec.name)} {{", "  rankdir=TB;", "  node [shape=box, style=rounded];"]
        self.clusters = 0

    @staticmethod
    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    def node(self, task: TaskSpec, indent: str) -> None:
        parts = _label_parts(task)
        st = _status_of(self.status, task)
        attrs = ""
        if st is not None:
            parts.append(f"[{st}]")
            fill, stroke = STATUS_COLOURS.get(st, ("#ffffff", "#9e9e9e"))
            attrs = f', style="rounded,filled", fillcolor="{fill}", color="{stroke}"'
        label = "\n".join(parts)
        self.lines.append(f"{indent}{self.ids.get('task', task.name)} [label={self.q(label)}{attrs}];")

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
