"""`python -m core bench`: the CLI contract, bad input, environment variables, Ctrl-C."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from core.cli import main
from core.metrics import RESULT_KEYS
from core.store.db import _migrated
from tests.support.openai_server import OpenAITestServer

REPO = Path(__file__).resolve().parents[2]
MODEL = "tiny;ttft=0.005;tok=0.001;n=12"
SUMMARY_KEYS = {"mean", "p50", "p90", "p95", "p99"}


@pytest.fixture(scope="module")
def server():
    with OpenAITestServer(models=[MODEL, "tiny;fault=500", "tiny;fault=500;every=2", "slow;ttft=0.3;n=2"]) as s:
        yield s


@pytest.fixture()
def env(tmp_path, monkeypatch):
    for name in ("BENCH_MODELS", "BENCH_ROUNDS", "BENCH_STREAM", "FOUNDRY_LOCAL_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    db = tmp_path / "bench.duckdb"
    monkeypatch.setenv("SLM_DB", str(db))
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(["Say hi", "Name three colours"]))
    return {"db": db, "prompts": prompts, "out": tmp_path / "out.json", "tmp": tmp_path}


def bench(*args):
    return main(["bench", *map(str, args)])


def test_json_contract_keys_and_values(server, env, capsys):
    code = bench("--prompts", env["prompts"], "--endpoint", server.base_url, "--model", MODEL,
                 "--model", "tiny;fault=500;every=2", "--rounds", 2, "--warmup", 1, "--concurrency", "1,2",
                 "--max-tokens", 8, "--json", env["out"], "--db", env["db"])
    assert code == 0
    out = json.loads(env["out"].read_text())
    assert set(out) == {"run_id", "schedule", "results", "paired", "timeline"}
    assert out["schedule"]["order"] == "interleaved" and out["schedule"]["keep_loaded"] is True
    (pair,) = [p for p in out["paired"] if p["concurrency"] == 1]
    assert pair["a_model"] == MODEL and set(pair["ttft_ms"]) == {"ratio", "ci_low", "ci_high", "rounds", "close"}
    results = out["results"]
    assert [(r["model"], r["concurrency"]) for r in results] == [
        (MODEL, 1), (MODEL, 2), ("tiny;fault=500;every=2", 1), ("tiny;fault=500;every=2", 2)]
    for r in results:
        assert tuple(r) == RESULT_KEYS
        assert r["backend"] == "openai" and r["status"] == "ok"
        for k in ("ttft_ms", "itl_ms", "e2e_ms", "completion_tokens"):
            assert set(r[k]) == SUMMARY_KEYS
        assert r["requests_ok"] + r["requests_failed"] == 4    # 2 prompts x 2 rounds, warm-up excluded
        # max_tokens caps the server's 12 tokens: 8 tokens, from usage
        assert r["completion_tokens"]["p50"] == 8 and r["token_count_source"] == "usage"
        assert 0 < r["ttft_ms"]["p50"] <= r["e2e_ms"]["p50"]
        assert r["itl_ms"]["mean"] >= 0
        assert r["throughput_tok_s"] > 0
        # an HTTP server whose PID we do not know: memory unknown, never 0
        assert r["peak_rss_mb"] is None and r["rss_before_mb"] is None and r["cpu_s_per_token"] is None
    assert results[0]["requests_failed"] == 0
    assert set(results[0]["decode_tokens_per_s"]) == SUMMARY_KEYS
    # the zero-delay model's answer arrives in one read: TPOT 0, decode speed unknown (None), never infinite
    assert results[2]["decode_tokens_per_s"] is None or set(results[2]["decode_tokens_per_s"]) == SUMMARY_KEYS
    assert results[2]["requests_failed"] >= 1 and results[2]["requests_ok"] >= 1
    # the stored run: every request, warm-ups flagged, failures with their error
    con = duckdb.connect(str(env["db"]))
    try:
        status, = con.execute("SELECT status FROM runs WHERE run_id = ?", [out["run_id"]]).fetchone()
        assert status == "completed"
        n, warm, failed = con.execute(
            "SELECT count(*), count(*) FILTER (warmup), count(*) FILTER (NOT ok AND error LIKE 'HTTP 500%') "
            "FROM requests WHERE run_id = ?", [out["run_id"]]).fetchone()
        assert (n, warm) == (4 * 5, 4) and failed >= 2
        # decode speed is 1/TPOT per request, then summarised (not 1/median TPOT)
        import statistics
        tpots = [t for (t,) in con.execute(
            "SELECT tpot_ms FROM requests WHERE run_id = ? AND model = ? AND concurrency = 1 AND ok AND NOT warmup",
            [out["run_id"], MODEL]).fetchall()]
        assert results[0]["decode_tokens_per_s"]["p50"] == pytest.approx(statistics.median(1000 / t for t in tpots if t and t > 0))   # per_s: None for 0
    finally:
        con.close()
    printed = capsys.readouterr().out
    assert MODEL[:32] in printed


def test_all_requests_failing_is_a_failed_result_but_exit_0(server, env):
    code = bench("--prompts", env["prompts"], "--endpoint", server.base_url, "--model", "tiny;fault=500",
                 "--rounds", 1, "--json", env["out"])
    assert code == 0
    (r,) = json.loads(env["out"].read_text())["results"]
    assert r["status"] == "failed" and "HTTP 500" in r["error"]
    assert r["requests_ok"] == 0 and r["requests_failed"] == 2 and r["ttft_ms"] is None


@pytest.mark.parametrize("content,message", [
    (None, "cannot read prompt file"),
    ("", "is empty"),
    ("[1, 2", "not valid JSON"),
    ("[]", "has no prompts"),
    ('{"a": 1}', "must hold a JSON list"),
    ('["ok", 3]', "prompt 2 in prompts.json is not text"),
    ('[{"id": "a", "text": ["x"]}]', "prompt 1 in prompts.json is not text"),
    ('["ok", "   "]', "prompt 2 in prompts.json is empty"),
])
def test_bad_prompt_files_are_one_line_errors(server, env, capsys, content, message):
    path = env["tmp"] / "prompts.json"
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    code = bench("--prompts", path, "--endpoint", server.base_url, "--model", MODEL)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_unknown_model_and_unreachable_endpoint(server, env, capsys):
    assert bench("--prompts", env["prompts"], "--endpoint", server.base_url, "--model", "nope") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown model 'nope'" in err[0]
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert bench("--prompts", env["prompts"], "--endpoint", f"http://127.0.0.1:{port}", "--model", "x") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unreachable" in err[0]


def test_unknown_foundry_model_is_one_line(env, capsys, monkeypatch):
    monkeypatch.setenv("SLM_FOUNDRY_CATALOG_HOST", "invalid.invalid")
    assert bench("--prompts", env["prompts"], "--model", "no-such-model-anywhere") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown model 'no-such-model-anywhere'" in err[0]


def test_workshop_environment_variables(server, env, monkeypatch):
    monkeypatch.setenv("FOUNDRY_LOCAL_ENDPOINT", server.base_url.removesuffix("/v1"))
    monkeypatch.setenv("BENCH_MODELS", f"{MODEL},tiny;fault=500;every=2")
    monkeypatch.setenv("BENCH_ROUNDS", "1")
    monkeypatch.setenv("BENCH_STREAM", "0")
    assert bench("--prompts", env["prompts"], "--warmup", 0, "--json", env["out"]) == 0
    results = json.loads(env["out"].read_text())["results"]
    assert [r["model"] for r in results] == [MODEL, "tiny;fault=500;every=2"]
    r = results[0]
    assert r["requests_ok"] == 2                      # BENCH_ROUNDS=1 x 2 prompts
    assert r["ttft_ms"] is None and r["itl_ms"] is None   # BENCH_STREAM=0: no stream, no first token
    assert r["e2e_ms"]["p50"] > 0 and r["completion_tokens"]["p50"] == 12


def test_models_json_in_the_workshop_shape(server, env):
    cfg = env["tmp"] / "models.json"
    cfg.write_text(json.dumps({MODEL: {"capabilities": ["chat"], "size_mb": 123}}))
    assert bench("--prompts", env["prompts"], "--endpoint", server.base_url, "--config", cfg,
                 "--rounds", 1, "--json", env["out"]) == 0
    (r,) = json.loads(env["out"].read_text())["results"]
    assert r["model"] == MODEL and r["status"] == "ok"
    con = duckdb.connect(str(env["db"]))
    try:
        assert con.execute("SELECT disk_mb FROM run_models").fetchone() == (123.0,)
    finally:
        con.close()


def test_ctrl_c_keeps_finished_rows_and_marks_interrupted(server, env):
    proc = subprocess.Popen(
        [sys.executable, "-m", "core", "bench", "--prompts", str(env["prompts"]), "--endpoint", server.base_url,
         "--model", "slow;ttft=0.3;n=2", "--rounds", "50", "--warmup", "0", "--db", str(env["db"]),
         "--json", str(env["out"])],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    seen = 0
    while time.monotonic() < deadline and seen < 3:   # wait until three requests were answered
        time.sleep(0.1)
        seen = len([e for e in server.log if e.model.startswith("slow;") and e.last_write])
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "interrupted" in lines[0]
    result = json.loads(env["out"].read_text())
    _migrated.clear()
    con = duckdb.connect(str(env["db"]))
    try:
        status, = con.execute("SELECT status FROM runs WHERE run_id = ?", [result["run_id"]]).fetchone()
        n_ok, = con.execute("SELECT count(*) FROM requests WHERE run_id = ? AND ok", [result["run_id"]]).fetchone()
        rm_status, = con.execute("SELECT status FROM run_models WHERE run_id = ?", [result["run_id"]]).fetchone()
    finally:
        con.close()
    assert status == "interrupted" and rm_status == "interrupted"
    assert 2 <= n_ok < 100
    assert result["results"][0]["requests_ok"] == n_ok
