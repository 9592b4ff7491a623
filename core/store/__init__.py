"""The store: every SQL statement of the project lives in this package.

The store is a local DuckDB file (default) or a DuckLake team store (`ducklake:sqlite:` / `ducklake:postgres:`
URL in SLM_DB; see db.py): the same migrations, queries and write functions run on both. On DuckLake,
writers commit optimistically and a conflicting write transaction is run again (`@retrying`).

Concurrency design (DuckDB allows one read-write *process* per file): nobody keeps the file open.
Every operation opens a short-lived connection with `connect()`, does its work in one transaction
and closes it. If another process (the app, or a CLI command) holds the file at that moment, the
open is retried with backoff for up to `SLM_DB_LOCK_TIMEOUT` seconds (default 60). Writes are
small, so waits are short; nothing is written outside a transaction, so nothing is lost.
"""
from core.store.db import DatabaseBusy, connect, migrate, applied_migrations, retrying  # noqa: F401
