"""Workflow language: YAML (both syntaxes) -> :class:`WorkflowSpec`, plus validation."""
from flowctx.spec.loader import load_workflow
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
from flowctx.spec.problems import Problem
from flowctx.spec.validate import validate, validate_parameters

__all__ = [
    "ENGINE_COMMANDS",
    "Loc",
    "ParameterSpec",
    "Problem",
    "RetrySpec",
    "TaskSpec",
    "Transition",
    "WithItems",
    "WorkflowSpec",
    "load_workflow",
    "validate",
    "validate_parameters",
]
