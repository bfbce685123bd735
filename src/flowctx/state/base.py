"""The state store interface: what the engine needs to make an execution durable.

An execution's durable state is its *execution row* (workflow source and file, parameters,
system values, status, output, errors, metrics, timestamps) plus an ordered *journal* of the
conductor's inputs — which staged instance started (``begin``), each action call's outcome
(``task_executions``), control requests (``cancel``, ``rerun``), the values each transition
published — and one summary row per task instance.  Nothing ever stores a copy of a context:
the database grows with the number of changes, not with items x context size.

Records reach :meth:`StateStore.write_batch` in journal order, one batch per transaction, so the
database always holds a *prefix* of the journal; replaying any prefix gives a consistent state.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

#: One journal record, as queued by :class:`flowctx.state.journal.Journal`.  Values are encoded
#: (:func:`flowctx.state.codec.dumps`) when the record is queued, on the engine thread, so a
#: value that cannot be stored is found at once, never by the flusher:
#:
#: * ``("j", pos, kind, seq, data)``: a journal event (``begin``, ``value``, ``cancel``,
#:   ``rerun``, ``pause``, ``resume``, ``aborted``, ``finished``, ``resumed``), ``data`` JSON
#:   text of a dict or None;
#: * ``("t", pos, seq, task, route, key, attempt, status, result, error, started, finished)``:
#:   one action call's outcome (a task execution: the item index or sub-task name is ``key``;
#:   ``result`` JSON text, ``error`` text);
#: * ``("i", seq, task, route, status, error, attempts, items, items_done, started, finished)``:
#:   a task instance's summary (replaces the previous one for ``seq``);
#: * ``("x", fields)``: an update of the execution row (``output``, ``errors``, ``metrics``,
#:   ``options`` already JSON text).
Record = tuple[Any, ...]


class StateStore(ABC):
    """Where durable executions live.  :class:`flowctx.state.SQLiteState` is the default."""

    #: write-behind: flush after this many queued records ...
    batch_size: int = 256
    #: ... or this many seconds after the oldest unflushed record was queued
    flush_interval: float = 0.1
    #: a lease not renewed for this many seconds is stale (its owner is presumed dead)
    lease_ttl: float = 30.0

    @property
    @abstractmethod
    def location(self) -> str:
        """A human-readable name of the store (the database file path)."""

    # -------------------------------------------------------------- executions
    @abstractmethod
    def create_execution(self, row: dict[str, Any]) -> None:
        """Insert a new execution row (written at once, not batched)."""

    @abstractmethod
    def get_execution(self, execution_id: str) -> dict[str, Any]:
        """The execution row (values decoded); :class:`~flowctx.errors.StateError` if unknown."""

    def has_execution(self, execution_id: str) -> bool:
        """Whether the store holds ``execution_id``."""
        try:
            self.get_execution(execution_id)
        except Exception:  # noqa: BLE001 - unknown (or unreadable: then resuming it will say so)
            return False
        return True

    @abstractmethod
    def list_executions(self) -> list[dict[str, Any]]:
        """Summary rows of every execution, newest first (no workflow source, no parameters)."""

    # -------------------------------------------------------------- journal
    @abstractmethod
    def write_batch(self, execution_id: str, records: Sequence[Record]) -> None:
        """Write queued records in one transaction (all or nothing)."""

    @abstractmethod
    def load_events(self, execution_id: str) -> list[tuple[Any, ...]]:
        """The journal in order: ``(pos, kind, seq, data)`` for journal events and
        ``(pos, "done", seq, (key, attempt, status, result, error, started, finished))`` for
        call outcomes."""

    @abstractmethod
    def next_pos(self, execution_id: str) -> int:
        """The journal position after the last stored record."""

    @abstractmethod
    def task_instances(self, execution_id: str) -> list[dict[str, Any]]:
        """Task instance summary rows in start order."""

    @abstractmethod
    def task_executions(self, execution_id: str) -> list[dict[str, Any]]:
        """Action call rows (task, route, item key, attempt, status, result, timings) in order."""

    # -------------------------------------------------------------- leases
    @abstractmethod
    def acquire_lease(self, execution_id: str, owner: str) -> None:
        """Take the execution's lease or raise :class:`~flowctx.errors.StateError` when a live
        owner holds it."""

    @abstractmethod
    def renew_lease(self, execution_id: str, owner: str) -> None:
        """Push the lease's expiry forward (heartbeat)."""

    @abstractmethod
    def release_lease(self, execution_id: str, owner: str) -> None:
        """Give the lease up (only if ``owner`` holds it)."""

    # -------------------------------------------------------------- whole executions
    @abstractmethod
    def export_execution(self, execution_id: str) -> dict[str, Any]:
        """One execution's full state as a JSON-able dict."""

    @abstractmethod
    def import_execution(self, data: dict[str, Any]) -> str:
        """Store an exported execution; returns its id."""

    def check(self) -> None:
        """Verify the store is intact (raise :class:`~flowctx.errors.StateError` if not)."""

    def size_bytes(self) -> int | None:
        """The store's size on disk, if it has one."""
        return None

    def close(self) -> None:
        """Release resources (idempotent)."""

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
