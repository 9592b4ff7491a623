"""A benchmark killed with SIGKILL keeps its finished requests and reads as interrupted;
`bench --resume` runs only what is missing, and the totals equal an uninterrupted run's."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.cli import main
from core.store import bench as db
from core.store.db import _migrated
from tests.support.openai_server import OpenAITestServer

REPO = Path(__file__).resolve().parents[2]
MODEL = "slowish;ttft=0.2;tok=0.02;n=6"      # about 0.3 s a request, 6 tokens each
ROUNDS, PROMPTS, LEVELS = 8, 2, (1, 2)


@pytest.fixture(scope="module")
def server():
    with OpenAITestServer(models=[MODEL]) as s:
        yield s


@pytest.fixture()
def env(tmp_path, monkeypatch):
    for name in ("BENCH_MODELS", "BENCH_ROUNDS", "BENCH_STREAM", "FOUNDRY_LOCAL_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    db_file = tmp_path / "bench.duckdb"
    monkeypatch.setenv("SLM_DB", str(db_file))
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(["Say hi", "Name three colours"][:PROMPTS]))
    return {"db": db_file, "prompts": prompts, "tmp": tmp_path}


def args(server, env, db_file, out):
    return ["bench", "--prompts", str(env["prompts"]), "--endpoint", server.base_url, "--model", MODEL,
            "--rounds", str(ROUNDS), "--warmup", "1", "--concurrency", ",".join(map(str, LEVELS)),
            "--max-tokens", "16", "--db", str(db_file), "--json", str(out)]


def totals(results):
    return {r["concurrency"]: (r["requests_ok"], r["requests_failed"], r["completion_tokens"]["mean"] * r["requests_ok"])
            for r in results}


def test_sigkill_keeps_finished_requests_and_resume_completes(server, env):
    out = env["tmp"] / "killed.json"
    before = len(server.log)
    proc = subprocess.Popen([sys.executable, "-m", "core", *args(server, env, env["db"], out)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    answered = 0
    while time.monotonic() < deadline and answered < 4:      # warm-up + 3 measured answered at concurrency 1
        time.sleep(0.02)
        answered = len([e for e in server.log[before:] if e.last_write])
    assert answered >= 4, proc.stderr.read() if proc.poll() is not None else "no request answered"
    answered = len([e for e in server.log[before:] if e.last_write])
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()                                    # it never got to write its JSON

    _migrated.clear()
    assert db.list_runs()[0]["status"] == "running"            # a read writes nothing: not settled yet
    listed = env["tmp"] / "runs.json"                          # another process's command reads the store:
    assert main(["runs", "--json", str(listed), "--db", str(env["db"])]) == 0     # its router settles dead runs
    runs = json.loads(listed.read_text())
    assert len(runs) == 1 and runs[0]["status"] == "interrupted"
    run_id = runs[0]["run_id"]
    run = db.get_run(run_id)
    assert run["status"] == "interrupted" and "ended before the run finished" in (run["note"] or "")
    assert run["runner_pid"] == proc.pid
    stored = db.run_requests(run_id, include_warmup=True)
    assert not db.journal_path(run_id).exists()                # its journal was imported, then removed
    assert len(stored) >= answered - 1   # only a request in flight may be lost (answered, not yet read)
    assert len(stored) < 1 + ROUNDS * PROMPTS                  # the kill came during the first level
    level1 = [m for m in run["models"] if m["concurrency"] == 1]
    assert level1 and level1[0]["status"] == "interrupted"
    # what it measured is usable: the summary is computed from the stored rows
    (r1,) = [r for r in db.run_summary(run_id) if r["concurrency"] == 1]
    assert r1["status"] == "interrupted" and r1["requests_ok"] == len(stored[~stored["warmup"]])
    assert r1["ttft_ms"]["p50"] > 150

    # resume: only what is missing, same settings; then totals as an uninterrupted run's
    resumed_out = env["tmp"] / "resumed.json"
    n_before = len(server.log)
    assert main(["bench", "--resume", run_id, "--json", str(resumed_out), "--db", str(env["db"])]) == 0
    sent = len(server.log) - n_before
    measured_before = int((~stored["warmup"]).sum())
    assert sent == len(LEVELS) * 1 + len(LEVELS) * ROUNDS * PROMPTS - measured_before   # warm-ups + missing only
    resumed = json.loads(resumed_out.read_text())
    assert resumed["run_id"] == run_id
    assert db.get_run(run_id)["status"] == "completed" and not db.journal_path(run_id).exists()
    rows = db.run_requests(run_id)
    assert not rows.duplicated(["concurrency", "prompt_id", "round"]).any()

    fresh_out = env["tmp"] / "fresh.json"
    assert main(args(server, env, env["tmp"] / "fresh.duckdb", fresh_out)) == 0
    fresh = json.loads(fresh_out.read_text())
    assert totals(resumed["results"]) == totals(fresh["results"])
    assert all(r["status"] == "ok" and r["throughput_tok_s"] > 0 for r in resumed["results"])


def test_resume_refuses_a_changed_prompt_set_or_a_finished_run(server, env, capsys):
    out = env["tmp"] / "out.json"
    assert main(args(server, env, env["db"], out)[:-2] + ["--rounds", "1"]) == 0
    run_id = json.loads(out.read_text())["run_id"] if out.exists() else db.list_runs()[0]["run_id"]
    other = env["tmp"] / "other.json"
    other.write_text(json.dumps(["Something else"]))
    capsys.readouterr()
    assert main(["bench", "--resume", run_id, "--prompts", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another prompt set" in err[0]
    assert main(["bench", "--resume", "no-such-run"]) == 2
    assert "unknown run" in capsys.readouterr().err
