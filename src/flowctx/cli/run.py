"""``flowctx run FILE``: run a workflow, show its progress, print its output.

Layout (kept easy to extend): :func:`add_arguments` builds the parser, :func:`gather_parameters`
turns ``-p`` / ``--params-file`` into typed parameters, :func:`make_engine` builds the
:class:`~flowctx.engine.runner.Engine` from the options, :func:`execute` starts and waits (Ctrl-C
cancels), and :func:`report` prints the result in one of three modes: a live ``rich`` display
and a task table in a terminal, plain lines when stdout is not a terminal, JSON with ``--json``.

Exit status: 0 succeeded; 1 failed or canceled (one line ``flowctx: workflow failed: ...`` on
stderr); 2 usage, parameter or workflow errors (nothing ran); 130 interrupted with Ctrl-C.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from flowctx.cli._common import Masker, import_actions, load_config, make_renderer, open_kv_option
from flowctx.cli.metrics_server import start_metrics_server
from flowctx.errors import ActionError, FlowctxError, WorkflowError

EXAMPLE = """\
examples:
  flowctx run examples/hello-orquesta.yaml -p name=Ada
  flowctx run examples/fanout.yaml --actions examples/actions.py -p items=50000
  flowctx run deploy.yaml --params-file params.yaml -p dry_run=true --json > result.json
  flowctx run approve.yaml --answer approve='{approved: true}'
  flowctx run deploy.yaml --config pack-config.yaml --kv runs.db --metrics-port 9464

