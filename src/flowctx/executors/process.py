"""The process executor: a small pool of worker processes for CPU-bound Python actions.

Inputs are pickled (frozen context values pickle as they are); a call that overruns is terminated
by killing its worker process (with everything it started: each worker leads its own process
group) and the worker is replaced.  Actions must be importable top-level functions.  Actions
marked :func:`flowctx.actions.base.in_engine_process` (the built-ins ``core.local``,
``core.http``, ``core.sleep``, ``core.inquiry`` ...) run on a thread of the engine's process.
"""
from __future__ import annotations

import atexit
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from multiprocessing.connection import wait as _mp_wait
from typing import Any

from flowctx.actions.base import FAILED, ActionContext, Outcome, runs_in_engine_process
from flowctx.errors import ActionError
from flowctx.executors import _reaper
from flowctx.executors.base import (
    CallHandle,
    Executor,
    OnDone,
    _crash,
    _pool_size,
    _report_callback_error,
    _timeout_value,
    call_action,
    die_with_parent,
    portable_context,
    restore_context,
)
from flowctx.executors.thread import EngineThreads, ThreadExecutor

_STOP = b"stop"


def _worker_main(conn: Any) -> None:
    """A process-pool worker: receive pickled calls, run them, send back pickled outcomes.

    The worker leads its own process group so that killing it on a timeout also kills whatever
    the action started.  It exits when the engine's end of the pipe closes.
    """
    try:
        os.setsid()
    except OSError:  # pragma: no cover - already a group leader
        pass
    die_with_parent()  # Linux: SIGKILLed when the engine dies, even by SIGKILL
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine decides when workers stop
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):  # pragma: no cover
        pass
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if data == _STOP:
            return
        started = time.time()
        try:
            func, inputs, ctxinfo = pickle.loads(data)
        except BaseException as exc:  # noqa: BLE001
            outcome = Outcome(
                FAILED,
                None,
                f"cannot load the action in the worker process ({type(exc).__name__}: {exc}); "
                "process-executor actions must be importable top-level functions",
                started,
                time.time(),
            )
        else:
            try:
                outcome = call_action(func, inputs, restore_context(ctxinfo))
            except BaseException as exc:  # noqa: BLE001
                outcome = _crash(exc, started)
        try:
            blob = pickle.dumps(
                (outcome.status, outcome.result, outcome.error, outcome.started, outcome.finished),
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        except Exception as exc:
            message = f"the action's result cannot be sent back from the worker process (it must be picklable): {type(exc).__name__}: {exc}"
            blob = pickle.dumps((FAILED, None, message, outcome.started, outcome.finished))
        try:
            conn.send_bytes(blob)
        except (EOFError, OSError):
            return


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "is unresponsive"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


class _Job:
    __slots__ = ("handle", "blob", "timeout", "name")

    def __init__(self, handle: CallHandle, blob: bytes, timeout: float | None, name: str) -> None:
        self.handle = handle
        self.blob = blob
        self.timeout = timeout
        self.name = name


class _Slot:
    """One worker process and the engine-side thread that feeds it."""

    def __init__(self, owner: ProcessExecutor, index: int) -> None:
        self.owner = owner
        self.index = index
        self.proc: Any = None
        self.conn: Any = None
        self.current: _Job | None = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, name=f"flowctx-process-slot-{index}", daemon=True)

    # worker lifecycle -----------------------------------------------------------------------
    def ensure_worker(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            return
        self.reap()
        ctx = self.owner._mp
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        # Not a daemon, so actions may use multiprocessing themselves; _kill_all_workers (atexit)
        # makes sure no worker outlives the interpreter.
        # every concrete context has Process; typeshed's BaseContext (what get_context gives) does not
        proc = ctx.Process(target=_worker_main, args=(child_conn,), name=f"flowctx-worker-{self.index}")  # type: ignore[attr-defined]
        proc.start()
        child_conn.close()
        _reaper.register(proc.pid)  # the worker leads its own group: killed if the engine dies outright
        with self.lock:
            self.proc, self.conn = proc, parent_conn

    def kill(self, proc: Any) -> None:
        if proc is None:
            return
        pid = proc.pid
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                pass
        try:
            proc.kill()
        except (OSError, ValueError, AttributeError):
            pass

    def kill_if_running(self, job: _Job) -> None:
        with self.lock:
            if self.current is job:
                self.kill(self.proc)

    def reap(self) -> None:
        with self.lock:
            proc, conn = self.proc, self.conn
            self.proc = self.conn = None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass
        if proc is not None:
            pid = proc.pid
            if proc.is_alive():
                self.kill(proc)
            proc.join(5)
            if pid is not None and proc.exitcode is not None:
                try:
                    os.killpg(pid, signal.SIGKILL)  # what the worker's actions left in its group
                except OSError:
                    pass
                _reaper.unregister(pid)
            try:
                proc.close()
            except ValueError:  # pragma: no cover - still running after SIGKILL + 5 s
                pass

    def stop(self, wait: bool) -> None:
        """Ask an idle worker to exit (or kill it), then reap it."""
        with self.lock:
            proc, conn = self.proc, self.conn
        if proc is None:
            return
        if wait and conn is not None:
            try:
                conn.send_bytes(_STOP)
            except (OSError, EOFError):
                pass
            proc.join(2)
        self.reap()

    # the feeding loop ------------------------------------------------------------------------
    def run(self) -> None:
        jobs = self.owner._jobs
        while True:
            job = jobs.get()
            if job is None:
                self.stop(wait=not self.owner._killing)
                return
            try:
                self.run_one(job)
            except BaseException:  # an on_done callback raised: report it, keep the slot
                _report_callback_error()

    def run_one(self, job: _Job) -> None:
        handle = job.handle
        if handle.done:
            return
        try:
            self.ensure_worker()
        except Exception as exc:
            handle.finish(_crash(ActionError(f"cannot start a worker process for action {job.name!r}: {exc}"), time.time()))
            return
        proc, conn = self.proc, self.conn
        with self.lock:
            self.current = job
        try:
            if not handle._start(job.timeout, lambda: self.kill_if_running(job)):
                return
            try:
                conn.send_bytes(job.blob)
                ready = _mp_wait([conn, proc.sentinel])
                data = conn.recv_bytes() if conn in ready else None
            except (EOFError, OSError):
                data = None
            if data is not None:
                try:
                    status, result, error, started, finished = pickle.loads(data)
                    outcome = Outcome(status, result, error, started, finished)
                except Exception as exc:
                    outcome = _crash(ActionError(f"cannot read the result of action {job.name!r} from its worker process: {exc}"), handle.started)
            else:
                proc.join(1)
                outcome = _crash(
                    ActionError(f"the worker process running action {job.name!r} {_describe_exit(proc.exitcode)}"),
                    handle.started,
                )
            with self.lock:
                self.current = None
            handle.finish(outcome)
        finally:
            with self.lock:
                self.current = None
            if self.proc is not None and not self.proc.is_alive():
                self.reap()


class ProcessExecutor(EngineThreads, Executor):
    """A pool of ``max_workers`` worker processes (default: the number of CPUs) for CPU-bound
    Python actions.  See the module docstring; ``mp_context`` is a :mod:`multiprocessing` start
    method (default ``"spawn"``, safe with the engine's threads: workers start as fresh
    interpreters with the engine's ``sys.path``, so a script that uses this executor needs the
    usual ``if __name__ == "__main__":`` guard).  Workers start on first use and are replaced
    when one is killed; ``thread_workers`` sizes the thread pool for engine-process actions."""

    def __init__(self, max_workers: int | None = None, *, mp_context: str | None = None, thread_workers: int | None = None) -> None:
        self.max_workers = _pool_size(max_workers, os.cpu_count() or 1)
        self._mp = multiprocessing.get_context(mp_context or "spawn")
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._slots: list[_Slot] = []
        self._lock = threading.Lock()
        self._closed = False
        self._killing = False
        self._thread_workers = thread_workers
        self._threads: ThreadExecutor | None = None
        _LIVE_PROCESS_EXECUTORS.add(self)

    # -- checks ----------------------------------------------------------------------------------
    def check(self, func: Callable[..., Any], name: str | None = None) -> None:
        """Raise :class:`ActionError` unless ``func`` can be sent to a worker process (an
        importable top-level function) or runs in the engine process anyway."""
        if runs_in_engine_process(func):
            return
        label = name or getattr(func, "__qualname__", None) or repr(func)
        qualname = getattr(func, "__qualname__", "") or ""
        if "<lambda>" in qualname or "<locals>" in qualname:
            raise ActionError(
                f"action {label!r} cannot run on the process executor: {qualname!r} is not an importable "
                "top-level function (define it at module level, or use the thread executor)"
            )
        try:
            restored = pickle.loads(pickle.dumps(func, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:
            raise ActionError(
                f"action {label!r} cannot run on the process executor: it cannot be sent to a worker "
                f"process ({type(exc).__name__}: {exc}); it must be an importable top-level function"
            ) from None
        if getattr(restored, "__qualname__", None) != getattr(func, "__qualname__", None):
            raise ActionError(
                f"action {label!r} cannot run on the process executor: importing it by name gives a "
                "different object; it must be an importable top-level function"
            )

    # -- running ---------------------------------------------------------------------------------
    def _start_slots(self) -> None:
        with self._lock:
            if self._closed:
                raise ActionError("the executor was shut down")
            if not self._slots:
                self._slots = [_Slot(self, i) for i in range(self.max_workers)]
                for slot in self._slots:
                    slot.thread.start()

    def submit(
        self,
        func: Callable[..., Any],
        inputs: Mapping[str, Any],
        *,
        on_done: OnDone,
        timeout: float | None = None,
        context: ActionContext | None = None,
    ) -> CallHandle:
        if runs_in_engine_process(func):
            return self._thread_executor().submit(func, inputs, on_done=on_done, timeout=timeout, context=context)
        limit = _timeout_value(timeout)
        self._start_slots()
        handle = CallHandle(on_done, context)
        name = context.task if context is not None else getattr(func, "__qualname__", repr(func))
        try:
            self.check(func, getattr(func, "__qualname__", None))
            blob = self._pickle_call(func, inputs, context, name)
        except ActionError as exc:
            handle.finish(_crash(exc, time.time()))
            return handle
        self._jobs.put(_Job(handle, blob, limit, name))
        return handle

    @staticmethod
    def _pickle_call(func: Callable[..., Any], inputs: Mapping[str, Any], context: ActionContext | None, name: str) -> bytes:
        try:
            return pickle.dumps((func, inputs, portable_context(context)), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise ActionError(
                f"the inputs of {name!r} cannot be sent to a worker process ({type(exc).__name__}: {exc})"
            ) from None

    def worker_pids(self) -> list[int]:
        """The process ids of the live worker processes (for tests and diagnostics)."""
        pids = []
        for slot in list(self._slots):
            proc = slot.proc
            if proc is not None and proc.pid is not None and proc.is_alive():
                pids.append(proc.pid)
        return pids

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            already = self._closed
            self._closed = True
            slots = list(self._slots)
            threads = self._threads
        if not already:
            # Cancel what never started, then stop each slot after its current call.
            pending: list[_Job] = []
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    pending.append(job)
            for job in pending:
                job.handle.cancel()
            if not wait:
                self._killing = True
                for slot in slots:
                    with slot.lock:
                        job = slot.current
                    if job is not None:
                        job.handle.cancel()  # kills its worker
            for _ in slots:
                self._jobs.put(None)
        if threads is not None:
            threads.shutdown(wait=wait)
        if wait:
            for slot in slots:
                slot.thread.join()


_LIVE_PROCESS_EXECUTORS: weakref.WeakSet[ProcessExecutor] = weakref.WeakSet()


@atexit.register
def _kill_all_workers() -> None:
    """At interpreter exit, kill the workers of executors nobody shut down."""
    for executor in list(_LIVE_PROCESS_EXECUTORS):
        executor._killing = True
        for slot in list(executor._slots):
            slot.kill(slot.proc)
