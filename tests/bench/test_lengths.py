"""The length sweep (issue 19): exact prompt lengths with the models' real tokenizers, context windows honoured
(a prompt that does not fit is never sent), truncation flagged, the fit, the store, the report, the CLI."""
import json
from pathlib import Path

import numpy as np
import pytest

from core.bench.sweep import fit as F
from core.bench.sweep import plan as L
from core.bench.sweep import tokens as P
from core.bench.run.inputs import ModelSpec, Settings
from core.config import REPO_ROOT
from core.errors import UserError
from tests.support.openai_server import OpenAITestServer
from tests.support.store import migrated

GGUF = REPO_ROOT / "data/models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER = REPO_ROOT / "data/models/smollm2-135m-instruct-int4-generic-cpu:1"
needs_gguf = pytest.mark.skipif(not GGUF.is_file(), reason="starter GGUF not built (python -m core setup-models)")
needs_folder = pytest.mark.skipif(not FOLDER.is_dir(), reason="starter models not built (python -m core setup-models)")


@pytest.fixture()
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "lengths.duckdb")))


def words() -> P.ModelTokens:
    """A tokenizer that counts as the test server does (words): prompts of exact server-side lengths."""
    return P.ModelTokens(count=lambda text: len(text.split()), source="words",
                         chat=lambda messages: sum(len(str(m["content"]).split()) for m in messages))


def sweep(spec, lengths, settings, tokens=None, **kwargs):
    plans = {(spec.model, spec.backend): L.plan_model(spec, lengths, settings, tokens=tokens)} if tokens else None
    return L.run_sweep([spec], lengths, settings, plans=plans, **kwargs)


# -- exact lengths with the real tokenizers ----------------------------------------------------------------------
@needs_gguf
def test_gguf_prompts_have_exact_token_counts_and_are_deterministic():
    tokens = P.gguf_tokens(str(GGUF))
    for n in (512, 2048, 4096, 8192):
        text = P.build_transcript(tokens, n)
        assert tokens.count(text) == n
        assert text.startswith(P.HEADER) and "Transcript:" in text
    assert P.build_transcript(tokens, 777) == P.build_transcript(tokens, 777)
    assert tokens.window == 8192 and tokens.kv_bytes_per_token == 2 * 30 * 3 * 64 * 2
    _requests_counted_as_a_whole(tokens)


def _requests_counted_as_a_whole(tokens):
    """A request's tokens from its prompt's (counted once) and its own id = the whole request counted."""
    spec = ModelSpec(model="m", backend="llamacpp")
    plan = L.plan_model(spec, [300, 1200], Settings(max_tokens=8), tokens=tokens)
    for p in plan.prompt_set.prompts:
        for _ in range(3):
            sent = P.request_messages(p["text"])
            assert plan.request_tokens(p["id"], sent) == tokens.prompt_tokens(sent)


@needs_folder
def test_foundry_folder_prompts_have_exact_token_counts():
    tokens = P.folder_tokens(FOLDER)
    for n in (512, 3000):
        assert tokens.count(P.build_transcript(tokens, n)) == n
    assert tokens.window == 8192 and tokens.setting_name == "max_length"
    _requests_counted_as_a_whole(tokens)
    assert tokens.kv_bytes_per_token == 2 * 30 * 3 * 64 * 4   # fp32 io on the CPU builder


def test_a_length_below_the_instructions_is_refused():
    with pytest.raises(UserError, match="shorter than the instructions"):
        P.build_transcript(words(), 5)
    with pytest.raises(UserError, match="not a whole number"):
        L.parse_lengths("512,lots")


# -- context windows, truncation, cache ------------------------------------------------------------------------------
def test_a_prompt_that_does_not_fit_is_never_sent(db):
    name = "win;ttft=0.001;tok=0.001;n=8;window=700"
    with OpenAITestServer(models=[name]) as server:
        spec = ModelSpec(model=name, backend="openai", endpoint=server.base_url, label="win")
        outcome, (sw,) = sweep(spec, [200, 400, 900], Settings(rounds=2, warmup=0, max_tokens=8), tokens=words())
        sent = [e.prompt_tokens for e in server.log]
    assert outcome.status == "completed"
    assert sw["context_window"] == 700 and sw["context_window_source"] == "endpoint"
    big = [p for p in sw["points"] if p["length"] == 900]
    assert len(big) == 2 and all(not p["ok"] and not p["fits"] for p in big)
    assert all(p["error"].startswith("does not fit (") and "> window 700" in p["error"] for p in big)
    assert len(sent) == 4 and max(sent) < 700          # the server saw only the prompts that fit
    assert all(p["prompt_tokens"] for p in sw["points"])  # recorded, fitted or not
    assert {p["prompt_tokens"] for p in sw["points"] if p["ok"]} == set(sent)


