"""Executors run action calls off the engine thread and report each outcome exactly once.

The engine hands an executor a callable plus keyword inputs and an ``on_done`` callback; the
executor calls ``on_done(Outcome)`` once — with the action's result, its failure, or ``timeout``
when the call overran its limit (the late result of an abandoned thread is discarded).
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flowctx.actions.base import CANCELED, FAILED, SUCCEEDED, TIMEOUT, ActionContext, ActionResult, Outcome

OnDone = Callable[[Outcome], None]


class CallHandle:
    """One submitted call; ``finish`` delivers the first outcome and drops any later one."""

    __slots__ = ("_on_done", "_lock", "_done", "_timer", "context", "started")

    def __init__(self, on_done: OnDone, context: ActionContext | None) -> None:
        self._on_done = on_done
        self._lock = threading.Lock()
        self._done = False
        self._timer: threading.Timer | None = None
        self.context = context
        self.started = time.time()

    def finish(self, outcome: Outcome) -> bool:
        with self._lock:
            if self._done:
                return False
            self._done = True
        if self._timer is not None:
            self._timer.cancel()
        if self.context is not None and outcome.status in (TIMEOUT, CANCELED):
            self.context.cancel_event.set()
        self._on_done(outcome)
        return True

    def cancel(self) -> None:
        """Abandon the call: the outcome becomes ``canceled`` (the action is asked to stop)."""
        self.finish(Outcome(CANCELED, None, "canceled", self.started, time.time()))

    @property
    def done(self) -> bool:
        return self._done


def call_action(func: Callable[..., Any], inputs: Mapping[str, Any], context: ActionContext | None) -> Outcome:
    """Run one action call in the current thread and turn what happened into an Outcome."""
    started = time.time()
    try:
        if context is not None:
            value = func(**inputs, action_context=context)
        else:
            value = func(**inputs)
    except Exception as exc:  # an action's failure is data for the workflow, not a crash
        message = str(exc) or type(exc).__name__
        return Outcome(FAILED, {"error": message, "type": type(exc).__name__}, message, started, time.time())
    if isinstance(value, ActionResult):
        return Outcome(value.status, value.result, value.error, started, time.time())
    return Outcome(SUCCEEDED, value, None, started, time.time())


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

    def shutdown(self, wait: bool = True) -> None:
        """Release the executor's workers."""


def _arm_timeout(handle: CallHandle, timeout: float | None) -> None:
    if timeout is None:
        return
    def fire() -> None:
        handle.finish(Outcome(TIMEOUT, None, f"timed out after {timeout:g}s", handle.started, time.time()))

    handle._timer = threading.Timer(timeout, fire)
    handle._timer.daemon = True
    handle._timer.start()


class ThreadExecutor(Executor):
    """The default: a thread pool.  A call that overruns its timeout is abandoned and reported as
    ``timeout``; the thread's late result is discarded (its ``cancel_event`` is set)."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or 32
        self._pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="flowctx-action")

    def submit(
        self,
        func: Callable[..., Any],
        inputs: Mapping[str, Any],
        *,
        on_done: OnDone,
        timeout: float | None = None,
        context: ActionContext | None = None,
    ) -> CallHandle:
        handle = CallHandle(on_done, context)
        _arm_timeout(handle, timeout)

        def run() -> None:
            if handle.done:
                return
            handle.finish(call_action(func, inputs, context))

        self._pool.submit(run)
        return handle

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)


class InlineExecutor(Executor):
    """Runs each call synchronously in the engine thread (deterministic; no timeouts enforced
    beyond reporting).  Used for rehearsals and the fastest path for trivial actions."""

    def submit(
        self,
        func: Callable[..., Any],
        inputs: Mapping[str, Any],
        *,
        on_done: OnDone,
        timeout: float | None = None,
        context: ActionContext | None = None,
    ) -> CallHandle:
        handle = CallHandle(on_done, context)
        handle.finish(call_action(func, inputs, context))
        return handle
