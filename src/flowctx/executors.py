"""Executors run action calls off the engine thread and report each outcome exactly once.

The engine hands an executor a callable plus keyword inputs and an ``on_done`` callback; the
executor calls ``on_done(Outcome)`` once — with the action's result, its failure, ``timeout``
when the call overran its limit, or ``canceled`` after :meth:`CallHandle.cancel`.  A result that
arrives after the outcome was delivered is discarded.

* :class:`ThreadExecutor` (the default): a pool of daemon threads.  A call's timeout starts when
  it starts running (not while it waits for a free thread).  A call that overruns is *abandoned*:
  the outcome is ``timeout``, its ``ActionContext.cancel_event`` is set (cooperative actions such
  as ``core.local`` and ``core.sleep`` stop and kill their child processes), its thread is no
  longer counted in the pool (a replacement starts) and whatever it returns later is dropped.
  Abandoned threads are daemons: they never hold up the interpreter's exit.
* :class:`ProcessExecutor`: a small pool of worker processes for CPU-bound Python actions.
  Inputs are pickled (frozen context values pickle as they are); a call that overruns is
  terminated by killing its worker process (with everything it started: each worker leads its own
  process group) and the worker is replaced.  Actions must be importable top-level functions.
  Actions marked :func:`flowctx.actions.base.in_engine_process` (the built-ins ``core.local``,
  ``core.http``, ``core.sleep``, ``core.inquiry`` ...) run on a thread of the engine's process.
* :class:`InlineExecutor`: runs each call synchronously in the caller's thread (deterministic);
  a call that took longer than its timeout is reported as ``timeout`` afterwards.

:func:`make_executor` builds one by name (``"thread"``, ``"process"``, ``"inline"``).
"""
from __future__ import annotations

import atexit
import heapq
import itertools
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from multiprocessing.connection import wait as _mp_wait
from typing import Any

from flowctx.actions.base import (
    CANCELED,
    FAILED,
    SUCCEEDED,
    TIMEOUT,
    ActionContext,
    ActionResult,
    Outcome,
    runs_in_engine_process,
)
from flowctx.errors import ActionError, FlowctxError

OnDone = Callable[[Outcome], None]

__all__ = [
    "CallHandle",
    "Executor",
    "InlineExecutor",
    "ProcessExecutor",
    "ThreadExecutor",
    "EXECUTOR_KINDS",
    "call_action",
    "make_executor",
]