def test_every_request_is_unique_to_the_prompt_cache(db):
    name = "uniq;n=4"
    with OpenAITestServer(models=[name]) as server:
        spec = ModelSpec(model=name, backend="openai", endpoint=server.base_url)
        _, (sw,) = sweep(spec, [100], Settings(rounds=3, warmup=1, max_tokens=4), tokens=words())
    assert "unique request id" in sw["cache_bust"]
    msgs = P.request_messages("same prompt"), P.request_messages("same prompt")
    assert msgs[0][0]["role"] == "system" and msgs[0][0]["content"] != msgs[1][0]["content"]


def test_an_engine_that_counts_fewer_prompt_tokens_is_flagged_truncating(db):
    name = "trunc;n=4;truncate=300"
    with OpenAITestServer(models=[name]) as server:
        spec = ModelSpec(model=name, backend="openai", endpoint=server.base_url)
        _, (sw,) = sweep(spec, [200, 1000], Settings(rounds=1, warmup=0, max_tokens=4), tokens=words())
    by_length = {p["length"]: p for p in sw["points"]}
    assert sw["truncating"] is True
    assert by_length[1000]["truncated"] and by_length[1000]["error"].startswith("truncated prompt")
    assert not by_length[200]["truncated"] and by_length[200]["ok"]


def test_an_endpoint_without_a_tokenizer_is_calibrated_from_its_usage(db):
    name = "cal;ttft=0.001;n=4"
    with OpenAITestServer(models=[name]) as server:
        spec = ModelSpec(model=name, backend="openai", endpoint=server.base_url)
        _, (sw,) = L.run_sweep([spec], [300, 900], Settings(rounds=1, warmup=0, max_tokens=4))
    assert sw["tokenizer_source"] == "calibrated"
    sent = sorted(p["prompt_tokens"] for p in sw["points"])
    assert 200 < sent[0] < 450 and 700 < sent[1] < 1200    # estimates, from the server's own counts


# -- the fit ------------------------------------------------------------------------------------------------------
def _points(rng, f, lengths, rounds=3, noise=5.0):
    pts = []
    for n in lengths:
        for _ in range(rounds):
            pts.append({"fitted": True, "prompt_tokens": n, "ttft_ms": f(n) + rng.normal(0, noise),
                        "tpot_ms": 10 + 0.002 * n + rng.normal(0, 0.1)})
    return pts


def test_fit_recovers_a_known_quadratic_with_a_band():
    rng = np.random.default_rng(19)
    truth = lambda n: 40 + 0.8 * n + 3e-4 * n * n  # noqa: E731
    pts = _points(rng, truth, [512, 1024, 2048, 4096, 8192])
    fit = F.fit_sweep(pts, 6000, 300)
    a, b, c = fit["ttft_ms"]["coef"]
    assert abs(c / 3e-4 - 1) < 0.02 and abs(b / 0.8 - 1) < 0.05
    want = truth(6000) + 299 * (10 + 0.002 * 6000)
    assert abs(fit["time_to_notes_ms"] / want - 1) < 0.01
    assert fit["time_to_notes_low_ms"] < want < fit["time_to_notes_high_ms"]
    assert fit["extrapolated"] is False and fit["max_measured_tokens"] == 8192


def test_time_to_notes_beyond_the_longest_length_is_extrapolated():
    rng = np.random.default_rng(1)
    pts = _points(rng, lambda n: 100 + n, [512, 1024, 2048])
    fit = F.fit_sweep(pts, 3000, 300)
    assert fit["extrapolated"] is True and fit["max_measured_tokens"] == 2048 and fit["withheld"] is None
    exact = F.fit_sweep([dict(p, ttft_ms=100 + p["prompt_tokens"]) for p in pts[::3]], 3000, 300)
    assert exact["time_to_notes_low_ms"] is None    # 3 requests, 3 parameters: no band, never a zero-width one


