"""Executors run action calls off the engine thread and report each outcome exactly once.

* :class:`ThreadExecutor` (the default, :mod:`flowctx.executors.thread`): a pool of daemon threads.
* :class:`ProcessExecutor` (:mod:`flowctx.executors.process`): worker processes for CPU-bound
  Python actions; a call that overruns is stopped by killing its worker.
* :class:`InlineExecutor` (:mod:`flowctx.executors.inline`): each call runs synchronously in the
  caller's thread (deterministic).

The contract every executor keeps is in :mod:`flowctx.executors.base`.  :func:`make_executor`
builds one by name (``"thread"``, ``"process"``, ``"inline"``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowctx.errors import ActionError
from flowctx.executors.base import CallHandle, Executor, OnDone, _pool_size, call_action
from flowctx.executors.inline import InlineExecutor
from flowctx.executors.thread import ThreadExecutor

if TYPE_CHECKING:
    from flowctx.executors.process import ProcessExecutor


def __getattr__(name: str) -> Any:
    """``ProcessExecutor`` on first use: multiprocessing is not imported by runs that never
    start a process pool."""
    if name == "ProcessExecutor":
        from flowctx.executors.process import ProcessExecutor

        return ProcessExecutor
    raise AttributeError(f"module 'flowctx.executors' has no attribute {name!r}")

__all__ = [
    "CallHandle",
    "Executor",
    "InlineExecutor",
    "OnDone",
    "ProcessExecutor",
    "ThreadExecutor",
    "ENTRY_POINT_GROUP",
    "EXECUTOR_KINDS",
    "executor_kinds",
    "call_action",
    "make_executor",
]


EXECUTOR_KINDS = ("thread", "process", "inline")
ENTRY_POINT_GROUP = "flowctx.executors"


def _plugin(name: str) -> Callable[..., Executor] | None:
    """The executor factory another package registers under the ``flowctx.executors`` entry-point
    group (``name = "pkg.module:factory"``); the factory is called with ``max_workers=...``."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                return ep.load()  # type: ignore[no-any-return]
            except Exception as exc:  # a broken plug-in: one clear line, not its traceback
                raise ActionError(f"executor {name!r} (entry point {ep.value}) cannot be loaded: {exc}") from exc
    return None


def executor_kinds() -> tuple[str, ...]:
    """The built-in executor names followed by those registered as entry points."""
    from importlib.metadata import entry_points

    extra = sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} - set(EXECUTOR_KINDS))
    return EXECUTOR_KINDS + tuple(extra)


def make_executor(kind: str = "thread", max_workers: int | None = None, **options: Any) -> Executor:
    """An executor by name: ``"thread"`` (default), ``"process"``, ``"inline"``, ``"dask"`` (the
    extra ``flowctx[dask]``), or one that a package registers in the ``flowctx.executors``
    entry-point group.

    ``max_workers`` sizes the thread or process pool (the inline executor ignores it; for Dask it
    is the size of the local cluster).  ``options`` go to a plug-in's factory (for Dask:
    ``scheduler="tcp://host:port"``, ``connect_timeout``, ``isolate``); the built-in executors
    take none."""
    name = kind.strip().lower() if isinstance(kind, str) else kind
    if options and name in EXECUTOR_KINDS:
        raise ActionError(f"the {name} executor takes no options (got {', '.join(sorted(options))})")
    if name == "thread":
        return ThreadExecutor(max_workers)
    if name == "process":
        from flowctx.executors.process import ProcessExecutor

        return ProcessExecutor(max_workers)
    if name == "inline":
        _pool_size(max_workers, 1)  # validated, but the inline executor runs one call at a time
        return InlineExecutor()
    factory = _plugin(name) if isinstance(name, str) else None
    if factory is not None:
        executor = factory(max_workers=max_workers, **options)
        if not isinstance(executor, Executor):
            raise ActionError(f"executor {kind!r}: its factory returned {type(executor).__name__}, not an Executor")
        return executor
    raise ActionError(f"unknown executor {kind!r} (choose one of: {', '.join(executor_kinds())})")
