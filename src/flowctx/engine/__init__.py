"""The workflow engine: graph analysis, the conductor state machine and the threaded runner."""
from flowctx.engine.conductor import Conductor
from flowctx.engine.graph import WorkflowGraph
from flowctx.engine.runner import Engine, Execution, ExecutionResult, TaskRecord, run

__all__ = ["Conductor", "Engine", "Execution", "ExecutionResult", "TaskRecord", "WorkflowGraph", "run"]
