"""`bench --json` for an endpoint served by a process on this machine: its memory and CPU are measured,
found by the port it listens on (or named with --server-pid); the run says which."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main
from core.store import bench as db
from tests.support.store import migrated

REPO = Path(__file__).resolve().parents[2]
MODEL = "ep;ttft=0.01;tok=0.002;n=48"


@pytest.fixture(scope="module")
def served():
    """The test server in its OWN process (as Ollama or llama-server would be)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.openai_server", "--port", "0", "--model", MODEL],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http"), "test server did not start"
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture()
def env(tmp_path, monkeypatch):
    for name in ("BENCH_MODELS", "BENCH_ROUNDS", "BENCH_STREAM", "FOUNDRY_LOCAL_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "ep.duckdb")))
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(["Say hi", "Name three colours"]))
    return {"prompts": prompts, "out": tmp_path / "out.json"}


def bench(env, url, *extra):
    return main(["bench", "--prompts", str(env["prompts"]), "--endpoint", url, "--model", MODEL, "--rounds", "3",
                 "--max-tokens", "64", "--json", str(env["out"]), *map(str, extra)])


def test_endpoint_process_found_by_its_port(served, env):
    url, pid = served
    assert bench(env, url) == 0
    (r,) = json.loads(env["out"].read_text())["results"]
    assert r["pid_source"] == "port"
    assert r["rss_after_load_mb"] > 5 and r["peak_rss_mb"] >= r["rss_after_load_mb"]
    assert r["cpu_s_per_token"] > 0
    assert r["working_mb"] >= 0
    assert r["rss_before_mb"] is None and r["weights_mb"] is None     # loaded before the run: unknown, never 0
    run = db.get_run(json.loads(env["out"].read_text())["run_id"])
    assert run["models"][0]["pid"] == pid


def test_server_pid_named_by_the_user(served, env, capsys):
    url, pid = served
    assert bench(env, url, "--server-pid", pid) == 0
    (r,) = json.loads(env["out"].read_text())["results"]
    assert r["pid_source"] == "user" and r["peak_rss_mb"] > 5
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    capsys.readouterr()
    assert bench(env, url, "--server-pid", gone.pid) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"server process {gone.pid} not found" in err[0]
