"""Actions: the registry, the built-in ``core.*`` actions and the result types."""
from flowctx.actions import core as _core  # noqa: F401  (registers the built-ins)
from flowctx.actions.base import ActionContext, ActionResult, Outcome
from flowctx.actions.registry import DEFAULT_REGISTRY, ActionRegistry, ActionSpec, action

__all__ = ["ActionContext", "ActionResult", "ActionRegistry", "ActionSpec", "DEFAULT_REGISTRY", "Outcome", "action"]
