"""The inline executor: each call runs synchronously in the caller's thread (deterministic).

What it enforces and what it cannot:

* **Timeouts** are armed on the shared deadline thread when the call starts.  When one fires,
  the call's outcome is ``timeout`` at once and its ``ActionContext.cancel_event`` is set:
  cooperative actions (``core.local`` kills its command's process group, ``core.sleep``,
  sub-workflows) stop within ~50 ms.  Plain Python code cannot be interrupted in the thread
  that runs it: it runs to its end, and what it returns is discarded.
* **Cancel** (:meth:`InlineExecutor.cancel_running`, which :meth:`Execution.cancel
  <flowctx.engine.runner.Execution.cancel>` and Ctrl-C in ``flowctx run`` call from another
  thread) sets the running call's cancel event the same way.
* An action that raises ``KeyboardInterrupt`` (or any ``BaseException``) off the main thread
  fails its call, as on the thread executor; it does not abort the run.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from flowctx.actions.base import ActionContext
from flowctx.executors.base import CallHandle, Executor, OnDone, _crash, _timeout_value, call_action


class InlineExecutor(Executor):
    """Runs each call synchronously in the caller's thread (deterministic; used for rehearsals
    and trivial actions).  Timeouts and cancel reach cooperative actions through their cancel
    event (see the module docstring); plain Python code runs to its end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: CallHandle | None = None

    def submit(
        self,
        func: Callable[..., Any],
        inputs: Mapping[str, Any],
        *,
        on_done: OnDone,
        timeout: float | None = None,
        context: ActionContext | None = None,
    ) -> CallHandle:
        limit = _timeout_value(timeout)
        handle = CallHandle(on_done, context)  # handle.started: now
        if limit is None and context is None:  # the common case: no clock reads beyond call_action's own
            handle.finish(self._call(func, inputs, context))
            return handle
        handle._start(limit, None)  # a deadline finishes the call as `timeout` and sets its cancel event
        with self._lock:
            self._running = handle
        try:
            outcome = self._call(func, inputs, context)
        finally:
            with self._lock:
                self._running = None
        handle.finish(outcome)  # dropped when the deadline or a cancel came first
        return handle

    @staticmethod
    def _call(func: Callable[..., Any], inputs: Mapping[str, Any], context: ActionContext | None) -> Any:
        started = time.time()
        try:
            return call_action(func, inputs, context)
        except BaseException as exc:  # KeyboardInterrupt & co. raised by the action itself
            if threading.current_thread() is threading.main_thread():
                raise  # a real Ctrl-C of a caller running the engine in its main thread
            return _crash(exc, started)

    def cancel_running(self) -> None:
        """Cancel the call running now (from another thread): its outcome is ``canceled`` and
        its cancel event is set, so a cooperative action stops."""
        with self._lock:
            handle = self._running
        if handle is not None:
            handle.cancel()