def test_beyond_one_and_a_half_times_the_longest_length_the_figure_is_withheld():
    rng = np.random.default_rng(2)
    pts = _points(rng, lambda n: 2 + 0.01 * n, [300, 600, 911])
    fit = F.fit_sweep(pts, 6000, 300)
    assert fit["withheld"] == "measure at 6,000 tokens: the longest measured prompt is 911"
    assert fit["time_to_notes_ms"] is None and fit["ttft_at_target_ms"] is None
    assert fit["time_to_notes_low_ms"] is None and fit["ttft_ms"] is not None   # the curve itself stays
    assert max(row["n"] for row in fit["curve"]) == round(1.5 * 911)
    assert L.sweep_lines({**fit, "context_window": None})[1] == (
        "time to notes withheld: measure at 6,000 tokens: the longest measured prompt is 911")


def _noisy_linear(rng, lengths, rounds=8):
    """TTFT 2 ms + 0.01 ms per token (the truth) with what two CPU hogs add: mostly small, sometimes 20-60 ms."""
    pts = []
    for n in lengths:
        for _ in range(rounds):
            hog = rng.exponential(2.0) + (rng.uniform(20, 60) if rng.random() < 0.15 else 0.0)
            pts.append({"fitted": True, "prompt_tokens": n, "ttft_ms": 2 + 0.01 * n + hog,
                        "tpot_ms": 5 + rng.normal(0, 0.3)})
    return pts


def test_a_line_under_noise_keeps_its_degree_and_its_band_holds_the_truth():
    held = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        fit = F.fit_sweep(_noisy_linear(rng, [1000, 2000, 4000]), 6000, 300, n_boot=300)
        truth_ttft = 2 + 0.01 * 6000
        if fit["ttft_ms"]["degree"] == 2:   # only on evidence: its n^2 term's interval excludes 0
            assert "excludes 0" in fit["ttft_ms"]["degree_reason"] or "held-out" in fit["ttft_ms"]["degree_reason"]
        assert abs(fit["ttft_at_target_ms"] / truth_ttft - 1) < 0.5
        # the hogs only add time (8 ms on average, to every length): the band should hold the truth so shifted
        held += fit["time_to_notes_low_ms"] <= 2 + 0.01 * 6000 + 8 + 299 * 5 <= fit["time_to_notes_high_ms"]
    assert held >= 5    # a 95% band: at most one miss in six fixed draws


def test_the_quadratic_term_is_kept_only_on_evidence():
    rng = np.random.default_rng(5)
    lengths = [512, 1024, 2048, 4096]
    line = F.fit_sweep(_points(rng, lambda n: 40 + 0.8 * n, lengths), 6000, 300, n_boot=400)
    assert line["ttft_ms"]["degree"] == 1 and "do not support" in line["ttft_ms"]["degree_reason"]
    curved = F.fit_sweep(_points(rng, lambda n: 40 + 0.8 * n + 3e-4 * n * n, lengths), 6000, 300, n_boot=400)
    assert curved["ttft_ms"]["degree"] == 2
    # an unsettled degree: the band spans both curves' resamples, so it is no narrower than the line's alone
    one = F._bands(F._bootstrap(_points(rng, lambda n: 40 + 0.8 * n, lengths), 6000, 300, 400, 0),
                   np.array([6000]), 6000, 300, {"degree": 1, "settled": True}, {"degree": 1, "settled": True})
    both = F._bands(F._bootstrap(_points(rng, lambda n: 40 + 0.8 * n, lengths), 6000, 300, 400, 0),
                    np.array([6000]), 6000, 300, {"degree": 1, "settled": False}, {"degree": 1, "settled": True})
    assert both["notes"][0] <= one["notes"][0] + 1e-6 and both["notes"][1] >= one["notes"][1] - 1e-6


def test_default_lengths_reach_the_target():
    assert L.default_lengths(6000) == [512, 2048, 4096, 6000]
    assert L.default_lengths(12000)[-1] == 12000


# -- store, report, CLI ---------------------------------------------------------------------------------------------
def test_figures_for_the_decision_are_stored_and_the_report_shows_them(db, tmp_path):
    from core.bench.report import write_report
    from core.store.lengths import length_figures
    name = "rep <b>x</b>;ttft=0.002;pt=0.00001;tok=0.001;n=6"
    with OpenAITestServer(models=[name]) as server:
        spec = ModelSpec(model=name, backend="openai", endpoint=server.base_url)
        outcome, (sw,) = sweep(spec, [100, 200, 400], Settings(rounds=2, warmup=0, max_tokens=6), tokens=words(),
                               target_prompt=600, target_output=50)
    (fig,) = length_figures(outcome.run_id)
    assert fig["model"] == name and fig["time_to_notes_ms"] == pytest.approx(sw["time_to_notes_ms"])
    assert fig["extrapolated"] is True and fig["target_prompt_tokens"] == 600 and fig["target_output_tokens"] == 50
    assert fig["prefill_tokens_per_s"] > 0 and fig["context_window"] is None
    assert length_figures(outcome.run_id, model="other") == []
    md = write_report(outcome.run_id, tmp_path / "out")["markdown"].read_text()
    assert "## Prompt length" in md and "time to notes for 600 prompt + 50 output tokens" in md
    assert "<b>" not in md


