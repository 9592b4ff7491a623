"""The llama.cpp engine end to end on the starter GGUF (a real llama-cpp-python server)."""
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


@pytest.fixture()
def gguf():
    from core.catalog.starter import starter_gguf_path
    path = starter_gguf_path()
    assert path and os.path.isfile(path), "starter GGUF missing: run `python -m core setup-models`"
    return str(path)


def test_cli_bench_through_llamacpp(tmp_path, monkeypatch, capsys, gguf):
    for name in ("BENCH_MODELS", "BENCH_ROUNDS", "BENCH_STREAM", "FOUNDRY_LOCAL_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "db.duckdb")))
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps([{"id": "hi", "text": "Say hello.", "tags": []},
                                   {"id": "sky", "text": "Why is the sky blue? One sentence."}]))
    out = tmp_path / "out.json"
    code = main(["bench", "--prompts", str(prompts), "--model", "smollm2-135m-instruct-gguf", "--rounds", "1",
                 "--warmup", "1", "--max-tokens", "16", "--concurrency", "1,2", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    res = json.loads(out.read_text())["results"]
    assert [r["concurrency"] for r in res] == [1, 2]
    for r in res:
        assert tuple(r) == RESULT_KEYS
        assert r["backend"] == "llamacpp" and r["status"] == "ok", r["error"]
        assert r["requests_ok"] == 2 and r["requests_failed"] == 0
        assert r["token_count_source"] == "tokenizer"       # llama.cpp streams no usage
        assert 1 <= r["completion_tokens"]["p50"] <= 17
        assert 0 < r["ttft_ms"]["p50"] <= r["e2e_ms"]["p50"]
        assert r["load_s"] > 0 and r["rss_before_mb"] is None
        assert r["rss_after_load_mb"] > 10 and r["peak_rss_mb"] >= r["rss_after_load_mb"]
        assert r["cpu_s_per_token"] > 0 and r["throughput_tok_s"] > 0
        # llama-cpp-python's server answers one request at a time: its wait is inferred and kept out of TTFT
        assert r["engine_wait_source"] == "inferred" and r["engine_wait_ms"]["p50"] >= 0
        assert r["pid_source"] == "launched" and r["observer_cpu_s"] is not None
    # at concurrency 2 one of the two requests waited for the other: a positive wait, apart from TTFT
    assert res[1]["engine_wait_ms"]["p99"] > 0
    assert res[1]["ttft_ms"]["p50"] < res[1]["e2e_ms"]["p50"]


class KillAfter(Progress):
    """Kills the llama.cpp server once two measured requests have finished."""

    def __init__(self, n=2):
        self.n, self.killed = n, None

    def on_update(self, progress, model):
        if self.killed is None and model.phase == "running" and model.done >= self.n + 1 and model.backend == "llamacpp":
            self.killed = True
            pid = RUNNER_PIDS.get("pid")
            os.kill(pid, signal.SIGKILL)


RUNNER_PIDS = {}


def test_bad_gguf_fails_to_load_and_killed_server_interrupts(tmp_path, monkeypatch, gguf):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "db.duckdb")))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    from core.engines import open_engine

    def factory(s):
        engine = open_engine(s)
        original = engine.open

        def open_and_remember():
            info = original()
            RUNNER_PIDS["pid"] = info.pid
            return info
        engine.open = open_and_remember
        return engine

    progress = KillAfter(2)
    out = run_benchmark(
        [ModelSpec(model="broken.gguf", backend="llamacpp", path=str(bad)),
         ModelSpec(model=os.path.basename(gguf), backend="llamacpp", path=gguf)],
        parse_prompts(["Say hello.", "Count to five."]), Settings(rounds=10, warmup=1, max_tokens=8),
        progress=progress, engine_factory=factory)
    assert progress.killed
    assert out.status == "interrupted" and "exited" in out.reason
    run = db.get_run(out.run_id)
    assert run["status"] == "interrupted"
    broken, good = run["models"]
    assert broken["status"] == "failed" and broken["error"].startswith("load failed: llama.cpp server exited"), broken["error"]
    assert good["status"] == "interrupted" and good["pid"] == RUNNER_PIDS["pid"]
    df = db.run_requests(out.run_id)
    assert len(df) >= 2 and df["ok"].all()           # the finished rows are kept


def test_chat_once_through_llamacpp(gguf):
    from core.engines import chat_once, close_engines
    try:
        res = chat_once("llamacpp", "smollm2-135m-instruct-gguf", [{"role": "user", "content": "Say hello."}],
                        max_tokens=6, keep_open=False)
    finally:
        close_engines()
    assert res.text and res.token_count_source == "tokenizer" and 1 <= res.completion_tokens <= 7
