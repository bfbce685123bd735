"""A small key-value store for workflows: ``st2kv('system.name')`` / ``kv('name')`` read it.

Two backings, chosen by the path:

* a JSON file (default ``$FLOWCTX_KV``, else ``~/.flowctx/kv.json``), written atomically (a
  temporary file renamed over the old one) with mode 0600, changes serialized by ``flock`` on
  ``FILE.lock``;
* a flowctx state database (an SQLite file: ``flowctx run --state runs.db`` wrote it, or a new
  path ending in ``.db`` / ``.sqlite`` / ``.sqlite3``): the keys live in its table ``flowctx_kv``.

Values are any JSON value.  A key may be marked *secret*: the value is stored as it is (there is
no encryption: protect the file), and every display (``flowctx kv get/list``, ``flowctx run`` and
``flowctx show`` output) masks it.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from flowctx._record import record
from flowctx.errors import FlowctxError

if TYPE_CHECKING:
    import sqlite3

__all__ = ["KVEntry", "KVStore", "default_kv_path", "open_kv", "MASK"]

MASK = "********"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_FORMAT = "flowctx-kv"


def default_kv_path() -> str:
    """``$FLOWCTX_KV`` if set, else ``~/.flowctx/kv.json``."""
    env = os.environ.get("FLOWCTX_KV")
    if env:
        return env
    return os.path.join(os.path.expanduser("~"), ".flowctx", "kv.json")


class KVError(FlowctxError):
    """A key-value store that cannot be read or written, or a bad key / value."""


@record(frozen=True)
class KVEntry:
    """One key: its value, whether it is secret, when it was last set (epoch seconds)."""

    key: str
    value: Any
    secret: bool = False
    updated: float = 0.0

    def shown(self) -> Any:
        """The value as displays show it (masked when secret)."""
        return MASK if self.secret else self.value


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip():
        raise KVError(f"a key must be a non-empty string, got {key!r}")
    if key != key.strip() or any(c in key for c in "\n\r\t"):
        raise KVError(f"key {key!r}: no leading/trailing spaces or control characters")
    return key


def _check_value(key: str, value: Any) -> Any:
    def ok(v: Any) -> bool:
        if v is None or isinstance(v, (bool, int, str)):
            return True
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, (list, tuple)):
            return all(ok(x) for x in v)
        if isinstance(v, Mapping):
            return all(isinstance(k, str) and ok(x) for k, x in v.items())
        return False

    if not ok(value):
        raise KVError(f"key {key!r}: the value must be JSON (strings, numbers, booleans, null, lists, mappings)")
    return json.loads(json.dumps(value))  # plain lists / dicts


class KVStore:
    """The key-value store at ``path`` (JSON file or flowctx state database); see the module doc."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.kind = "sqlite" if _is_sqlite(self.path) else "json"
        if self.kind == "sqlite":
            self._init_sqlite()

    # ------------------------------------------------------------------ public API
    def get(self, key: str) -> KVEntry:
        """The entry of ``key``; :class:`KeyError` if there is none."""
        _check_key(key)
        entries = self._read()
        if key not in entries:
            raise KeyError(key)
        return entries[key]

    def set(self, key: str, value: Any, *, secret: bool = False) -> KVEntry:
        """Set ``key`` to ``value`` (replacing it; ``secret`` marks it masked on display)."""
        _check_key(key)
        value = _check_value(key, value)
        entry = KVEntry(key, value, bool(secret), time.time())
        if self.kind == "sqlite":
            with self._sql() as c:
                c.execute(
                    "INSERT OR REPLACE INTO flowctx_kv (key, value, secret, updated) VALUES (?, ?, ?, ?)",
                    (key, json.dumps(value), int(entry.secret), entry.updated),
                )
            return entry
        with self._locked():
            entries = self._read()
            entries[key] = entry
            self._write(entries)
        return entry

    def delete(self, key: str) -> bool:
        """Remove ``key``; whether it existed."""
        _check_key(key)
        if self.kind == "sqlite":
            with self._sql() as c:
                return c.execute("DELETE FROM flowctx_kv WHERE key = ?", (key,)).rowcount > 0
        if not os.path.exists(self.path):
            return False
        with self._locked():
            entries = self._read()
            if key not in entries:
                return False
            del entries[key]
            self._write(entries)
        return True

    def entries(self, prefix: str = "") -> list[KVEntry]:
        """Every entry (whose key starts with ``prefix``), sorted by key."""
        return [e for k, e in sorted(self._read().items()) if k.startswith(prefix)]

    def values(self) -> dict[str, Any]:
        """``{key: value}`` of every entry (what a run's ``st2kv()`` / ``kv()`` read)."""
        return {k: e.value for k, e in self._read().items()}

    def secret_values(self) -> list[Any]:
        """The values of the secret keys (the CLI masks them wherever it displays data)."""
        return [e.value for e in self._read().values() if e.secret]

    # ------------------------------------------------------------------ JSON file
    def _read(self) -> dict[str, KVEntry]:
        if self.kind == "sqlite":
            with self._sql() as c:
                rows = c.execute("SELECT key, value, secret, updated FROM flowctx_kv").fetchall()
            return {k: KVEntry(k, json.loads(v), bool(s), float(u)) for k, v, s, u in rows}
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise KVError(f"{self.path}: cannot read the key-value store ({exc.strerror or exc})") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise KVError(f"{self.path}: not a flowctx key-value file (not JSON: {exc})") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("keys"), dict):
            raise KVError(f"{self.path}: not a flowctx key-value file (expected {{\"format\": \"{_FORMAT}\", \"keys\": {{...}}}})")
        out = {}
        for key, item in data["keys"].items():
            if not isinstance(item, dict) or "value" not in item:
                raise KVError(f"{self.path}: key {key!r} is damaged (expected {{value, secret, updated}})")
            out[key] = KVEntry(key, item["value"], bool(item.get("secret")), float(item.get("updated") or 0.0))
        return out

    def _write(self, entries: Mapping[str, KVEntry]) -> None:
        data = {
            "format": _FORMAT,
            "version": 1,
            "keys": {k: {"value": e.value, "secret": e.secret, "updated": e.updated} for k, e in sorted(entries.items())},
        }
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".kv-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp: mode 0600
                json.dump(data, fh, indent=1)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KVError(f"{self.path}: cannot write the key-value store ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ state database
    def _init_sqlite(self) -> None:
        from flowctx.state import SQLiteState

        SQLiteState(self.path).close()  # creates the state schema (a new file with mode 0600) / refuses a foreign or damaged file
        with self._sql() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS flowctx_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                "secret INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL)"
            )

    @contextmanager
    def _sql(self) -> Iterator[sqlite3.Connection]:
        import sqlite3  # here: a run that never opens a SQLite key-value store does not import it

        try:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise KVError(f"{self.path}: cannot open the key-value store ({exc})") from None
        try:
            yield conn
        except sqlite3.Error as exc:
            raise KVError(f"{self.path}: key-value store error: {exc}") from None
        finally:
            conn.close()


def _is_sqlite(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == _SQLITE_MAGIC
    except FileNotFoundError:
        return path.lower().endswith(_SQLITE_SUFFIXES)
    except OSError:
        return False


def open_kv(path: str | os.PathLike[str] | None = None) -> KVStore:
    """The store at ``path`` (default :func:`default_kv_path`)."""
    return KVStore(default_kv_path() if path is None else path)


def lookup(values: Mapping[str, Any], key: Any, function: str = "kv") -> Any:
    """``values[key]`` for the template functions, ``st2kv`` style: a ``system.`` prefix is the
    (only) scope and is dropped; an unknown key is an error naming it."""
    from flowctx.render._scope import ExpressionError  # the renderer words it as one clean line

    if not isinstance(key, str):
        raise ExpressionError(f"{function}() needs a key name (a string), not {type(key).__name__!r}")
    name = key[len("system."):] if function == "st2kv" and key.startswith("system.") else key
    if name in values:
        return values[name]
    raise ExpressionError(f"{function}({key!r}): no key {name!r} in the key-value store")
