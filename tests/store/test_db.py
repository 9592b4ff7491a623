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


def test_app_pages_and_cli_bench_on_the_same_file(tmp_path, monkeypatch):
    """The real thing: `python -m core bench` writes a run while the app's pages read and write the
    same SLM_DB (AppTest in this process). Neither fails on the lock; every request is stored."""
    import json as _json
    import os

    from streamlit.testing.v1 import AppTest

    from core.catalog import endpoints
    from core.config import REPO_ROOT
    from tests.support.openai_server import OpenAITestServer

    db = tmp_path / "both.duckdb"
    monkeypatch.setenv("SLM_DB", str(db))
    prompts = tmp_path / "p.json"
    prompts.write_text(_json.dumps([f"prompt {i}" for i in range(6)]))
    out = tmp_path / "bench.json"
    model = "m;ttft=0.02;tok=0.005;n=12"
    with OpenAITestServer(models=[model]) as server:
        cli = subprocess.Popen(
            [sys.executable, "-m", "core", "bench", "--prompts", str(prompts), "--endpoint", server.base_url,
             "--model", model, "--rounds", "4", "--warmup", "1", "--concurrency", "1,2",
             "--json", str(out)],
            cwd=REPO_ROOT, env={**os.environ, "SLM_DB": str(db)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        pages = 0
        while cli.poll() is None or pages < 2:
            at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
            at.switch_page("pages/benchmark.py").run()
            assert not at.exception, [e.message for e in at.exception]
            endpoints.add(f"ep{pages}", server.base_url)  # the app writing while the CLI writes
            pages += 1
        _, err = cli.communicate(timeout=120)
    assert cli.returncode == 0, err
    run_id = _json.loads(out.read_text())["run_id"]
    with connect() as con:
        stored = con.execute("SELECT count(*) FROM requests WHERE run_id = ? AND NOT warmup", [run_id]).fetchone()[0]
        added = con.execute("SELECT count(*) FROM endpoints").fetchone()[0]
    assert stored == 6 * 4 * 2  # prompts x rounds x concurrency levels
    assert added == pages
