"""Connections and migrations."""
from __future__ import annotations

import json
import os
import random
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import duckdb

from core.config import db_path
from core.errors import UserError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_migrated: set[str] = set()
_lock = threading.Lock()


class DatabaseBusy(UserError):
    """The database file stayed locked by another process for longer than the timeout."""


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    # "Unique file handle conflict": one thread opened the file while another closed the process's last
    # connection to it (DuckDB's instance cache, seen with a judge run beside a page rerun): transient too
    return "lock" in text or "conflicting" in text or "could not set lock" in text or "file handle conflict" in text


def _open(path: Path, timeout: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.Error as exc:  # IOException on a lock held by another process
            if not _is_lock_error(exc):
                raise UserError(f"cannot open database {path}: {' '.join(str(exc).split())}") from exc
            if time.monotonic() >= deadline:
                raise DatabaseBusy(
                    f"database {path} is locked by another process for more than {timeout:.0f}s"
                ) from exc
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)


@contextmanager
def connect(path: str | Path | None = None, *, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-write connection inside one transaction; migrated on first use.

    Commits when the block ends normally, rolls back on an exception, always closes.
    """
    path = Path(path) if path else db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if timeout is None:
        timeout = float(os.environ.get("SLM_DB_LOCK_TIMEOUT", "60"))
    con = _open(path, timeout)
    try:
        key = str(path.resolve())
        if key not in _migrated:
            with _lock:
                migrate(con)
                _migrated.add(key)
        con.begin()
        try:
            yield con
        except BaseException:
            con.rollback()
            raise
        con.commit()
    finally:
        con.close()


def _migration_files() -> list[tuple[int, str, Path]]:
    out = []
    for f in sorted(MIGRATIONS_DIR.glob("*.sql")):
        num = int(f.name.split("_", 1)[0])
        out.append((num, f.stem, f))
    nums = [n for n, _, _ in out]
    if len(nums) != len(set(nums)):
        raise RuntimeError("two migrations share a number")
    return out


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply pending numbered migrations, each in its own transaction. Idempotent."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP DEFAULT current_timestamp)"
    )
    done = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for num, name, f in _migration_files():
        if num in done:
            continue
        con.begin()
        try:
            con.execute(f.read_text())
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [num, name])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        applied.append(name)
    return applied


def applied_migrations(path: str | Path | None = None) -> list[tuple[int, str]]:
    with connect(path) as con:
        return [tuple(r) for r in con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()]


# -- helpers shared by the feature modules of this package -------------------------------------
def to_json(value: Any) -> str | None:
    """A Python value as JSON text for a JSON column (None stays NULL)."""
    return None if value is None else json.dumps(value, default=str)


def from_json(value: Any) -> Any:
    """A JSON column's text back to a Python value (anything else is returned as is)."""
    if value is None or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def fetch_dicts(cur, json_columns: set[str] | frozenset[str] = frozenset()) -> list[dict]:
    """The cursor's remaining rows as dicts, decoding the named JSON columns."""
    cols = [d[0] for d in cur.description]
    return [{c: (from_json(v) if c in json_columns else v) for c, v in zip(cols, r)} for r in cur.fetchall()]
