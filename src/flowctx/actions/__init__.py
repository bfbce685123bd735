"""Actions: the registry, the built-in ``core.*`` actions and the result types."""
from flowctx.actions import core as _core  # noqa: F401  (registers the built-ins)
from flowctx.actions import http as _http  # noqa: F401  (core.http)
from flowctx.actions import shell as _shell  # noqa: F401  (core.local)
from flowctx.actions.base import (
    ActionContext,
    ActionResult,
    Outcome,
    action_inputs,
    frozen_inputs,
    in_engine_process,
    runs_in_engine_process,
)
from flowctx.actions.registry import (
    DEFAULT_REGISTRY,
    ActionRegistry,
    ActionSpec,
    ParamInfo,
    action,
    import_action_module,
    import_reference,
)

__all__ = [
    "ActionContext",
    "ActionResult",
    "ActionRegistry",
    "ActionSpec",
    "DEFAULT_REGISTRY",
    "Outcome",
    "ParamInfo",
    "action_inputs",
    "frozen_inputs",
    "action",
    "import_action_module",
    "import_reference",
    "in_engine_process",
    "runs_in_engine_process",
]
