"""The DuckDB store on a real file: migrations, and two processes sharing one file."""
import subprocess
import sys
import textwrap

import duckdb
import pytest

from core.store import applied_migrations, connect
from core.store.db import MIGRATIONS_DIR, _migrated


def test_migrations_idempotent_on_real_file(tmp_path):
    db = tmp_path / "a.duckdb"
    first = applied_migrations(db)
    expected = sorted(int(f.name.split("_")[0]) for f in MIGRATIONS_DIR.glob("*.sql"))
    assert [v for v, _ in first] == expected
    _migrated.clear()  # as a new process would
    assert applied_migrations(db) == first
    con = duckdb.connect(str(db))
    try:
        # each migration recorded exactly once, tables usable
        assert con.execute("SELECT count(*), count(DISTINCT version) FROM schema_migrations").fetchone() == (len(expected), len(expected))
        con.execute("SELECT * FROM endpoints").fetchall()
        con.execute("SELECT * FROM requests").fetchall()
    finally:
        con.close()


def test_transaction_rolls_back_on_error(tmp_path):
    db = tmp_path / "b.duckdb"
    with connect(db) as con:
        con.execute("INSERT INTO settings VALUES ('keep', '1')")
    with pytest.raises(RuntimeError):
        with connect(db) as con:
            con.execute("INSERT INTO settings VALUES ('lost', '1')")
            raise RuntimeError("boom")
    with connect(db) as con:
        assert [r[0] for r in con.execute("SELECT key FROM settings ORDER BY key").fetchall()] == ["keep"]


WRITER = textwrap.dedent(
    """
    import sys
    from core.store import connect
    tag, n = sys.argv[1], int(sys.argv[2])
    for i in range(n):
        with connect() as con:
            con.execute("INSERT INTO settings VALUES (?, ?)", [f"{tag}-{i}", str(i)])
    print("ok")
    """
)


def test_app_and_cli_share_the_database(tmp_path, monkeypatch):
    """Two processes (as the app and a CLI command would) write the same file at the same time:
    neither fails on the lock, nothing is lost."""
    db = tmp_path / "shared.duckdb"
    monkeypatch.setenv("SLM_DB", str(db))
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, tag, "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=str(MIGRATIONS_DIR.parents[2]))
        for tag in ("app", "cli")
    ]
    # and this process reads and writes in between, as a page would
    for i in range(30):
        with connect() as con:
            con.execute("INSERT INTO settings VALUES (?, ?)", [f"main-{i}", str(i)])
            con.execute("SELECT count(*) FROM settings").fetchone()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "ok"
    with connect() as con:
        counts = dict(con.execute(
            "SELECT split_part(key, '-', 1), count(*) FROM settings GROUP BY 1").fetchall())
    assert counts == {"app": 60, "cli": 60, "main": 30}
