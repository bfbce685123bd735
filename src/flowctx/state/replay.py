"""Resume: rebuild a conductor from the journal, then let the engine continue it.

The conductor is deterministic given its inputs, so replaying the recorded inputs in order on a
fresh conductor (same workflow source, parameters and system values) rebuilds the exact state:
contexts are rebuilt by the same O(1) clones and O(keys) publishes as the live run, published
values come from the journal (a template calling ``now()`` or ``uuid()`` is not rendered again),
and no action runs.  Cost: O(recorded changes).

Replay mirrors the live dispatcher: journal ``begin`` events start the recorded staged instance;
before every other event (and at the end) every call the conductor allows for its active
instances is issued — without running it — so the same action calls exist; a ``done`` event
applies the recorded outcome to the call with the same (instance, item key, attempt).  Calls
issued but without a recorded outcome are handed back to the engine, which submits them again
(at-least-once for actions; a recorded outcome is never recomputed).
"""
from __future__ import annotations

import os
import time
from typing import Any

from flowctx.actions.base import Outcome
from flowctx.errors import StateError
from flowctx.state.base import StateStore
from flowctx.state.journal import Journal


def open_state(state: Any) -> StateStore:
    """A :class:`StateStore` from a store or a database path."""
    if isinstance(state, StateStore):
        return state
    if isinstance(state, (str, os.PathLike)):
        from flowctx.state.sqlite import SQLiteState

        return SQLiteState(state)
    raise TypeError(f"state must be a StateStore or a path, not {type(state).__name__}")


def rebuild(engine: Any, execution_id: str, state: StateStore, *, rerun: Any = None, reset_items: bool = False) -> Any:
    """A conductor in the state the journal of ``execution_id`` describes, with a live
    :class:`Journal` attached (holding the execution's lease) and its outstanding calls queued
    for :meth:`Journal.resubmit`.  With ``rerun`` (a list of task names or (name, route)
    pairs, empty for every failed task) the execution must have finished; those tasks are
    re-opened (:meth:`Conductor.rerun`, recorded) for the engine to run."""
    from flowctx.engine.conductor import Conductor
    from flowctx.spec import load_workflow

    state.check()
    row = state.get_execution(execution_id)
    spec = load_workflow(row["source"], file=row.get("file"), validate=False)
    conductor = Conductor(
        spec, row["parameters"], renderer=engine.renderer, store=engine.store, system=row["system"],
        context=_context(row),
        copy_items=getattr(engine, "copy_items", False), on_event=None,
        max_tasks=None,  # replay follows the journal (a start the cap refused is recorded as -1)
    )
    journal = Journal(state, execution_id, conductor)
    journal.open()  # the lease first: a second resume is refused before it does anything
    try:
        t = time.perf_counter()
        events = state.load_events(execution_id)
        conductor.journal = journal
        journal.load_values(events)
        journal.replaying = True
        outstanding = replay(conductor, events)
        journal.replaying = False
        _restore_times(conductor, state, execution_id, journal)
        journal.metrics.replayed_events = len(events)
        journal.metrics.replay_time = time.perf_counter() - t
        journal.metrics.resumes = 1 + sum(1 for e in events if e[1] == "resumed")
        if rerun is not None:
            if not conductor.finished:
                raise StateError(
                    f"execution {execution_id} has not finished (it is {row['status']}, not running in any process): "
                    f"rerun is for a finished execution; `flowctx resume {execution_id}` continues this one"
                )
            wanted = [(t, 0) if isinstance(t, str) else (str(t[0]), int(t[1])) for t in rerun] or None
            conductor.rerun(wanted, reset_items=reset_items)  # recorded: status running again
        elif conductor.finished:
            journal.mark_finished()
        if not conductor.finished:
            journal.set_outstanding(outstanding)
            journal.record("resumed", None,
                           {"pid": os.getpid(), "outstanding": len(outstanding), "replayed": len(events)})
            journal._append(("x", {"status": "running", "finished": None}))
    except BaseException:
        journal.close()
        raise
    conductor.on_event = getattr(engine, "on_event", None)
    conductor.max_tasks = getattr(engine, "max_tasks", conductor.max_tasks)
    return conductor


def inspect(engine: Any, execution_id: str, state: StateStore) -> tuple[Any, dict[tuple[int, Any, int], Any]]:
    """Read-only replay (no lease, nothing written): the rebuilt conductor and every action call
    it issued, by (instance, item key, attempt) — with the inputs rendered as the run rendered
    them (``flowctx show --task``).  Nothing runs."""
    from flowctx.engine.conductor import Conductor
    from flowctx.spec import load_workflow

    row = state.get_execution(execution_id)
    spec = load_workflow(row["source"], file=row.get("file"), validate=False)
    conductor = Conductor(
        spec, row["parameters"], renderer=engine.renderer, store=engine.store, system=row["system"],
        context=_context(row),
        copy_items=False, on_event=None,
    )
    journal = Journal(state, execution_id, conductor)  # never opened: no lease, no flusher
    events = state.load_events(execution_id)
    conductor.journal = journal
    journal.load_values(events)
    journal.replaying = True
    journal._finished = True  # nothing this conductor does is recorded
    seen: dict[tuple[int, Any, int], Any] = {}
    replay(conductor, events, seen=seen)
    return conductor, seen


