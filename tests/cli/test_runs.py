"""`python -m core runs`: the stored runs on a real DuckDB file, a real run made by the bench CLI against the test
OpenAI server, and a dead run (its runner process is gone) that reads "interrupted". The commands run in this
process (`main`); the dead run's writer is a real process that exits, which is the point of it."""
import json
import os
import subprocess
import sys

import pytest

from core.cli import main
from core.config import REPO_ROOT
from tests.support.cli import run_cli
from tests.support.openai_server import OpenAITestServer

GOOD = "tiny;ttft=0.002;tok=0.001;n=6"
FLAKY = "tiny;fault=500;every=2"
EVIL = "evil\x1b[31mred\x1b[0m\u202e;n=4"       # an ANSI colour and a bidi override in a model id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store holding a completed run (2 models, 2 prompts x 2 rounds each, 1 warm-up) and a dead run."""
    tmp = tmp_path_factory.mktemp("runs")
    db = tmp / "runs.duckdb"
    prompts = tmp / "prompts.json"
    prompts.write_text(json.dumps(["Say hi", "Name three colours"]))
    env = dict(os.environ, SLM_DB=str(db))
    env.pop("FOUNDRY_LOCAL_ENDPOINT", None)
    with OpenAITestServer(models=[GOOD, FLAKY, EVIL]) as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLM_DB", str(db))
        mp.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)
        out = tmp / "bench.json"
        assert main(["bench", "--prompts", str(prompts), "--endpoint", server.base_url, "--model", GOOD,
                     "--model", FLAKY, "--model", EVIL, "--rounds", "2", "--warmup", "1", "--max-tokens", "8",
                     "--json", str(out)]) == 0
        bench = json.loads(out.read_text())
    # a run whose process died while it was running: created by a real process that then exits
    code = ("from core.store import bench\n"
            "bench.create_run('dead-run', prompt_set='test', prompt_set_hash='x', settings={'rounds': 1},"
            " environment={'device': 'lab-laptop'}, prompts=[{'id': 'p1', 'text': 'hi'}], device='lab-laptop')\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    return {"db": db, "tmp": tmp, "bench": bench, "env": env}


class _Done:
    def __init__(self, code, out, err):
        self.returncode, self.stdout, self.stderr = code, out, err


@pytest.fixture()
def runs(capsys, monkeypatch):
    """`python -m core runs ARGS` on a store, in this process."""
    def call(*args, db):
        monkeypatch.setenv("SLM_DB", str(db))
        return _Done(*run_cli(capsys, "runs", *args))
    return call


def test_json_lists_every_run_with_status_models_device_and_counts(store, tmp_path):
    out = tmp_path / "runs.json"
    assert main(["runs", "--json", str(out), "--db", str(store["db"])]) == 0
    doc = json.loads(out.read_text())
    assert isinstance(doc, list) and len(doc) == 2
    rows = {r["run_id"]: r for r in doc}
    real = rows[store["bench"]["run_id"]]
    assert real["status"] == "completed" and real["created_at"] and real["finished_at"]
    # the counts are the bench's own: every non-warm-up request, ok and failed
    results = store["bench"]["results"]
    assert real["requests_ok"] == sum(r["requests_ok"] for r in results) 
    assert real["requests_failed"] == sum(r["requests_failed"] for r in results)
    assert real["requests_ok"] + real["requests_failed"] == 3 * 2 * 2    # 3 models x 2 prompts x 2 rounds
    assert real["requests_failed"] >= 1                                  # every other FLAKY request is an HTTP 500
    for model in (GOOD, FLAKY):
        assert f"{model} [openai]" in real["models"]
    assert real["device"] and real["prompt_set"]
    dead = rows["dead-run"]
    assert dead["status"] == "interrupted"      # its runner PID is gone: not "running" for ever
    assert dead["device"] == "lab-laptop" and dead["requests_ok"] == 0 and dead["requests_failed"] == 0
    assert dead["finished_at"] is None


def test_table_in_the_terminal(store, runs):
    p = runs(db=store["db"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["run", "status", "created", "device", "ok", "failed", "models"]
    by_id = {line.split()[0]: line for line in lines[2:]}
    assert set(by_id) == {store["bench"]["run_id"], "dead-run"}
    assert " interrupted " in by_id["dead-run"] and "lab-laptop" in by_id["dead-run"]
    real = by_id[store["bench"]["run_id"]].split()
    assert real[1] == "completed"
    ok = sum(r["requests_ok"] for r in store["bench"]["results"])
    failed = sum(r["requests_failed"] for r in store["bench"]["results"])
    assert [real[5], real[6]] == [str(ok), str(failed)]   # created is two words: date and time
    # an endpoint's model id is untrusted text: no escape sequence or bidi override reaches the terminal
    assert "\x1b" not in p.stdout and "\u202e" not in p.stdout
    assert "evilred;n=4 [openai]" in p.stdout


def test_help_and_a_bad_store(store, tmp_path, runs):
    p = runs("--help", db=store["db"])
    assert p.returncode == 0 and "--json FILE" in p.stdout and "interrupted" in p.stdout
    bad = tmp_path / "not-a-store.duckdb"
    bad.write_text("this is no database\n" * 100)
    p = runs("--db", str(bad), db=store["db"])
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: cannot open database"), p.stderr


def test_an_empty_store(tmp_path, runs):
    empty = tmp_path / "empty.duckdb"
    p = runs(db=empty)
    assert p.returncode == 0 and p.stdout.strip() == "no benchmark run in the store yet"
    out = tmp_path / "empty.json"
    assert runs("--json", str(out), db=empty).returncode == 0
    assert json.loads(out.read_text()) == []
