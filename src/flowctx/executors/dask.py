"""The Dask executor: action calls run on the workers of a ``dask.distributed`` cluster.

Needs the extra ``flowctx[dask]``.  The conductor, the context store and durable state stay in the
engine process; only action calls travel.

* **Where.** ``DaskExecutor(client)`` uses a client you made; ``DaskExecutor(scheduler="tcp://h:p")``
  connects to a running scheduler; with neither it starts a local cluster of ``workers`` worker
  processes (default 2) on 127.0.0.1, so the same command works on a laptop.  An unreachable
  scheduler, or one with no worker, is an :class:`ActionError` naming the address, raised before
  any task runs.
* **Batching.** Calls are buffered and sent as chunks: one Dask task runs many calls, so a
  with-items task of 10,000 items costs tens of scheduler round trips, not 10,000.  The engine
  calls :meth:`flush` after each dispatch round; a flusher thread also sends what waits longer than
  a millisecond.
* **Shared inputs once.** A frozen context value given to several calls (the usual with-items
  shape: every item reads the same large list or mapping) is scattered to the cluster once and
  passed by reference; frozen values never change, so the identity of the object is its key.
* **Importable actions.** Actions are sent by reference (module and name) and imported on the
  worker.  A module the workers cannot import by themselves (a ``--actions FILE``, a module
  outside site-packages) is uploaded to every worker, present and future, before the run.  A
  worker that still cannot import an action fails that call with a message naming the action and
  the worker.
* **Timeouts and cancel.** Dask cannot interrupt a running task.  A call **with a timeout** runs
  in a child process on the worker, which kills it (and its process group) when the limit passes
  or when the engine cancels it, so the worker is free again at once.  A call **without a
  timeout** runs in the worker's own thread: cancel reports ``canceled`` at once and drops its
  result, but the call finishes on the worker.  ``isolate="always"`` runs every call in a child
  process (slower: one fork per call).
* **Lost workers.** The calls a lost worker held fail with a message naming the worker (the
  task's ``retry`` policy applies); Dask itself re-runs a chunk up to its ``allowed-failures``.
* Actions that must run in the engine process (``core.local``, ``core.http``, ``core.sleep``,
  ``core.inquiry``, sub-workflows) run on a thread pool of the engine process.
"""
from __future__ import annotations

import importlib
import itertools
import logging
import os
import pickle
import signal
import sys
import sysconfig
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

from flowctx.actions.base import CANCELED, FAILED, TIMEOUT, ActionContext, Outcome, runs_in_engine_process
from flowctx.errors import ActionError
from flowctx.executors.base import (
    CallHandle,
    Executor,
    OnDone,
    _crash,
    _pool_size,
    _timeout_value,
    call_action,
    portable_context,
    restore_context,
)
from flowctx.executors.thread import EngineThreads, ThreadExecutor

__all__ = ["DaskExecutor"]

_LINGER = 0.001  # seconds a buffered call may wait for company before it is sent anyway
_MAX_CHUNK = 256  # calls per Dask task at most
_SCATTER_CACHE = 64  # shared frozen inputs kept scattered


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ActionError(
            "the dask executor needs dask.distributed: pip install 'flowctx[dask]'"
        ) from None
    return distributed


# ------------------------------------------------------------------ what runs on the worker
def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:  # not inside a worker (tests call the functions directly)
        return f"pid {os.getpid()}"


def _resolve(module: str, qualname: str) -> Callable[..., Any]:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def _run_one(call: tuple[Any, ...]) -> Outcome:
    _, module, qualname, label, inputs, ctxinfo = call
    started = time.time()
    try:
        func = _resolve(module, qualname)
    except Exception as exc:
        message = (
            f"action {label!r} cannot be imported on Dask worker {_worker_address()}: "
            f"{type(exc).__name__}: {exc} (module {module!r})"
        )
        return Outcome(FAILED, None, message, started, time.time())
    try:
        return call_action(func, inputs, restore_context(ctxinfo))
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt in an action is its failure
        return _crash(exc, started)


def _pack(outcome: Outcome) -> tuple[Any, ...]:
    return (outcome.status, outcome.result, outcome.error, outcome.started, outcome.finished)


