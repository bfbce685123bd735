"""Conformance group ``inspection``: Orquesta 1.6.0's workflow inspection verdicts.

Data: ``tests/conformance/orquesta-suite/inspection/cases.json`` (one entry per case: the
workflow file under ``workflows/``, Orquesta's verdict and the kind of each of its errors, and
the application-context names the upstream test passed to ``inspect(app_ctx=...)``), derived by
running Orquesta's unit suite with recording patches (see PROVENANCE.md there).

A case matches when flowctx's validator gives the same verdict (valid / invalid) and, for an
invalid workflow, reports an error of every kind Orquesta reported (syntax, expression, context,
semantics).  Inspection never touches the context store: ``backend`` only parametrizes the test
like every other behaviour test.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from flowctx.errors import WorkflowError
from flowctx.spec import load_workflow, validate

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "conformance", "orquesta-suite", "inspection")
SAMPLE = os.path.join(HERE, "conformance", "orquesta-more", "inspect")

#: Cases flowctx does not pass yet (strict xfail in the test): id -> why.
KNOWN_FAILURES: dict[str, str] = {}


_CORE = (
    "flowctx owns the core. action namespace and knows its built-ins: an unknown core.* action (here "
    "core.foobar) can never run, so it is refused at validation; Orquesta has no action registry and "
    "accepts any name"
)
#: Deliberate differences: id (or sample file name) -> (reason, the error kinds flowctx reports instead).
DEVIATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "test_workflow_conductor_with_items__test_multiple_items_list_with_different_types": (_CORE, ("semantics",)),
    "test_workflow_conductor_with_items__test_multiple_items_list_with_different_types__c1a41c0c.yaml": (
        _CORE, ("semantics",)),
}


@dataclass(frozen=True)
class Case:
    id: str
    provenance: str
    deviation: str | None
    workflow: str = ""
    expected_valid: bool = True
    expected_kinds: tuple[str, ...] = ()
    app_ctx: tuple[str, ...] = ()


def cases() -> list[Case]:
    with open(os.path.join(ROOT, "cases.json"), encoding="utf-8") as fh:
        raw: list[dict[str, Any]] = json.load(fh)
    out = []
    for c in raw:
        kinds = tuple(sorted({e["kind"] for e in c["expected"]["errors"]}))
        deviation = DEVIATIONS.get(c["id"], (None,))[0]
        out.append(Case(
            id=c["id"], provenance=c["provenance"], deviation=deviation,
            workflow=os.path.join(ROOT, c["workflow"]), expected_valid=c["expected"]["valid"],
            expected_kinds=kinds, app_ctx=tuple(c.get("app_ctx", ())),
        ))
    return out


def flowctx_errors(path: str, extra_names: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(kind, message) of every error flowctx's loader + validator report for ``path``."""
    try:
        spec = load_workflow(path, validate=False)
    except WorkflowError as exc:  # unreadable YAML: always a syntax error
        problems = list(exc.problems or [])
        return [(getattr(p, "kind", "syntax"), str(p)) for p in problems if p.is_error] or [("syntax", str(exc))]
    return [(p.kind, str(p)) for p in validate(spec, extra_names=extra_names) if p.is_error]


def compare(errors: list[tuple[str, str]], valid: bool, kinds: tuple[str, ...]) -> list[str]:
    if valid:
        return [f"Orquesta accepts it, flowctx reports: {msg}" for _, msg in errors]
    if not errors:
        return [f"Orquesta refuses it ({', '.join(kinds)} errors), flowctx accepts it"]
    found = {k for k, _ in errors}
    return [f"Orquesta reports a {k} error, flowctx none of that kind (it reports: "
            f"{'; '.join(m for _, m in errors)})" for k in kinds if k not in found]


def check(case: Case, backend: ModuleType) -> list[str]:
    del backend  # inspection is independent of the store (see the module doc)
    errors = flowctx_errors(case.workflow, case.app_ctx)
    if case.deviation is not None:  # flowctx must behave as the deviation documents
        return compare(errors, False, DEVIATIONS[case.id][1])
    return compare(errors, case.expected_valid, case.expected_kinds)


def sample() -> list[tuple[str, bool, str | None]]:
    """The 70-verdict sample of ``conformance/orquesta-more/inspect`` (file, valid, first error)."""
    with open(os.path.join(SAMPLE, "verdicts.json"), encoding="utf-8") as fh:
        raw = json.load(fh)
    return [(os.path.join(SAMPLE, v["file"]), v["orquesta_valid"], v["orquesta_first_error"]) for v in raw]
