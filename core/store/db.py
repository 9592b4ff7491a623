"""Connections and migrations, for both stores.

A store is either a local DuckDB file (the default) or a DuckLake URL (``ducklake:sqlite:PATH`` or
``ducklake:postgres:CONNINFO``; data files under ``SLM_DATA_PATH``). The same migrations run on both: DuckLake
refuses PRIMARY KEY / UNIQUE, non-literal defaults and indexes, so the runner drops them when it applies a
migration to a DuckLake store (``lake_dialect``); keys and timestamps are kept by this package's code
(upserts as MERGE INTO or delete+insert in one transaction, timestamps written explicitly), so nothing
relies on them. Local files keep their constraints as a safety net.
"""
from __future__ import annotations

from datetime import datetime, timezone

import functools
import importlib.util
import json
import os
import random
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import duckdb

from core.config import db_path
from core.errors import UserError, one_line

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
LAKE_PREFIX = "ducklake:"
LAKE_ALIAS = "lake"
# Data inlining (small inserts kept in the catalog) is OFF: with DuckDB 1.4.4's ducklake, a process that
# attaches a lake migrated by another process (an ALTER TABLE ADD COLUMN) stores NULL in every added column
# of the rows it inlines (seen: runs.device and the runner columns empty; reproduced in
# tests/store/test_team_store.py). Every insert therefore writes its own Parquet file: per-request rows go
# to the run's journal and reach the store a level at a time, so that is one file per level, run and judgement.
INLINE_ROWS = 0
_migrated: set[str] = set()
_lock = threading.Lock()
_lakes: dict[str, duckdb.DuckDBPyConnection] = {}
T = TypeVar("T")


class DatabaseBusy(UserError):
    """The database file stayed locked by another process for longer than the timeout."""


class CommitConflict(UserError):
    """A write transaction kept conflicting with other writers for longer than the retry budget."""


def is_lake(target: str | Path | None) -> bool:
    return str(target or "").startswith(LAKE_PREFIX)


def store_target(target: str | Path | None = None) -> str | Path:
    """The store to use: the given one, else SLM_DB / the default file (a Path), or a DuckLake URL (a str)."""
    if target is None or str(target) == "":
        return db_path()
    return str(target) if is_lake(target) else Path(target)


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    # "Unique file handle conflict": one thread opened the file while another closed the process's last
    # connection to it (DuckDB's instance cache, seen with a judge run beside a page rerun): transient too
    return ("lock" in text or "conflicting" in text or "could not set lock" in text or "already attached" in text
                 or "file handle conflict" in text)


def _is_conflict(exc: Exception) -> bool:
    """A write that lost an optimistic-concurrency race (DuckLake commit, DuckDB write-write): retry it."""
    text = str(exc).lower()
    return isinstance(exc, duckdb.Error) and (
        "conflict" in text or "failed to commit ducklake transaction" in text
        or "database is locked" in text or "could not serialize" in text)


def _open(path: Path, timeout: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.Error as exc:  # IOException on a lock held by another process
            if not _is_lock_error(exc):
                raise UserError(f"cannot open database {path}: {one_line(exc, None, whole=True)}") from exc
            if time.monotonic() >= deadline:
                raise DatabaseBusy(
                    f"database {path} is locked by another process for more than {timeout:.0f}s"
                ) from exc
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)


# -- DuckLake ------------------------------------------------------------------------------------
def extension_directory() -> str:
    """Where the pip packages duckdb-ext-ducklake/-postgres/-sqlite put the extensions (no download at run time)."""
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("DuckLake needs the packages duckdb-ext-ducklake, duckdb-ext-postgres and duckdb-ext-sqlite "
                        "(pip install -r requirements.txt)")
    return str(Path(list(spec.submodule_search_locations)[0]) / "extensions")


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def lake_data_path(url: str) -> tuple[str | None, bool]:
    """(data path to attach with, whether it overrides the catalog's): SLM_DATA_PATH (a folder or s3://...) when
    set -- each machine names its own mount of the shared folder, so it overrides for this process only --,
    else for a new SQLite catalog a folder beside it; (None, False): the path the catalog recorded."""
    value = os.environ.get("SLM_DATA_PATH", "").strip()
    if value:
        if value.startswith("s3://"):
            return value.rstrip("/") + "/", True
        return str(Path(value).expanduser().resolve()) + "/", True
    rest = url[len(LAKE_PREFIX):]
    if rest.startswith("sqlite:"):
        path = Path(rest[len("sqlite:"):]).expanduser().resolve()
        if not path.exists():
            return str(path) + ".files/", False
    return None, False