def _packed_bytes(call: tuple[Any, ...], packed: tuple[Any, ...]) -> bytes:
    """One call's packed outcome, pickled here on the worker: a result that cannot be pickled
    fails that call alone, and the engine unpickles each call's outcome on its own (see
    :func:`_unpack`), so a result that cannot be *unpickled* there fails that call alone too
    (pickled together, one such result failed every call of its chunk, other tasks' included,
    and Dask logged a CRITICAL traceback)."""
    try:
        return pickle.dumps(packed, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        _, _, _, started, finished = packed
        message = f"action {call[3]!r}: its result cannot be sent back from the worker ({_short(exc)})"
        return pickle.dumps((FAILED, None, message, started, finished), protocol=pickle.HIGHEST_PROTOCOL)


def _unpack(label: str, blob: Any, started: float) -> tuple[Any, ...]:
    """The engine side of :func:`_packed_bytes`."""
    if not isinstance(blob, bytes):
        return tuple(blob)
    try:
        packed = pickle.loads(blob)
        status, result, error, s, f = packed
    except Exception as exc:
        return (FAILED, None, f"action {label!r}: its result cannot be received from the worker ({_short(exc)})",
                started, time.time())
    return (status, result, error, s, f)


def _run_chunk(calls: list[tuple[Any, ...]]) -> list[tuple[Any, bytes]]:
    """A Dask task: run each call in this worker's thread, one pickled outcome per call."""
    return [(call[0], _packed_bytes(call, _pack(_run_one(call)))) for call in calls]


def _child(call: tuple[Any, ...], fd: int) -> None:
    """In the forked child: lead a new process group, run the call, write the packed outcome."""
    try:
        os.setsid()  # a kill then takes whatever the action started too
    except OSError:  # pragma: no cover
        pass
    outcome = _run_one(call)
    try:
        data = pickle.dumps(_pack(outcome), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        data = pickle.dumps(
            (FAILED, None, f"action {call[3]!r}: its result cannot be sent back ({exc})", outcome.started, time.time())
        )
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status)}"


def _kill_group(pid: int) -> None:
    kills: tuple[Callable[[], None], ...] = (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL))
    for kill in kills:
        try:
            kill()
        except (ProcessLookupError, PermissionError, OSError):
            pass


def _run_isolated(call: tuple[Any, ...], limit: float | None, cancel_name: str | None) -> list[tuple[Any, ...]]:
    """A Dask task: run one call in a child process of the worker; kill it at ``limit`` seconds
    or when the engine sets the Dask event ``cancel_name``."""
    import select

    started = time.time()
    rfd, wfd = os.pipe()
    # os.fork, not multiprocessing: a Dask worker under a nanny is a daemon process, and those
    # may not start multiprocessing children.  The child only runs the call and exits.
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(rfd)
            _child(call, wfd)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    event = None
    if cancel_name is not None:
        try:
            from distributed import Event

            event = Event(cancel_name)
        except Exception:
            event = None
    deadline = None if limit is None else time.monotonic() + limit
    chunks: list[bytes] = []
    packed: tuple[Any, ...] | None = None
    try:
        while True:
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            ready, _, _ = select.select([rfd], [], [], wait)
            if ready:
                data = os.read(rfd, 1 << 16)
                if data:
                    chunks.append(data)
                    continue
                break  # EOF: the child is done
            if deadline is not None and time.monotonic() >= deadline:
                _kill_group(pid)
                packed = (TIMEOUT, None, f"timed out after {limit:g}s", started, time.time())
                break
            if event is not None and event.is_set():
                _kill_group(pid)
                packed = (CANCELED, None, "canceled", started, time.time())
                break
    finally:
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
    if packed is None:
        data = b"".join(chunks)
        if data and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return [(call[0], data)]  # the child wrote it all and exited: the engine unpickles it
        packed = (FAILED, None, f"action {call[3]!r}: the child process on Dask worker "
                  f"{_worker_address()} died ({_describe_status(status)})", started, time.time())
    return [(call[0], _packed_bytes(call, packed))]


# ------------------------------------------------------------------ clients and local clusters
# One client per scheduler address, and one local cluster per size, shared by every DaskExecutor
# of the process (a sub-workflow's engine reuses its parent's) and closed with the last of them.
_SHARED: dict[tuple[Any, ...], list[Any]] = {}  # key -> [client, cluster or None, users]
_SHARED_LOCK = threading.Lock()