# --------------------------------------------------------------------------------------------
# Deadlines: one daemon thread firing timeouts for every executor (no thread per call).
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
                        self._cond.wait(delay)
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
    return max_workers


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

    def shutdown(self, wait: bool = True) -> None:
        """Release the executor's workers; calls still queued are canceled."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True)


# --------------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------------
class _Worker:
    __slots__ = ("abandoned", "current", "thread")

    def __init__(self) -> None:
        self.abandoned = False
        self.current: object | None = None
        self.thread: threading.Thread | None = None


class _ThreadPool:
    """Daemon worker threads pulling jobs from a queue; a worker can be abandoned (it stops
    counting toward the pool size, a replacement starts, and it exits after its current job)."""

    def __init__(self, max_workers: int, name: str) -> None:
        self.max_workers = max_workers
        self._name = name
        self._cond = threading.Condition()
        self._jobs: deque[Callable[[_Worker], None]] = deque()
        self._live: set[_Worker] = set()
        self._idle = 0
        self._closed = False
        self._counter = itertools.count(1)

    def submit(self, job: Callable[[_Worker], None]) -> None:
        with self._cond:
            if self._closed:
                raise ActionError("the executor was shut down")
            self._jobs.append(job)
            if self._idle:
                self._cond.notify()
            if len(self._jobs) > self._idle and len(self._live) < self.max_workers:
                self._start_worker()

    def _start_worker(self) -> None:
        worker = _Worker()
        worker.thread = threading.Thread(
            target=self._loop, args=(worker,), name=f"{self._name}-{next(self._counter)}", daemon=True
        )
        self._live.add(worker)
        worker.thread.start()

    def _loop(self, worker: _Worker) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    if self._closed:
                        self._live.discard(worker)
                        return
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                job = self._jobs.popleft()
            try:
                job(worker)
            except BaseException:  # an on_done callback raised: report it, keep the worker
                _report_callback_error()
            if worker.abandoned:
                return

    def abandon(self, worker: _Worker, token: object) -> None:
        """Stop counting ``worker`` (running ``token``) and start a replacement if work waits."""
        with self._cond:
            if worker.abandoned or worker.current is not token:
                return
            worker.abandoned = True
            self._live.discard(worker)
            if len(self._jobs) > self._idle and len(self._live) < self.max_workers and not self._closed:
                self._start_worker()

    def close(self) -> list[Callable[[_Worker], None]]:
        """Stop taking jobs; returns the jobs that never started."""
        with self._cond:
            self._closed = True
            pending = list(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
            return pending

    def join(self, timeout: float | None = None) -> None:
        with self._cond:
            threads = [w.thread for w in self._live if w.thread is not None]
        me = threading.current_thread()
        for t in threads:
            if t is not me:
                t.join(timeout)


class ThreadExecutor(Executor):
    """The default: a pool of ``max_workers`` threads (default 32).  A call that overruns its
    timeout is abandoned and reported as ``timeout``; its late result is discarded and its
    ``cancel_event`` is set."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = _pool_size(max_workers, 32)
        self._pool = _ThreadPool(self.max_workers, "flowctx-action")
        self._queued: dict[CallHandle, None] = {}
        self._queued_lock = threading.Lock()

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
        handle = CallHandle(on_done, context)
        pool = self._pool

        def job(worker: _Worker) -> None:
            token = object()
            worker.current = token
            try:
                if not handle._start(limit, lambda: pool.abandon(worker, token)):
                    return
                started = time.time()
                try:
                    outcome = call_action(func, inputs, context)
                except BaseException as exc:  # noqa: BLE001 - never let a call die silently
                    outcome = _crash(exc, started)
                handle.finish(outcome)
            finally:
                with pool._cond:
                    worker.current = None

        job.handle = handle  # type: ignore[attr-defined]
        pool.submit(job)
        return handle

    def shutdown(self, wait: bool = True) -> None:
        for job in self._pool.close():
            handle = getattr(job, "handle", None)
            if handle is not None:
                handle.cancel()
        if wait:
            self._pool.join()


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


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------
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
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine decides when workers stop
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
            context = None
            if ctxinfo is not None:
                task, workflow_file, extra = ctxinfo
                context = ActionContext(task=task, workflow_file=workflow_file, extra=dict(extra))
            try:
                outcome = call_action(func, inputs, context)
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
        proc = ctx.Process(target=_worker_main, args=(child_conn,), name=f"flowctx-worker-{self.index}")
        proc.start()
        child_conn.close()
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
            if proc.is_alive():
                self.kill(proc)
            proc.join(5)
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


class ProcessExecutor(Executor):
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
    def _thread_executor(self) -> ThreadExecutor:
        with self._lock:
            if self._closed:
                raise ActionError("the executor was shut down")
            if self._threads is None:
                self._threads = ThreadExecutor(self._thread_workers)
            return self._threads

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
        ctxinfo = None
        if context is not None:
            extra: dict[str, Any] = {}
            for key, value in context.extra.items():  # keep what can travel
                try:
                    pickle.dumps(value)
                except Exception:
                    continue
                extra[key] = value
            ctxinfo = (context.task, context.workflow_file, extra)
        try:
            return pickle.dumps((func, inputs, ctxinfo), protocol=pickle.HIGHEST_PROTOCOL)
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


EXECUTOR_KINDS = ("thread", "process", "inline")


def make_executor(kind: str = "thread", max_workers: int | None = None) -> Executor:
    """An executor by name: ``"thread"`` (default), ``"process"`` or ``"inline"``.

    ``max_workers`` sizes the thread or process pool (the inline executor ignores it)."""
    name = kind.strip().lower() if isinstance(kind, str) else kind
    if name == "thread":
        return ThreadExecutor(max_workers)
    if name == "process":
        return ProcessExecutor(max_workers)
    if name == "inline":
        _pool_size(max_workers, 1)  # validated, but the inline executor runs one call at a time
        return InlineExecutor()
    raise ActionError(f"unknown executor {kind!r} (choose one of: {', '.join(EXECUTOR_KINDS)})")
