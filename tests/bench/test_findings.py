"""A run's findings: the best by each measure with its paired ratio, failures with their reasons, noisy
levels; from a real run on a server whose timings are known, and from results made to test each branch."""
import pandas as pd
import pytest

from core.bench.findings import findings, run_names
from core.bench.run.inputs import ModelSpec, Settings, parse_prompts
from core.bench.conditions.paired import run_pairs
from core.bench.report import build_report
from core.bench.run.runner import run_benchmark
from core.output import md_text
from tests.support.openai_server import OpenAITestServer

FAST, SLOW = "fast;ttft=0.01;tok=0.002;n=6", "slow;ttft=0.08;tok=0.012;n=6"


@pytest.fixture(autouse=True)
def database(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(tmp_path / "run.duckdb"))


def _level(model, ttft, decode, e2e, mem, ok=3, failed=0, noisy=False, error=None):
    return {"model": model, "backend": "openai", "concurrency": 1, "requests_ok": ok, "requests_failed": failed,
            "ttft_ms": {"p50": ttft}, "decode_tokens_per_s": {"p50": decode}, "e2e_ms": {"p50": e2e},
            "peak_rss_mb": mem, "noisy": noisy, "noise": {"reason": "other programs used 1.2 cores"}, "error": error}


def test_a_real_run_names_the_faster_model_by_each_measure_with_the_paired_ratio(tmp_path):
    with OpenAITestServer(models=[FAST, SLOW]) as server:
        specs = [ModelSpec(model=m, backend="openai", endpoint=server.base_url, label=m.split(";")[0])
                 for m in (SLOW, FAST)]
        out = run_benchmark(specs, parse_prompts(["a", "b"]), Settings(rounds=3, warmup=0, max_tokens=6),
                            sys_root=str(tmp_path / "nosys"))
    report = build_report(out.run_id)
    found = findings(report.results, run_pairs(out.run_id), report.requests, run_names(report.run), md_text)
    assert not [f for f in found if f.kind == "failed"]
    lines = [f.text for f in found if f.kind == "best"]    # noisy levels depend on the machine: not asserted
    text = "\n".join(lines)
    assert lines[0].startswith("Fastest first token (TTFT p50): fast,")
    decode = next(line for line in lines if line.startswith("Fastest decode"))
    # 12 ms per token against 2 ms: about 6x, measured round by round with an interval
    ratio = float(decode.split("decodes ")[1].split("x faster than slow")[0])
    assert 3.0 < ratio < 12.0, decode
    assert "paired by round" in decode and "too close to call" not in decode
    assert "Fastest whole answer (E2E p50): fast" in text


def test_failures_come_first_with_their_reasons_and_noisy_levels_last():
    results = [_level("a", 50.0, 100.0, 500.0, 300.0, ok=2, failed=2, noisy=True),
               _level("b[x](http://e.test)", 80.0, 60.0, 900.0, 200.0)]
    requests = pd.DataFrame([
        {"model": "a", "backend": "openai", "concurrency": 1, "ok": False, "warmup": False, "error": "timeout after 5 s"},
        {"model": "a", "backend": "openai", "concurrency": 1, "ok": False, "warmup": False, "error": "timeout after 5 s"},
        {"model": "a", "backend": "openai", "concurrency": 1, "ok": False, "warmup": True, "error": "warm-up failed"},
    ])
    out = findings(results, [], requests, {}, md_text)
    kinds = [f.kind for f in out]
    assert kinds[0] == "failed" and kinds[-1] == "noisy"
    assert out[0].text == "a [openai] at concurrency 1: 2 of 4 requests failed: timeout after 5 s (x2)"
    best = [f.text for f in out if f.kind == "best"]
    # no pair (one round, or none stored): the other model's own figure instead of a ratio
    assert best[0].startswith("Fastest first token (TTFT p50): a, 50.0 ms; b")
    assert best[-1].startswith("Least memory (peak RSS): b")
    assert all("](http" not in f.text for f in out)          # untrusted names are escaped for Markdown
    assert out[-1].text.startswith("Noisy: a [openai] at concurrency 1: other programs used 1.2 cores")


def test_a_pair_whose_interval_holds_one_is_too_close_to_call():
    results = [_level("a", 50.0, 100.0, 500.0, 300.0), _level("b", 52.0, 98.0, 510.0, 310.0)]
    pair = {"concurrency": 1, "a_model": "b", "a_backend": "openai", "b_model": "a", "b_backend": "openai",
            "decode_tok_s": {"ratio": 0.98, "ci_low": 0.9, "ci_high": 1.08},
            "ttft_ms": {"ratio": 1.04, "ci_low": 1.01, "ci_high": 1.07}, "e2e_ms": {"ratio": None}}
    lines = [f.text for f in findings(results, [pair], None, {("a", "openai"): "Model A"}, md_text)]
    decode = next(line for line in lines if line.startswith("Fastest decode"))
    # the pair is b over a: a decodes 1/0.98 faster, interval inverted
    assert "Model A" in decode and "decodes 1.02x faster than b (0.93-1.11, paired by round); too close to call" in decode
    ttft = next(line for line in lines if line.startswith("Fastest first token"))
    assert "reaches its first token 1.04x sooner than b (1.01-1.07, paired by round)" in ttft
    assert "too close" not in ttft


def test_a_run_with_nothing_measured_says_so():
    out = findings([_level("a", None, None, None, None, ok=0, failed=0)], [], None, {}, md_text)
    assert [f.text for f in out] == ["No successful request: nothing to compare."]


def test_one_model_gets_its_figures_in_one_line():
    out = findings([_level("solo", 40.0, 150.0, 480.0, None)], [], None, {("solo", "openai"): "Solo"}, md_text)
    assert [f.text for f in out] == ["Solo: TTFT p50 40.0 ms, decode p50 150 tok/s per request, E2E p50 480 ms "
                                     "(one model: add another to compare)"]

