"""The SQLite state store: stdlib ``sqlite3``, WAL mode, one file, versioned schema.

Every problem with the file itself — not a database, damaged, written by a newer flowctx,
another process holding the execution — is a :class:`~flowctx.errors.StateError` with a
one-line message; the file is never rewritten, truncated or deleted to "repair" it.
"""
from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from flowctx.errors import StateError
from flowctx.state.base import Record, StateStore
from flowctx.state.codec import CodecError, dumps, loads, text

#: Status values a state file may hold (anything else is damage, never used).
EXECUTION_STATUSES = frozenset({"running", "paused", "succeeded", "failed", "canceled"})
CALL_STATUSES = frozenset({"succeeded", "failed", "timeout", "canceled", "running"})
INSTANCE_STATUSES = CALL_STATUSES | {"skipped"}

SQLITE_MAGIC = b"SQLite format 3\x00"

#: Table-driven migrations: version -> statements that bring a database of version - 1 to it.
#: A new schema version only ever adds an entry here.  ``journal`` and ``task_executions`` keep
#: rowids on purpose: their rows can hold a large result, and in a WITHOUT ROWID b-tree an insert
#: next to a 1 MB row cost ~0.3 s (measured) instead of ~10 ms.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE executions (
            id TEXT PRIMARY KEY,
            workflow TEXT NOT NULL,
            file TEXT,
            source TEXT NOT NULL,
            parameters TEXT NOT NULL,
            system TEXT NOT NULL,
            status TEXT NOT NULL,
            output TEXT,
            errors TEXT,
            metrics TEXT,
            options TEXT,
            created REAL NOT NULL,
            updated REAL NOT NULL,
            finished REAL
        )""",
        """CREATE TABLE journal (
            execution_id TEXT NOT NULL,
            pos INTEGER NOT NULL,
            kind TEXT NOT NULL,
            seq INTEGER,
            data TEXT,
            PRIMARY KEY (execution_id, pos)
        )""",
        """CREATE TABLE task_executions (
            execution_id TEXT NOT NULL,
            pos INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            task TEXT NOT NULL,
            route INTEGER NOT NULL,
            item_key,
            attempt INTEGER NOT NULL,
            status TEXT NOT NULL,
            result TEXT,
            error TEXT,
            started REAL,
            finished REAL,
            PRIMARY KEY (execution_id, pos)
        )""",
        """CREATE TABLE task_instances (
            execution_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            task TEXT NOT NULL,
            route INTEGER NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            attempts INTEGER NOT NULL,
            items INTEGER,
            items_done INTEGER,
            started REAL,
            finished REAL,
            PRIMARY KEY (execution_id, seq)
        ) WITHOUT ROWID""",
        """CREATE TABLE leases (
            execution_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            acquired REAL NOT NULL,
            heartbeat REAL NOT NULL,
            expires REAL NOT NULL
        )""",
    ],
    2: [
        "CREATE INDEX task_executions_by_instance ON task_executions (execution_id, seq, item_key)",
        "CREATE INDEX executions_by_created ON executions (created)",
    ],
    3: [
        # control requests from other processes (flowctx pause / resume / cancel): the engine
        # running the execution polls them with its lease heartbeat and marks them handled
        """CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            execution_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            created REAL NOT NULL,
            handled REAL
        )""",
        "CREATE INDEX requests_open ON requests (execution_id, handled)",
    ],
    4: [
        # no query reads task_executions by (seq, item_key): everything is read by execution in
        # `pos` order (the primary key); keeping this index up cost ~1 us of the ~3.5 us SQLite
        # spends per recorded call, and ~30 B of the ~130 B per change in the file
        "DROP INDEX IF EXISTS task_executions_by_instance",
    ],
}
SCHEMA_VERSION = max(MIGRATIONS)

_SYNC = {"OFF", "NORMAL", "FULL", "EXTRA"}


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie — killed, not yet reaped — does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3] not in (b"Z", b"X")
    except (OSError, ValueError):
        return True


def _insert_many(c: sqlite3.Connection, prefix: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert ``rows`` with multi-row ``VALUES`` statements.

    ``executemany`` steps once per row, and sqlite3 releases the GIL around every step: with the
    engine thread busy, each re-acquisition can wait a whole switch interval (5 ms), so a batch
    of 256 rows took ~0.3 s on the flusher thread.  A few hundred rows per statement make a
    flush a handful of steps."""
    if not rows:
        return
    width = len(rows[0])
    chunk = max(1, min(500, 30_000 // width))
    one = "(" + ",".join("?" * width) + ")"
    full = prefix + ",".join([one] * chunk)
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        sql = full if len(part) == chunk else prefix + ",".join([one] * len(part))
        c.execute(sql, [v for row in part for v in row])


class SQLiteState(StateStore):
    """State in one SQLite file (created if missing; an existing empty file is refused unless
    ``init_empty=True``: a 0-byte file where a state file should be is more often a state file
    that was lost than a new one).

    ``batch_size`` / ``flush_interval`` configure write-behind batching (records per transaction,
    seconds before a partial batch is written); ``synchronous`` is SQLite's setting: ``NORMAL``
    (default, with WAL: nothing committed is lost when the process dies) or ``FULL`` (also
    survives power loss, slower).  ``lease_ttl``: seconds a lease survives without a heartbeat.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = 256,
        flush_interval: float = 0.1,
        synchronous: str = "NORMAL",
        lease_ttl: float = 30.0,
        timeout: float = 10.0,
        init_empty: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if flush_interval < 0:
            raise ValueError("flush_interval must not be negative")
        if synchronous.upper() not in _SYNC:
            raise ValueError(f"synchronous must be one of {', '.join(sorted(_SYNC))}")
        self.path = os.fspath(path)
        self.batch_size = int(batch_size)
        self.flush_interval = float(flush_interval)
        self.lease_ttl = float(lease_ttl)
        self.timeout = float(timeout)
        self._lock = threading.RLock()
        self._host = socket.gethostname()
        created = self._create_private()
        self._check_header(init_empty or created)
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: cannot open the state file ({exc})") from None
        try:
            with self._guard():
                c = self._conn
                c.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                version = self._version()  # read-only checks first: a foreign file stays untouched
                mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StateError(f"{self.path}: cannot switch the state file to WAL mode (got {mode})")
                c.execute(f"PRAGMA synchronous = {synchronous.upper()}")
                self._migrate(version)
        except BaseException:
            self._conn.close()
            self._conn = None
            raise

    # ------------------------------------------------------------------ plumbing
    @property
    def location(self) -> str:
        return self.path

    def _create_private(self) -> bool:
        """A new state file is created with mode 0600 (it may hold secrets in clear); True when
        this call created it (an empty file made here is a new state file, not a truncated one)."""
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return False
        except OSError:  # a directory that does not exist, no permission ...: sqlite3 says which
            return False
        return True

    def _check_header(self, init_empty: bool) -> None:
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(len(SQLITE_MAGIC))
        except FileNotFoundError:
            return
        except IsADirectoryError:
            raise StateError(f"{self.path}: is a directory, not a state file") from None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read the state file ({exc.strerror})") from None
        if not head and not init_empty and not os.path.exists(self.path + "-wal"):
            raise StateError(
                f"{self.path}: an empty file (0 bytes), not a state file (a truncated or lost state file?); it was "
                "left as it is (to make it a new state file: --init-state, or SQLiteState(path, init_empty=True))"
            )
        if head and head != SQLITE_MAGIC:
            raise StateError(f"{self.path}: not a flowctx state file (not an SQLite database); it was left as it is")

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; SQLite errors become :class:`StateError`."""
        with self._lock:
            if self._conn is None:
                raise StateError(f"{self.path}: the state store is closed")
            try:
                yield self._conn
            except sqlite3.OperationalError as exc:
                msg = str(exc)
                if "locked" in msg or "busy" in msg:
                    raise StateError(
                        f"{self.path}: the state file stayed locked by another process for {self.timeout:g}s"
                    ) from None
                if "malformed" in msg or "not a database" in msg or "disk image" in msg:
                    raise self._corrupt(msg) from None
                raise StateError(f"{self.path}: state file error: {msg}") from None
            except sqlite3.DatabaseError as exc:
                raise self._corrupt(str(exc)) from None

    def _corrupt(self, detail: str) -> StateError:
        return StateError(f"{self.path}: the state file is damaged ({detail}); it was left as it is")

    @contextmanager
    def _tx(self, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        with self._guard() as c:
            c.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield c
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")

    def _version(self) -> int:
        """The file's schema version (0: a new, empty file); refuses foreign and newer files."""
        assert self._conn is not None
        c = self._conn
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            if tables:
                raise StateError(
                    f"{self.path}: an SQLite database, but not a flowctx state file (no meta table); it was left as it is"
                )
            return 0
        row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise StateError(f"{self.path}: not a flowctx state file (no schema version); it was left as it is")
        try:
            version = int(row[0])
        except ValueError:
            raise self._corrupt(f"schema version {row[0]!r}") from None
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path}: written by a newer flowctx (state schema version {version}; this flowctx "
                f"reads versions up to {SCHEMA_VERSION}); upgrade flowctx to use this file"
            )
        return version

    def _migrate(self, version: int) -> None:
        assert self._conn is not None
        c = self._conn
        if version == SCHEMA_VERSION:
            return
        c.execute("BEGIN IMMEDIATE")
        try:
            # another process may have migrated meanwhile: read the version again inside the lock
            if version:
                version = int(c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[v]:
                    c.execute(stmt)
            if version < SCHEMA_VERSION:
                c.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
                c.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('migrated', ?)", (repr(time.time()),)
                )
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def schema_version(self) -> int:
        with self._guard() as c:
            return int(c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def size_bytes(self) -> int | None:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        return total

    def check(self) -> None:
        """Verify the file's structure (``PRAGMA quick_check``, O(file size)); a damaged file
        is a :class:`StateError`.  Resume runs it before replaying anything."""
        with self._guard() as c:
            rows = c.execute("PRAGMA quick_check(5)").fetchall()
        if not rows or rows[0][0] != "ok":
            raise self._corrupt("; ".join(str(r[0]) for r in rows) or "quick_check failed")

    def checkpoint(self) -> None:
        """Fold the WAL into the main file (for an honest file size)."""
        with self._guard() as c:
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ------------------------------------------------------------------ executions
    def create_execution(self, row: dict[str, Any]) -> None:
        with self._tx() as c:
            self._insert_execution(c, row)

    def _insert_execution(self, c: sqlite3.Connection, row: dict[str, Any]) -> None:
        now = time.time()
        eid = row["id"]
        enc = {k: self._dump(row.get(k) if k == "output" else (row.get(k) or ([] if k == "errors" else {})), eid, k)
               for k in ("parameters", "system", "output", "errors", "metrics", "options")}
        try:
            c.execute(
                "INSERT INTO executions (id, workflow, file, source, parameters, system, status, output, errors,"
                " metrics, options, created, updated, finished) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    eid, row["workflow"], row.get("file"), row["source"], enc["parameters"],
                    enc["system"], row.get("status") or "running", enc["output"],
                    enc["errors"], enc["metrics"], enc["options"],
                    row.get("created") or now,
                    row.get("updated") or now, row.get("finished"),
                ),
            )
        except sqlite3.IntegrityError:
            raise StateError(f"execution {row['id']} already exists in {self.path}") from None

    _ROW = ("id", "workflow", "file", "source", "parameters", "system", "status", "output", "errors", "metrics",
            "options", "created", "updated", "finished")
    _JSON = {"parameters", "system", "output", "errors", "metrics", "options"}

    def get_execution(self, execution_id: str) -> dict[str, Any]:
        with self._guard() as c:
            row = c.execute(f"SELECT {', '.join(self._ROW)} FROM executions WHERE id = ?", (execution_id,)).fetchone()
        if row is None:
            raise StateError(f"no execution {execution_id!r} in {self.path}")
        out = dict(zip(self._ROW, row))
        for k in self._JSON:
            out[k] = self._load(out[k], execution_id, f"field {k!r}")
        self._status(out["status"], EXECUTION_STATUSES, execution_id, "field 'status'")
        if not isinstance(out["source"], str):
            raise StateError(f"execution {execution_id}: field 'source' in {self.path} is damaged (not text); it was not used")
        for k, kind in (("parameters", dict), ("system", dict), ("errors", list)):
            if not isinstance(out[k], kind):
                raise StateError(
                    f"execution {execution_id}: field {k!r} in {self.path} is damaged (not a "
                    f"{'mapping' if kind is dict else 'list'}); it was not used"
                )
        return out

    def has_execution(self, execution_id: str) -> bool:
        with self._guard() as c:
            return c.execute("SELECT 1 FROM executions WHERE id = ?", (execution_id,)).fetchone() is not None

    def list_executions(self) -> list[dict[str, Any]]:
        cols = ("id", "workflow", "file", "status", "created", "updated", "finished")
        with self._guard() as c:
            rows = c.execute(f"SELECT {', '.join(cols)} FROM executions ORDER BY created DESC, id").fetchall()
            counts = dict(
                c.execute(
                    "SELECT execution_id, count(*) FROM task_instances GROUP BY execution_id"
                ).fetchall()
            )
            leases = {r[0]: r[1:] for r in c.execute("SELECT execution_id, pid, host, expires FROM leases")}
        out = []
        for r in rows:
            d = dict(zip(cols, r))
            d["tasks"] = counts.get(d["id"], 0)
            lease = leases.get(d["id"])
            d["owner"] = None if lease is None or self._stale(lease[0], lease[1], lease[2]) else f"pid {lease[0]} on {lease[1]}"
            out.append(d)
        return out

    # ------------------------------------------------------------------ journal
    def write_batch(self, execution_id: str, records: Sequence[Record]) -> None:
        if not records:
            return
        journal: list[tuple[Any, ...]] = []
        calls: list[tuple[Any, ...]] = []
        insts: dict[int, tuple[Any, ...]] = {}
        updates: dict[str, Any] = {}
        for rec in records:
            kind = rec[0]
            if kind == "t":
                calls.append((execution_id, *rec[1:]))
            elif kind == "j":
                journal.append((execution_id, *rec[1:]))
            elif kind == "i":
                insts[rec[1]] = (execution_id, *rec[1:])
            elif kind == "x":
                updates.update(rec[1])
            else:  # pragma: no cover - a programming error
                raise ValueError(f"unknown record kind {kind!r}")
        with self._tx() as c:
            _insert_many(c, "INSERT INTO journal (execution_id, pos, kind, seq, data) VALUES ", journal)
            _insert_many(
                c,
                "INSERT INTO task_executions (execution_id, pos, seq, task, route, item_key, attempt, status,"
                " result, error, started, finished) VALUES ",
                calls,
            )
            _insert_many(
                c,
                "INSERT OR REPLACE INTO task_instances (execution_id, seq, task, route, status, error, attempts,"
                " items, items_done, started, finished) VALUES ",
                list(insts.values()),
            )
            if updates:
                self._update(c, execution_id, updates, encoded=True)

    def _update(self, c: sqlite3.Connection, execution_id: str, fields: dict[str, Any], *, encoded: bool = False) -> None:
        fields = dict(fields)
        fields.setdefault("updated", time.time())
        names = [k for k in fields if k in self._ROW and k != "id"]
        values = [
            self._dump(fields[k], execution_id, k) if k in self._JSON and not encoded else fields[k] for k in names
        ]
        c.execute(
            f"UPDATE executions SET {', '.join(f'{k} = ?' for k in names)} WHERE id = ?", (*values, execution_id)
        )

    def _dump(self, value: Any, execution_id: str, what: str) -> str:
        try:
            return dumps(value)
        except CodecError as exc:
            raise StateError(f"execution {execution_id}: {what} cannot be stored in {self.path}: {exc}") from None

    def _load(self, text_: Any, execution_id: str, what: str) -> Any:
        """A stored JSON value; damage is one StateError naming the execution and the field."""
        try:
            return loads(text_)
        except CodecError as exc:
            raise StateError(f"execution {execution_id}: {what} in {self.path} is damaged ({exc}); it was not used") from None

    def _status(self, value: Any, allowed: frozenset[str], execution_id: str, what: str) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise StateError(
                f"execution {execution_id}: {what} in {self.path} is damaged (status {value!r} is not one of "
                f"{', '.join(sorted(allowed))}); it was not used"
            )
        return value

    def update_execution(self, execution_id: str, fields: dict[str, Any]) -> None:
        """Update execution-row fields at once (not batched)."""
        with self._tx() as c:
            self._update(c, execution_id, fields)

    def load_events(self, execution_id: str) -> list[tuple[Any, ...]]:
        with self._guard() as c:
            jrows = c.execute(
                "SELECT pos, kind, seq, data FROM journal WHERE execution_id = ? ORDER BY pos", (execution_id,)
            ).fetchall()
            crows = c.execute(
                "SELECT pos, seq, task, item_key, attempt, status, result, error, started, finished"
                " FROM task_executions WHERE execution_id = ? ORDER BY pos",
                (execution_id,),
            ).fetchall()
        events = []
        for pos, kind, seq, data in jrows:
            value = self._load(data, execution_id, f"journal record {pos} ({kind})")
            if value is not None and not isinstance(value, dict):
                raise StateError(f"execution {execution_id}: journal record {pos} ({kind}) in {self.path} is damaged "
                                 "(not a mapping); it was not used")
            events.append((pos, kind, seq, value))
        calls = []
        for pos, seq, task, key, attempt, status, result, error, started, finished in crows:
            what = f"the result of task {task!r} (record {pos})"
            self._status(status, CALL_STATUSES, execution_id, f"the status of task {task!r} (record {pos})")
            calls.append((pos, "done", seq, (key, attempt, status, self._load(result, execution_id, what), error,
                                             started, finished)))
        merged = events + calls
        merged.sort(key=lambda e: e[0])
        return merged

    def next_pos(self, execution_id: str) -> int:
        with self._guard() as c:
            a = c.execute("SELECT max(pos) FROM journal WHERE execution_id = ?", (execution_id,)).fetchone()[0]
            b = c.execute("SELECT max(pos) FROM task_executions WHERE execution_id = ?", (execution_id,)).fetchone()[0]
        return max(a if a is not None else -1, b if b is not None else -1) + 1

    _INST = ("seq", "task", "route", "status", "error", "attempts", "items", "items_done", "started", "finished")
    _CALL = ("pos", "seq", "task", "route", "item_key", "attempt", "status", "result", "error", "started", "finished")

    def task_instances(self, execution_id: str) -> list[dict[str, Any]]:
        with self._guard() as c:
            rows = c.execute(
                f"SELECT {', '.join(self._INST)} FROM task_instances WHERE execution_id = ? ORDER BY seq",
                (execution_id,),
            ).fetchall()
        out = [dict(zip(self._INST, r)) for r in rows]
        for d in out:
            self._status(d["status"], INSTANCE_STATUSES, execution_id, f"the status of task {d['task']!r} (instance {d['seq']})")
        return out

    def task_executions(self, execution_id: str) -> list[dict[str, Any]]:
        with self._guard() as c:
            rows = c.execute(
                f"SELECT {', '.join(self._CALL)} FROM task_executions WHERE execution_id = ? ORDER BY pos",
                (execution_id,),
            ).fetchall()
        out = []
        for r in rows:
            d = dict(zip(self._CALL, r))
            d["result"] = self._load(d["result"], execution_id, f"the result of task {d['task']!r} (record {d['pos']})")
            self._status(d["status"], CALL_STATUSES, execution_id, f"the status of task {d['task']!r} (record {d['pos']})")
            out.append(d)
        return out

    def journal_rows(self, execution_id: str) -> list[dict[str, Any]]:
        with self._guard() as c:
            rows = c.execute(
                "SELECT pos, kind, seq, data FROM journal WHERE execution_id = ? ORDER BY pos", (execution_id,)
            ).fetchall()
        return [{"pos": p, "kind": k, "seq": s, "data": self._load(d, execution_id, f"journal record {p} ({k})")}
                for p, k, s, d in rows]

    def counts(self, execution_id: str) -> dict[str, int]:
        """Rows stored for one execution, per table (the 'number of changes')."""
        with self._guard() as c:
            return {
                t: c.execute(f"SELECT count(*) FROM {t} WHERE execution_id = ?", (execution_id,)).fetchone()[0]
                for t in ("journal", "task_executions", "task_instances")
            }

    # ------------------------------------------------------------------ control requests
    REQUESTS = ("pause", "resume", "cancel")

    def request(self, execution_id: str, kind: str) -> None:
        """Ask the process running ``execution_id`` to pause, resume or cancel it."""
        if kind not in self.REQUESTS:
            raise ValueError(f"unknown request {kind!r}")
        with self._tx() as c:
            c.execute("INSERT INTO requests (execution_id, kind, created) VALUES (?,?,?)", (execution_id, kind, time.time()))

    def take_requests(self, execution_id: str) -> list[str]:
        """The open requests for ``execution_id``, oldest first, marked handled (one transaction)."""
        with self._guard() as c:  # a read first: no write transaction while nothing is asked
            if c.execute("SELECT 1 FROM requests WHERE execution_id = ? AND handled IS NULL LIMIT 1",
                         (execution_id,)).fetchone() is None:
                return []
        with self._tx() as c:
            rows = c.execute(
                "SELECT id, kind FROM requests WHERE execution_id = ? AND handled IS NULL ORDER BY id", (execution_id,)
            ).fetchall()
            if rows:
                c.execute(f"UPDATE requests SET handled = ? WHERE id IN ({','.join('?' * len(rows))})",
                          (time.time(), *[r[0] for r in rows]))
        return [str(k) for _i, k in rows if k in self.REQUESTS]

    def open_requests(self, execution_id: str) -> list[str]:
        """Requests not yet seen by the running engine, oldest first."""
        with self._guard() as c:
            rows = c.execute(
                "SELECT kind FROM requests WHERE execution_id = ? AND handled IS NULL ORDER BY id", (execution_id,)
            ).fetchall()
        return [str(r[0]) for r in rows]

    # ------------------------------------------------------------------ leases
    def _stale(self, pid: int, host: str, expires: float) -> bool:
        if expires < time.time():
            return True
        return host == self._host and not _pid_alive(int(pid))

    def acquire_lease(self, execution_id: str, owner: str) -> None:
        now = time.time()
        with self._tx() as c:
            row = c.execute(
                "SELECT owner, pid, host, expires FROM leases WHERE execution_id = ?", (execution_id,)
            ).fetchone()
            if row is not None and row[0] != owner and not self._stale(row[1], row[2], row[3]):
                raise StateError(
                    f"execution {execution_id} is already being run by process {row[1]} on {row[2]}; "
                    "refusing to run it twice at the same time"
                )
            c.execute(
                "INSERT OR REPLACE INTO leases (execution_id, owner, pid, host, acquired, heartbeat, expires)"
                " VALUES (?,?,?,?,?,?,?)",
                (execution_id, owner, os.getpid(), self._host, now, now, now + self.lease_ttl),
            )

    def renew_lease(self, execution_id: str, owner: str) -> None:
        now = time.time()
        with self._tx() as c:
            c.execute(
                "UPDATE leases SET heartbeat = ?, expires = ? WHERE execution_id = ? AND owner = ?",
                (now, now + self.lease_ttl, execution_id, owner),
            )

    def release_lease(self, execution_id: str, owner: str) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM leases WHERE execution_id = ? AND owner = ?", (execution_id, owner))

    def lease(self, execution_id: str) -> dict[str, Any] | None:
        with self._guard() as c:
            row = c.execute(
                "SELECT owner, pid, host, acquired, heartbeat, expires FROM leases WHERE execution_id = ?",
                (execution_id,),
            ).fetchone()
        if row is None:
            return None
        d = dict(zip(("owner", "pid", "host", "acquired", "heartbeat", "expires"), row))
        d["stale"] = self._stale(d["pid"], d["host"], d["expires"])
        return d

    # ------------------------------------------------------------------ export / import
    def export_execution(self, execution_id: str) -> dict[str, Any]:
        row = self.get_execution(execution_id)
        return {
            "format": "flowctx-execution",
            "version": 1,
            "schema_version": SCHEMA_VERSION,
            "execution": row,
            "journal": self.journal_rows(execution_id),
            "task_executions": self.task_executions(execution_id),
            "task_instances": self.task_instances(execution_id),
        }

    def import_execution(self, data: dict[str, Any]) -> str:
        if not isinstance(data, dict) or data.get("format") != "flowctx-execution":
            raise StateError("not a flowctx execution export (missing \"format\": \"flowctx-execution\")")
        if int(data.get("version", 0)) > 1:
            raise StateError(f"execution export version {data.get('version')} is newer than this flowctx reads (1)")
        try:
            ex = dict(data["execution"])
            eid = str(ex["id"])
            journal = [(eid, int(r["pos"]), str(r["kind"]), r.get("seq"),
                        None if r.get("data") is None else self._dump(r["data"], eid, f"journal record {r['pos']}"))
                       for r in data.get("journal") or []]
            calls = [
                (eid, int(r["pos"]), int(r["seq"]), str(r["task"]), int(r["route"]), r.get("item_key"), int(r["attempt"]),
                 self._status(r["status"], CALL_STATUSES, eid, f"the status of task {r['task']!r}"),
                 self._dump(r.get("result"), eid, f"the result of task {r['task']!r}"), text(r.get("error")),
                 r.get("started"), r.get("finished"))
                for r in data.get("task_executions") or []
            ]
            insts = [tuple([eid] + [r.get(k) for k in self._INST]) for r in data.get("task_instances") or []]
            row = {k: ex.get(k) for k in self._ROW}
            if not isinstance(row["source"], str) or not row["workflow"]:
                raise KeyError("source")
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"execution export is incomplete or malformed ({exc})") from None
        with self._tx() as c:
            self._insert_execution(c, row)
            c.executemany("INSERT INTO journal (execution_id, pos, kind, seq, data) VALUES (?,?,?,?,?)", journal)
            c.executemany(
                "INSERT INTO task_executions (execution_id, pos, seq, task, route, item_key, attempt, status,"
                " result, error, started, finished) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                calls,
            )
            c.executemany(
                "INSERT OR REPLACE INTO task_instances (execution_id, seq, task, route, status, error, attempts,"
                " items, items_done, started, finished) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                insts,
            )
        return eid
