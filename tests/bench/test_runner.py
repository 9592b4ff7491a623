"""The runner and the store on a real DuckDB file and a real local server."""
import json
import threading

import pytest

from core.bench.run.inputs import ModelSpec, Settings, load_prompts, parse_prompts
from core.bench.run.progress import Progress
from core.bench.run.runner import run_benchmark
from core.errors import UserError
from core.store import bench as db
from tests.support.openai_server import OpenAITestServer
from tests.support.store import migrated

GOOD = "tiny;ttft=0.002;tok=0.001;n=6"


@pytest.fixture(scope="module")
def server():
    with OpenAITestServer(models=[GOOD, "slow;ttft=0.05;n=2"]) as s:
        yield s


@pytest.fixture(autouse=True)
def database(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "run.duckdb")))


def prompts(n=2):
    return parse_prompts([f"prompt number {i}" for i in range(n)], name="test")


def spec(server, model=GOOD):
    return ModelSpec(model=model, backend="openai", endpoint=server.base_url)


def dead_endpoint():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def rounded(obj):
    if isinstance(obj, float):
        return round(obj, 6)
    if isinstance(obj, dict):
        return {k: rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rounded(v) for v in obj]
    return obj


def test_prompt_shapes_and_hash(tmp_path):
    a = parse_prompts(["x", "y"])
    assert [p["id"] for p in a.prompts] == ["p01", "p02"]
    b = parse_prompts([{"id": "m1", "text": "x", "tags": ["short"]}, {"id": "m2", "text": "y"}])
    assert b.prompts[0] == {"id": "m1", "text": "x", "tags": ["short"]}
    assert a.hash == parse_prompts(["x", "y"]).hash != parse_prompts(["x", "z"]).hash
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"prompts": ["one"]}))
    assert load_prompts(f).prompts[0]["text"] == "one"
    with pytest.raises(UserError, match="appears twice"):
        parse_prompts([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])


def test_shipped_prompt_sets_load():
    from core.bench.run.inputs import shipped_prompt_sets
    sets = shipped_prompt_sets()
    assert {"workshop", "meeting_notes"} <= set(sets) and "meeting_notes_expectations" not in sets
    assert all(isinstance(p["text"], str) for p in load_prompts(sets["workshop"]).prompts)
    notes = load_prompts(sets["meeting_notes"]).prompts
    assert len(notes) >= 8 and all(p["id"].startswith("mn-") for p in notes)


def test_a_model_that_will_not_load_fails_and_the_others_go_on(server):
    bad = ModelSpec(model="ghost", backend="openai", endpoint=dead_endpoint())
    out = run_benchmark([bad, spec(server)], prompts(), Settings(rounds=1, warmup=0, concurrency=[1, 2]))
    assert out.status == "completed"
    res = db.run_summary(out.run_id)
    assert [(r["model"], r["concurrency"], r["status"]) for r in res] == [
        ("ghost", 1, "failed"), ("ghost", 2, "failed"), (GOOD, 1, "ok"), (GOOD, 2, "ok")]
    assert res[0]["error"].startswith("load failed:") and "unreachable" in res[0]["error"]
    assert res[2]["requests_ok"] == 2
    run = db.get_run(out.run_id)
    assert run["status"] == "completed" and len(run["prompts"]) == 2
    assert run["environment"]["cores_logical"] >= 1 and run["prompt_set_hash"] == prompts().hash
    assert run["models"][2]["environment"]["prompt_set_hash"] == prompts().hash


def test_store_reads_match_the_runner(server):
    out = run_benchmark([spec(server)], prompts(3), Settings(rounds=2, warmup=1, concurrency=[1, 3]))
    res = db.run_summary(out.run_id)
    assert rounded(res) == rounded(out.results)     # recomputed from the stored rows
    df = db.run_requests(out.run_id)
    assert len(df) == 12 and not df["warmup"].any()
    assert len(db.run_requests(out.run_id, include_warmup=True)) == 14
    assert set(df["prompt_id"]) == {"p01", "p02", "p03"}
    assert df["queue_ms"].min() >= 0 and df["outlier"].dtype == bool
    runs = db.list_runs()
    assert runs[0]["run_id"] == out.run_id and runs[0]["requests"] == 12 and runs[0]["failed"] == 0


