"""Durable executions: state stores, the journal hook, resume.

``Engine(state="run.db")`` (or a :class:`SQLiteState` with its own batching settings) makes
every run durable; ``Engine.resume(execution_id)`` continues one after a crash.
"""
from flowctx.state.base import StateStore
from flowctx.state.journal import Journal, Recorder
from flowctx.state.metrics import prometheus_available
from flowctx.state.replay import open_state, rebuild
from flowctx.state.sqlite import SCHEMA_VERSION, SQLiteState

__all__ = [
    "SCHEMA_VERSION",
    "Journal",
    "Recorder",
    "SQLiteState",
    "StateStore",
    "open_state",
    "prometheus_available",
    "rebuild",
]
