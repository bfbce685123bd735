"""Rehearsal: run a workflow with mocked action outcomes and compare with expectations.

The spec format is the conformance suite's (``../shared/conformance/orquesta/README.md``):
``workflow``, ``inputs``, ``mock_action_executions``, ``expected_task_sequence``,
``expected_routes``, ``expected_workflow_status``, ``expected_errors``, ``expected_output``,
``expected_term_tasks`` and, for reruns, ``rerun_of`` / ``rerun_tasks``.  Workflow authors use
it to test their own workflows: ``flowctx rehearse my-spec.yaml``.

Execution is simulated in batches, deterministically: every ready task (sorted by task name,
then route) starts, then each gets its mock outcome in the same order; a with-items task takes
one item outcome per batch.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import field
from types import ModuleType
from typing import Any

import yaml

from flowctx._record import record
from flowctx.actions.base import SUCCEEDED, Outcome
from flowctx.engine.conductor import Conductor, TaskInstance
from flowctx.engine.runner import render_parameter_defaults
from flowctx.errors import FlowctxError, WorkflowError

_SPEC_KEYS = {
    "source", "workflow", "inputs", "mock_action_executions", "expected_task_sequence",
    "expected_routes", "expected_workflow_status", "expected_errors", "expected_output",
    "expected_term_tasks", "rerun_of", "rerun_tasks", "expect_rehearsal_mismatch",
    "expected_inspection_errors",
}


@record
class RehearsalResult:
    """What one rehearsal found: ``ok`` when every stated expectation held (or, for a spec that
    declares ``expect_rehearsal_mismatch``, when exactly that expectation failed)."""

    spec_file: str
    ok: bool
    mismatches: list[str] = field(default_factory=list)
    conductor: Conductor | None = None

    @property
    def first_mismatch(self) -> str | None:
        return self.mismatches[0] if self.mismatches else None


@record
class _Mock:
    task_id: str
    status: str
    result: Any
    seq_id: int | None
    item_id: int | None
    remaining: int


def load_rehearsal_spec(path: str) -> dict[str, Any]:
    """Read a rehearsal spec file (YAML, safe loading); unknown keys are an error."""
    try:
        with open(path, "rb") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise WorkflowError(f"{path}: cannot read rehearsal spec: {exc.strerror}", file=path) from None
    except yaml.YAMLError as exc:
        raise WorkflowError(f"{path}: not valid YAML: {exc}", file=path) from None
    if not isinstance(data, dict):
        raise WorkflowError(f"{path}: a rehearsal spec must be a mapping", file=path)
    unknown = sorted(set(data) - _SPEC_KEYS)
    if unknown:
        raise WorkflowError(f"{path}: unknown key(s) in rehearsal spec: {', '.join(unknown)}", file=path)
    if "workflow" not in data and "rerun_of" not in data:
        raise WorkflowError(f"{path}: rehearsal spec needs 'workflow'", file=path)
    for key in ("expected_task_sequence", "expected_routes", "expected_errors", "expected_term_tasks"):
        value = data.get(key)
        if value is not None and not isinstance(value, list):
            raise WorkflowError(f"{path}: {key} must be a list, got {type(value).__name__}", file=path)
    if data.get("expected_routes") and not all(isinstance(r, list) for r in data["expected_routes"]):
        raise WorkflowError(f"{path}: expected_routes must be a list of lists", file=path)
    if data.get("expected_errors") and not all(isinstance(e, dict) for e in data["expected_errors"]):
        raise WorkflowError(f"{path}: expected_errors must be a list of mappings", file=path)
    return data


_MOCK_STATUSES = ("succeeded", "failed", "timeout", "canceled", "running")


def _mocks(data: Mapping[str, Any], path: str) -> list[_Mock]:
    out = []
    entries = data.get("mock_action_executions") or []
    if not isinstance(entries, list):
        raise WorkflowError(f"{path}: mock_action_executions must be a list, got {type(entries).__name__}", file=path)
    for i, m in enumerate(entries):
        if not isinstance(m, dict) or "task_id" not in m:
            raise WorkflowError(f"{path}: mock_action_executions[{i}] needs a task_id", file=path)
        status = str(m.get("status", SUCCEEDED))
        if status not in _MOCK_STATUSES:
            raise WorkflowError(
                f"{path}: mock_action_executions[{i}].status must be one of {', '.join(_MOCK_STATUSES)}, "
                f"got {status!r}", file=path,
            )
        for key in ("seq_id", "item_id", "num_iter"):
            value = m.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise WorkflowError(
                    f"{path}: mock_action_executions[{i}].{key} must be a whole number >= 0, got {value!r}",
                    file=path,
                )
        out.append(
            _Mock(
                task_id=str(m["task_id"]),
                status=status,
                result=m.get("result"),
                seq_id=m.get("seq_id"),
                item_id=m.get("item_id"),
                remaining=int(m.get("num_iter", 1) or 1),
            )
        )
    return out


def _rerun_tasks(data: Mapping[str, Any], path: str) -> list[Mapping[str, Any]]:
    entries = data.get("rerun_tasks") or []
    if not isinstance(entries, list) or not all(isinstance(t, dict) and "task_id" in t for t in entries):
        raise WorkflowError(f"{path}: rerun_tasks must be a list of {{task_id, route, reset_items}}", file=path)
    for t in entries:
        route = t.get("route", 0) or 0
        if isinstance(route, bool) or not isinstance(route, int) or route < 0:
            raise WorkflowError(f"{path}: rerun_tasks route must be a whole number >= 0, got {route!r}", file=path)
    return entries


def _pick(mocks: list[_Mock], task: str, seq: int) -> _Mock | None:
    cands = [m for m in mocks if m.task_id == task and m.remaining > 0]
    if not cands:
        return None
    for m in cands:
        if m.seq_id == seq:
            return m
    if cands[0].seq_id is None:
        return cands[0]
    return None


class Rehearsal:
    """Drives a :class:`Conductor` in deterministic batches with mocked outcomes."""

    def __init__(self, *, renderer: Any = None, store: ModuleType | None = None) -> None:
        from flowctx import _backend
        from flowctx.render import default_renderer

        self.renderer = renderer or default_renderer()
        self.store = store or _backend.store

    def run_file(self, path: str) -> RehearsalResult:
        """Rehearse one spec file (following its ``rerun_of`` chain) and compare."""
        data = load_rehearsal_spec(path)
        try:
            conductor = self._conduct(path, data, depth=0)
        except FlowctxError as exc:
            return RehearsalResult(path, False, [f"error: {exc}"])
        mismatches = compare(data, conductor)
        expected_mismatch = data.get("expect_rehearsal_mismatch")
        if expected_mismatch:
            hit = [m for m in mismatches if m.startswith(str(expected_mismatch))]
            ok = bool(hit) and len(hit) == len(mismatches)
            if not hit:
                mismatches = [f"expected a mismatch on {expected_mismatch}, but it matched"] + mismatches
            return RehearsalResult(path, ok, mismatches, conductor)
        return RehearsalResult(path, not mismatches, mismatches, conductor)

    def _conduct(self, path: str, data: Mapping[str, Any], depth: int) -> Conductor:
        from flowctx.spec import load_workflow

        if depth > 20:
            raise WorkflowError(f"{path}: rerun_of chain is too long (a cycle?)", file=path)
        base = os.path.dirname(os.path.abspath(path))
        if data.get("rerun_of"):
            prev_path = os.path.join(base, str(data["rerun_of"]))
            prev = self._conduct(prev_path, load_rehearsal_spec(prev_path), depth + 1)
            rerun = _rerun_tasks(data, path)
            tasks = [(str(t["task_id"]), int(t.get("route", 0) or 0)) for t in rerun]
            reset = any(bool(t.get("reset_items")) for t in rerun)
            prev.rerun(tasks or None, reset_items=reset)
            self._drive(prev, _mocks(data, path))
            return prev
        wf_path = os.path.join(base, str(data["workflow"]))
        spec = load_workflow(wf_path)
        from flowctx.spec import validate_parameters

        inputs = data.get("inputs") or {}
        setup_errors: list[str] = []
        params = render_parameter_defaults(
            spec, validate_parameters(spec, inputs), set(inputs), self.renderer, self.store, setup_errors
        )
        conductor = Conductor(spec, params, renderer=self.renderer, store=self.store, setup_errors=setup_errors)
        conductor.start()
        self._drive(conductor, _mocks(data, path))
        return conductor

    def _drive(self, c: Conductor, mocks: list[_Mock]) -> None:
        guard = 0
        while True:
            guard += 1
            if guard > 100_000:
                raise FlowctxError("rehearsal did not finish after 100000 batches (an endless loop?)")
            started: list[TaskInstance] = c.start_ready()
            continuing = [
                i for i in c.active()
                if i not in started and (i.pending or (i.items is not None and i.next_item < len(i.items)))
            ]
            batch = sorted(started + continuing, key=lambda i: (i.task, i.route, i.seq))
            if not batch:
                break
            for inst in batch:
                if inst.done:
                    continue
                calls = c.calls_for(inst, limit=1 if inst.items is not None else None)
                for call in calls:
                    mock = _pick(mocks, inst.task, inst.seq)
                    if mock is not None:
                        mock.remaining -= 1
                        if inst.items is not None and mock.item_id is not None:
                            call.key = int(mock.item_id)
                        outcome = Outcome(mock.status, mock.result, None if mock.status == SUCCEEDED else None)
                    else:
                        outcome = Outcome(SUCCEEDED, None)
                    for follow in c.call_done(call, outcome):
                        inst.in_flight -= 1
                        inst.pending.append(follow)
        c.finalize()


def _norm(name: str) -> str:
    return name[:-4] if name.endswith("__r0") else name


def compare(data: Mapping[str, Any], c: Conductor) -> list[str]:
    """Mismatches between a spec's expectations and a conducted run (empty when all hold)."""
    out: list[str] = []
    exp_seq = data.get("expected_task_sequence")
    if exp_seq is not None:
        want = [_norm(str(x)) for x in exp_seq]
        got = c.task_sequence()
        if want != got:
            out.append(f"expected_task_sequence: expected {want}, got {got}")
    exp_routes = data.get("expected_routes", [[]])
    if exp_routes is not None and [list(r) for r in exp_routes] != c.routes:
        out.append(f"expected_routes: expected {exp_routes}, got {c.routes}")
    exp_status = data.get("expected_workflow_status", "succeeded")
    if exp_status is not None and exp_status != c.status:
        out.append(f"expected_workflow_status: expected {exp_status!r}, got {c.status!r}")
    exp_errors = data.get("expected_errors")
    if exp_errors is not None:
        problem = _compare_errors(exp_errors, c.errors)
        if problem:
            out.append(f"expected_errors: {problem}")
    exp_output = data.get("expected_output")
    if exp_output is not None and exp_output != c.output:
        out.append(f"expected_output: expected {exp_output}, got {c.output}")
    exp_term = data.get("expected_term_tasks")
    if exp_term is not None:
        want_t = sorted(_norm(str(x)) for x in exp_term)
        got_t = sorted(c.term_tasks())
        if want_t != got_t:
            out.append(f"expected_term_tasks: expected {want_t}, got {got_t}")
    return out