def _acquire(distributed: Any, key: tuple[Any, ...], timeout: float) -> Any:
    with _SHARED_LOCK:
        entry = _SHARED.get(key)
        if entry is not None:
            entry[2] += 1
            return entry[0]
        cluster = None
        if key[0] == "scheduler":
            try:
                client = distributed.Client(key[1], timeout=timeout, set_as_default=False)
            except Exception as exc:  # OSError, TimeoutError, ValueError (a bad address)
                raise ActionError(f"cannot reach the Dask scheduler at {key[1]}: {_short(exc)}") from None
        else:
            try:
                cluster = distributed.LocalCluster(
                    n_workers=key[1], threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
                )
                client = distributed.Client(cluster, set_as_default=False)
            except Exception as exc:
                if cluster is not None:
                    cluster.close()
                raise ActionError(f"cannot start a local Dask cluster of {key[1]} workers: {_short(exc)}") from None
        _SHARED[key] = [client, cluster, 1]
        return client


def _release(key: tuple[Any, ...]) -> None:
    with _SHARED_LOCK:
        entry = _SHARED.get(key)
        if entry is None:
            return
        entry[2] -= 1
        if entry[2] > 0:
            return
        del _SHARED[key]
    client, cluster, _ = entry
    try:
        client.close(timeout=5)
    except Exception:
        pass
    if cluster is not None:
        try:
            cluster.close(timeout=10)
        except Exception:
            pass


# ------------------------------------------------------------------ the engine side
class _Pending:
    __slots__ = ("handle", "call", "limit")

    def __init__(self, handle: CallHandle, call: tuple[Any, ...], limit: float | None) -> None:
        self.handle = handle
        self.call = call
        self.limit = limit


