"""Workflow language: YAML (both syntaxes) -> :class:`WorkflowSpec`, plus validation."""
from flowctx.spec.model import (
    ENGINE_COMMANDS,
    Loc,
    ParameterSpec,
    RetrySpec,
    TaskSpec,
    Transition,
    WithItems,
    WorkflowSpec,
)

__all__ = [
    "ENGINE_COMMANDS",
    "Loc",
    "ParameterSpec",
    "RetrySpec",
    "TaskSpec",
    "Transition",
    "WithItems",
    "WorkflowSpec",
]
