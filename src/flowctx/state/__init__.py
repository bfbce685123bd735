"""Durable executions: state stores, the journal hook, resume.

``Engine(state="run.db")`` (or a :class:`SQLiteState` with its own batching settings) makes
every run durable; ``Engine.resume(execution_id)`` continues one after a crash.
"""
from typing import TYPE_CHECKING, Any

from flowctx.state.base import StateStore
from flowctx.state.journal import Journal, Recorder
from flowctx.state.metrics import prometheus_available
from flowctx.state.replay import open_state, rebuild

if TYPE_CHECKING:
    from flowctx.state.sqlite import SCHEMA_VERSION, SQLiteState


def __getattr__(name: str) -> Any:
    """``SQLiteState`` / ``SCHEMA_VERSION`` on first use: an in-memory run does not import sqlite3."""
    if name in ("SQLiteState", "SCHEMA_VERSION"):
        from flowctx.state import sqlite

        return getattr(sqlite, name)
    raise AttributeError(f"module 'flowctx.state' has no attribute {name!r}")

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
