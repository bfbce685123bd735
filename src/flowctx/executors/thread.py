"""The default executor: a pool of daemon threads.

A call's timeout starts when it starts running (not while it waits for a free thread).  A call
that overruns is *abandoned*: the outcome is ``timeout``, its ``ActionContext.cancel_event`` is set
(cooperative actions such as ``core.local`` and ``core.sleep`` stop and kill their child
processes), its thread is no longer counted in the pool (a replacement starts) and whatever it
returns later is dropped.  Abandoned threads are daemons: they never hold up the interpreter's exit
(no executor joins them, nothing is registered with ``atexit`` or ``threading._register_atexit``),
and :func:`settle` — what ``flowctx run`` calls before it exits — waits only for abandoned calls of
*cooperative* actions (marked :func:`~flowctx.actions.base.in_engine_process`: ``core.local``
killing its process group, ``core.sleep``, sub-workflows), never for plain Python code, which
cannot be stopped from outside its thread: a hard limit on Python code needs the process executor.
"""
from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from flowctx.actions.base import ActionContext, runs_in_engine_process
from flowctx.errors import ActionError
from flowctx.executors.base import (
    CallHandle,
    Executor,
    OnDone,
    _crash,
    _pool_size,
    _report_callback_error,
    _timeout_value,
    call_action,
)


class _Worker:
    __slots__ = ("abandoned", "current", "thread", "cooperative", "__weakref__")

    def __init__(self) -> None:
        self.abandoned = False
        self.current: object | None = None
        self.thread: threading.Thread | None = None
        self.cooperative = False  # the running call's action stops when its cancel event is set


#: abandoned workers still running a cooperative action (see :func:`settle`)
_CLEANING: weakref.WeakSet[_Worker] = weakref.WeakSet()


def settle(timeout: float = 5.0) -> None:
    """Wait (at most ``timeout`` seconds) for abandoned calls of cooperative actions to finish
    their cleanup — ``core.local`` killing its process group after a timeout or cancel — so a
    process that exits now does not leave their commands running.  Plain Python actions that
    were abandoned are not waited for: they cannot be stopped, and they never delay the exit."""
    deadline = time.monotonic() + timeout
    me = threading.current_thread()
    for worker in list(_CLEANING):
        thread = worker.thread
        if thread is None or thread is me:
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        thread.join(remaining)


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

    def submit_many(self, jobs: list[Callable[[_Worker], None]]) -> None:
        """Queue a batch under one lock: wake as many idle workers as there are jobs, start
        workers up to the pool size for the rest."""
        with self._cond:
            if self._closed:
                raise ActionError("the executor was shut down")
            self._jobs.extend(jobs)
            if self._idle:
                self._cond.notify(min(self._idle, len(jobs)))
            while len(self._jobs) > self._idle and len(self._live) < self.max_workers:
                self._start_worker()

    def _start_worker(self) -> None:
        worker = _Worker()
        worker.thread = threading.Thread(
            target=self._loop, args=(worker,), name=f"{self._name}-{next(self._counter)}", daemon=True
        )
        self._live.add(worker)
        worker.thread.start()

    def _loop(self, worker: _Worker) -> None:
        jobs = self._jobs
        while True:
            # A busy worker takes its next job without the lock (deque.popleft is atomic): with
            # 32 workers and short calls, taking the condition's lock for every job made them
            # queue on it (a lock convoy).  The lock is for sleeping only: the emptiness check
            # is repeated under it, and submitters append and notify under it, so no wake-up
            # is lost.
            try:
                job = jobs.popleft()
            except IndexError:
                with self._cond:
                    while not jobs:
                        if self._closed:
                            self._live.discard(worker)
                            return
                        self._idle += 1
                        self._cond.wait()
                        self._idle -= 1
                continue
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
            if worker.cooperative:
                _CLEANING.add(worker)
            if len(self._jobs) > self._idle and len(self._live) < self.max_workers and not self._closed:
                self._start_worker()

    def close(self) -> list[Callable[[_Worker], None]]:
        """Stop taking jobs; returns the jobs that never started."""
        with self._cond:
            self._closed = True
            pending: list[Callable[[_Worker], None]] = []
            while True:  # one popleft at a time: a job is either taken here or by a worker, never both
                try:
                    pending.append(self._jobs.popleft())
                except IndexError:
                    break
            self._cond.notify_all()
            return pending

    def join(self, timeout: float | None = None) -> None:
        with self._cond:
            threads = [w.thread for w in self._live if w.thread is not None]
        me = threading.current_thread()
        for t in threads:
            if t is not me:
                t.join(timeout)