def _context(row: dict[str, Any]) -> dict[str, Any] | None:
    """The application context an execution was started with (kept with its options)."""
    options = row.get("options")
    ctx = options.get("context") if isinstance(options, dict) else None
    if ctx is not None and not isinstance(ctx, dict):
        raise StateError(f"execution {row.get('id')}: its stored context is damaged (not a mapping); it was not used")
    return ctx


def replay(conductor: Any, events: list[tuple[Any, ...]], *, seen: dict[tuple[int, Any, int], Any] | None = None) -> list[Any]:
    """Apply ``events`` (``StateStore.load_events``) to a fresh conductor; returns the calls
    issued without a recorded outcome, in issue order (``seen`` collects every call issued)."""
    c = conductor
    c.start()
    outstanding: dict[tuple[int, Any, int], Any] = {}
    dirty = True

    def issue() -> None:
        for inst in c.active():
            for call in c.calls_for(inst):
                outstanding[(inst.seq, call.key, call.attempt)] = call
                if seen is not None:
                    seen[(inst.seq, call.key, call.attempt)] = call

    for pos, kind, seq, data in events:
        if kind == "begin":
            if dirty and not any(s.task == data["task"] and s.route == int(data["route"]) for s in c.staged):
                # the live dispatcher issued calls between two rounds of starts (a with-items item
                # that failed to render ended its task there and staged this one): do the same
                issue()
                dirty = False
            st = _find_staged(c, data, seq, pos)
            inst = c.begin(st, journal_seq=seq)
            if inst.seq != seq:
                raise _mismatch(pos, f"task {data['task']!r} started as instance {inst.seq}, journal says {seq}")
            dirty = True
            continue
        if kind == "value" or kind == "resumed":
            continue
        if dirty:
            issue()
            dirty = False
        if kind == "done":
            key, attempt, status, result, error, started, finished = data
            call = outstanding.pop((seq, key, attempt), None)
            if call is None:
                raise _mismatch(pos, f"an outcome for instance {seq}, key {key!r}, attempt {attempt} that was never issued")
            for follow in c.call_done(call, Outcome(status, result, error, started or 0.0, finished or 0.0)):
                outstanding[(follow.instance.seq, follow.key, follow.attempt)] = follow
                if seen is not None:
                    seen[(follow.instance.seq, follow.key, follow.attempt)] = follow
        elif kind == "cancel":
            c.cancel()
        elif kind == "rerun":
            tasks = data.get("tasks") if data else None
            c.rerun([(t[0], int(t[1])) for t in tasks] if tasks else None, reset_items=bool(data and data.get("reset_items")))
        elif kind == "aborted":  # the run was stopped: a value it produced could not be stored
            from flowctx.state.journal import stop_failed

            stop_failed(c, str((data or {}).get("message") or "the run was stopped"))
        elif kind == "finished":
            if c.status == "canceled":
                c.finish_canceled()
            else:
                c.finalize()
        else:
            raise _mismatch(pos, f"unknown journal event {kind!r}")
        dirty = True
    if not c.finished:
        issue()
    else:
        outstanding.clear()
    return [call for call in outstanding.values() if not call.instance.done]


def _find_staged(c: Any, data: dict[str, Any], seq: int, pos: int) -> Any:
    task, route, order = data["task"], int(data["route"]), data.get("order")
    match = None
    for st in c.staged:
        if st.task == task and st.route == route:
            if st.order == order:
                return st
            if match is None or st.order < match.order:
                match = st
    if match is None:
        raise _mismatch(pos, f"task {task!r} (route {route}) is not staged at this point")
    return match


def _mismatch(pos: int, what: str) -> StateError:
    return StateError(
        f"the journal does not match the workflow at record {pos}: {what} "
        "(was the state written by a different flowctx version?)"
    )


def _restore_times(c: Any, state: StateStore, execution_id: str, journal: Journal) -> None:
    """Give replayed instances their recorded start/finish times (replay ran at another time);
    re-record summary rows a crash lost."""
    rows = {r["seq"]: r for r in state.task_instances(execution_id)}
    from flowctx.state.journal import _instance_row

    for inst in c.sequence:
        if inst.is_command:
            continue
        row = rows.get(inst.seq)
        if row is not None:
            if row.get("started"):
                inst.started = row["started"]
            if inst.done and row.get("finished") and row.get("status") == inst.status:
                inst.finished = row["finished"]
        if row is None or row.get("status") != inst.status:
            journal._append(_instance_row(inst))
