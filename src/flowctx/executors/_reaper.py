"""The group reaper: kills the process groups of running commands and pool workers when the
engine process dies without cleaning up (SIGKILL, the OOM killer, a crash).

``PR_SET_PDEATHSIG`` (see :func:`flowctx.executors.base.die_with_parent_preexec`) reaches only
the direct child of the engine: ``sh -c 'sleep 60'`` forks ``sleep``, which would survive.  So
the first command or worker an engine process starts also starts one small helper process (its
own session, so terminal signals never reach it) that reads ``+PGID`` / ``-PGID`` lines from a
pipe only the engine holds.  When the engine dies, by any means, the kernel closes that pipe;
the helper then SIGKILLs every group still registered and exits.  A group is unregistered as
soon as its command has ended and been reaped, before its number can be reused.

Cost: one process per engine process (started once, lazily), one short pipe write per command
start and end.  Where the helper cannot start, nothing changes (the normal kills still happen).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading

_HELPER = r"""
import os, signal, sys
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
    try:
        signal.signal(s, signal.SIG_IGN)
    except (OSError, ValueError):
        pass
groups = set()
for line in sys.stdin.buffer:
    line = line.strip()
    if line[:1] == b"+":
        groups.add(int(line[1:]))
    elif line[:1] == b"-":
        groups.discard(int(line[1:]))
for pg in groups:
    try:
        os.killpg(pg, signal.SIGKILL)
    except OSError:
        pass
"""

_lock = threading.Lock()
_proc: subprocess.Popen[bytes] | None = None
_owner = 0  # the pid that started the helper (a forked child must not use its parent's)
_broken = False


def _helper() -> subprocess.Popen[bytes] | None:
    global _proc, _owner, _broken
    if _broken or os.name != "posix":
        return None
    if _proc is not None and _owner == os.getpid() and _proc.poll() is None:
        return _proc
    try:
        _proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _HELPER],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )
        _owner = os.getpid()
    except OSError:
        _broken = True
        return None
    return _proc


def _send(line: bytes) -> None:
    global _broken
    with _lock:
        proc = _helper()
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(line)
            proc.stdin.flush()
        except (OSError, ValueError):
            _broken = True


def register(pgid: int) -> None:
    """Kill process group ``pgid`` if this process dies before :func:`unregister`."""
    _send(b"+%d\n" % pgid)


def unregister(pgid: int) -> None:
    """``pgid`` ended (its leader was reaped): forget it."""
    if _proc is None:
        return
    _send(b"-%d\n" % pgid)


def helper_pid() -> int | None:
    """The helper's process id (for tests), or None when none runs."""
    proc = _proc
    return proc.pid if proc is not None and proc.poll() is None else None


def _after_fork() -> None:
    global _proc, _owner
    _proc = None  # the child's copy of the pipe must not be used (nor kept open: close it)
    _owner = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
