"""The executor contract: :class:`Executor`, :class:`CallHandle`, :func:`call_action`.

The engine hands an executor a callable plus keyword inputs and an ``on_done`` callback; the
executor calls ``on_done(Outcome)`` once — with the action's result, its failure, ``timeout``
when the call overran its limit, or ``canceled`` after :meth:`CallHandle.cancel`.  A result that
arrives after the outcome was delivered is discarded.  Timeouts are fired by one shared daemon
thread (:data:`DEADLINES`), not a thread per call.
"""
from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from flowctx.actions.base import (
    CANCELED,
    FAILED,
    SUCCEEDED,
    TIMEOUT,
    ActionContext,
    ActionResult,
    Outcome,
    action_inputs,
)
from flowctx.errors import ActionError, FlowctxError

OnDone = Callable[[Outcome], None]


# --------------------------------------------------------------------------------------------
class _Deadlines:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, delay: float, callback: Callable[[], None]) -> list[Any]:
        entry = [time.monotonic() + max(0.0, delay), next(self._seq), callback]
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="flowctx-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0] is entry:
                self._cond.notify()
        return entry

    @staticmethod
    def cancel(entry: list[Any]) -> None:
        entry[2] = None  # lazily dropped from the heap

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2] is None:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay > 0:
                        # under a millisecond: a look (wait(0) never blocks), not a timed wait --
                        # the engine loop's timed wait of a few microseconds once overslept for
                        # minutes (flowctx.engine.runner._POLL_BELOW)
                        self._cond.wait(delay if delay >= 0.001 else 0)
                        continue
                    entry = heapq.heappop(self._heap)
                    callback, entry[2] = entry[2], None
                    break
            if callback is not None:
                try:
                    callback()
                except BaseException:  # on_done must not kill the deadline thread
                    _report_callback_error()

    def _after_fork(self) -> None:
        self._cond = threading.Condition()
        self._heap = []
        self._thread = None


def _report_callback_error() -> None:
    """An ``on_done`` callback raised (an engine bug): print it, keep the executor's thread."""
    import sys
    import traceback

    print("flowctx: an executor callback raised an exception:", file=sys.stderr)
    traceback.print_exc()


_DEADLINES = _Deadlines()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_DEADLINES._after_fork)


# --------------------------------------------------------------------------------------------
# Call handles and running one call
# --------------------------------------------------------------------------------------------
class CallHandle:
    """One submitted call; ``finish`` delivers the first outcome and drops any later one.

    ``started`` is the wall-clock time the call started running (the submit time until then).
    """

    __slots__ = ("_on_done", "_lock", "_done", "_deadline", "_abort", "context", "started", "outcome")

    def __init__(self, on_done: OnDone, context: ActionContext | None) -> None:
        self._on_done = on_done
        self._lock = threading.Lock()
        self._done = False
        self._deadline: list[Any] | None = None
        self._abort: Callable[[], None] | None = None
        self.context = context
        self.started = time.time()
        self.outcome: Outcome | None = None

    def finish(self, outcome: Outcome) -> bool:
        """Deliver ``outcome`` if none was delivered yet; returns whether it was."""
        with self._lock:
            if self._done:
                return False
            self._done = True
            self.outcome = outcome
            abort, self._abort = self._abort, None
        if self._deadline is not None:
            _Deadlines.cancel(self._deadline)
        if outcome.status in (TIMEOUT, CANCELED):
            if self.context is not None:
                self.context.cancel_event.set()
            if abort is not None:
                abort()
        self._on_done(outcome)
        return True

    def cancel(self) -> None:
        """Abandon the call: the outcome becomes ``canceled`` (the action is asked to stop; a
        process-pool call's worker is killed)."""
        self.finish(Outcome(CANCELED, None, "canceled", self.started, time.time()))

    @property
    def done(self) -> bool:
        return self._done

    # -- used by executors --------------------------------------------------------------------
    def _start(self, timeout: float | None, abort: Callable[[], None] | None) -> bool:
        """Mark the call as running now, with its deadline; False if it already finished."""
        with self._lock:
            if self._done:
                return False
            self._abort = abort
            self.started = time.time()
        if timeout is not None:
            limit = timeout

            def fire() -> None:
                self.finish(Outcome(TIMEOUT, None, f"timed out after {limit:g}s", self.started, time.time()))

            self._deadline = _DEADLINES.schedule(limit, fire)
            if self._done:  # finished between the check and arming: drop the deadline
                _Deadlines.cancel(self._deadline)
        return True