parameters:
  -p NAME=VALUE is typed by the parameter's JSON schema when it has a `type` (integer, number,
  boolean, array, object, string; an array also takes a,b,c); without one, VALUE is read as YAML
  (42 -> int, 1.5 -> float, true/false, null, [a, b], {k: v}; anything else is a string; quote
  to force a string: -p v='"42"').  A parameter without a type whose default is a list or a
  mapping is typed as an array / object.  A VALUE that starts with [ or { but is not valid YAML
  is refused (exit 2, nothing runs).  -p wins over --params-file (a YAML or JSON mapping).
  A parameter whose schema says `secret: true` is shown as ******** in everything flowctx
  prints (its value is masked inside output, errors and results too).

answers (core.inquiry):
  --answer TASK=VALUE answers the inquiry of task TASK with VALUE (read as YAML);
  --answer TASK.FIELD=VALUE sets one field of the answer.  --answers-file maps TASK -> answer.
  TASK must be a task of the workflow or of a sub-workflow file it names (or * for any);
  another name is refused before the run.  An inquiry without an answer fails its task.

actions:
  --actions MODULE may replace a built-in action (e.g. mock core.local); each replacement is
  reported on stderr as "flowctx: warning: --actions MODULE: replaces the built-in action ...".

application context:
  --context '{"parent": {"ex_id": "12345"}}' (or --context FILE, a YAML/JSON mapping) gives the
  run its parent context: ctx().parent.ex_id, input defaults and vars can read it; parameters and
  vars of the same name win.  Sub-workflows see it too, with `parent` naming the calling task.

config and key-value store:
  --config FILE (YAML/JSON mapping) is `config` and `pack.config` in templates; st2kv('system.x')
  and kv('x') read the key-value store (--kv FILE, default $FLOWCTX_KV or ~/.flowctx/kv.json;
  managed with `flowctx kv`); an unknown key fails the task that reads it.

output:
  in a terminal: a live progress bar per with-items task, then a task table and the output;
  otherwise plain lines (the output as JSON, then the status and elapsed time); --json prints one
  JSON document {status, reason, output, errors, tasks, metrics, ...}.

exit status: 0 succeeded, 1 failed or canceled (the reason on stderr), 2 bad usage, parameters
or workflow (nothing ran), 130 interrupted (Ctrl-C cancels the run cleanly; twice quits at once),
143 terminated (SIGTERM is handled like Ctrl-C).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a workflow",
        description="Run a workflow file (Orquesta native v1 or list form) on this machine and "
        "print its output. Actions run in a thread pool by default. A task's timeout (and a "
        "cancel: Ctrl-C, SIGTERM) kills shell commands' process groups (core.local) and stops "
        "core.sleep and sub-workflows on every executor; Python actions are only abandoned on "
        "the thread and inline executors (their code runs on, its result is dropped): a hard "
        "limit on Python code needs --executor process, which kills the worker.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``flowctx run`` (in groups, so more can be added next to them)."""
    parser.add_argument("file", metavar="FILE", help="workflow YAML file")
    params = parser.add_argument_group("parameters")
    params.add_argument(
        "-p", "--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
        help="a workflow parameter (repeatable); typed by its schema, else read as YAML",
    )
    params.add_argument(
        "--params-file", metavar="FILE", help="a YAML or JSON mapping of parameters (-p values win)",
    )
    execution = parser.add_argument_group("execution")
    execution.add_argument(
        "--executor", type=executor_name, default="thread", metavar="KIND",
        help="where actions run: thread (a thread pool, the default; a timed-out Python action is "
        "abandoned, not stopped), process (a process pool for CPU-bound Python actions; inputs are "
        "pickled; a timeout kills the worker), inline (in the engine thread: no concurrency; "
        "timeouts and cancel stop core.local / core.sleep, Python code runs to its end), dask (a "
        "Dask cluster: --scheduler, or a local cluster of --workers processes; needs "
        "flowctx[dask]), or an executor a package registers in the flowctx.executors entry-point group",
    )
    execution.add_argument(
        "--workers", type=_positive_int, metavar="N",
        help="size of the thread or process pool (dask: worker processes of the local cluster)",
    )
    execution.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="with --executor dask: the address of a running Dask scheduler (tcp://HOST:PORT); "
        "without it a local cluster starts on 127.0.0.1",
    )
    execution.add_argument(
        "--max-tasks", type=_positive_int, metavar="N", default=None,
        help="stop the run as failed once it has started N task instances (default 100000; "
        "a cycle with no way out ends there instead of filling memory)",
    )
    execution.add_argument(
        "--actions", dest="action_modules", action="append", default=[], metavar="MODULE",
        help="import a module (dotted name or .py file) that registers actions with "
        "@flowctx.action; repeatable",
    )
    execution.add_argument(
        "--state", metavar="FILE",
        help="make the run durable: record it in this SQLite state file; if the process dies, "
        "`flowctx resume EXECUTION_ID --state FILE` continues it (a missing FILE is created; an "
        "existing empty one is refused unless --init-state)",
    )
    execution.add_argument(
        "--init-state", action="store_true",
        help="with --state: make an existing empty (0-byte) FILE a new state file",
    )
    execution.add_argument(
        "--answer", dest="answers", action="append", default=[], metavar="TASK=VALUE",
        help="answer core.inquiry in task TASK (VALUE read as YAML; TASK.FIELD=VALUE sets one field)",
    )
    execution.add_argument(
        "--answers-file", metavar="FILE", help="a YAML or JSON mapping TASK -> answer for core.inquiry",
    )
    execution.add_argument(
        "--config", metavar="FILE",
        help="a YAML or JSON mapping the workflow reads as `config` (also `pack.config`)",
    )
    execution.add_argument(
        "--context", metavar="FILE|JSON",
        help="the application (parent) context: a JSON object, or a YAML/JSON file holding one mapping; "
        "its names are read by ctx() and bare names under the parameters and vars (Orquesta's "
        "WorkflowConductor context, e.g. {\"parent\": {...}, \"st2\": {...}}); data, never rendered",
    )
    execution.add_argument(
        "--kv", metavar="FILE",
        help="the key-value store st2kv('system.name') / kv('name') read: a JSON file or a flowctx "
        "state database (default: $FLOWCTX_KV, else ~/.flowctx/kv.json; see `flowctx kv`)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--metrics-port", type=_port, metavar="N",
        help="serve Prometheus metrics on http://HOST:N/metrics while the run lasts (0: any free port, "
        "printed on stderr)",
    )
    output.add_argument(
        "--metrics-host", default="127.0.0.1", metavar="HOST",
        help="the address --metrics-port listens on (default: 127.0.0.1, this machine only)",
    )
    output.add_argument(
        "--json", action="store_true",
        help="print one JSON document (status, reason, output, errors, tasks, metrics); no progress",
    )
    output.add_argument(
        "--results", action="store_true", help="with --json: include every task's result (may be large)",
    )


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number (0-65535), got {text!r}")
    return n


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


# ====================================================================== parameters
_YAML_WORDS_KEPT_AS_STRINGS = {"yes", "no", "on", "off", "y", "n"}


def read_mapping_file(path: str, what: str) -> dict[str, Any]:
    """A YAML or JSON file holding one mapping (``--params-file``, ``--answers-file``)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise FlowctxError(f"{what} {path!r}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise FlowctxError(f"{what} {path!r}{where}: not valid YAML or JSON") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FlowctxError(f"{what} {path!r}: expected a mapping of names to values, got {type(data).__name__}")
    return {str(k): v for k, v in data.items()}


def read_context_option(text: str) -> dict[str, Any]:
    """``--context FILE|JSON``: a JSON object given inline (it starts with ``{``), else a YAML or
    JSON file holding one mapping."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise FlowctxError(f"--context: not a valid JSON object ({exc})") from None
        if not isinstance(data, dict):
            raise FlowctxError(f"--context: expected a JSON object, got {type(data).__name__}")
        return data
    if not os.path.isfile(text):
        raise FlowctxError(f"--context {text!r}: no such file (give a file or a JSON object)")
    return read_mapping_file(text, "--context")


def _split_assignment(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise FlowctxError(f"{option} {text!r}: expected NAME=VALUE")
    return name, value


def _is_json_like(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json_like(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json_like(v) for k, v in value.items())
    return False


def parse_yaml_value(text: str, what: str | None = None) -> Any:
    """VALUE of ``-p NAME=VALUE`` without a schema type: JSON-like YAML, else the string itself.

    ``yes``/``no``/``on``/``off`` and dates stay strings (YAML 1.2 reads them so too).  A value
    that starts like a list or a mapping (``[`` / ``{``) but is not valid YAML is an error naming
    ``what`` (e.g. "parameter 'xs'") instead of silently becoming a string.
    """
    import yaml

    stripped = text.strip()
    if stripped == "" or stripped.lower() in _YAML_WORDS_KEPT_AS_STRINGS:
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        if what is not None and stripped.startswith(("[", "{")):
            kind = "a list" if stripped.startswith("[") else "a mapping"
            problem = getattr(exc, "problem", None) or "not valid YAML"
            raise FlowctxError(
                f"{what}: {text!r} starts like {kind} but is not valid YAML ({problem}); "
                f"to pass it as a string, quote it: '\"{text}\"'"
            ) from None
        return text
    return value if _is_json_like(value) else text


_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true/false)",
    "array": "an array (e.g. [a, b] or a,b)",
    "object": "an object (e.g. {key: value})",
    "null": "null",
    "string": "a string",
}
_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}


def _coerce_one(kind: str, text: str, items: Any = None) -> Any:
    """``text`` as JSON-schema type ``kind``; ValueError if it is not one."""
    s = text.strip()
    if kind == "string":
        return text
    if kind == "integer":
        return int(s, 10)
    if kind == "number":
        try:
            return int(s, 10)
        except ValueError:
            x = float(s)
            if not math.isfinite(x):
                raise ValueError(text) from None
            return x
    if kind == "boolean":
        low = s.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(text)
    if kind == "null":
        if s.lower() in ("", "null", "none", "~"):
            return None
        raise ValueError(text)
    if kind in ("array", "object"):
        value = parse_yaml_value(text)
        if kind == "array" and isinstance(value, list):
            return value
        if kind == "object" and isinstance(value, dict):
            return value
        if kind == "array" and isinstance(value, str) and not s.startswith(("[", "{")):
            parts = [part.strip() for part in s.split(",")] if s else []
            if isinstance(items, Mapping) and items.get("type") is not None:  # a,b typed by `items`
                try:
                    return [coerce_parameter(f"item {i}", part, items) for i, part in enumerate(parts)]
                except FlowctxError:
                    raise ValueError(text) from None
            return [parse_yaml_value(part) for part in parts]
        raise ValueError(text)
    raise ValueError(text)  # pragma: no cover - unknown kinds are handled by the caller


def coerce_parameter(name: str, text: str, schema: Mapping[str, Any] | None) -> Any:
    """The value of ``-p name=text``, typed by ``schema['type']`` (a name or a list of names)."""
    kind = (schema or {}).get("type")
    if kind is None:
        return parse_yaml_value(text, f"parameter '{name}'")
    kinds = [kind] if isinstance(kind, str) else [k for k in kind if isinstance(k, str)]
    known = [k for k in kinds if k in _TYPE_WORDS]
    if not known:
        return parse_yaml_value(text)
    # most specific first; a string (when allowed) is the fallback
    order = ["null", "boolean", "integer", "number", "array", "object"]
    for k in sorted((k for k in known if k != "string"), key=order.index):
        try:
            return _coerce_one(k, text, (schema or {}).get("items"))
        except ValueError:
            continue
    if "string" in known:
        return text
    wanted = " or ".join(_TYPE_WORDS[k] for k in known)
    raise FlowctxError(f"parameter '{name}': expected {wanted}, got {text!r}")


def _schema_of(param: Any) -> Mapping[str, Any]:
    """A parameter's schema; without a ``type``, a list or mapping default gives the type (an
    Orquesta ``input: [{xs: []}]`` takes ``-p xs=a,b`` and refuses ``-p xs=[a``)."""
    schema = param.schema or {}
    if schema.get("type") is None and param.has_default:
        if isinstance(param.default, list):
            return {**schema, "type": "array"}
        if isinstance(param.default, dict):
            return {**schema, "type": "object"}
    return schema


def gather_parameters(spec: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Parameters from ``--params-file`` and ``-p`` (typed by the spec's schemas), validated."""
    from flowctx.spec import validate_parameters

    params: dict[str, Any] = {}
    if args.params_file:
        params.update(read_mapping_file(args.params_file, "--params-file"))
    schemas = {p.name: _schema_of(p) for p in spec.parameters}
    for text in args.params:
        name, value = _split_assignment(text, "-p")
        params[name] = coerce_parameter(name, value, schemas.get(name))
    try:
        validate_parameters(spec, params)
    except WorkflowError as exc:
        messages = [p.message for p in exc.problems] or [exc.message]
        raise FlowctxError(f"invalid parameters for {spec.name}: " + "; ".join(messages)) from None
    return params


# ====================================================================== inquiry answers
def inquiry_tasks(spec: Any, _seen: set[str] | None = None) -> set[str]:
    """Names of the tasks of ``spec`` and of the sub-workflow files it names (whose inquiries
    the same responder answers)."""
    seen = _seen if _seen is not None else set()
    names: set[str] = set()
    for task in spec.tasks.values():
        for t in (task, *task.subtasks):
            names.add(t.name)
            ref = t.workflow or (t.action if t.action and t.action.endswith((".yaml", ".yml")) else None)
            if not ref or "{" in ref:
                continue
            base = os.path.dirname(os.path.abspath(spec.file)) if spec.file else os.getcwd()
            path = os.path.normpath(os.path.join(base, ref))
            if path in seen or not os.path.isfile(path):
                continue
            seen.add(path)
            try:
                from flowctx.spec import load_workflow

                names |= inquiry_tasks(load_workflow(path, validate=False), seen)
            except FlowctxError:
                continue  # the run reports a broken sub-workflow itself
    return names


def check_answers(args: argparse.Namespace, spec: Any) -> None:
    """Every ``--answer`` / ``--answers-file`` task must be a task of the workflow (or ``*``)."""
    answers = _answers(args)
    if not answers:
        return
    from flowctx.actions.registry import _did_you_mean

    known = inquiry_tasks(spec)
    for task in answers:
        if task != "*" and task not in known:
            hint = _did_you_mean(task, sorted(known)) or ""
            raise FlowctxError(
                f"--answer {task}=...: the workflow {spec.name!r} has no task {task!r}{hint}"
            )


def _answers(args: argparse.Namespace) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    if args.answers_file:
        answers.update(read_mapping_file(args.answers_file, "--answers-file"))
    for text in args.answers:
        key, value = _split_assignment(text, "--answer")
        task, _, path = key.partition(".")
        parsed = parse_yaml_value(value, f"--answer {key}")
        if not path:
            answers[task] = parsed
            continue
        node = answers.setdefault(task, {})
        if not isinstance(node, dict):
            raise FlowctxError(f"--answer {text!r}: the answer of task {task!r} is already {node!r}, not a mapping")
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise FlowctxError(f"--answer {text!r}: {part!r} is not a mapping")
        node[leaf] = parsed
    return answers


def make_responder(
    args: argparse.Namespace, kept: Mapping[str, Any] | None = None
) -> Callable[[Mapping[str, Any]], Any] | None:
    """A core.inquiry responder from ``--answer`` / ``--answers-file`` (None when neither),
    on top of ``kept`` answers (those a durable run recorded; the new ones win).  The answers
    are the responder's ``answers`` attribute: a durable run keeps them for ``flowctx resume``."""
    if not args.answers and not args.answers_file and not kept:
        return None
    answers = {**dict(kept or {}), **_answers(args)}

    def responder(request: Mapping[str, Any]) -> Any:
        task = request.get("task")
        if task in answers:
            return answers[task]
        if "*" in answers:
            return answers["*"]
        raise ActionError(f"no answer for the inquiry of task {task!r}: pass --answer {task}=VALUE")

    # a durable run keeps the answers for a resume (state.journal reads them off the responder)
    responder.answers = answers  # type: ignore[attr-defined]
    return responder


# ====================================================================== live display
class LiveDisplay:
    """A rich progress display fed by the engine's ``on_event`` hook.

    The hook runs in the engine thread for every task start, item and finish, so it only
    appends started instances to a list; rich's refresh thread (a few times a second) reads
    their ``items_done`` counters and updates the bars.
    """

    def __init__(self, console: Any, title: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        display = self

        class _Progress(Progress):
            def get_renderables(self) -> Any:
                yield display._status_line()
                if self.tasks:
                    yield from super().get_renderables()

        self.started: list[Any] = []
        self._seen = 0
        self._bars: dict[int, Any] = {}  # instance seq -> rich task id
        self._running: dict[int, Any] = {}
        self._finished = 0
        self._t0 = time.monotonic()
        self._sync_lock = threading.Lock()
        self._title = title
        self.progress = _Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TextColumn("[progress.percentage]{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=console,
            refresh_per_second=8,
            transient=False,
        )

    def hook(self, kind: str, inst: Any) -> None:
        if kind == "start":
            self.started.append(inst)

    def _status_line(self) -> Any:
        from rich.text import Text

        self._sync()
        running = [i.name for i in list(self._running.values())]
        shown = ", ".join(running[:4]) + (f" +{len(running) - 4}" if len(running) > 4 else "")
        line = Text.assemble((self._title, "bold"), f"  {format_seconds(time.monotonic() - self._t0)}  "
                             f"{self._finished} task(s) finished")
        if running:
            line.append(f", running: {shown}")
        return line

    def _sync(self) -> None:
        if not self._sync_lock.acquire(blocking=False):
            return
        try:
            started = self.started
            n = len(started)
            for inst in started[self._seen:n]:
                self._running[inst.seq] = inst
            self._seen = n
            for seq, inst in list(self._running.items()):
                items = inst.items
                bar = self._bars.get(seq)
                if bar is None and items is not None:
                    bar = self._bars[seq] = self.progress.add_task(inst.name, total=max(len(items), 1))
                if bar is not None and items is not None:
                    done = inst.items_done if items else 1
                    self.progress.update(bar, completed=done)
                if inst.done:
                    del self._running[seq]
                    self._finished += 1
                    if bar is not None:
                        style = "green" if inst.status == "succeeded" else "red"
                        self.progress.update(bar, description=f"[{style}]{inst.name}[/] {inst.status}")
                        self.progress.stop_task(bar)
        finally:
            self._sync_lock.release()

    def __enter__(self) -> LiveDisplay:
        self._t0 = time.monotonic()
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._sync()
        self.progress.stop()


def executor_name(text: str) -> str:
    """``--executor``: a built-in name, or one registered in the ``flowctx.executors`` group
    (looked up only when the name is not built in, to keep start-up fast)."""
    from flowctx.executors import EXECUTOR_KINDS

    name = text.strip().lower()
    if name in EXECUTOR_KINDS:
        return name
    from flowctx.executors import executor_kinds

    kinds = executor_kinds()
    if name not in kinds:
        raise argparse.ArgumentTypeError(f"unknown executor {text!r} (choose one of: {', '.join(kinds)})")
    return name


def executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of a named executor from the command line (``--scheduler`` for dask)."""
    scheduler = getattr(args, "scheduler", None)
    if scheduler and args.executor != "dask":
        raise FlowctxError(f"--scheduler needs --executor dask (the {args.executor} executor runs on this machine)")
    return {"scheduler": scheduler} if scheduler else {}


# ====================================================================== running
def make_engine(
    args: argparse.Namespace,
    *,
    on_event: Callable[[str, Any], None] | None = None,
    **kwargs: Any,
) -> Any:
    """The engine for the options (extra keyword arguments go to :class:`Engine`)."""
    from flowctx.engine.runner import Engine

    if "renderer" not in kwargs:  # --config and --kv, as run() read them
        renderer = make_renderer(getattr(args, "config_values", None), getattr(args, "kv_values", None))
        if renderer is not None:
            kwargs["renderer"] = renderer
    return Engine(
        executor=args.executor,
        max_workers=args.workers,
        executor_options=executor_options(args),
        responder=make_responder(args),
        on_event=on_event,
        state=_state_store(args),
        **({"max_tasks": args.max_tasks} if getattr(args, "max_tasks", None) else {}),
        **kwargs,
    )


def _state_store(args: argparse.Namespace) -> Any:
    """The ``--state`` store: a missing file is created (mode 0600); an existing empty one only
    with ``--init-state``."""
    path = getattr(args, "state", None)
    if path is None:
        if getattr(args, "init_state", False):
            raise FlowctxError("--init-state needs --state FILE")
        return None
    from flowctx.state import SQLiteState

    return SQLiteState(path, init_empty=bool(getattr(args, "init_state", False)))


class Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler of :func:`handle_signals`."""


def handle_signals() -> Callable[[], None]:
    """Make SIGTERM behave like Ctrl-C (it raises :class:`Terminated` in the main thread, where
    the waiting loop cancels the run); returns a function that restores the old handler."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_term(signum: int, frame: Any) -> None:
        raise Terminated()

    try:
        old = signal.signal(signal.SIGTERM, on_term)
    except (ValueError, OSError):  # pragma: no cover - not the main interpreter
        return lambda: None

    def restore() -> None:
        signal.signal(signal.SIGTERM, old)

    return restore


def wait_for(ex: Any, *, stderr: Any = None) -> tuple[Any, int]:
    """Wait for a started execution; Ctrl-C or SIGTERM cancels it (running commands' process
    groups and pool workers are killed) and waits for the cancellation; a second one quits at
    once.  Returns ``(result, signal number or 0)``."""
    import signal

    stderr = stderr or sys.stderr
    interrupted = 0
    restore = handle_signals()
    try:
        while True:
            try:
                return ex.wait(timeout=0.5), interrupted
            except TimeoutError:
                continue
            except (KeyboardInterrupt, Terminated) as exc:
                signum = int(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
                if interrupted:
                    ex.cancel()
                    settle_actions(1.0)
                    if isinstance(exc, Terminated):
                        raise SystemExit(128 + signum) from None
                    raise
                interrupted = signum
                what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
                again = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
                print(f"flowctx: {what}: canceling the workflow ({again} again to quit at once)", file=stderr)
                ex.cancel()
    finally:
        restore()


def execute(
    engine: Any, spec: Any, params: Mapping[str, Any], *, stderr: Any = None,
    on_start: Callable[[Any], None] | None = None, context: Mapping[str, Any] | None = None,
) -> tuple[Any, int]:
    """Start the workflow and wait for it (:func:`wait_for`: Ctrl-C and SIGTERM cancel it).
    Returns ``(result, signal number that interrupted it or 0)``.  ``on_start`` receives the
    :class:`~flowctx.engine.runner.Execution` once it started; ``context`` is the application
    context (``--context``)."""
    stderr = stderr or sys.stderr
    ex = engine.start(spec, params, context=context)
    if on_start is not None:
        on_start(ex)
    if getattr(engine, "state", None) is not None:
        print(f"flowctx: durable execution {ex.execution_id} (if this process dies: flowctx resume "
              f"{ex.execution_id} --state {engine.state.location})", file=stderr)
    return wait_for(ex, stderr=stderr)


def settle_actions(timeout: float = 5.0) -> None:
    """Give cooperative actions that were canceled or timed out (``core.local`` killing its
    process group) a moment to clean up before exiting; abandoned Python actions are not
    waited for (see :func:`flowctx.executors.thread.settle`)."""
    from flowctx.executors.thread import settle

    settle(timeout)


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def run(args: argparse.Namespace) -> int:
    from flowctx.spec import load_workflow

    import_actions(args.action_modules)
    if not os.path.exists(args.file):
        raise FlowctxError(f"{args.file}: no such file")
    context = read_context_option(args.context) if args.context is not None else None
    if context:  # its names are defined for the validator (not 'referenced before assignment')
        from flowctx.spec.validate import raise_for_problems, validate

        spec = load_workflow(args.file, validate=False)
        raise_for_problems(validate(spec, extra_names=context), spec)
    else:
        spec = load_workflow(args.file)
    params = gather_parameters(spec, args)
    check_answers(args, spec)  # report bad --answer values before anything runs
    args.config_values = load_config(args.config) if args.config else None  # errors before anything runs
    kv = open_kv_option(args.kv)
    args.kv_values = kv.values() or None  # None: the shared default renderer (its kv() knows no key)
    masker = Masker.for_run(spec, params, kv.secret_values())
    metrics_server = start_metrics_server(args) if args.metrics_port is not None else None

    live = _stdout_is_terminal() and not args.json
    display = None
    console = None
    if live:
        from rich.console import Console

        console = Console()
        display = LiveDisplay(console, f"{spec.name}")
    on_start = metrics_server.watch if metrics_server is not None else None
    try:
        with stdout_to_stderr(args.json):  # --json: stdout holds the JSON document and nothing else
            engine = make_engine(args, on_event=display.hook if display is not None else None)
            t0 = time.perf_counter()
            if display is not None:
                with display:
                    result, interrupted = execute(engine, spec, params, on_start=on_start, context=context)
            else:
                result, interrupted = execute(engine, spec, params, on_start=on_start, context=context)
            elapsed = time.perf_counter() - t0
            settle_actions()
    finally:
        if metrics_server is not None:
            metrics_server.stop()
    result = masker.result(result)
    report(result, elapsed, args, console=console)
    if result.status != "succeeded":
        print(f"flowctx: workflow {result.status}: {masker.text(failure_reason(result))}", file=sys.stderr)
    if interrupted:
        return 128 + interrupted  # 130 Ctrl-C, 143 SIGTERM
    return 0 if result.status == "succeeded" else 1


# ====================================================================== reporting
def failure_reason(result: Any) -> str:
    """One line: why the workflow did not succeed (its first error, naming the task once)."""
    for err in result.errors or ():
        message = str(err.get("message") or err.get("type") or "error")
        task = err.get("task_id")
        if task and message.startswith("Execution failed. See result for details."):
            # the Orquesta-style message: say what the task itself reported instead
            detail = _task_error(result, str(task))
            if detail:
                message = f"task {task!r} {_task_status(result, str(task))}: {detail}"
        if task and not message.startswith(f"task {task!r}"):
            message = f"task {task!r}: {message}"
        return one_line(message)
    if result.status == "canceled":
        return "the execution was canceled"
    return one_line(result.reason or result.status)


def _task_error(result: Any, task: str) -> str | None:
    for rec in reversed(result.tasks):
        if rec.task == task and rec.error:
            return str(rec.error)
    return None


def _task_status(result: Any, task: str) -> str:
    for rec in reversed(result.tasks):
        if rec.task == task:
            return str(rec.status)
    return "failed"


def one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _plain(value: Any) -> Any:
    from flowctx import thaw

    try:
        return _json_safe(thaw(value))
    except Exception:  # noqa: BLE001 - best effort for display
        return value


def _json_safe(value: Any) -> Any:
    """NaN and infinities have no JSON spelling: write them as the strings "nan" / "inf" /
    "-inf" so --json output always parses."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    thawed = _plain(value)
    if thawed is not value:
        return thawed
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _count(result: Any) -> tuple[int, int]:
    tasks = len(result.tasks)
    actions = int(result.metrics.get("actions", 0) or 0)
    return tasks, actions


def summary_line(result: Any, elapsed: float) -> str:
    import flowctx

    tasks, actions = _count(result)
    return (
        f"{result.status} in {format_seconds(elapsed)} "
        f"({tasks} task(s), {actions:,} action call(s), {flowctx.BACKEND} context store)"
    )


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.0995 else f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def task_rows(result: Any, with_results: bool = False) -> list[dict[str, Any]]:
    rows = []
    for t in result.tasks:
        row: dict[str, Any] = {
            "task": t.task,
            "route": t.route,
            "status": t.status,
            "attempts": t.attempts,
            "started": t.started,
            "finished": t.finished,
            "duration": t.duration,
            "items": t.items,
            "error": t.error,
        }
        if with_results:
            row["result"] = _plain(t.result)
        rows.append(row)
    return rows


def as_json(result: Any, elapsed: float, with_results: bool = False) -> dict[str, Any]:
    import flowctx

    return {
        "status": result.status,
        "backend": flowctx.BACKEND,
        "reason": None if result.status == "succeeded" else failure_reason(result),
        "workflow": result.workflow,
        "execution_id": result.execution_id,
        "elapsed": elapsed,
        "output": _plain(result.output),
        "errors": _plain(result.errors),
        "tasks": task_rows(result, with_results),
        "metrics": _plain(result.metrics),
    }


@contextlib.contextmanager
def stdout_to_stderr(enabled: bool) -> Iterator[None]:
    """While the run lasts, whatever actions print (threads of this process, worker processes
    it starts) goes to stderr: file descriptor 1 is pointed at stderr and restored after."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no descriptor 1 to redirect: nothing can pollute it either
        yield
        return
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def report(result: Any, elapsed: float, args: argparse.Namespace, *, console: Any = None) -> None:
    if args.json:
        sys.stdout.write(json.dumps(as_json(result, elapsed, args.results), indent=2, default=_json_default) + "\n")
    elif console is not None:
        report_rich(result, elapsed, console)
    else:
        report_plain(result, elapsed)
    sys.stdout.flush()


def report_plain(result: Any, elapsed: float, out: Any = None) -> None:
    out = out or sys.stdout
    if result.output is not None:
        text = json.dumps(_plain(result.output), indent=2, default=_json_default, ensure_ascii=False)
        out.write(f"output: {text}\n")
    for t in result.tasks:
        if t.status not in ("succeeded", "skipped") and t.error:
            out.write(f"task {t.name} {t.status}: {one_line(t.error, 300)}\n")
    out.write(summary_line(result, elapsed) + "\n")


_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "timeout": "red",
    "timed_out": "red",
    "canceled": "yellow",
    "skipped": "dim",
    "running": "cyan",
}


def report_rich(result: Any, elapsed: float, console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"{result.workflow} · {result.execution_id}", title_justify="left")
    table.add_column("task")
    table.add_column("route", justify="right")
    table.add_column("status")
    table.add_column("attempts", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("items", justify="right")
    for t in result.tasks:
        style = _STATUS_STYLE.get(t.status, "")
        table.add_row(
            t.task,
            str(t.route),
            f"[{style}]{t.status}[/]" if style else t.status,
            str(t.attempts),
            format_seconds(t.duration),
            f"{t.items:,}" if t.items is not None else "",
        )
    if result.tasks:
        console.print(table)
    for t in result.tasks:
        if t.status not in ("succeeded", "skipped") and t.error:
            console.print(f"[red]task {t.name} {t.status}:[/] {one_line(t.error, 300)}", markup=True, highlight=False)
    if result.output is not None:
        console.print("[bold]output[/]")
        console.print_json(json.dumps(_plain(result.output), default=_json_default))
    style = _STATUS_STYLE.get(result.status, "")
    mark = "✔" if result.status == "succeeded" else "✘"
    console.print(f"[{style or 'bold'}]{mark} {summary_line(result, elapsed)}[/]", highlight=False)
