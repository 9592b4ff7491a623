"""Reads never write: `list_runs`, `get_run` and `candidate_inputs` leave a dead run (its runner process is gone)
'running' and its journal on disk; the explicit step, `mark_stale_runs`, run by the CLI router before a command
that reads runs and by the app before a page, makes it 'interrupted' and imports its journal. Real DuckDB file,
a real process that exits."""
import json
import socket
import subprocess
import sys

import psutil
import pytest

from core.cli import main
from core.store import bench as db
from core.store import connect
from tests.support.store import migrated


@pytest.fixture()
def dead_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "reads.duckdb")))
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(proc.pid).create_time()
    proc.wait()
    db.create_run("dead", prompt_set="x", prompt_set_hash="h", settings={}, environment={},
                  prompts=[{"id": "p1", "text": "hi"}])
    with connect() as con:
        con.execute("UPDATE runs SET runner_pid = ?, runner_host = ?, runner_started = ? WHERE run_id = 'dead'",
                    [proc.pid, socket.gethostname(), started])
    row = {"request_id": "q1", "run_id": "dead", "model": "m", "backend": "openai", "concurrency": 1,
           "prompt_id": "p1", "round": 0, "warmup": False, "ok": True, "e2e_ms": 12.0, "chunk_gaps_ms": []}
    with db.open_journal("dead") as journal:      # a request that completed before the process died
        journal.write(db.journal_line(row))
    return tmp_path


def _stored_status() -> str:
    with connect() as con:
        return con.execute("SELECT status FROM runs WHERE run_id = 'dead'").fetchone()[0]


def test_reads_leave_a_dead_run_as_stored(dead_run):
    assert [r["status"] for r in db.list_runs()] == ["running"]
    assert db.get_run("dead")["status"] == "running"
    assert [r["status"] for r in db.candidate_inputs(["dead"])["runs"]] == ["running"]
    assert _stored_status() == "running"
    assert db.journal_path("dead").is_file() and db.run_requests("dead").empty    # nothing imported


def test_the_explicit_step_interrupts_it_and_imports_its_journal(dead_run):
    assert db.mark_stale_runs() == 1
    assert db.get_run("dead")["status"] == "interrupted"
    assert list(db.run_requests("dead")["request_id"]) == ["q1"] and not db.journal_path("dead").exists()


@pytest.mark.parametrize("command", [["runs"], ["decide", "--runs", "dead"]])
def test_a_cli_command_that_reads_runs_settles_dead_runs_first(dead_run, command, capsys):
    main([*command, "--json", str(dead_run / "out.json")])      # decide may refuse a run with no candidate
    capsys.readouterr()
    assert _stored_status() == "interrupted" and not db.journal_path("dead").exists()


def test_a_command_that_reads_no_runs_leaves_the_store_alone(dead_run, capsys):
    assert main(["endpoint", "list"]) == 0
    capsys.readouterr()
    assert _stored_status() == "running"


def test_the_runs_command_reads_interrupted(dead_run, capsys):
    out = dead_run / "runs.json"
    assert main(["runs", "--json", str(out)]) == 0
    capsys.readouterr()
    (run,) = json.loads(out.read_text())
    assert run["status"] == "interrupted" and run["requests_ok"] == 1
