"""A migrated DuckDB file made once per test process and copied for each test (``migrated(path)``, and the
``template_db`` / ``fresh_db`` fixtures of tests/conftest.py): a copy is the same real file a first connection
would have migrated, without running every migration again for each test."""
from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

import duckdb

_template: Path | None = None
_lock = threading.Lock()


def make_template(path: Path) -> Path:
    """Every migration applied to a new file at `path`, checkpointed (no WAL beside it)."""
    from core.store import connect
    with connect(path):
        pass
    con = duckdb.connect(str(path))
    try:
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return path


def template() -> Path:
    """This process's migrated template (made on first use, removed at exit)."""
    global _template
    with _lock:
        if _template is None:
            folder = Path(tempfile.mkdtemp(prefix="slm-template-"))
            atexit.register(shutil.rmtree, folder, True)
            _template = make_template(folder / "template.duckdb")
        return _template


def copy_template(source: Path, dest: Path) -> Path:
    """A copy of the store `source` at `dest` (with its WAL, if one was left): a store built once per module,
    or the migrated template, becomes each test's own file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    wal = Path(f"{source}.wal")
    if wal.exists():
        shutil.copyfile(wal, f"{dest}.wal")
    return dest


def migrated(dest: Path) -> Path:
    """A new store at `dest`: a copy of the migrated template. Returns `dest`."""
    return copy_template(template(), Path(dest))