def _s3_secret(con: duckdb.DuckDBPyConnection) -> None:
    """S3 credentials from the environment only (never stored): AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_REGION, AWS_ENDPOINT_URL (for S3-compatible storage)."""
    try:
        con.execute("LOAD httpfs")
    except duckdb.Error as exc:
        raise UserError("an s3:// SLM_DATA_PATH needs the httpfs extension: pip install 'duckdb-ext-httpfs==1.4.4.*' "
                        f"({one_line(exc, None, whole=True)})") from exc
    parts = ["TYPE s3"]
    for env, key in (("AWS_ACCESS_KEY_ID", "KEY_ID"), ("AWS_SECRET_ACCESS_KEY", "SECRET"),
                     ("AWS_SESSION_TOKEN", "SESSION_TOKEN"), ("AWS_REGION", "REGION")):
        if os.environ.get(env):
            parts.append(f"{key} {_sql_text(os.environ[env])}")
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if endpoint:
        parts.append(f"ENDPOINT {_sql_text(re.sub(r'^https?://', '', endpoint))}")
        parts.append(f"USE_SSL {'false' if endpoint.startswith('http://') else 'true'}")
        parts.append("URL_STYLE 'path'")
    con.execute(f"CREATE OR REPLACE TEMPORARY SECRET slm_s3 ({', '.join(parts)})")


