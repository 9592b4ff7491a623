"""One clock: every time the store writes is UTC, whatever the time zone of the process (or of DuckDB's
session, which follows it). A writer in New York and one in Tokyo store the same clock."""
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from core.config import REPO_ROOT

WRITE = r'''
import json, os
from core.store import bench, connect, decisions, endpoints
from core.store import quality as qstore
bench.create_run("r1", prompt_set="p", prompt_set_hash="h", settings={}, environment={}, prompts=[
    {"id": "p0", "text": "t"}])
bench.finish_run("r1", "completed")
endpoints.add_endpoint("e", "http://127.0.0.1:1/v1", None)
decisions.save_decision({"name": "d", "winner": None, "run_ids": ["r1"], "weights": {}, "constraints": {},
                         "latency_metric": "e2e_p95", "normalization": "minmax", "result": {}, "context": {},
                         "notes": ""})
qstore.ensure_template("v-test", "pointwise", "text")
with connect() as con:
    rows = {
        "runs.created_at": con.execute("SELECT created_at FROM runs").fetchone()[0],
        "runs.finished_at": con.execute("SELECT finished_at FROM runs").fetchone()[0],
        "endpoints.added_at": con.execute("SELECT added_at FROM endpoints").fetchone()[0],
        "decisions.created_at": con.execute("SELECT created_at FROM decisions").fetchone()[0],
        "judge_templates.created_at": con.execute("SELECT created_at FROM judge_templates").fetchone()[0],
        "schema_migrations.applied_at": con.execute("SELECT max(applied_at) FROM schema_migrations").fetchone()[0],
        "session_tz": con.execute("SELECT current_setting('TimeZone')").fetchone()[0],
    }
print(json.dumps({k: str(v) for k, v in rows.items()}))
'''


def _write(tmp_path, tz: str) -> dict:
    env = {**os.environ, "TZ": tz, "SLM_DB": str(tmp_path / f"{tz.replace('/', '_')}.duckdb"),
           "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", WRITE], env=env, capture_output=True, text=True, timeout=120,
                         cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_write_is_utc_in_any_time_zone(tmp_path):
    for tz in ("America/New_York", "Asia/Tokyo"):
        before = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=1)
        got = _write(tmp_path, tz)
        after = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(seconds=1)
        assert got.pop("session_tz") == tz          # DuckDB's session does follow the process: not UTC
        for column, text in got.items():
            stamp = datetime.fromisoformat(text)
            assert before <= stamp <= after, (tz, column, text, before)    # hours off in the session's clock
