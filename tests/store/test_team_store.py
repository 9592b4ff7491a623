"""The team store on DuckLake: same migrations and queries as a local file, many writers at once, devices,
`store migrate`, run bundles and the fleet decision. Real PostgreSQL 15 server, real SQLite catalog,
real processes, real HTTP model server on 127.0.0.1."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pytest

from core.cli import main
from core.store import db
from tests.support.openai_server import OpenAITestServer

REPO = Path(__file__).resolve().parents[2]
PROMPTS = ["Say hi", "Name three colours", "Count to three"]
ROUNDS = 4


@pytest.fixture(autouse=True)
def _fresh_connections():
    db.close_lakes()
    yield
    db.close_lakes()


@pytest.fixture()
def pg(postgres_server):
    """The suite's one PostgreSQL server (tests/conftest.py); each test names its own database in it."""
    return postgres_server


@pytest.fixture(scope="module")
def servers():
    """Two model servers: the same model names, slower on 'device' b (a weaker machine)."""
    with OpenAITestServer(models=["tiny", "big"], ttft=0.002, tok=0.0005, n=8) as a, \
            OpenAITestServer(models=["tiny", "big"], ttft=0.15, tok=0.001, n=8) as b:
        yield a, b


def _env(store: str, device: str, data: Path | None = None) -> dict:
    env = {**os.environ, "SLM_DB": store, "SLM_DEVICE": device, "PYTHONPATH": str(REPO)}
    env.pop("SLM_DATA_PATH", None)
    if data is not None:
        env["SLM_DATA_PATH"] = str(data)
    return env


def _bench_cmd(prompts: Path, url: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "core", "bench", "--prompts", str(prompts), "--endpoint", url,
            "--model", "tiny", "--model", "big", "--rounds", str(ROUNDS), "--warmup", "1", "--max-tokens", "8",
            "--json", str(out)]


def _two_devices_then_decide(tmp_path: Path, store: str, data: Path | None, servers) -> None:
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS))
    # the team creates the store once (README: `store info` or `store migrate`); then every machine writes at once
    made = subprocess.run([sys.executable, "-m", "core", "store", "info"], cwd=REPO, env=_env(store, "setup", data),
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr[-2000:]
    procs = []
    for dev, srv in zip(("laptop-8gb", "workstation"), (servers[1], servers[0])):
        out = tmp_path / f"{dev}.json"
        procs.append((dev, out, subprocess.Popen(_bench_cmd(prompts, srv.base_url, out), cwd=REPO,
                                                 env=_env(store, dev, data), stdout=subprocess.PIPE,
                                                 stderr=subprocess.PIPE, text=True)))
    run_ids = {}
    for dev, out, p in procs:                      # both write into the one store at the same time
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-2000:]
        run_ids[dev] = json.loads(out.read_text())["run_id"]
    # every request of both runs is there: 2 models x (1 warm-up + 3 prompts x 4 rounds)
    os.environ["SLM_DB"] = store
    if data is not None:
        os.environ["SLM_DATA_PATH"] = str(data)
    with db.connect(store) as con:
        for dev, rid in run_ids.items():
            n, warm, device = con.execute(
                "SELECT count(*), count(*) FILTER (q.warmup), any_value(r.device) FROM requests q "
                "JOIN runs r USING (run_id) WHERE run_id = ?", [rid]).fetchone()
            assert (n, warm, device) == (2 * (1 + len(PROMPTS) * ROUNDS), 2, dev)
            env = json.loads(con.execute("SELECT environment FROM runs WHERE run_id = ?", [rid]).fetchone()[0])
            assert env["device"] == dev and env["cpu"] and env["ram_gb"] > 0 and "execution_providers" in env
    # a third process decides across both devices
    out = tmp_path / "fleet.json"
    p = subprocess.run([sys.executable, "-m", "core", "decide", "--devices", "laptop-8gb,workstation",
                        "--constraint", "e2e_p95_ms<=120", "--json", str(out)], cwd=REPO,
                       env=_env(store, "decider", data), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())
    assert res["devices"] == ["laptop-8gb", "workstation"]
    for row in res["candidates"]:
        assert set(row["devices"]) == {"laptop-8gb", "workstation"}
        assert row["devices"]["laptop-8gb"]["run_id"] == run_ids["laptop-8gb"]
        assert row["requests_ok"] == len(PROMPTS) * ROUNDS      # the deciding device's requests, all present
        # the weaker device decides latency (worst device) and breaks the 120 ms constraint: nobody passes
        assert row["decided_by"]["latency_ms"] == "laptop-8gb"
        assert row["criteria"]["latency_ms"] == row["devices"]["laptop-8gb"]["metrics"]["e2e_p95_ms"]
        assert row["constraint_devices"]["e2e_p95_ms<=120"]["device"] == "laptop-8gb"
        assert not row["passes"] and any("on device laptop-8gb" in f for f in row["failed_constraints"])
        assert not row["devices"]["workstation"]["failed_constraints"]   # it would pass on the fast one alone
    assert res["winner"] is None


