"""Static checks of a loaded workflow (placeholder; full checks follow)."""
from __future__ import annotations

from flowctx.errors import WorkflowError
from flowctx.spec.model import WorkflowSpec
from flowctx.spec.problems import Problem

__all__ = ["Problem", "validate", "raise_for_problems"]


def validate(spec: WorkflowSpec) -> list[Problem]:
    return sorted(spec.load_problems, key=Problem.sort_key)


def raise_for_problems(problems: list[Problem], spec: WorkflowSpec | None = None) -> None:
    errors = [p for p in problems if p.severity == "error"]
    if not errors:
        return
    first = errors[0]
    lines = "\n".join(str(p) for p in errors)
    head = f"{len(errors)} error(s) in workflow" if len(errors) > 1 else "invalid workflow"
    raise WorkflowError(
        f"{head}:\n{lines}" if len(errors) > 1 else str(first),
        file=first.loc.file if first.loc else (spec.file if spec else None),
        line=first.loc.line if first.loc else None,
        column=first.loc.column if first.loc else None,
        task=first.task,
        problems=list(problems),
    )


def validate_parameters(spec: WorkflowSpec, params):  # replaced below
    raise NotImplementedError