def _message(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, FlowctxError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def call_action(func: Callable[..., Any], inputs: Mapping[str, Any], context: ActionContext | None) -> Outcome:
    """Run one action call in the current thread and turn what happened into an Outcome.

    An exception (including ``SystemExit``) becomes a ``failed`` outcome whose ``error`` is the
    message (prefixed with the exception type unless it is a :class:`flowctx.FlowctxError`) and
    whose result is ``{error, type}``.  An :class:`ActionResult` gives its own status.
    """
    started = time.time()
    try:
        inputs = action_inputs(func, inputs)  # plain copies unless the action takes frozen values
        if context is not None:
            value = func(**inputs, action_context=context)
        else:
            value = func(**inputs)
    except (Exception, SystemExit) as exc:  # an action's failure is data for the workflow, not a crash
        message = _message(exc)
        return Outcome(FAILED, {"error": message, "type": type(exc).__name__}, message, started, time.time())
    if isinstance(value, ActionResult):
        return Outcome(value.status, value.result, value.error, started, time.time())
    return Outcome(SUCCEEDED, value, None, started, time.time())


def portable_context(context: ActionContext | None) -> tuple[str, str | None, dict[str, Any]] | None:
    """What of an :class:`ActionContext` can travel to another process: task, workflow file and
    the ``extra`` values that pickle (the responder and the cancel event stay behind)."""
    if context is None:
        return None
    import pickle

    extra: dict[str, Any] = {}
    for key, value in context.extra.items():
        try:
            pickle.dumps(value)
        except Exception:
            continue
        extra[key] = value
    return (context.task, context.workflow_file, extra)


def restore_context(info: tuple[str, str | None, dict[str, Any]] | None) -> ActionContext | None:
    """The :class:`ActionContext` a worker process builds from :func:`portable_context`."""
    if info is None:
        return None
    task, workflow_file, extra = info
    return ActionContext(task=task, workflow_file=workflow_file, extra=dict(extra))


def _crash(exc: BaseException, started: float) -> Outcome:
    message = _message(exc)
    return Outcome(FAILED, {"error": message, "type": type(exc).__name__}, message, started, time.time())


def _timeout_value(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0 or timeout != timeout:
        raise ActionError(f"an action timeout must be a number of seconds >= 0, got {timeout!r}")
    return float(timeout)


def _pool_size(max_workers: Any, default: int) -> int:
    if max_workers is None:
        return default
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ActionError(f"max_workers must be a whole number >= 1, got {max_workers!r}")
    workers: int = max_workers  # an int, checked above (mypy before 2.0 does not narrow Any here)
    return workers


class Executor(ABC):
    """Runs action calls; see the module docstring for the contract."""

    @abstractmethod
    def submit(
        self,
        func: Callable[..., Any],
        inputs: Mapping[str, Any],
        *,
        on_done: OnDone,
        timeout: float | None = None,
        context: ActionContext | None = None,
    ) -> CallHandle:
        """Start ``func(**inputs)``; ``on_done`` is called exactly once with its Outcome."""

    def check(self, func: Callable[..., Any], name: str | None = None) -> None:
        """Raise :class:`ActionError` if this executor cannot run ``func`` at all (called by the
        engine before the run starts; the base executors can run any callable)."""

    def flush(self) -> None:
        """Send calls the executor buffers (the engine calls this after each dispatch round; an
        executor that batches, such as the Dask one, sends a round's calls together)."""

    def shutdown(self, wait: bool = True) -> None:
        """Release the executor's workers; calls still queued are canceled."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True)


# --------------------------------------------------------------------------------------------
# Children that die with the engine
# --------------------------------------------------------------------------------------------
PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
        prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        prctl.restype = ctypes.c_int
        return prctl
    except (OSError, AttributeError, ImportError):  # no libc prctl (musl builds without it ...)
        return None


_PRCTL_LOADED: list[Callable[..., int] | None] = []  # loaded (ctypes) on the first child started


def _prctl() -> Callable[..., int] | None:
    if not _PRCTL_LOADED:
        _PRCTL_LOADED.append(_load_prctl())
    return _PRCTL_LOADED[0]


def die_with_parent() -> bool:
    """In a child process: ask the kernel to SIGKILL this process when the thread that started
    it ends — the engine dying, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``; elsewhere a no-op
    returning False).  Exits at once if the parent is already gone."""
    prctl = _prctl()
    if prctl is None:
        return False
    import signal

    parent = os.getppid()
    if prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    return True


def die_with_parent_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that makes the child die with this
    process (see :func:`die_with_parent`); None where the OS offers no such request.

    Not used by ``core.local``: any ``preexec_fn`` makes :mod:`subprocess` fork instead of using
    vfork / posix_spawn, which cost 13-16 ms per command instead of 1-2 ms here (120 ms from a
    300 MB process); the group reaper (:mod:`flowctx.executors._reaper`) covers commands.  Pool
    workers call :func:`die_with_parent` once at start.

    Only the direct child gets the request (the kernel clears it in the processes *it* forks):
    a single command — ``sleep 60``, or ``sh -c 'sleep 60'`` which the shell execs — dies with
    the engine; the other members of a shell pipeline or script are left to the process-group
    kill that every normal end of the engine (exit, Ctrl-C, SIGTERM) performs.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()
    sigkill = 9

    def preexec() -> None:  # runs in the child between fork and exec: no imports, no locks
        prctl(PR_SET_PDEATHSIG, sigkill, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec
