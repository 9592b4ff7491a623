"""Length sweep fidelity: against a server whose TTFT is base + k x prompt tokens (tests/support/openai_server.py,
``pt``), how close the fitted curve comes to the truth, and what the sweep's own work costs.

    .venv/bin/python -m tests.perf.bench_lengths [--k-ms 1.0] [--base-ms 50] [--rounds 3]

k = 1 ms per prompt token is a fast laptop's prefill (1,000 tokens/s); the starter engines on this 2-core machine
prefill at 15-100 tokens/s, where the sweep's own work is a far smaller share. On a server 5x faster (--k-ms 0.2)
the same work is about 1.7% of the window (CPU time, measured under load).

Prints: the fitted slope dTTFT/dn (at the mean prompt length, and b) / k (target within 2%), the predicted TTFT at
6,000 prompt tokens / the server's true TTFT there (within 3%), and the sweep's own work (building the prompts with
the model's tokenizer, counting each request's tokens) as a share of the measured window (target under 1%).
The server counts prompt tokens with the same tokenizer (the starter GGUF's when built, else words).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from core.bench.sweep import fit as F
from core.bench.sweep import plan as L
from core.bench.sweep import tokens as P
from core.bench.run.inputs import ModelSpec, Settings
from core.config import REPO_ROOT
from tests.support.openai_server import OpenAITestServer


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k-ms", type=float, default=1.0, help="ms of TTFT per prompt token")
    ap.add_argument("--base-ms", type=float, default=50.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lengths", default="512,1024,2048,4096,8192")
    a = ap.parse_args(argv)
    os.environ["SLM_DB"] = os.path.join(tempfile.mkdtemp(), "perf.duckdb")
    gguf = REPO_ROOT / "data/models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
    tokens = P.gguf_tokens(str(gguf)) if gguf.is_file() else P.ModelTokens(
        count=lambda t: len(t.split()), source="words")
    tokens.window = None    # the server's window: none (the GGUF's 8,192 is not this server's)
    lengths = L.parse_lengths(a.lengths)
    name = f"lin;ttft={a.base_ms / 1000};pt={a.k_ms / 1000};tok=0.002;n=16"
    with OpenAITestServer(models=[name], count_tokens=tokens.count) as server:
        spec = ModelSpec(model=name, backend="openai", endpoint=server.base_url, label="linear")
        settings = Settings(rounds=a.rounds, warmup=1, max_tokens=16)
        plan = L.plan_model(spec, lengths, settings, tokens=tokens)
        t0 = time.perf_counter()
        outcome, (sw,) = L.run_sweep([spec], lengths, settings, plans={(spec.model, spec.backend): plan})
        wall = time.perf_counter() - t0
    from core.store import bench as db
    (level,) = db.run_summary(outcome.run_id)
    fit = sw["fit"]["ttft_ms"]
    xs = [p["prompt_tokens"] for p in sw["points"] if p["fitted"]]
    mean_n = sum(xs) / len(xs)
    slope = F.slope_at(fit, mean_n)
    true_6000 = a.base_ms + a.k_ms * 6000
    pred_6000 = F.predict(fit, 6000)
    print(f"tokenizer: {tokens.source}; {len(xs)} requests fitted, lengths {lengths}, rounds {a.rounds}")
    print(f"fit: TTFT(n) = {fit['coef'][0]:.2f} + {fit['coef'][1]:.5f} n + {fit['coef'][2]:.3g} n^2 ms "
          f"(RMSE {fit['rmse']:.2f} ms)")
    print(f"fitted slope at mean n ({mean_n:,.0f}) / k: {slope / a.k_ms:.4f}   (b / k: {fit['coef'][1] / a.k_ms:.4f})"
          "   target 0.98-1.02")
    print(f"predicted TTFT at 6000 / true: {pred_6000:,.1f} / {true_6000:,.1f} ms = {pred_6000 / true_6000:.4f}"
          "   target 0.97-1.03")
    window = level["window_s"]
    print(f"sweep's own work: {plan.build_s * 1000:,.1f} ms wall, {plan.build_cpu_s * 1000:,.1f} ms CPU (prompts "
          f"built and counted) / measured window {window:,.2f} s = {plan.build_s / window * 100:.2f}% wall, "
          f"{plan.build_cpu_s / window * 100:.2f}% CPU   target < 1%")
    print(f"(load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: wall time of the "
          "own work grows with other processes' load, its CPU time does not)")
    print(f"(whole run {wall:,.1f} s; time to notes at 6000 + 300: {sw['time_to_notes_ms']:,.0f} ms, "
          f"extrapolated: {sw['extrapolated']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