class DaskExecutor(EngineThreads, Executor):
    """Runs action calls on a Dask cluster; see the module docstring.

    ``client``: a ``distributed.Client`` (stays yours: not closed by :meth:`shutdown`).
    ``scheduler``: the address of a running scheduler (``tcp://host:port``).
    ``workers``: the number of worker processes of the local cluster started when neither is given.
    ``connect_timeout``: seconds to wait for the scheduler and for a first worker.
    ``isolate``: ``"timeout"`` (calls with a timeout run in a child process on the worker) or
    ``"always"``.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        scheduler: str | None = None,
        workers: int | None = None,
        connect_timeout: float = 10.0,
        isolate: str = "timeout",
        thread_workers: int | None = None,
    ) -> None:
        distributed = _import_distributed()
        if isolate not in ("timeout", "always"):
            raise ActionError(f"isolate must be 'timeout' or 'always', got {isolate!r}")
        self.isolate = isolate
        self._owns_client = client is None
        self._key: tuple[Any, ...] | None = None
        if client is None:
            self._key = ("scheduler", scheduler) if scheduler else ("local", _pool_size(workers, 2))
            client = _acquire(distributed, self._key, connect_timeout)
        self.client = client
        self.address = str(getattr(client.scheduler, "address", None) or scheduler or "the scheduler")
        try:
            client.wait_for_workers(1, timeout=connect_timeout)
        except Exception:
            self._close_owned()
            raise ActionError(
                f"the Dask scheduler at {self.address} has no workers (waited {connect_timeout:g}s)"
            ) from None
        self._lock = threading.Condition()
        self._pending: list[_Pending] = []
        self._inflight: dict[Any, list[_Pending]] = {}
        self._closed = False
        self._ids = itertools.count()
        self._uploaded: set[str] = set()
        self._checked: set[Callable[..., Any]] = set()  # functions known to import on the workers
        self._scattered: dict[int, tuple[Any, Any]] = {}
        self._thread_workers = thread_workers
        self._threads: ThreadExecutor | None = None
        self._flusher = threading.Thread(target=self._flush_loop, name="flowctx-dask-flush", daemon=True)
        self._flusher.start()

    # -- checks and uploads --------------------------------------------------------------------
    def check(self, func: Callable[..., Any], name: str | None = None) -> None:
        """Raise :class:`ActionError` unless ``func`` can be imported by name on a worker; upload
        its module to the workers when they could not import it by themselves."""
        if runs_in_engine_process(func) or func in self._checked:
            return
        label = name or getattr(func, "__qualname__", None) or repr(func)
        module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", "") or ""
        if not module or "<lambda>" in qualname or "<locals>" in qualname or module == "__main__":
            raise ActionError(
                f"action {label!r} cannot run on the dask executor: {qualname or func!r} is not an importable "
                "top-level function of a module (define it at module level in a module, or use the thread executor)"
            )
        try:
            if _resolve(module, qualname) is not func:
                raise LookupError("importing it by name gives a different object")
        except Exception as exc:
            raise ActionError(f"action {label!r} cannot run on the dask executor: {exc}") from None
        self._upload(module)
        self._checked.add(func)

    def _upload(self, module: str) -> None:
        top = module.split(".")[0]
        if top in self._uploaded or top == "flowctx" or top in sys.stdlib_module_names:
            return
        mod = sys.modules.get(top)
        path = getattr(mod, "__file__", None)
        if not path:
            return
        path = os.path.abspath(path)
        installed = {os.path.abspath(p) for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])}
        if any(path.startswith(p + os.sep) for p in installed):
            return  # installed: the workers' environment has it (or the call says it does not)
        try:
            if os.path.basename(path) == "__init__.py":  # a package: upload it zipped
                root = os.path.dirname(path)
                tmp = tempfile.mkdtemp(prefix="flowctx-dask-")
                archive = os.path.join(tmp, f"{top}.zip")
                with zipfile.ZipFile(archive, "w") as zf:
                    base = os.path.dirname(root)
                    for dirpath, _, files in os.walk(root):
                        for f in files:
                            if f.endswith(".py"):
                                full = os.path.join(dirpath, f)
                                zf.write(full, os.path.relpath(full, base))
                self.client.upload_file(archive, load=False)
            else:
                self.client.upload_file(path, load=False)
        except Exception as exc:
            raise ActionError(f"cannot upload action module {top!r} ({path}) to the Dask workers: {_short(exc)}") from None
        self._uploaded.add(top)

    # -- submitting -----------------------------------------------------------------------------
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
        handle = CallHandle(on_done, context)
        label = context.task if context is not None else getattr(func, "__qualname__", repr(func))
        try:
            self.check(func, label)
        except ActionError as exc:
            handle.finish(_crash(exc, time.time()))
            return handle
        call = (next(self._ids), func.__module__, func.__qualname__, label, dict(inputs), portable_context(context))
        item = _Pending(handle, call, limit)
        handle._start(None, lambda: self._abort(item))
        with self._lock:
            if self._closed:
                handle.cancel()
                return handle
            self._pending.append(item)
            if len(self._pending) == 1:
                self._lock.notify()
        return handle

    def flush(self) -> None:
        """Send every buffered call now (the engine calls this after each dispatch round)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            self._send(batch)

    def _flush_loop(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
            # wait while calls keep arriving (a with-items round being dispatched), at most 20 ms
            waited, seen = 0.0, -1
            while waited < 0.02:
                time.sleep(_LINGER)
                waited += _LINGER
                with self._lock:
                    now = len(self._pending)
                if now == seen:
                    break
                seen = now
            self.flush()

    def _send(self, batch: list[_Pending]) -> None:
        batch = [p for p in batch if not p.handle.done]
        if not batch:
            return
        try:
            self._share(batch)
        except Exception:  # scattering is an optimisation: send the values inline instead
            pass
        plain = [p for p in batch if p.limit is None and self.isolate != "always"]
        isolated = [p for p in batch if not (p.limit is None and self.isolate != "always")]
        try:
            nworkers = max(1, len(self.client.scheduler_info().get("workers", {})))
        except Exception:
            nworkers = 1
        size = max(1, min(_MAX_CHUNK, -(-len(plain) // (nworkers * 4))))
        for i in range(0, len(plain), size):
            chunk = plain[i:i + size]
            self._submit_task(chunk, _run_chunk, [p.call for p in chunk])
        for p in isolated:
            self._submit_task([p], _run_isolated, p.call, p.limit, self._cancel_name(p))

    def _submit_task(self, items: list[_Pending], fn: Callable[..., Any], *args: Any) -> None:
        try:
            future = self.client.submit(fn, *args, pure=False)
        except Exception as exc:
            for p in items:
                p.handle.finish(_crash(ActionError(f"cannot submit to the Dask scheduler at {self.address}: {_short(exc)}"), time.time()))
            return
        with self._lock:
            self._inflight[future] = items
        future.add_done_callback(self._done)

    @staticmethod
    def _cancel_name(p: _Pending) -> str:
        return f"flowctx-cancel-{os.getpid()}-{p.call[0]}"

    def _share(self, batch: list[_Pending]) -> None:
        """Scatter frozen input values that several calls share; pass them by reference."""
        from flowctx._backend import store

        frozen = (store.FrozenDict, store.FrozenList)
        seen: dict[int, int] = {}
        for p in batch:
            for value in p.call[4].values():
                if isinstance(value, frozen):
                    seen[id(value)] = seen.get(id(value), 0) + 1
        shared = {k for k, n in seen.items() if n > 1 or k in self._scattered}
        if not shared:
            return
        for p in batch:
            inputs = p.call[4]
            for key, value in inputs.items():
                if id(value) in shared and isinstance(value, frozen):
                    entry = self._scattered.get(id(value))
                    if entry is None or entry[0] is not value:
                        if len(self._scattered) >= _SCATTER_CACHE:
                            self._scattered.pop(next(iter(self._scattered)))
                        entry = (value, self.client.scatter(value, broadcast=False, hash=False))
                        self._scattered[id(value)] = entry
                    inputs[key] = entry[1]

    def _done(self, future: Any) -> None:
        with self._lock:
            items = self._inflight.pop(future, [])
        if future.cancelled():
            for p in items:
                p.handle.cancel()
            return
        try:
            packed = dict(future.result())
        except BaseException as exc:  # a lost worker, a scheduler that went away ...
            message = _lost_message(exc)
            for p in items:
                p.handle.finish(Outcome(FAILED, None, f"action {p.call[3]!r}: {message}", p.handle.started, time.time()))
            return
        for p in items:
            status, result, error, started, finished = _unpack(p.call[3], packed[p.call[0]], p.handle.started)
            p.handle.finish(Outcome(status, result, error, started, finished))

    def _abort(self, item: _Pending) -> None:
        """The engine gave up on a call (cancel or shutdown): stop it where Dask allows."""
        with self._lock:
            if item in self._pending:
                self._pending.remove(item)
                return
            futures = [f for f, items in self._inflight.items() if item in items]
        for future in futures:
            if item.limit is not None or self.isolate == "always":
                try:
                    from distributed import Event

                    Event(self._cancel_name(item), client=self.client).set()
                except Exception:
                    pass
            if len(self._inflight.get(future, ())) <= 1:
                try:
                    future.cancel()
                except Exception:
                    pass

    # -- shutting down ---------------------------------------------------------------------------
    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending, self._pending = self._pending, []
            inflight = list(self._inflight.items())
            self._lock.notify_all()
        for p in pending:
            p.handle.cancel()
        if wait:
            for future, _ in inflight:
                try:
                    future.result()
                except BaseException:
                    pass
        for _future, items in inflight:
            for p in items:
                p.handle.cancel()
        if self._threads is not None:
            self._threads.shutdown(wait=wait)
        self._scattered.clear()
        self._close_owned()

    def _close_owned(self) -> None:
        if self._owns_client and self._key is not None:
            key, self._key = self._key, None
            _release(key)

    def worker_addresses(self) -> list[str]:
        """The addresses of the cluster's workers (for tests and diagnostics)."""
        return sorted(self.client.scheduler_info().get("workers", {}))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__


def _lost_message(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        worker = getattr(exc, "last_worker", None)
        where = getattr(worker, "address", None) or str(worker or "")
        return f"the Dask worker running it was lost ({where or _short(exc)})"
    if name in ("CommClosedError", "StreamClosedError", "CancelledError", "FutureCancelledError"):
        return f"the Dask cluster dropped the call ({_short(exc)})"
    return f"the call failed on the Dask cluster ({_short(exc)})"


def make_dask_executor(max_workers: int | None = None, **kwargs: Any) -> DaskExecutor:
    """Entry-point factory: ``--executor dask``; ``max_workers`` sizes a local cluster.  The
    environment variable ``FLOWCTX_DASK_CONNECT_TIMEOUT`` (seconds, default 10) bounds the wait
    for the scheduler and its first worker."""
    if "connect_timeout" not in kwargs and os.environ.get("FLOWCTX_DASK_CONNECT_TIMEOUT"):
        try:
            kwargs["connect_timeout"] = float(os.environ["FLOWCTX_DASK_CONNECT_TIMEOUT"])
        except ValueError:
            raise ActionError("FLOWCTX_DASK_CONNECT_TIMEOUT must be a number of seconds") from None
    return DaskExecutor(workers=max_workers, **kwargs)
