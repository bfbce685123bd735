"""Actions for the Dask tests: loaded with --actions FILE, so the workers must be sent this file."""
from __future__ import annotations

import os
import time
from typing import Any

import flowctx


@flowctx.action("dtest.where")
def where(i: int, shared: Any = None) -> dict[str, Any]:
    """Which process ran the call (and how big the shared input it saw was)."""
    return {"i": i, "pid": os.getpid(), "cwd": os.getcwd(), "shared": len(shared) if shared is not None else None}


@flowctx.action("dtest.sleep")
def sleep(seconds: float, pidfile: str | None = None) -> dict[str, Any]:
    if pidfile:
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
    time.sleep(seconds)
    return {"slept": seconds}


@flowctx.action("dtest.boom")
def boom(i: int) -> int:
    if i % 3 == 1:
        raise ValueError(f"item {i} fails on purpose")
    return i


class _LoadsNowhere:
    """Pickles on the worker; unpickling it raises (on the engine too)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (int, ("not a number",))


@flowctx.action("dtest.unloadable")
def unloadable(i: int, tag: Any = None) -> Any:
    """Item 1 returns a value the engine cannot unpickle; the others return their number."""
    return {"x": _LoadsNowhere()} if i == 1 else i
