"""What an action is to the engine: a callable taking keyword inputs and returning a result.

* Returning a value -> the task succeeded with that value as its result.
* Raising an exception -> the task failed; the error message is recorded.
* Returning :class:`ActionResult` -> explicit status plus result (``core.local`` uses it to
  report a non-zero exit as ``failed`` while still returning stdout/stderr, and its own
  ``timeout`` input running out as ``timeout``).

An action that declares a parameter named ``action_context`` receives an :class:`ActionContext`
(cancellation event, the workflow's directory, an inquiry responder ...).  Through it an action
running in the engine's process can also report a status that is not its outcome
(:meth:`ActionContext.report`: ``pending`` while it waits for an answer, ``paused`` /
``pausing`` / ``running`` as a sub-workflow does), and sees the workflow ask it to pause or
resume (``pause_requested`` / ``resume_requested``).

Inputs arrive as plain, mutable ``dict`` / ``list`` values, copied for each call
(:func:`action_inputs`); an action marked with :func:`frozen_inputs`
(``@flowctx.action(name, frozen_inputs=True)``) gets the context's frozen values without a copy,
and so does a parameter annotated ``Mapping[...]`` or ``Sequence[...]``.
"""
from __future__ import annotations

import inspect
import threading
import typing
import weakref
from collections import abc
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any, ClassVar

from flowctx import _backend
from flowctx._record import record

SUCCEEDED = "succeeded"
FAILED = "failed"
TIMEOUT = "timeout"
CANCELED = "canceled"

#: The statuses an action may report itself through :class:`ActionResult` (``canceled``: it was
#: canceled from elsewhere, e.g. a sub-workflow canceled on its own; the workflow is canceled).
ACTION_STATUSES = frozenset({SUCCEEDED, FAILED, TIMEOUT, CANCELED})
#: What an action may report before its outcome (:meth:`ActionContext.report`).
REPORT_STATUSES = frozenset({"pending", "paused", "pausing", "canceling", "running"})

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


@record(frozen=True, slots=True)
class ActionResult:
    """An action's explicit outcome: ``status`` is ``"succeeded"``, ``"failed"``, ``"timeout"``
    or ``"canceled"``."""

    status: str = SUCCEEDED
    result: Any = None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ACTION_STATUSES:
            raise ValueError(
                f"ActionResult status must be one of {', '.join(sorted(ACTION_STATUSES))}, got {self.status!r}"
            )


