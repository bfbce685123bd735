"""``core.local``: run a shell command on this machine.

The command runs in its own session / process group (``start_new_session=True``).  When it
overruns its ``timeout``, when the task is canceled or timed out by the engine (the action
context's ``cancel_event``), and when the command itself exits, whatever is left of that process
group is killed (SIGTERM, then SIGKILL after a short grace period): nothing a task starts outlives
it, not even a background job (``cmd &``) — run long-lived daemons outside flowctx.

The command's group also dies with the engine process when that is killed outright (SIGKILL,
OOM): it is registered with the engine's group reaper (:mod:`flowctx.executors._reaper`), which
kills it when the engine's end of a pipe closes.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flowctx.actions.base import FAILED, TIMEOUT, ActionContext, ActionResult, in_engine_process
from flowctx.actions.core import _seconds
from flowctx.actions.registry import action
from flowctx.errors import ActionError

if TYPE_CHECKING:
    import subprocess

#: How often the wait loop looks at the cancel event (seconds).
POLL_INTERVAL = 0.05
#: Time between SIGTERM and SIGKILL when killing a process group (seconds).
KILL_GRACE = 0.3
SHELL = "/bin/sh"


def _argv(cmd: Any) -> list[str]:
    if isinstance(cmd, str):
        if not cmd.strip():
            raise ActionError("core.local: 'cmd' is empty")
        return [SHELL, "-c", cmd]
    if isinstance(cmd, (list, tuple)) and cmd:
        argv = []
        for part in cmd:
            if isinstance(part, bool) or not isinstance(part, (str, int, float)):
                raise ActionError(f"core.local: every element of a 'cmd' list must be a string, got {part!r}")
            argv.append(str(part))
        return argv
    raise ActionError(f"core.local: 'cmd' must be a shell command string or a non-empty list of arguments, got {cmd!r}")


def _environment(env: Any) -> dict[str, str] | None:
    if env is None:
        return None
    if not isinstance(env, Mapping):
        raise ActionError(f"core.local: 'env' must be a mapping of variable names to values, got {type(env).__name__}")
    merged = dict(os.environ)
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ActionError(f"core.local: invalid environment variable name {key!r}")
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, bool):
            merged[key] = "true" if value else "false"
        else:
            merged[key] = str(value)
    return merged


def _directory(cwd: Any, context: ActionContext | None) -> str | None:
    if cwd is None or cwd == "":
        return None
    if not isinstance(cwd, (str, os.PathLike)):
        raise ActionError(f"core.local: 'cwd' must be a directory path, got {cwd!r}")
    from pathlib import Path  # imported when a command runs, like subprocess

    path = Path(cwd).expanduser()
    if not path.is_absolute() and context is not None and context.workflow_file:
        path = Path(context.workflow_file).resolve().parent / path
    if not path.is_dir():
        raise ActionError(f"core.local: 'cwd' {str(cwd)!r} is not a directory")
    return str(path)


def kill_process_group(proc: subprocess.Popen[bytes], grace: float = KILL_GRACE) -> None:
    """SIGTERM the process group led by ``proc``, then SIGKILL whatever is left after ``grace``."""
    import subprocess

    pgid = proc.pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL did not work: nothing more to do
        pass


def _text(data: bytes | None) -> str:
    if not data:
        return ""
    return data.decode("utf-8", errors="replace").rstrip("\r\n")


@action("core.local")
@in_engine_process
def local(
    cmd: Any,
    cwd: str | None = None,
    env: Mapping[str, Any] | None = None,
    timeout: Any = None,
    action_context: ActionContext | None = None,
) -> Any:
    """Run a shell command; result {stdout, stderr, return_code, succeeded, failed}.

    ``cmd`` is a string run by ``/bin/sh -c`` or a list of arguments run without a shell.
    ``cwd`` is the working directory (relative paths are taken from the workflow file's
    directory), ``env`` adds variables to the inherited environment (``None`` removes one),
    ``timeout`` (seconds) kills the command's whole process group and makes the task time out.
    A non-zero exit status fails the task (the result still carries stdout and stderr).
    """
    import subprocess  # here, not at the top: a run without core.local does not import it

    argv = _argv(cmd)
    environment = _environment(env)
    directory = _directory(cwd, action_context)
    limit = None if timeout is None else _seconds(timeout, "core.local: 'timeout'")
    cancel = action_context.cancel_event if action_context is not None else None
    if cancel is not None and cancel.is_set():
        return ActionResult(FAILED, None, "core.local: canceled before the command started")
    try:
        proc = subprocess.Popen(
            argv,
            cwd=directory,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            # no preexec_fn (PR_SET_PDEATHSIG): it forces fork() instead of vfork/posix_spawn,
            # measured at 13-16 ms per command instead of 1-2 ms (120 ms in a 300 MB engine);
            # the group reaper below covers an engine that dies outright
        )
    except OSError as exc:
        raise ActionError(f"core.local: cannot start {argv[0] if argv[0] != SHELL else 'the shell'}: {exc.strerror or exc}") from None
    from flowctx.executors import _reaper

    _reaper.register(proc.pid)  # its group is SIGKILLed if the engine dies outright

    deadline = None if limit is None else time.monotonic() + limit
    stopped: str | None = None  # "timeout" | "canceled"
    out: bytes | None = b""
    err: bytes | None = b""
    try:
        while True:
            wait = POLL_INTERVAL if cancel is not None else 0.5
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            try:
                out, err = proc.communicate(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                pass
            if cancel is not None and cancel.is_set():
                stopped = "canceled"
            elif deadline is not None and time.monotonic() >= deadline:
                stopped = "timeout"
            elif proc.poll() is None:
                continue
            # Stop the command (or, if the shell already exited, the background jobs still
            # holding its output open), then collect what it wrote.
            kill_process_group(proc)
            try:
                out, err = proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:  # a process escaped the group and holds the pipes
                out, err = b"", b"(output lost: a process left the command's process group)"
            break
    except BaseException:
        kill_process_group(proc, grace=0)
        raise
    finally:
        # Whatever the command left running in its group dies with the task.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _reaper.unregister(proc.pid)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    stderr = _text(err)
    result = {
        "stdout": _text(out),
        "stderr": stderr,
        "return_code": code,
        "succeeded": code == 0 and stopped is None,
        "failed": code != 0 or stopped is not None,
    }
    if stopped == "timeout":
        return ActionResult(TIMEOUT, result, f"core.local: command timed out after {limit:g}s (its process group was killed)")
    if stopped == "canceled":
        return ActionResult(FAILED, result, "core.local: canceled (its process group was killed)")
    if code != 0:
        last = stderr.splitlines()[-1].strip() if stderr else ""
        detail = f": {last[:200]}" if last else ""
        return ActionResult(FAILED, result, f"core.local: command exited with code {code}{detail}")
    return result