def test_cli_lengths_json_has_curves_and_time_to_notes(db, tmp_path):
    from core.cli import main
    name = "cli;ttft=0.001;pt=0.00001;tok=0.001;n=4"
    out = tmp_path / "sweep.json"
    with OpenAITestServer(models=[name]) as server:
        code = main(["bench", "--lengths", "300,600,900", "--endpoint", server.base_url, "--model", name,
                     "--rounds", "1", "--warmup", "0", "--max-tokens", "4", "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    (sw,) = data["lengths"]
    # three requests, three lengths: no evidence for an n^2 term; 6,000 tokens is far beyond 900: withheld
    assert sw["fit"]["ttft_ms"]["degree"] == 1 and sw["time_to_notes_ms"] is None and sw["extrapolated"] is True
    assert sw["withheld"].startswith("measure at 6,000 tokens: the longest measured prompt is ")
    assert [p["length"] for p in sw["points"]] == [300, 600, 900]


def test_cli_lengths_bad_input_is_one_line(db, capsys):
    from core.cli import main
    assert main(["bench", "--lengths", "512,abc", "--model", "x"]) == 2
    assert main(["bench", "--lengths", "512", "--model", "x", "--concurrency", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: --lengths") for line in err)


def test_a_sweep_records_its_settings_and_is_not_resumed_as_a_plain_run(db):
    from core.bench.run.resume import plan_resume
    from core.store import bench as store
    name = "res;n=4"
    with OpenAITestServer(models=[name]) as server:
        spec = ModelSpec(model=name, backend="openai", endpoint=server.base_url)
        outcome, _ = sweep(spec, [100, 200], Settings(rounds=1, warmup=0, max_tokens=4), tokens=words(),
                           target_prompt=900)
    settings = store.get_run(outcome.run_id)["settings"]
    assert settings["sweep"]["lengths"] == [100, 200] and settings["sweep"]["target_prompt_tokens"] == 900
    with pytest.raises(UserError, match="length sweep"):
        plan_resume(outcome.run_id)


def test_decide_on_time_to_notes_ranks_the_20x_faster_prefill_first_or_calls_it_close(db, tmp_path):
    from core.cli import main
    fast, slow = "fast;ttft=0.002;pt=0.0001;tok=0.001;n=6", "slow;ttft=0.002;pt=0.002;tok=0.001;n=6"
    settings = Settings(rounds=3, warmup=0, max_tokens=6)
    with OpenAITestServer(models=[fast, slow]) as server:
        specs = [ModelSpec(model=m, backend="openai", endpoint=server.base_url) for m in (slow, fast)]
        plans = {(s.model, s.backend): L.plan_model(s, [100, 200, 400], settings, tokens=words()) for s in specs}
        outcome, sweeps = L.run_sweep(specs, [100, 200, 400], settings, plans=plans, target_prompt=600,
                                      target_output=50)
    by = {sw["model"]: sw for sw in sweeps}
    # the truth at 600 prompt tokens: TTFT 2 + 0.1 x 600 = 62 ms (fast), 2 + 2 x 600 = 1,202 ms (slow)
    assert abs(by[fast]["ttft_at_target_ms"] / 62 - 1) < 0.5 and abs(by[slow]["ttft_at_target_ms"] / 1202 - 1) < 0.5
    assert by[slow]["time_to_notes_low_ms"] <= by[slow]["time_to_notes_ms"] <= by[slow]["time_to_notes_high_ms"]
    out = tmp_path / "d.json"
    assert main(["decide", "--runs", outcome.run_id, "--weights", "time_to_notes=1", "--json", str(out)]) == 0
    rows = {c["model"]: c for c in json.loads(out.read_text())["candidates"]}
    assert rows[fast]["rank"] == 1 or rows[fast]["candidate"] in rows[slow]["tie_with"]
    assert rows[fast]["rank"] == 1   # 111 ms against 1,251 ms: far apart, the bands do not overlap