class _Job(CallHandle):
    """One pooled call: its handle and what the worker runs (one object per call: a closure,
    its cells and a handle per call kept the garbage collector busy over 10,000 queued calls)."""

    __slots__ = ("func", "inputs", "limit", "pool", "cooperative", "worker")

    func: Callable[..., Any]
    inputs: Mapping[str, Any]
    limit: float | None
    pool: _ThreadPool
    cooperative: bool
    worker: _Worker

    def _abandon(self) -> None:
        """The abort of this call once it runs (a timeout or cancel): its worker is abandoned."""
        self.pool.abandon(self.worker, self)

    def __call__(self, worker: _Worker) -> None:
        pool = self.pool
        worker.current = self  # the token abandon() checks: this call, not a later one
        worker.cooperative = self.cooperative
        self.worker = worker
        delivered = False
        try:
            if not self._start(self.limit, self._abandon):
                return
            try:
                outcome = call_action(self.func, self.inputs, self.context)
            except BaseException as exc:  # noqa: BLE001 - never let a call die silently
                outcome = _crash(exc, self.started)
            delivered = self.finish(outcome)
        finally:
            if delivered:  # this outcome won: no timeout or cancel took the abort, so
                worker.current = None  # nothing can abandon this worker for this call
            else:
                with pool._cond:
                    worker.current = None
                    _CLEANING.discard(worker)


class ThreadExecutor(Executor):
    """The default: a pool of ``max_workers`` threads (default 32).  A call that overruns its
    timeout is abandoned and reported as ``timeout``; its late result is discarded and its
    ``cancel_event`` is set."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = _pool_size(max_workers, 32)
        self._pool = _ThreadPool(self.max_workers, "flowctx-action")
        self._queued: dict[CallHandle, None] = {}
        self._queued_lock = threading.Lock()
        self._batch = threading.local()  # .jobs: a dispatch round's calls (begin_batch .. flush)

    def submit(
        self,
        func: Callable[..., Any],
        inputs: Mapping[str, Any],
        *,
        on_done: OnDone,
        timeout: float | None = None,
        context: ActionContext | None = None,
    ) -> CallHandle:
        job = _Job(on_done, context)
        job.func = func
        job.inputs = inputs
        job.limit = None if timeout is None else _timeout_value(timeout)
        job.pool = self._pool
        job.cooperative = runs_in_engine_process(func)
        batch = getattr(self._batch, "jobs", None)
        if batch is not None:
            batch.append(job)
        else:
            self._pool.submit(job)
        return job

    def begin_batch(self) -> None:
        """Hold the calls this thread submits until its :meth:`flush` (the engine opens a batch
        before each dispatch round): the round reaches the pool under one lock."""
        if getattr(self._batch, "jobs", None) is None:
            self._batch.jobs = []

    def flush(self) -> None:
        jobs = getattr(self._batch, "jobs", None)
        self._batch.jobs = None
        if jobs:
            try:
                self._pool.submit_many(jobs)
            except ActionError:  # shut down meanwhile: the calls are canceled, as queued ones are
                for job in jobs:
                    job.cancel()

    def shutdown(self, wait: bool = True) -> None:
        for job in self._pool.close():
            if isinstance(job, CallHandle):
                job.cancel()
        if wait:
            self._pool.join()


class EngineThreads:
    """For executors whose workers live elsewhere (processes, a cluster): the calls that must run
    in the engine process (``core.local``, ``core.http`` ... marked ``in_engine_process``) go to a
    thread pool of this process, made on first use.  The executor sets ``_lock``, ``_closed``,
    ``_threads = None`` and ``_thread_workers``."""

    _lock: Any
    _closed: bool
    _threads: ThreadExecutor | None
    _thread_workers: int | None

    def _thread_executor(self) -> ThreadExecutor:
        with self._lock:
            if self._closed:
                raise ActionError("the executor was shut down")
            if self._threads is None:
                self._threads = ThreadExecutor(self._thread_workers)
            return self._threads