@record(slots=True)
class ActionContext:
    """Run-time information handed to actions that ask for it (parameter ``action_context``)."""

    task: str
    workflow_file: str | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    responder: Callable[[Mapping[str, Any]], Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: set by the engine (engine-process actions only): sends a status to the conductor
    reporter: Callable[[str], None] | None = None
    #: the workflow was paused / resumed: an action that can pause (a sub-workflow) follows
    pause_requested: threading.Event = field(default_factory=threading.Event)
    resume_requested: threading.Event = field(default_factory=threading.Event)

    def report(self, status: str) -> None:
        """Report a status that is not the outcome: ``pending`` (waiting for an answer: the
        workflow pauses, and continues once this call ends), ``paused`` / ``pausing`` (the task
        pauses; the workflow once nothing else runs), ``running`` (running again after a pause),
        ``canceling`` (the workflow is canceled).  The outcome is still what the action returns.
        A no-op where nothing listens (an action called outside a workflow, another process)."""
        if status not in REPORT_STATUSES:
            raise ValueError(f"an action may report {', '.join(sorted(REPORT_STATUSES))}, not {status!r}")
        if self.reporter is not None:
            self.reporter(status)


@record(frozen=True, slots=True)
class Outcome:
    """What the executor reports back to the engine for one action call."""

    status: str
    result: Any = None
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0
    _flowctx_set: ClassVar[tuple[Callable[[Any, Any], None], ...]]  # set by record

    def __init__(  # written out (not record's shared one): one per action call, the fast form
        self, status: str, result: Any = None, error: str | None = None, started: float = 0.0, finished: float = 0.0
    ) -> None:
        put_status, put_result, put_error, put_started, put_finished = self._flowctx_set  # (record)
        put_status(self, status)
        put_result(self, result)
        put_error(self, error)
        put_started(self, started)
        put_finished(self, finished)


# ------------------------------------------------------------------ what actions receive
_FROZEN_INPUTS_ATTR = "__flowctx_frozen_inputs__"
_ALL = "*"


def frozen_inputs(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an action to receive its inputs as the context's frozen values, without a copy
    (``@flowctx.action("pack.name", frozen_inputs=True)`` does this): for large read-only data.
    Without it an action gets plain, mutable ``dict`` / ``list`` copies, made per call."""
    setattr(func, _FROZEN_INPUTS_ATTR, True)
    return func


def _read_only_annotation(annotation: Any) -> bool:
    """``Mapping[...]`` / ``Sequence[...]`` (collections.abc or typing), evaluated or a string."""
    if isinstance(annotation, str):
        head = annotation.strip().strip("'\"").split("[", 1)[0].strip()
        return head.rsplit(".", 1)[-1] in ("Mapping", "Sequence")
    origin = typing.get_origin(annotation) or annotation
    return origin is abc.Mapping or origin is abc.Sequence


def _frozen_params(func: Callable[..., Any]) -> frozenset[str]:
    """The inputs ``func`` takes frozen: all (``_ALL``) when marked with :func:`frozen_inputs`,
    else those whose parameter is annotated ``Mapping`` / ``Sequence`` (read-only views)."""
    if getattr(func, _FROZEN_INPUTS_ATTR, False):
        return frozenset({_ALL})
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(p.name for p in params if p.annotation is not p.empty and _read_only_annotation(p.annotation))


_decisions: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()
_decisions_lock = threading.Lock()


def _decision(func: Callable[..., Any]) -> frozenset[str]:
    try:
        return _decisions[func]
    except KeyError:
        pass
    except TypeError:  # not weak-referenceable (a builtin, some callables): decide every call
        return _frozen_params(func)
    found = _frozen_params(func)
    with _decisions_lock:
        _decisions[func] = found
    return found


def action_inputs(func: Callable[..., Any], inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The inputs to call ``func`` with: plain, mutable copies of every container (a new copy
    per call, so nothing an action does to its inputs reaches the context, a retry or another
    item), except for the inputs ``func`` opted to take frozen (see :func:`frozen_inputs`).

    Called by the executors' ``call_action`` where the action runs (in the worker process for
    the process and Dask executors, so frozen values travel once and are thawed there).
    """
    keep = _decision(func)
    if _ALL in keep:
        return {name: _frozen(value, name) for name, value in inputs.items()}
    thaw = _thaw()
    out = {}
    for name, value in inputs.items():
        if value is None or isinstance(value, (str, int, float)):
            out[name] = value
        elif name in keep:
            out[name] = _frozen(value, name)
        else:
            out[name] = thaw(value)
    return out


def _frozen(value: Any, name: str) -> Any:
    """``value`` frozen (O(1) when it already is: a context value).  A container built by a
    template or written in the workflow file is a plain ``list`` / ``dict``, which an action
    that asked for frozen inputs would otherwise get mutable (and a retry would then see its
    writes); a value the store cannot hold is passed as it is."""
    if type(value) in _backend.frozen_types():  # either backend's: the very object, no copy
        return value
    try:
        return _backend.store.freeze(value, name)
    except (TypeError, ValueError):
        return value


def _thaw() -> Callable[[Any], Any]:
    # the compiled thaw when there is one (it takes either backend's frozen values); read from
    # the module each call, not imported in the function: an import statement, even of a loaded
    # module, cost ~1.4 µs of every action call's ~5
    thaw: Callable[[Any], Any] = _backend.store.thaw
    return thaw


def to_plain(value: Any) -> Any:
    """``value`` with every mapping turned into a ``dict`` and every non-string sequence into a
    ``list`` (frozen context values included), for libraries that want plain JSON types."""
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
