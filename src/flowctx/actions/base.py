"""What an action is to the engine: a callable taking keyword inputs and returning a result.

* Returning a value -> the task succeeded with that value as its result.
* Raising an exception -> the task failed; the error message is recorded.
* Returning :class:`ActionResult` -> explicit status plus result (``core.local`` uses it to
  report a non-zero exit as ``failed`` while still returning stdout/stderr).

An action that declares a parameter named ``action_context`` receives an :class:`ActionContext`
(cancellation event, the workflow's directory, an inquiry responder ...).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

SUCCEEDED = "succeeded"
FAILED = "failed"
TIMEOUT = "timeout"
CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class ActionResult:
    """An action's explicit outcome: ``status`` is ``"succeeded"`` or ``"failed"``."""

    status: str = SUCCEEDED
    result: Any = None
    error: str | None = None


@dataclass(slots=True)
class ActionContext:
    """Run-time information handed to actions that ask for it (parameter ``action_context``)."""

    task: str
    workflow_file: str | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    responder: Callable[[Mapping[str, Any]], Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the executor reports back to the engine for one action call."""

    status: str
    result: Any = None
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0
