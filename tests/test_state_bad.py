"""Bad state files: each problem is one clear StateError (exact messages) and the file is left
exactly as it was — nothing is repaired, truncated or lost."""
from __future__ import annotations

import hashlib
import os
import sqlite3
from types import ModuleType
from typing import Any

import pytest

from flowctx import Engine
from flowctx.errors import StateError
from flowctx.state import SCHEMA_VERSION, SQLiteState
from flowctx.state.sqlite import MIGRATIONS

WF = """
version: 1.0
output:
  - n: "{{ ctx().n }}"
tasks:
  one:
    with: "{{ range(40) }}"
    action: core.echo message="{{ item() }}"
    next:
      - publish: [n: "{{ result() | length }}"]
"""


def digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def good_db(backend: ModuleType, path: str) -> str:
    st = SQLiteState(path)
    res = Engine(store=backend, state=st).run(WF)
    st.checkpoint()
    st.close()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return res.execution_id


def test_not_a_database(tmp_path: Any) -> None:
    path = str(tmp_path / "notes.db")
    with open(path, "w") as fh:
        fh.write("these are my notes, not a database\n" * 20)
    before = digest(path)
    with pytest.raises(StateError) as info:
        SQLiteState(path)
    assert str(info.value) == f"{path}: not a flowctx state file (not an SQLite database); it was left as it is"
    assert digest(path) == before
    with pytest.raises(StateError):  # the engine reports it the same way, before running anything
        Engine(state=path)


@pytest.mark.parametrize("fraction", [0.5, 0.1])
def test_truncated_database(backend: ModuleType, tmp_path: Any, fraction: float) -> None:
    path = str(tmp_path / "state.db")
    good_db(backend, path)
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(int(size * fraction))
    before = digest(path)
    with pytest.raises(StateError) as info:
        SQLiteState(path)
    assert str(info.value) == (
        f"{path}: the state file is damaged (database disk image is malformed); it was left as it is"
    )
    assert digest(path) == before


def test_damaged_pages_are_found_before_resuming(backend: ModuleType, tmp_path: Any) -> None:
    path = str(tmp_path / "state.db")
    eid = good_db(backend, path)
    with sqlite3.connect(path) as c:  # the page holding the call rows (and its page size)
        root = c.execute("SELECT rootpage FROM sqlite_master WHERE name = 'task_executions'").fetchone()[0]
        page = c.execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as fh:  # scribble over the rows' cell area, keep page 1 intact
        fh.seek(root * page - 3000)
        fh.write(b"\xa5" * 3000)
    before = digest(path)
    with pytest.raises(StateError) as info:
        st = SQLiteState(path)
        Engine(store=backend, state=st).resume(eid)
    assert str(info.value).startswith(f"{path}: the state file is damaged (")
    assert str(info.value).endswith("); it was left as it is")
    assert digest(path) == before


def test_a_foreign_sqlite_database(tmp_path: Any) -> None:
    path = str(tmp_path / "other.db")
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        c.execute("INSERT INTO customers (name) VALUES ('ada')")
    before = digest(path)
    with pytest.raises(StateError) as info:
        SQLiteState(path)
    assert str(info.value) == (
        f"{path}: an SQLite database, but not a flowctx state file (no meta table); it was left as it is"
    )
    assert digest(path) == before


def test_a_database_from_a_newer_flowctx(backend: ModuleType, tmp_path: Any) -> None:
    path = str(tmp_path / "state.db")
    good_db(backend, path)
    with sqlite3.connect(path) as c:
        c.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 7),))
    before = digest(path)
    with pytest.raises(StateError) as info:
        SQLiteState(path)
    assert str(info.value) == (
        f"{path}: written by a newer flowctx (state schema version {SCHEMA_VERSION + 7}; this flowctx reads "
        f"versions up to {SCHEMA_VERSION}); upgrade flowctx to use this file"
    )
    assert digest(path) == before


