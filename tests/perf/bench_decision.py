"""Time to recompute the decision matrix and 10,000 weight samples for 50 candidates (target: under 200 ms).

Run: .venv/bin/python tests/perf/bench_decision.py
Prints the median of repeated runs for: the weight-only recompute (what a slider move costs: scores, ranks,
10,000 Dirichlet weight draws, flip points, ties from the stored bootstrap), and the full recompute
(normalisation, constraints and the 200-sample bootstrap over per-request rows, then the same).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.decision.engine import evaluate, prepare  # noqa: E402
from core.decision.matrix import Candidate  # noqa: E402

TARGET_MS = 200.0
N_CANDIDATES = 50
N_REQUESTS = 40
N_SAMPLES = 10_000


def candidates(seed: int = 0) -> list[Candidate]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(N_CANDIDATES):
        e2e = rng.uniform(500, 5000) * (1 + 0.1 * rng.standard_normal(N_REQUESTS))
        q = float(rng.uniform(0.3, 0.95))
        out.append(Candidate(
            run_id=f"run{i % 3}", model=f"model-{i}", backend=["foundry", "openai", "llamacpp"][i % 3],
            e2e_ms=e2e, ttft_ms=e2e / 10, tpot_ms=rng.uniform(10, 80) * (1 + 0.05 * rng.standard_normal(N_REQUESTS)),
            peak_rss_mb=float(rng.uniform(500, 8000)), disk_mb=float(rng.uniform(200, 6000)),
            license=["mit", "apache-2.0", "gemma", "cc-by-nc-4.0", None][i % 5],
            quality={"mean": q, "ci_low": q - 0.05, "ci_high": q + 0.05, "n": 20, "source": "human"}))
    return out


def timed(fn, repeat: int = 15) -> float:
    fn()  # warm
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    cands = candidates()
    weights = "latency=0.3,decode_speed=0.1,memory=0.1,quality=0.4,disk=0.05,license=0.05"
    cons = ["peak_rss_mb<=7000"]
    prep = prepare(cands, constraints=cons)
    slider = timed(lambda: evaluate(prep, weights, n_samples=N_SAMPLES))
    full = timed(lambda: evaluate(prepare(cands, constraints=cons), weights, n_samples=N_SAMPLES))
    print(f"{N_CANDIDATES} candidates x {N_REQUESTS} requests, {N_SAMPLES:,} weight samples (median of 15)")
    print(f"weights changed (matrix + samples + flips + ties): {slider:7.1f} ms  ratio to {TARGET_MS:.0f} ms target: "
          f"{slider / TARGET_MS:.3f}")
    print(f"full recompute (+ normalisation and bootstrap):     {full:7.1f} ms  ratio to {TARGET_MS:.0f} ms target: "
          f"{full / TARGET_MS:.3f}")


if __name__ == "__main__":
    main()