def test_lake_dialect_drops_what_ducklake_refuses():
    sql = (db.MIGRATIONS_DIR / "002_bench.sql").read_text()
    lake = db.lake_dialect(sql)
    for word in ("PRIMARY KEY", "DEFAULT", "CREATE INDEX", "--"):
        assert word not in lake.upper()
    assert "run_id" in lake and "NOT NULL" in lake and "DOUBLE[]" in lake


def test_sqlite_lake_same_queries_upserts_and_a_second_process(tmp_path, monkeypatch):
    url = f"ducklake:sqlite:{tmp_path / 'meta.sqlite'}"
    monkeypatch.setenv("SLM_DB", url)
    monkeypatch.setenv("SLM_DATA_PATH", str(tmp_path / "data"))
    from core.store import bench, endpoints
    assert [v for v, _ in db.applied_migrations()][:4] == [1, 2, 3, 4] and 9 in dict(db.applied_migrations())
    endpoints.add_endpoint("a", "http://127.0.0.1:1/v1", None)
    endpoints.add_endpoint("a", "http://127.0.0.1:2/v1", "KEY")       # MERGE INTO: one row, updated
    assert endpoints.list_endpoints() == [{"name": "a", "base_url": "http://127.0.0.1:2/v1", "api_key_env": "KEY"}]
    bench.create_run("r1", prompt_set="p", prompt_set_hash="h", settings={}, environment={"device": "d1"},
                     prompts=[{"id": "p1", "text": "t"}])
    for i in range(20):
        bench.save_level({"run_id": "r1", "model": f"m{i}", "backend": "openai", "concurrency": 1, "status": "ok"},
                         [{"request_id": f"q{i}", "run_id": "r1", "model": f"m{i}", "backend": "openai",
                           "concurrency": 1, "prompt_id": "p1", "round": 0, "warmup": False, "ok": True,
                           "e2e_ms": 5.0, "chunk_gaps_ms": [1.0]}])
    bench.finish_run("r1", "completed")
    runs = bench.list_runs()
    assert runs[0]["requests"] == 20 and runs[0]["device"] == "d1" and runs[0]["created_at"] is not None


