"""Built-in ``core.*`` actions that need no outside world: noop, echo, fail, sleep, inquiry.

``core.local`` (shell commands) lives in :mod:`flowctx.actions.shell` and ``core.http`` in
:mod:`flowctx.actions.http`.
"""
from __future__ import annotations

import math
import time
from typing import Any

from flowctx.actions.base import FAILED, TIMEOUT, ActionContext, ActionResult, in_engine_process, inline, to_plain
from flowctx.actions.registry import action
from flowctx.errors import ActionError

INQUIRY_NEEDS_RESPONDER = (
    "core.inquiry needs a responder: pass responder=... to flowctx.run (or --answer on the CLI)"
)


@action("core.noop")
@in_engine_process
@inline
def noop(**kwargs: Any) -> None:
    """Do nothing and succeed (inputs are accepted and ignored)."""
    return None


@action("core.echo")
@in_engine_process
@inline
def echo(message: Any) -> dict[str, Any]:
    """Return the message: result ``{stdout: message, message: message}``.

    ``message`` is required, as in StackStorm's ``core.echo`` (``flowctx validate`` refuses a
    call without it).  ``stdout`` is StackStorm's ``core.echo`` result; ``message`` is what the
    list-form workflows (``task.X.result.message``) read."""
    return {"stdout": message, "message": message}


@action("core.fail")
@in_engine_process
@inline
def fail(message: str = "core.fail was called", **kwargs: Any) -> None:
    """Fail on purpose with ``message``."""
    raise ActionError(str(message))


def _seconds(value: Any, what: str) -> float:
    """A non-negative, finite number of seconds from an int, float or numeric string."""
    if isinstance(value, bool):
        raise ActionError(f"{what} must be a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ActionError(f"{what} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ActionError(f"{what} must be a finite number of seconds >= 0, got {value!r}")
    return seconds


@action("core.sleep")
@in_engine_process
def sleep(seconds: Any = 1, action_context: ActionContext | None = None) -> dict[str, Any] | ActionResult:
    """Wait ``seconds`` (stops early when the task is canceled or times out)."""
    duration = _seconds(seconds, "core.sleep: 'seconds'")
    if action_context is None:
        time.sleep(duration)
        return {"slept": duration}
    start = time.monotonic()
    if action_context.cancel_event.wait(duration):
        slept = time.monotonic() - start
        return ActionResult(FAILED, {"slept": slept}, f"core.sleep canceled after {slept:.3g}s")
    return {"slept": duration}


@action("core.inquiry")
@in_engine_process
def inquiry(
    prompt: str = "",
    schema: Any = None,
    assigned_to: Any = None,
    route: str | None = None,
    timeout: Any = None,
    ttl: Any = None,
    action_context: ActionContext | None = None,
) -> Any:
    """Ask a human (or a program) and return the answer; needs a responder.

    The responder receives ``{task, prompt, schema, assigned_to, route, timeout, ttl,
    workflow_file}`` and returns the response, which becomes the task's result.  With a JSON
    ``schema`` the response is validated against it (a mismatch fails the task).  A responder that
    raises ``TimeoutError`` makes the task time out.
    """
    responder = action_context.responder if action_context is not None else None
    if responder is None:
        raise ActionError(INQUIRY_NEEDS_RESPONDER)
    payload = {
        "task": action_context.task if action_context is not None else None,
        "prompt": prompt,
        "schema": schema,
        "assigned_to": assigned_to,
        "route": route,
        "timeout": timeout,
        "ttl": ttl,
        "workflow_file": action_context.workflow_file if action_context is not None else None,
    }
    if action_context is not None:
        # Orquesta / st2: an inquiry waiting for its answer is ``pending`` and pauses the
        # workflow; the answer ends the call and the workflow continues
        action_context.report("pending")
    try:
        response = responder(payload)
    except TimeoutError as exc:
        return ActionResult(TIMEOUT, None, f"core.inquiry: no answer in time{': ' + str(exc) if str(exc) else ''}")
    if schema is not None:
        _validate_response(response, schema)
    return response


def _validate_response(response: Any, schema: Any) -> None:
    import jsonschema

    plain_schema = to_plain(schema)
    try:
        cls = jsonschema.validators.validator_for(plain_schema)
        cls.check_schema(plain_schema)
    except jsonschema.SchemaError as exc:
        raise ActionError(f"core.inquiry: the 'schema' input is not a valid JSON schema: {exc.message}") from None
    errors = sorted(cls(plain_schema).iter_errors(to_plain(response)), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path)
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ActionError(
            f"core.inquiry: the response does not match the schema{' at ' + where if where else ''}: "
            f"{first.message}{more}"
        )
