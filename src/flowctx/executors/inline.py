"""The inline executor: each call runs synchronously in the caller's thread (deterministic)."""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from flowctx.actions.base import TIMEOUT, ActionContext, Outcome
from flowctx.executors.base import CallHandle, Executor, OnDone, _timeout_value, call_action


class InlineExecutor(Executor):
    """Runs each call synchronously in the caller's thread (deterministic; used for rehearsals
    and trivial actions).  Nothing can be interrupted: a call that took longer than its timeout
    is reported as ``timeout`` when it returns, and its result is discarded."""

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
        if limit is None:  # the common case: no clock reads beyond call_action's own
            handle.finish(call_action(func, inputs, context))
            return handle
        start = time.monotonic()
        outcome = call_action(func, inputs, context)
        if time.monotonic() - start > limit:
            outcome = Outcome(TIMEOUT, None, f"timed out after {limit:g}s", outcome.started, outcome.finished)
        handle.finish(outcome)
        return handle
