"""The Foundry Local engine end to end on the smallest starter model (real worker processes)."""
import json
import os
import signal

import pytest

from core.bench.run.inputs import ModelSpec, Settings, parse_prompts
from core.bench.run.progress import Progress
from core.bench.run.runner import run_benchmark
from core.cli import main
from core.metrics import RESULT_KEYS
from core.store import bench as db
from tests.support.store import migrated

pytestmark = pytest.mark.models
SMALLEST = "smollm2-135m-instruct-int4"
SMALLEST_ID = "smollm2-135m-instruct-int4-generic-cpu:1"


@pytest.fixture()
def database(tmp_path, monkeypatch):
    for name in ("BENCH_MODELS", "BENCH_ROUNDS", "BENCH_STREAM", "FOUNDRY_LOCAL_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "db.duckdb")))


def test_cli_bench_through_foundry_local(tmp_path, database, capsys):
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps(["Say hello.", "Name two colours."]))
    out = tmp_path / "out.json"
    code = main(["bench", "--prompts", str(prompts), "--model", SMALLEST, "--rounds", "2", "--warmup", "1",
                 "--max-tokens", "12", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    (r,) = doc["results"]
    assert tuple(r) == RESULT_KEYS
    assert r["model"] == SMALLEST_ID and r["backend"] == "foundry" and r["status"] == "ok", r["error"]
    assert r["requests_ok"] == 4 and r["requests_failed"] == 0
    assert r["token_count_source"] == "usage"
    assert 1 <= r["completion_tokens"]["p50"] <= 12
    assert 0 < r["ttft_ms"]["p50"] <= r["e2e_ms"]["p50"]
    assert r["itl_ms"]["p50"] > 0 and r["decode_tokens_per_s"]["p50"] > 0
    # memory of the worker process alone: before < after load <= peak
    assert 0 < r["rss_before_mb"] < r["rss_after_load_mb"] <= r["peak_rss_mb"]
    assert r["load_s"] > 0 and r["cpu_s_per_token"] > 0 and r["throughput_tok_s"] > 0
    assert r["weights_mb"] > 0 and r["working_mb"] >= 0 and r["pid_source"] == "launched"
    assert r["engine_wait_source"] == "measured" and r["engine_wait_ms"]["p50"] >= 0   # one request at a time
    run = db.get_run(doc["run_id"])
    env = run["models"][0]["environment"]
    assert env["runtime"]["foundry-local-sdk"] and env["execution_provider"] and env["model_version"] is not None


class KillWorker(Progress):
    def __init__(self, engines, after=2):
        self.engines, self.after, self.killed = engines, after, None

    def on_update(self, progress, model):
        if self.killed is None and model.model == SMALLEST_ID and model.phase == "running" and model.done >= self.after + 1:
            pid = self.engines[SMALLEST_ID].pid()
            os.kill(pid, signal.SIGKILL)
            self.killed = pid


def test_load_failure_and_killed_worker(database):
    from core.engines import open_engine
    engines = {}

    def factory(spec):
        engines[spec.model] = open_engine(spec)
        return engines[spec.model]

    progress = KillWorker(engines)
    out = run_benchmark(
        [ModelSpec(model="no-such-model-generic-cpu:1", backend="foundry"),
         ModelSpec(model=SMALLEST_ID, backend="foundry", label=SMALLEST)],
        parse_prompts(["Say hello.", "Count to five."]), Settings(rounds=10, warmup=1, max_tokens=8),
        progress=progress, engine_factory=factory)
    assert progress.killed
    assert out.status == "interrupted" and "exited" in out.reason
    run = db.get_run(out.run_id)
    assert run["status"] == "interrupted"
    bad, good = run["models"]
    assert bad["status"] == "failed" and bad["error"].startswith("load failed:") and "no-such-model" in bad["error"]
    assert good["status"] == "interrupted" and "exited" in good["error"] and good["pid"] == progress.killed
    df = db.run_requests(out.run_id)
    assert 2 <= len(df) < 20 and df["ok"].all()      # finished rows kept, nothing half-done stored


def test_chat_once_through_foundry_keeps_the_worker_open():
    from core.engines.chat import chat_once, close_engines
    from core.engines.pool import shared_pool

    def judge_rows():       # the one registry of open engines: the judge's are kind "judge"
        return [r for r in shared_pool().listing() if r["kind"] == "judge" and r["key"][0] == "foundry"]
    try:
        first = chat_once("foundry", SMALLEST, [{"role": "user", "content": "Say hello."}], max_tokens=6)
        assert first.text and first.token_count_source == "usage" and 1 <= first.completion_tokens <= 6
        assert first.prompt_tokens and first.finish_reason
        (row,) = judge_rows()
        again = chat_once("foundry", SMALLEST_ID, [{"role": "user", "content": "Say hello."}], max_tokens=6)
        assert again.text == first.text                       # temperature 0, same seed
        assert [r["pid"] for r in judge_rows()] == [row["pid"]]   # the same worker served both
    finally:
        close_engines()
    assert not judge_rows()


def test_endpoint_without_usage_counts_with_the_local_models_tokenizer(database):
    """An endpoint serving a model we also have locally: no usage chunk -> its own tokenizer.json."""
    from tests.support.openai_server import OpenAITestServer
    with OpenAITestServer(models=[SMALLEST], fault="nousage", n=7) as server:
        out = run_benchmark([ModelSpec(model=SMALLEST, backend="openai", endpoint=server.base_url)],
                            parse_prompts(["hi"]), Settings(rounds=2, warmup=0))
    (r,) = db.run_summary(out.run_id)
    assert r["token_count_source"] == "tokenizer"
    from core.engines.http import local_tokenizer
    expected = local_tokenizer(SMALLEST)("w0 w1 w2 w3 w4 w5 w6 ")
    assert r["completion_tokens"]["p50"] == expected and expected > 7    # tokens, not the 7 chunks


# --- a stalled worker: SIGSTOP freezes it for real, as a hung runtime would -------------------------

def _ask(engine, timeout_s):
    from core.engines import RequestOptions
    return engine.run_one([{"role": "user", "content": "Say hello."}],
                          RequestOptions(max_tokens=8, timeout_s=timeout_s))


def test_stalled_worker_is_timed_out_and_killed(monkeypatch):
    from core.engines import foundry_worker
    from core.engines import EngineDied
    from core.engines.foundry import FoundryEngine

    monkeypatch.setattr(foundry_worker, "CANCEL_GRACE_S", 1.0)
    engine = FoundryEngine(SMALLEST_ID)
    engine.open()
    try:
        assert _ask(engine, 60).error is None
        pid = engine.pid()
        os.kill(pid, signal.SIGSTOP)
        rec = _ask(engine, 1.5)
        # the stalled request is recorded as failed (not lost), and the frozen worker is gone
        assert rec.error == "timed out after 1.5 s (stalled after 0 chunks; worker killed: it did not stop " \
                            "within 1 s of a cancel)"
        assert not os.path.exists(f"/proc/{pid}") or "State:\tZ" in open(f"/proc/{pid}/status").read()
        with pytest.raises(EngineDied, match="killed"):
            _ask(engine, 60)
    finally:
        engine.close()


def test_worker_that_resumes_after_a_timeout_stays_usable():
    import threading

    from core.engines.foundry import FoundryEngine

    engine = FoundryEngine(SMALLEST_ID)
    engine.open()
    try:
        pid = engine.pid()
        os.kill(pid, signal.SIGSTOP)
        threading.Timer(2.5, os.kill, (pid, signal.SIGCONT)).start()   # within the cancel's grace
        rec = _ask(engine, 1.0)
        assert rec.error == "timed out after 1 s (stalled after 0 chunks)"
        assert engine.pid() == pid
        ok = _ask(engine, 60)   # the cancel took: the same worker answers the next request
        assert ok.error is None and ok.finish_reason in ("stop", "length") and "".join(ok.text_parts)
    finally:
        engine.close()