def test_migrations_bring_an_old_file_up_to_date(backend: ModuleType, tmp_path: Any) -> None:
    path = str(tmp_path / "v1.db")
    with sqlite3.connect(path) as c:
        for stmt in MIGRATIONS[1]:
            c.execute(stmt)
        c.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    st = SQLiteState(path)
    assert st.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(path) as c:
        names = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "requests_open" in names  # version 3
    assert "task_executions_by_instance" not in names  # made by version 2, dropped by version 4
    res = Engine(store=backend, state=st).run(WF)
    assert res.succeeded and st.get_execution(res.execution_id)["status"] == "succeeded"


def test_an_empty_file_becomes_a_state_file_only_when_asked(tmp_path: Any) -> None:
    path = str(tmp_path / "empty.db")
    open(path, "w").close()
    with pytest.raises(StateError, match=r"an empty file \(0 bytes\), not a state file"):
        SQLiteState(path)
    assert SQLiteState(path, init_empty=True).schema_version() == SCHEMA_VERSION


def test_a_directory(tmp_path: Any) -> None:
    with pytest.raises(StateError) as info:
        SQLiteState(str(tmp_path))
    assert str(info.value) == f"{tmp_path}: is a directory, not a state file"


def test_a_closed_store(tmp_path: Any) -> None:
    st = SQLiteState(str(tmp_path / "s.db"))
    st.close()
    st.close()
    with pytest.raises(StateError) as info:
        st.list_executions()
    assert str(info.value) == f"{st.path}: the state store is closed"


def test_a_durable_run_needs_the_source(backend: ModuleType, tmp_path: Any) -> None:
    from dataclasses import replace

    from flowctx.spec import load_workflow

    spec = replace(load_workflow(WF), source=None)
    with pytest.raises(StateError) as info:
        Engine(store=backend, state=str(tmp_path / "s.db")).run(spec)
    assert str(info.value) == "a durable run needs the workflow's YAML source (load it from a file or from text)"


def test_a_changed_journal_is_reported_not_misapplied(backend: ModuleType, tmp_path: Any) -> None:
    path = str(tmp_path / "state.db")
    eid = good_db(backend, path)
    with sqlite3.connect(path) as c:  # an outcome for an item that does not exist
        c.execute("UPDATE task_executions SET item_key = 999 WHERE execution_id = ? AND item_key = 3", (eid,))
        c.execute("UPDATE executions SET status = 'running' WHERE id = ?", (eid,))
        c.execute("DELETE FROM journal WHERE kind = 'finished'")
    copy = str(tmp_path / "copy.db")
    with sqlite3.connect(path) as a, sqlite3.connect(copy) as b:
        a.backup(b)
    with pytest.raises(StateError) as info:
        Engine(store=backend, state=path).resume(eid)
    assert str(info.value).startswith("the journal does not match the workflow at record ")
    assert "an outcome for instance 0, key 999, attempt 1 that was never issued" in str(info.value)
    st = SQLiteState(path)
    assert st.lease(eid) is None  # the failed resume gave its lease back
    assert st.export_execution(eid)["task_executions"] == SQLiteState(copy).export_execution(eid)["task_executions"]


def test_flush_failures_surface_and_keep_the_records(backend: ModuleType, tmp_path: Any) -> None:
    st = SQLiteState(str(tmp_path / "s.db"), batch_size=100_000, flush_interval=3600)
    real = st.write_batch
    fail = {"n": 1}

    def flaky(eid: str, records: Any) -> None:
        if fail["n"]:
            fail["n"] -= 1
            raise StateError("disk full (simulated)")
        real(eid, records)

    st.write_batch = flaky  # type: ignore[method-assign]
    eng = Engine(store=backend, state=st)
    with pytest.raises(StateError, match="disk full"):
        eng.run(WF)
    # the failure is reported, not swallowed; the execution stays in the file and resumable
    (eid,) = [e["id"] for e in st.list_executions()]
    assert st.get_execution(eid)["status"] == "running"
    assert st.lease(eid) is None
    res = Engine(store=backend, state=st).resume(eid)
    assert res.succeeded and res.output == {"n": 40}
