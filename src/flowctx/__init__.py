"""flowctx: a YAML workflow engine whose context lives in a compiled store with O(1), isolated
clones.

``flowctx.BACKEND`` says which store implementation was imported: ``"cython"`` (the compiled
``flowctx._store``) or ``"python"`` (the pure twin ``flowctx._store_py``).  Set
``FLOWCTX_PURE_PYTHON=1`` to choose the twin, ``FLOWCTX_REQUIRE_COMPILED=1`` to make a missing
compiled module an ImportError instead of a fallback.
"""
from __future__ import annotations

from flowctx._backend import BACKEND
from flowctx._backend import store as _store
from flowctx.errors import ActionError, FlowctxError, StateError, TemplateError, WorkflowError
from flowctx.render import Renderer, TaskScope

__version__ = "0.1.0"

Context = _store.Context
FrozenDict = _store.FrozenDict
FrozenList = _store.FrozenList
freeze = _store.freeze
thaw = _store.thaw
store_stats = _store.store_stats
reset_store_stats = _store.reset_store_stats

from flowctx.actions import action  # noqa: E402  (@flowctx.action("pack.name") registers an action)

_LAZY = {
    "Engine": "flowctx.engine.runner",
    "Execution": "flowctx.engine.runner",
    "ExecutionResult": "flowctx.engine.runner",
    "TaskRecord": "flowctx.engine.runner",
    "run": "flowctx.engine.runner",
    "rehearse": "flowctx.rehearse",
    "load_workflow": "flowctx.spec",
    "validate": "flowctx.spec",
    "validate_parameters": "flowctx.spec",
}


def __getattr__(name: str) -> object:
    """Import the engine and rehearsal on first use, so ``import flowctx`` stays light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowctx' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "load_workflow",
    "validate",
    "validate_parameters",
    "Engine",
    "Execution",
    "ExecutionResult",
    "TaskRecord",
    "run",
    "rehearse",
    "BACKEND",
    "Context",
    "FrozenDict",
    "FrozenList",
    "freeze",
    "thaw",
    "store_stats",
    "reset_store_stats",
    "FlowctxError",
    "WorkflowError",
    "TemplateError",
    "ActionError",
    "StateError",
    "Renderer",
    "TaskScope",
    "action",
    "__version__",
]
