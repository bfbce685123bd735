"""Actions for the Dask benchmark (a module outside site-packages: the executor uploads it)."""
from __future__ import annotations

import time


def spin(i: int, ms: float = 10.0) -> int:
    """CPU-bound for ``ms`` milliseconds (a busy loop: no sleeping, no I/O)."""
    end = time.perf_counter() + ms / 1000.0
    n = 0
    while time.perf_counter() < end:
        n += 1
    return i


def noop(i: int) -> int:
    return i
