"""What an action is to the engine: a callable taking keyword inputs and returning a result.

* Returning a value -> the task succeeded with that value as its result.
* Raising an exception -> the task failed; the error message is recorded.
* Returning :class:`ActionResult` -> explicit status plus result (``core.local`` uses it to
  report a non-zero exit as ``failed`` while still returning stdout/stderr, and its own
  ``timeout`` input running out as ``timeout``).

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

#: The statuses an action may report itself through :class:`ActionResult`.
ACTION_STATUSES = frozenset({SUCCEEDED, FAILED, TIMEOUT})

_ENGINE_PROCESS_ATTR = "__flowctx_engine_process__"


def in_engine_process(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an action to run in the engine's own process (on a thread) even under the process
    executor: I/O-bound actions that need the live :class:`ActionContext` (its cancel event,
    its responder) or that manage child processes themselves (``core.local``)."""
    setattr(func, _ENGINE_PROCESS_ATTR, True)
    return func


def runs_in_engine_process(func: Callable[..., Any]) -> bool:
    """Whether ``func`` was marked with :func:`in_engine_process`."""
    return bool(getattr(func, _ENGINE_PROCESS_ATTR, False))


_INLINE_ATTR = "__flowctx_inline__"


def inline(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an action as instant and non-blocking (``core.noop``, ``core.echo``): the engine calls
    it directly in its own thread instead of handing it to the executor, which saves the pool
    round trip per call.  Only for actions that never wait on anything; a task ``timeout`` sends
    the call through the executor as usual."""
    setattr(func, _INLINE_ATTR, True)
    return func


def runs_inline(func: Callable[..., Any]) -> bool:
    """Whether ``func`` was marked with :func:`inline`."""
    return bool(getattr(func, _INLINE_ATTR, False))


@dataclass(frozen=True, slots=True)
class ActionResult:
    """An action's explicit outcome: ``status`` is ``"succeeded"``, ``"failed"`` or ``"timeout"``."""

    status: str = SUCCEEDED
    result: Any = None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ACTION_STATUSES:
            raise ValueError(
                f"ActionResult status must be one of {', '.join(sorted(ACTION_STATUSES))}, got {self.status!r}"
            )


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


def to_plain(value: Any) -> Any:
    """``value`` with every mapping turned into a ``dict`` and every non-string sequence into a
    ``list`` (frozen context values included), for libraries that want plain JSON types."""
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
