"""Selects the context-store implementation at import time.

* ``FLOWCTX_PURE_PYTHON=1`` (or a non-CPython interpreter) -> the pure-Python twin.
* otherwise the compiled ``flowctx._store``; if it cannot be imported, fall back to the twin
  unless ``FLOWCTX_REQUIRE_COMPILED=1``, which turns the ImportError into a hard error.

``BACKEND`` says what was actually imported: ``"cython"`` or ``"python"``; ``store`` is that
module, and :func:`frozen_types` names its frozen container types (layers above the store use
these, never a backend module directly).
"""
from __future__ import annotations

import os
import sys
from types import ModuleType


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _select() -> tuple[ModuleType, str]:
    require = _flag("FLOWCTX_REQUIRE_COMPILED")
    if (_flag("FLOWCTX_PURE_PYTHON") or sys.implementation.name != "cpython") and not require:
        from flowctx import _store_py

        return _store_py, "python"
    try:
        from flowctx import _store  # type: ignore[attr-defined]
    except ImportError as exc:
        if require:
            raise ImportError(
                "FLOWCTX_REQUIRE_COMPILED=1 but the compiled context store flowctx._store cannot be "
                f"imported ({exc}); reinstall with a C compiler: pip install --no-cache-dir ."
            ) from exc
        from flowctx import _store_py

        return _store_py, "python"
    return _store, "cython"


store, BACKEND = _select()


def frozen_types() -> tuple[type, ...]:
    """The frozen container types of the active backend, plus the other backend's if it has
    been imported too (tests and benchmarks run both side by side), for code above the store
    that must recognise a frozen value without copying it (the renderer)."""
    types_: tuple[type, ...] = (store.FrozenDict, store.FrozenList)
    for name in ("flowctx._store_py", "flowctx._store"):
        other = sys.modules.get(name)
        if other is not None and other is not store:
            types_ += (other.FrozenDict, other.FrozenList)
    return types_