def test_a_process_writing_into_a_lake_another_one_created_keeps_every_column(tmp_path):
    """One process creates (migrates) a new lake; the first rows come from another process. With data inlining
    on, DuckLake stored NULL in the columns added by later migrations (runs.device, the runner's pid)."""
    url = f"ducklake:sqlite:{tmp_path / 'new.sqlite'}"
    env = {**os.environ, "SLM_DB": url, "SLM_DATA_PATH": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}
    made = subprocess.run([sys.executable, "-m", "core", "store", "info"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr[-2000:]
    code = ("from core.store import bench; bench.create_run('r2', prompt_set='p', prompt_set_hash='h', settings={}, "
            "environment={}, prompts=[{'id': 'p1', 'text': 't'}], device='d2')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with db.connect(url) as con:
        assert con.execute("SELECT device, runner_pid IS NOT NULL FROM runs WHERE run_id = 'r2'").fetchone() == (
            "d2", True)


def test_old_local_file_keeps_working(tmp_path):
    """A file made by the previous runner (keys, defaults, indexes; migrations 001-004) gets 009 and works."""
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMP DEFAULT current_timestamp)")
    for f in sorted(db.MIGRATIONS_DIR.glob("00[1-4]_*.sql")):
        con.execute(f.read_text())
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [int(f.name[:3]), f.stem])
    con.execute("INSERT INTO runs (run_id, status) VALUES ('old', 'completed')")
    con.close()
    from core.store import bench, endpoints
    assert 9 in dict(db.applied_migrations(path))
    os.environ["SLM_DB"] = str(path)
    try:
        endpoints.add_endpoint("e", "http://127.0.0.1:1/v1", None)
        endpoints.add_endpoint("e", "http://127.0.0.1:3/v1", None)     # MERGE INTO on a table with a key
        assert [e["base_url"] for e in endpoints.list_endpoints()] == ["http://127.0.0.1:3/v1"]
        assert [(r["run_id"], r["device"]) for r in bench.list_runs()] == [("old", "unknown")]
    finally:
        del os.environ["SLM_DB"]


def test_two_processes_two_devices_sqlite_lake(tmp_path, servers, monkeypatch):
    monkeypatch.setenv("SLM_DB", "")
    _two_devices_then_decide(tmp_path, f"ducklake:sqlite:{tmp_path / 'team.sqlite'}", tmp_path / "files", servers)


def test_two_processes_two_devices_postgres_lake(tmp_path, servers, pg, monkeypatch):
    monkeypatch.setenv("SLM_DB", "")
    store = f"ducklake:postgres:{pg.conninfo('team_bench')}"
    _two_devices_then_decide(tmp_path, store, tmp_path / "files", servers)


def _bench_local(tmp_path: Path, server, dbfile: Path, device: str) -> str:
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps(PROMPTS))
    out = tmp_path / f"{device}.json"
    p = subprocess.run(_bench_cmd(prompts, server.base_url, out), cwd=REPO, env=_env(str(dbfile), device),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(out.read_text())["run_id"]


def _counts(store: str) -> dict:
    with db.connect(store) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("runs", "run_prompts", "run_models", "requests", "human_scores")}


def test_store_migrate_is_idempotent(tmp_path, servers, pg, monkeypatch, capsys):
    local = tmp_path / "mine.duckdb"
    _bench_local(tmp_path, servers[0], local, "my-laptop")
    monkeypatch.setenv("SLM_DATA_PATH", str(tmp_path / "files"))
    store = f"ducklake:postgres:{pg.conninfo('team_migrate')}"
    assert main(["store", "migrate", str(local), "--to", store]) == 0
    once = _counts(store)
    assert main(["store", "migrate", str(local), "--to", store]) == 0
    assert _counts(store) == once == _counts(str(local))
    assert "copied" in capsys.readouterr().out


def _decide_json(store: str, run_id: str, tmp_path: Path, name: str) -> dict:
    out = tmp_path / f"{name}.json"
    os.environ["SLM_DB"] = store
    try:
        assert main(["decide", "--runs", run_id, "--json", str(out)]) == 0
    finally:
        del os.environ["SLM_DB"]
    res = json.loads(out.read_text())
    return {"winner": res["winner"], "rows": [(r["candidate"], round(r["score"], 9), r["requests_ok"],
                                                r["criteria"]["latency_ms"]) for r in res["candidates"]]}