class CancelAfter(Progress):
    def __init__(self, event, n):
        self.event, self.n, self.updates, self.completed = event, n, 0, None

    def on_update(self, progress, model):
        self.updates += 1
        if model.phase == "running" and model.done >= self.n:
            self.event.set()

    def on_complete(self, outcome):
        self.completed = outcome


@pytest.mark.parametrize("order", ["blocked", "interleaved"])
def test_cancel_keeps_finished_rows_and_marks_interrupted(server, order):
    cancel = threading.Event()
    progress = CancelAfter(cancel, 3)
    out = run_benchmark([spec(server, "slow;ttft=0.05;n=2"), spec(server)], prompts(),
                        Settings(rounds=20, warmup=0, order=order), progress=progress, cancel=cancel)
    assert out.status == "interrupted" and progress.completed is out
    run = db.get_run(out.run_id)
    assert run["status"] == "interrupted"
    df = db.run_requests(out.run_id)
    assert 3 <= len(df) < 80 and df["ok"].all()
    if order == "blocked":
        assert [m["status"] for m in run["models"]] == ["interrupted"]   # the second model never started
    else:   # round 1 is 2 requests of each model: the second had its turn before the third request
        assert [m["status"] for m in run["models"]] == ["interrupted", "interrupted"]
        assert set(df["model"]) == {GOOD, "slow;ttft=0.05;n=2"}


def test_engine_death_interrupts_the_run_and_keeps_rows(server):
    from core.engines import open_engine
    from core.engines import EngineDied
    from core.engines.http import HttpEngine

    class Dying(HttpEngine):
        calls = 0

        async def arequest(self, messages, opts, rec):
            Dying.calls += 1
            if Dying.calls > 3:
                raise EngineDied("worker process 123 exited")
            await super().arequest(messages, opts, rec)

    def factory(s):
        return Dying(s.model, s.endpoint) if s.model == GOOD else open_engine(s)

    out = run_benchmark([spec(server), spec(server, "slow;ttft=0.05;n=2")], prompts(), Settings(rounds=5, warmup=0),
                        engine_factory=factory)
    assert out.status == "interrupted" and "exited" in out.reason
    run = db.get_run(out.run_id)
    assert run["status"] == "interrupted"
    assert [(m["model"], m["status"]) for m in run["models"]] == [(GOOD, "interrupted"), ("slow;ttft=0.05;n=2", "ok")]
    assert "exited" in run["models"][0]["error"]
    assert len(db.run_requests(out.run_id).query("model == @GOOD")) == 3


def test_settings_validation():
    with pytest.raises(UserError):
        Settings(rounds=0).validate()
    with pytest.raises(UserError):
        Settings(concurrency=[0]).validate()
    assert Settings(concurrency=[4, 1, 4]).validate().concurrency == [1, 4]


def test_stale_running_runs_become_interrupted(server):
    """A 'running' run whose runner process is gone is interrupted; one whose runner lives stays running."""
    import subprocess
    import sys
    from core.store import connect
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for run_id in ("dead-runner", "live-runner", "old-run"):
        db.create_run(run_id, prompt_set="x", prompt_set_hash="h", settings={}, environment={},
                      prompts=[{"id": "a", "text": "t"}])
    with connect() as con:
        con.execute("UPDATE runs SET runner_pid = ? WHERE run_id = 'dead-runner'", [gone.pid])
        # a run from before runners were recorded: only after a day
        con.execute("UPDATE runs SET runner_pid = NULL, created_at = current_timestamp - INTERVAL 2 DAY "
                    "WHERE run_id = 'old-run'")
    run_benchmark([spec(server)], prompts(1), Settings(rounds=1, warmup=0))
    assert db.get_run("dead-runner")["status"] == "interrupted"
    assert db.get_run("old-run")["status"] == "interrupted"
    assert db.get_run("live-runner")["status"] == "running"     # this process runs it
