"""The exception hierarchy users see: everything the package raises on bad input derives from
:class:`FlowctxError`, and its message names the file, line, task and expression involved."""
from __future__ import annotations

from typing import Any


class FlowctxError(Exception):
    """Root of every error flowctx reports to users."""


class WorkflowError(FlowctxError):
    """A workflow file could not be loaded or is invalid.

    ``problems`` lists every problem found (each a :class:`flowctx.spec.Problem`) when validation
    collected several.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        task: str | None = None,
        problems: list[Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.task = task
        self.problems = list(problems or [])


class TemplateError(FlowctxError):
    """A template or condition failed to compile or render.

    Carries the template ``source``, the ``position`` (line within the template, if known),
    and the ``task`` / ``field`` it belongs to when the engine passes them.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        position: int | None = None,
        task: str | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = message
        self.source = source
        self.position = position
        self.task = task
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.task:
            where.append(f"task {self.task!r}")
        if self.field:
            where.append(f"field {self.field!r}")
        if self.position is not None:
            where.append(f"line {self.position}")
        prefix = f"{', '.join(where)}: " if where else ""
        text = f"{prefix}{self.reason}"
        if self.source is not None:
            shown = self.source if len(self.source) <= 200 else self.source[:197] + "..."
            text += f" in template {shown!r}"
        return text

    def with_location(self, *, task: str | None = None, field: str | None = None) -> TemplateError:
        """Return a copy of this error that also names the task and field."""
        err = TemplateError(
            self.reason,
            source=self.source,
            position=self.position,
            task=task or self.task,
            field=field or self.field,
        )
        err.__cause__ = self.__cause__
        return err


class ActionError(FlowctxError):
    """An action could not be found, called, or failed in a way the engine reports."""


class StateError(FlowctxError):
    """The durable state store is unusable (corrupt, newer schema, locked by another resume)."""