def test_bundle_round_trip_and_tamper(tmp_path, servers, monkeypatch, capsys):
    monkeypatch.delenv("SLM_DB", raising=False)
    local = tmp_path / "offline.duckdb"
    rid = _bench_local(tmp_path, servers[0], local, "air-gapped")
    os.environ["SLM_DB"] = str(local)
    from core.store import quality as qstore
    qstore.save_human_scores([{"run_id": rid, "request_id": r["request_id"], "rubric": "r", "rater": "ann",
                               "scores": {"c": 4}, "comment": None} for r in qstore.run_outputs(rid)])
    del os.environ["SLM_DB"]
    bundle = tmp_path / "run.zip"
    assert main(["export-run", rid, "--out", str(bundle), "--db", str(local)]) == 0
    manifest = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))
    assert manifest["tables"]["requests"]["rows"] == 2 * (1 + len(PROMPTS) * ROUNDS)
    assert len(manifest["tables"]["requests"]["sha256"]) == 64
    monkeypatch.setenv("SLM_DATA_PATH", str(tmp_path / "files"))
    team = f"ducklake:sqlite:{tmp_path / 'team.sqlite'}"
    assert main(["import-run", str(bundle), "--db", team]) == 0
    assert main(["import-run", str(bundle), "--db", team]) == 2          # the run is there: refused ...
    assert "--replace" in capsys.readouterr().err
    assert main(["import-run", str(bundle), "--db", team, "--replace"]) == 0   # ... unless replaced: the same rows
    assert _counts(team) == _counts(str(local))
    assert _decide_json(team, rid, tmp_path, "team") == _decide_json(str(local), rid, tmp_path, "local")
    # a tampered bundle: one Parquet file changed, the manifest not
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bundle) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "requests.parquet":
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
            zout.writestr(item, data)
    other = f"ducklake:sqlite:{tmp_path / 'other.sqlite'}"
    capsys.readouterr()
    assert main(["import-run", str(bad), "--db", other]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "requests.parquet" in err and "sha256" in err
    assert _counts(other)["requests"] == 0 and _counts(other)["runs"] == 0     # nothing half-imported
    # a schema that does not match: a column type changed in the manifest (and its hash kept consistent)
    m = dict(manifest)
    m["tables"] = {**manifest["tables"], "runs": {**manifest["tables"]["runs"], "columns": [
        [c, "INTEGER" if c == "status" else t] for c, t in manifest["tables"]["runs"]["columns"]]}}
    schema_bad = tmp_path / "schema.zip"
    with zipfile.ZipFile(bundle) as zin, zipfile.ZipFile(schema_bad, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, json.dumps(m) if item.filename == "manifest.json" else zin.read(item))
    assert main(["import-run", str(schema_bad), "--db", other]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "runs.status" in err
    assert _counts(other)["requests"] == 0


RATER = r"""
import sys
from core.quality.blind import save_prompt_scores
from core.quality.outputs import run_outputs
rater, score = sys.argv[1], float(sys.argv[2])
for o in run_outputs("team-q"):       # one prompt form at a time, as the scoring page saves them
    save_prompt_scores("team-q", "notes", rater, {o["request_id"]: ({"coverage": score, "faithfulness": score}, "")})
"""


def test_raters_on_two_machines_score_into_one_store(tmp_path, pg, monkeypatch):
    """Team quality: two raters' processes (two machines) score the same run into one ducklake:postgres store at
    once; the quality report sees both (the mean over raters) and lists both raters."""
    from core.quality import model_quality
    from core.quality.rubrics import import_rubric
    from core.store import quality as qstore
    from tests.support.quality_run import TEST_RUBRIC, make_run

    store = f"ducklake:postgres:{pg.conninfo('team_quality')}"
    monkeypatch.setenv("SLM_DB", store)
    monkeypatch.setenv("SLM_DATA_PATH", str(tmp_path / "files"))
    outputs = {(m, f"p{i}"): f"The launch moves to May ({m}, {i})." for m in ("m1", "m2") for i in range(1, 6)}
    make_run("team-q", {f"p{i}": f"prompt {i}" for i in range(1, 6)}, outputs, extra_requests=False)
    import_rubric(TEST_RUBRIC)
    procs = [subprocess.Popen([sys.executable, "-c", RATER, rater, score], cwd=REPO,
                              env={**_env(store, rater, tmp_path / "files")}, stderr=subprocess.PIPE, text=True)
             for rater, score in (("ann", "5"), ("bob", "3"))]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    assert qstore.raters("team-q", "notes") == ["ann", "bob"]
    assert len(qstore.human_scores("team-q", "notes")) == 2 * 10 * 2     # raters x outputs x criteria, nothing lost
    q = model_quality("team-q", rubric="notes")
    assert q["m1"]["mean"] == pytest.approx(0.75) and q["m1"]["n"] == 5    # (5 -> 1.0 and 3 -> 0.5) averaged
