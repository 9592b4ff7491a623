"""What the store keeps is redacted: errors of levels, requests and judgements, and the run's environment."""
from core.store import bench as bench_db
from core.store import connect
from core.store import quality as qstore
from tests.support.store import migrated

KEY = "sk-proj-Abc123Def456Ghi789Jkl012"


def test_errors_and_environment_are_redacted_when_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "r.duckdb")))
    env = {"cpu": "test", "endpoint": "http://bob:hunter2@127.0.0.1:9/v1?api-key=" + KEY, "packages": {"x": "1.0"}}
    bench_db.create_run("r1", prompt_set="p", prompt_set_hash="ab" * 32, settings={}, environment=env,
                        prompts=[{"id": "p1", "text": "hi"}])
    bench_db.save_level({"run_id": "r1", "model": "m", "backend": "openai", "concurrency": 1, "status": "failed",
                         "error": f"HTTP 401: Incorrect API key provided: {KEY}", "environment": env,
                         "endpoint": "http://bob:hunter2@127.0.0.1:9/v1"},
                        [{"request_id": "q1", "run_id": "r1", "model": "m", "backend": "openai", "concurrency": 1,
                          "prompt_id": "p1", "round": 0, "warmup": False, "ok": False,
                          "error": f"HTTP 401: Authorization: Bearer {KEY}"}])
    jr = qstore.create_judge_run(run_id="r1", rubric="notes", judge_model="j", judge_backend="openai",
                                 judge_endpoint="http://127.0.0.1:9/v1?key=" + KEY, mode="pointwise",
                                 template_version="v", settings={}, warnings=[])
    qstore.save_judgement(judge_run_id=jr, run_id="r1", request_id="q1", rubric="notes", template_version="v",
                          status="failed", scores=None, rationale=None, raw=None, raw_attempts=[], attempts=1,
                          error=f"endpoint said: invalid key {KEY}", messages=[])
    with connect() as con:
        dump = " ".join(str(v) for table in ("runs", "run_models", "requests", "judge_runs", "judgements")
                        for row in con.execute(f"SELECT * FROM {table}").fetchall() for v in row)
    assert KEY not in dump and "hunter2" not in dump
    assert "HTTP 401: Incorrect API key provided: ***" in dump and "http://***@127.0.0.1:9/v1" in dump
    assert "ab" * 32 in dump   # the prompt set hash is not key-shaped
    run = bench_db.get_run("r1")
    assert run["environment"]["endpoint"].startswith("http://***@127.0.0.1:9/v1?api-key=***")
