"""One problem found in a workflow file (shared by the loader and the validator)."""
from __future__ import annotations

from typing import Literal

from flowctx._record import record
from flowctx.spec.model import Loc

Severity = Literal["error", "warning"]
#: What kind of check found the problem (the four kinds of Orquesta's inspection):
#: ``syntax`` (YAML, structure, shapes, values), ``expression`` (template syntax),
#: ``context`` (variables referenced before assignment), ``semantics`` (the task graph, actions).
Kind = Literal["syntax", "expression", "context", "semantics"]


@record(frozen=True, slots=True)
class Problem:
    """A problem in a workflow: printed as ``file:line:col: error: message [task name]``."""

    severity: Severity
    message: str
    loc: Loc | None = None
    task: str | None = None
    kind: Kind = "syntax"

    def __str__(self) -> str:
        where = str(self.loc) if self.loc is not None else "<string>:0:0"
        text = f"{where}: {self.severity}: {self.message}"
        if self.task:
            text += f" [{self.task}]"
        return text

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple[int, int, str]:
        if self.loc is None:
            return (0, 0, self.message)
        return (self.loc.line, self.loc.column, self.message)