def _compare_errors(expected: Sequence[Mapping[str, Any]], got: Sequence[Mapping[str, Any]]) -> str | None:
    if len(expected) != len(got):
        return f"expected {len(expected)} error(s), got {len(got)}: {got}"
    for i, (e, g) in enumerate(zip(expected, got)):
        for key in ("type", "task_id", "route"):
            if key in e and e[key] != g.get(key):
                return f"error {i}: expected {key}={e[key]!r}, got {g.get(key)!r} ({g.get('message')})"
        msg = str(e.get("message", ""))
        if ":" in msg and msg.split(":", 1)[0].endswith("Error"):
            cls = msg.split(":", 1)[0]
            if cls not in str(g.get("message", "")):
                return f"error {i}: expected a {cls}, got {g.get('message')!r}"
    return None


def rehearse(*paths: str, renderer: Any = None, store: ModuleType | None = None) -> list[RehearsalResult]:
    """Rehearse spec files; returns one :class:`RehearsalResult` per file."""
    r = Rehearsal(renderer=renderer, store=store)
    return [r.run_file(p) for p in paths]


class _CallableModule(ModuleType):
    """``flowctx.rehearse`` names both this module and :func:`rehearse`: once anything imports the
    module first (``from flowctx.rehearse import Rehearsal``), Python binds the package attribute
    to the module, so the module forwards calls to the function."""

    def __call__(self, *paths: str, renderer: Any = None, store: ModuleType | None = None) -> list[RehearsalResult]:
        return rehearse(*paths, renderer=renderer, store=store)


sys.modules[__name__].__class__ = _CallableModule