def _attach_lake(url: str) -> duckdb.DuckDBPyConnection:
    rest = url[len(LAKE_PREFIX):]
    kind = rest.split(":", 1)[0]
    if kind not in ("sqlite", "postgres") or ":" not in rest:
        raise UserError(f"unknown store '{url}': expected ducklake:sqlite:PATH or ducklake:postgres:CONNINFO")
    con = duckdb.connect(config={"extension_directory": extension_directory(),
                                 "autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute(f"LOAD ducklake; LOAD {kind}; LOAD json; LOAD parquet")
    except duckdb.Error as exc:
        con.close()
        raise UserError(f"cannot load the DuckLake extensions: {one_line(exc, None, whole=True)}") from exc
    if kind == "sqlite":
        Path(rest[len("sqlite:"):]).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        rest = "sqlite:" + str(Path(rest[len("sqlite:"):]).expanduser().resolve())
    data, override = lake_data_path(url)
    opts = [f"DATA_INLINING_ROW_LIMIT {INLINE_ROWS}"]
    if data:
        if data.startswith("s3://"):
            try:
                _s3_secret(con)
            except UserError:
                con.close()
                raise
        else:
            Path(data).mkdir(parents=True, exist_ok=True)
        opts.append(f"DATA_PATH {_sql_text(data)}")
        if override:
            opts.append("OVERRIDE_DATA_PATH true")
    deadline = time.monotonic() + float(os.environ.get("SLM_DB_LOCK_TIMEOUT", "60"))
    while True:
        try:
            con.execute(f"ATTACH {_sql_text(LAKE_PREFIX + rest)} AS {LAKE_ALIAS} ({', '.join(opts)})")
            return con
        except duckdb.Error as exc:
            text = str(exc).lower()
            # two processes creating a new catalog at once: the loser sees the winner's tables; attach again
            racing = "already exists" in text or "duplicate key" in text or _is_conflict(exc)
            if racing and time.monotonic() < deadline:
                time.sleep(0.05 + 0.1 * random.random())
                continue
            con.close()
            hint = "" if data else " (set SLM_DATA_PATH to the folder or s3:// path for the data files)"
            # the conninfo may hold a password: name the store by its kind only
            raise UserError(f"cannot attach the DuckLake store ({kind}): {one_line(exc, None, whole=True)}{hint}") from exc


def _lake(url: str) -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per process and store, with the lake attached; callers take a cursor each.

    Attaching holds no lock: DuckLake writers use optimistic concurrency at commit time.
    """
    with _lock:
        con = _lakes.get(url)
        if con is None:
            con = _lakes[url] = _attach_lake(url)
        return con


def close_lakes() -> None:
    with _lock:
        for con in _lakes.values():
            con.close()
        _lakes.clear()
        _migrated.clear()


def _cursor(target: str | Path, timeout: float) -> duckdb.DuckDBPyConnection:
    if is_lake(target):
        base = _lake(str(target))
        with _lock:           # one cursor per operation and thread, made one at a time
            cur = base.cursor()
        cur.execute(f"USE {LAKE_ALIAS}")
        return cur
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _open(path, timeout)


@contextmanager
def connect(path: str | Path | None = None, *, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-write connection inside one transaction; migrated on first use.

    Commits when the block ends normally, rolls back on an exception, always closes. A commit that
    conflicts with another writer raises; functions decorated with ``@retrying`` run again.
    """
    target = store_target(path)
    if timeout is None:
        timeout = float(os.environ.get("SLM_DB_LOCK_TIMEOUT", "60"))
    con = _cursor(target, timeout)
    try:
        key = str(target) if is_lake(target) else str(Path(target).resolve())
        if key not in _migrated:
            with _lock:
                if key not in _migrated:
                    migrate(con, lake=is_lake(target))
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


def retrying(fn: Callable[..., T]) -> Callable[..., T]:
    """Run a whole write transaction again when its commit conflicts with another writer (short backoff).

    The decorated function must open its own ``connect()`` and be safe to run again from the start.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        budget = float(os.environ.get("SLM_DB_LOCK_TIMEOUT", "60"))
        deadline = time.monotonic() + budget
        delay = 0.01
        while True:
            try:
                return fn(*args, **kwargs)
            except duckdb.Error as exc:
                if not _is_conflict(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise CommitConflict(f"write kept conflicting with other writers for {budget:.0f}s: "
                                         f"{one_line(exc, None, whole=True)}") from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)
    return wrapper


# -- migrations -----------------------------------------------------------------------------------
_COMMENT = re.compile(r"--[^\n]*")
_INDEX = re.compile(r"CREATE\s+(?:UNIQUE\s+)?INDEX\b[^;]*;", re.IGNORECASE)
_TABLE_KEY = re.compile(r",\s*(?:PRIMARY\s+KEY|UNIQUE)\s*\([^)]*\)", re.IGNORECASE)
_COLUMN_KEY = re.compile(r"\s+(?:PRIMARY\s+KEY|UNIQUE)\b", re.IGNORECASE)
_DEFAULT = re.compile(r"\s+DEFAULT\s+(?:'(?:[^']|'')*'|[^\s,)]+(?:\s*\(\s*\))?)", re.IGNORECASE)


def lake_dialect(sql: str) -> str:
    """A migration as DuckLake accepts it: no comments, keys, unique constraints, defaults or indexes."""
    sql = _COMMENT.sub("", sql)
    sql = _INDEX.sub("", sql)
    sql = _TABLE_KEY.sub("", sql)
    sql = _COLUMN_KEY.sub("", sql)
    return _DEFAULT.sub("", sql)


def _migration_files() -> list[tuple[int, str, Path]]:
    out = []
    for f in sorted(MIGRATIONS_DIR.glob("*.sql")):
        num = int(f.name.split("_", 1)[0])
        out.append((num, f.stem, f))
    nums = [n for n, _, _ in out]
    if len(nums) != len(set(nums)):
        raise RuntimeError("two migrations share a number")
    return out


def migrate(con: duckdb.DuckDBPyConnection, *, lake: bool = False) -> list[str]:
    """Apply pending numbered migrations, each in its own transaction. Idempotent.

    On DuckLake several processes may migrate at once: a migration that conflicts is re-checked and retried.
    """
    deadline = time.monotonic() + float(os.environ.get("SLM_DB_LOCK_TIMEOUT", "60"))
    while True:
        try:
            con.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                        " version INTEGER NOT NULL, name VARCHAR NOT NULL, applied_at TIMESTAMP)")
            break
        except duckdb.Error as exc:
            if not (_is_conflict(exc) or "already exists" in str(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(0.02 + 0.05 * random.random())
    applied = []
    for num, name, f in _migration_files():
        while True:
            done = {r[0] for r in con.execute("SELECT DISTINCT version FROM schema_migrations").fetchall()}
            if num in done:
                break
            sql = f.read_text()
            con.begin()
            try:
                con.execute(lake_dialect(sql) if lake else sql)
                con.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                            [num, name, utc_now()])
                con.commit()
                applied.append(name)
                break
            except BaseException as exc:
                try:
                    con.rollback()
                except duckdb.Error:
                    pass   # a failed commit already ended the transaction
                if isinstance(exc, duckdb.Error) and lake and time.monotonic() < deadline and (
                        _is_conflict(exc) or "already exists" in str(exc)):
                    time.sleep(0.02 + 0.05 * random.random())
                    continue  # another process applied it meanwhile: look again
                raise
    return applied


def applied_migrations(path: str | Path | None = None) -> list[tuple[int, str]]:
    with connect(path) as con:
        return [tuple(r) for r in con.execute(
            "SELECT DISTINCT version, name FROM schema_migrations ORDER BY version").fetchall()]


# -- helpers shared by the feature modules of this package -------------------------------------
def utc_now() -> datetime:
    """The store's one clock: now in UTC, as the naive TIMESTAMP every time column holds.

    Every write passes it as a parameter instead of SQL's current_timestamp, which DuckDB turns into the
    session's time zone on a TIMESTAMP column (so two machines, or a user's TZ, would store different clocks)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


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
